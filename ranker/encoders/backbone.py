"""Transformer backbones: any transformers model, encoder or decoder, with all hidden states."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

ATTENTION_MODES = ("causal", "bidirectional")
# Token budget when none is asked for (capped at the model's own limit).
DEFAULT_MAX_LENGTH = 512
_WARNED: set[tuple[int, int]] = set()


def is_decoder_config(config: Any) -> bool:
    """Whether a transformers config describes a decoder-only (causal) language model."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return False
    model_type = getattr(config, "model_type", "")
    return (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def classifies_sequences(config: Any) -> bool:
    """Whether transformers has a ``*ForSequenceClassification`` model for this encoder config
    (decoders are excluded: their heads score the last non-pad token, which differs from the
    ranker's EOS pooling when pad and EOS are one token)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    return not is_decoder_config(config) and getattr(config, "model_type", "") in (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    )


def _has_classification_head(name_or_path: str) -> bool:
    """Whether a local checkpoint already is a ``*ForSequenceClassification`` model (else
    transformers initialises a new head and reports its weights as missing, as expected)."""
    import json

    config = Path(name_or_path) / "config.json"
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return False
    return any(str(a).endswith("ForSequenceClassification") for a in architectures)


@contextlib.contextmanager
def transformers_errors_only() -> Iterator[None]:
    """Silence transformers' warnings (a load report when a new head is created on purpose,
    the notes it logs while a model is traced)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def set_attention(model: nn.Module, attention: str) -> None:
    """Switch a decoder's self-attention between ``"causal"`` and ``"bidirectional"``.

    Bidirectional attention lets every token see the whole text, as LLM2Vec (BehnamGhader et
    al., 2024) and the MLTP paper (Tang & Yang, 2024) do for decoder embedders. transformers
    builds a bidirectional mask when ``config.is_causal`` is false; the attention modules'
    own ``is_causal`` flag is cleared too, because SDPA falls back to it when no mask is built.
    """
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
    causal = attention == "causal"
    for config in {id(c): c for c in _configs(model)}.values():
        config.is_causal = causal
    for module in model.modules():
        if module is not model and hasattr(module, "is_causal") and isinstance(module.is_causal, bool):
            module.is_causal = causal


def tokenizer_appends_eos(tokenizer: Any) -> bool:
    """Make a fast tokenizer append its EOS token after its own special tokens (a
    post-processor step, kept by ``save_pretrained``); True if it now does so."""

    def ends_with_eos() -> bool:
        ids = tokenizer("a")["input_ids"]
        return bool(ids) and ids[-1] == tokenizer.eos_token_id

    if ends_with_eos():
        return True
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    from tokenizers import processors

    eos = tokenizer.eos_token
    append = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0",
        pair=f"$A:0 $B:1 {eos}:1",
        special_tokens=[(eos, tokenizer.eos_token_id)],
    )
    existing = backend.post_processor
    backend.post_processor = append if existing is None else processors.Sequence([existing, append])
    return ends_with_eos()


def freeze_unused_pooler(model: nn.Module) -> bool:
    """Freeze a base model's pooling head (BERT's ``pooler``: dense + tanh on CLS), which a
    backbone returning hidden states never uses; True if there was one.

    Its weights would get no gradient, which DDP refuses ("Parameter indices which did not
    receive grad"). Freezing rather than deleting it keeps saved folders complete, so
    transformers and sentence-transformers reload them without a missing-weights report.
    """
    pooler = getattr(model, "pooler", None)
    if not isinstance(pooler, nn.Module):
        return False
    pooler.requires_grad_(False)
    return True


def _configs(model: nn.Module) -> Iterator[Any]:
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            yield config


class Backbone(nn.Module):
    """A transformers model plus its tokenizer, returning hidden states for a pooler.

    Args:
        model: A transformers base model (``AutoModel``).
        tokenizer: Its tokenizer.
        attention: ``"causal"`` or ``"bidirectional"`` for decoders (default causal);
            must be None for encoders, which are always bidirectional.
        append_eos: Append the EOS token to every text (default: true for decoders, so the
            last token has read the whole text).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        attention: str | None = None,
        append_eos: bool | None = None,
    ) -> None:
        super().__init__()
        # a transformers PreTrainedModel (or a peft PeftModel around one): typed Any, since
        # nn.Module's __getattr__ hides its config and methods from the type checker
        self.model: Any = model
        self.tokenizer = tokenizer
        config: Any = model.config
        # a *ForSequenceClassification model scores with its own head (see ``classify``)
        self.classifier = type(model).__name__.endswith("ForSequenceClassification")
        self.is_decoder = is_decoder_config(config)
        if attention is not None and not self.is_decoder:
            if attention != "bidirectional":
                raise ValueError(
                    f"{config.model_type} is an encoder: its attention is always "
                    "bidirectional, so attention must be None or 'bidirectional'"
                )
            attention = None
        self.attention = attention or ("causal" if self.is_decoder else None)
        if self.attention is not None:  # set exactly for decoders
            set_attention(model, self.attention)
        self.append_eos = self.is_decoder if append_eos is None else bool(append_eos)
        self._takes_position_ids = "position_ids" in inspect.signature(model.forward).parameters
        freeze_unused_pooler(model)
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has neither a pad nor an EOS token")
            tokenizer.pad_token = tokenizer.eos_token
        if self.append_eos and tokenizer.eos_token_id is None:
            raise ValueError("append_eos needs a tokenizer with an EOS token")
        # Prefer teaching the tokenizer itself to append EOS: the saved tokenizer then does it
        # too, so sentence-transformers reproduces our token ids. Fall back to doing it here.
        self._manual_eos = self.append_eos and not tokenizer_appends_eos(tokenizer)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.hidden_size = int(text.hidden_size)
        self.num_layers = int(text.num_hidden_layers)
        self.num_heads = int(getattr(text, "num_attention_heads", 1) or 1)
        # an inference-only compiled forward (``--dtype ...-openvino``); see ``use_openvino``
        self.runtime: Any = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        attention: str | None = None,
        append_eos: bool | None = None,
        trust_remote_code: bool = False,
        dtype: torch.dtype | str | None = None,
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        sequence_classification: bool = False,
    ) -> Backbone:
        """Load a hub id or local folder with ``AutoModel`` (or, with
        ``sequence_classification``, ``AutoModelForSequenceClassification`` with one label)
        and ``AutoTokenizer``.

        Args:
            name_or_path: Hub id or local folder of a transformers model, or a ``.gguf``
                file (converted once into the cache, see :mod:`ranker.encoders.gguf`).
            attention: Decoder attention, ``"causal"`` (default) or ``"bidirectional"``.
            append_eos: See the class docstring.
            trust_remote_code: Run the model's own code; off unless asked for.
            dtype: Weight dtype (e.g. ``torch.bfloat16``); default float32.
            lora: If given, wrap the model with a peft LoRA adapter built from these
                ``peft.LoraConfig`` arguments (e.g. ``{"r": 8, "target_modules": [...]}``).
            gradient_checkpointing: Trade compute for memory in training.
            sequence_classification: Load the architecture's standard one-logit
                classification head too (a fresh one if the checkpoint has none).
        """
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        from ranker.encoders.folders import check_model_folder
        from retrievers.errors import InputError, first_line

        name_or_path = str(name_or_path)
        if name_or_path.endswith(".gguf"):
            from ranker.encoders.gguf import cached_hf_folder

            name_or_path = str(cached_hf_folder(name_or_path))
        check_model_folder(name_or_path, trust_remote_code)
        kwargs: dict[str, Any] = {
            "trust_remote_code": trust_remote_code,
            "dtype": dtype or torch.float32,
            "use_safetensors": True,
        }
        try:
            if sequence_classification:
                fresh = not _has_classification_head(name_or_path)
                with transformers_errors_only() if fresh else contextlib.nullcontext():
                    model = AutoModelForSequenceClassification.from_pretrained(
                        name_or_path, num_labels=1, **kwargs
                    )
                if fresh:
                    logger.info("%s: a new one-logit classification head (to be trained)", name_or_path)
            else:
                model = AutoModel.from_pretrained(name_or_path, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        except OSError as err:  # not on the hub (or offline), no tokenizer files, ...
            first = first_line(err)
            raise InputError(f"cannot load the model: {first}", name_or_path) from None
        backbone = cls(model, tokenizer, attention=attention, append_eos=append_eos)
        if gradient_checkpointing:
            backbone.enable_gradient_checkpointing()
        if lora is not None:
            backbone.add_lora(**lora)
        return backbone

    # -- length limits ---------------------------------------------------------------------------
    @property
    def max_positions(self) -> int | None:
        """The most tokens the model takes: ``max_position_embeddings`` less the offset of
        models whose positions start after the padding index (RoBERTa: 514 - 2), and the
        tokenizer's ``model_max_length`` when that is a real limit; ``None`` if neither says."""
        config = self.base_model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        limits = []
        positions = getattr(text, "max_position_embeddings", None)
        if isinstance(positions, int) and positions > 0:
            embeddings = getattr(self.base_model, "embeddings", None)
            padding_idx = getattr(embeddings, "padding_idx", None)
            offset = (
                padding_idx + 1
                if isinstance(padding_idx, int) and hasattr(embeddings, "position_embeddings")
                else 0
            )
            limits.append(positions - offset)
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:  # else "no limit"
            limits.append(tokenizer_limit)
        return min(limits) if limits else None

    def fit_max_length(self, requested: int | None, default: int = DEFAULT_MAX_LENGTH) -> int:
        """``requested`` (or ``default``) capped at :attr:`max_positions`; a requested length
        beyond the model's limit is logged (once per value) and capped."""
        limit = self.max_positions
        length = default if requested is None else int(requested)
        if limit is not None and length > limit:
            if requested is not None and (requested, limit) not in _WARNED:
                _WARNED.add((requested, limit))
                logger.warning(
                    "max_length %d exceeds the model's %d positions; using %d", requested, limit, limit
                )
            length = limit
        return length

    # -- training helpers ----------------------------------------------------------------------
    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass instead of storing them."""
        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(self.model.config, "use_cache"):
            self.model.config.use_cache = False

    def add_lora(self, **lora_kwargs: Any) -> None:
        """Freeze the backbone and train a LoRA adapter (Hu et al., ICLR 2022) through peft."""
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:  # pragma: no cover - peft is in the llm extra
            raise ImportError("LoRA needs peft: pip install 'ranker-toolkit[llm]'") from err
        lora_kwargs.setdefault("r", 8)
        lora_kwargs.setdefault("lora_alpha", 2 * lora_kwargs["r"])
        lora_kwargs.setdefault("target_modules", "all-linear")
        if self.classifier:  # peft then trains the classification head in full
            lora_kwargs.setdefault("task_type", "SEQ_CLS")
        self.model = get_peft_model(self.model, LoraConfig(**lora_kwargs))

    def merged_model(self) -> Any:
        """A plain transformers model to save: a merged copy when a LoRA adapter is on
        (the training model keeps its adapter), the model itself otherwise."""
        if hasattr(self.model, "merge_and_unload"):
            import copy

            return copy.deepcopy(self.model).merge_and_unload()
        return self.model

    @property
    def base_model(self) -> Any:
        """The transformers model (unwrapped from peft)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def use_openvino(self, dtype: str) -> None:
        """Run inference forwards through OpenVINO in ``dtype`` (``"bfloat16"`` or
        ``"float32"``); see :mod:`ranker.encoders.openvino`. Forwards with gradients still
        run in PyTorch, and switching to training mode drops the compiled copy."""
        from ranker.encoders.openvino import OpenVINOForward

        self.runtime = OpenVINOForward(
            self.merged_model(), dtype, self.tokenizer.padding_side, decoder=self.is_decoder
        )

    def train(self, mode: bool = True) -> Backbone:
        if mode and self.runtime is not None:
            logger.info("training mode: the OpenVINO copy of the weights is dropped")
            self.runtime = None
        return super().train(mode)

    # -- tokenization and forward --------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], max_length: int, *, pad: bool = True) -> dict[str, Any]:
        """Tokenize (truncating to ``max_length`` tokens, EOS included when appended).

        With ``pad=False`` returns lists of ids (for length-sorted batching); otherwise tensors.
        """
        if isinstance(texts, str):
            raise TypeError("tokenize takes a list of texts, not one string")
        room = max_length - 1 if self._manual_eos else max_length
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=room,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids = encoded["input_ids"]
        if self._manual_eos:
            eos = self.tokenizer.eos_token_id
            ids = [row if row and row[-1] == eos else [*row, eos] for row in ids]
        if not pad:
            return {"input_ids": ids}
        return self.pad(ids)

    def pad(self, ids: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """Pad lists of token ids into ``input_ids`` and ``attention_mask`` tensors, on the
        tokenizer's padding side."""
        longest = max((len(row) for row in ids), default=0)
        batch = torch.full((len(ids), longest), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), longest), dtype=torch.long)
        left = self.tokenizer.padding_side == "left"
        for i, row in enumerate(ids):
            if not row:
                continue
            span = slice(longest - len(row), longest) if left else slice(0, len(row))
            batch[i, span] = torch.as_tensor(row, dtype=torch.long)
            mask[i, span] = 1
        return {"input_ids": batch, "attention_mask": mask}

    def classify(self, features: dict[str, Tensor]) -> Tensor:
        """Logits (B, num_labels) of a sequence-classification model, called exactly as
        transformers and sentence-transformers call it (ids, mask, token types)."""
        if not self.classifier:
            raise TypeError(f"{type(self.model).__name__} is not a sequence-classification model")
        names = ("input_ids", "attention_mask", "token_type_ids")
        return self.model(**{k: features[k] for k in names if k in features}, return_dict=True).logits

    def forward(self, features: dict[str, Tensor], all_layers: bool = False) -> tuple[Tensor, ...]:
        """Hidden states: all ``num_layers + 1`` of them, or just the last one.

        Position ids are computed from the mask (when the model takes them), so that left
        padding does not shift them: a text gets the same states whatever its padding.
        """
        inputs: dict[str, Any] = {
            "input_ids": features["input_ids"],
            "attention_mask": features["attention_mask"],
        }
        if "token_type_ids" in features:
            inputs["token_type_ids"] = features["token_type_ids"]
        if self._takes_position_ids:
            mask = features["attention_mask"]
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if self.runtime is not None and not torch.is_grad_enabled():
            return tuple(self.runtime(inputs, all_layers))
        if self.is_decoder:
            inputs["use_cache"] = False
        output = self.model(**inputs, output_hidden_states=all_layers, return_dict=True)
        if all_layers:
            return tuple(output.hidden_states)
        return (output.last_hidden_state,)


@contextlib.contextmanager
def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Iterator[None]:
    """Mixed precision for the block (``dtype`` float16/bfloat16), or nothing if None."""
    if dtype is None or dtype == torch.float32:
        yield
        return
    device_type = torch.device(device).type
    with torch.autocast(device_type=device_type, dtype=dtype):
        yield
