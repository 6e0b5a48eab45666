"""Training configuration: one frozen, validated dataclass, read from YAML, overridable from the CLI.

The dataclass is a pydantic dataclass with ``extra="forbid"`` and typed ranges, so an unknown
key, a wrong type or an out-of-range value (a negative or NaN learning rate, a negative
warm-up) fails at load with the key's name, the file and the line. Every key has help text
(``ranker train --help-config`` prints it); the resolved configuration is saved beside each
checkpoint (and as ``config.yaml`` in the output folder) so a run can always be reproduced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic.dataclasses import dataclass

from ranker.training.settings import (
    NESTED,
    SCHEMA,
    BackboneSettings,
    Count,
    DebiasSettings,
    DistillSettings,
    GuideSettings,
    LearningRate,
    LoraSettings,
    NonNegFloat,
    NonNegInt,
    OptionalRate,
    PositiveFloat,
    QueryTokens,
    Tokens,
    described,
)
from retrievers.errors import InputError

MODEL_TYPES = ("cross", "bi")
LOSSES = ("pairwise", "listwise", "infonce")
SELECTIONS = ("none", "text", "features")
WEIGHT_PASSES = ("auto", "eval", "shared")


@dataclass(frozen=True, config=SCHEMA)
class TrainConfig:
    """Everything ``ranker train`` needs; see ``docs/training.md``."""

    # data
    dataset: str = described("", "dataset spec (BEIR/MS MARCO folder, irds:<id>, or a name)")
    negatives: str = described(
        "", "negatives JSONL written by `ranker mine` (qid, query, positives, negatives)"
    )
    output_dir: str = described("", "where checkpoints, metrics.csv, weights and the final model go")
    # model
    model_type: Literal["cross", "bi"] = described(
        "cross", "'cross' (cross-encoder reranker) or 'bi' (bi-encoder)"
    )
    model: str = described("", "model name or path to start from (HF folder or a saved ranker model)")
    pooling: str = described(
        "",
        "pooling mode ('': the model's default; mean for a bi-encoder from a "
        "plain transformer, cls for a cross-encoder)",
    )
    pooling_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "options of the pooler of a new model, e.g. {segments: 8, window: 5} for "
            "ponet (see docs/pooling.md; a saved model keeps its own)"
        },
    )
    attention: Literal["", "causal", "bidirectional"] = described(
        "",
        "decoder attention: '' (the model's: causal for a new decoder), 'causal' or "
        "'bidirectional' (LLM2Vec-style); encoders are always bidirectional",
    )
    normalize: bool = described(True, "bi-encoder: L2-normalize embeddings (cosine similarity)")
    interaction: Literal["", "mlb", "mfb"] = described(
        "",
        "bi-encoder scorer: '' (scale * q . d) or a low-rank bilinear head over the two "
        "embeddings, 'mlb' or 'mfb' (see docs/pooling.md); such a model reranks a run "
        "(evaluation needs eval_run)",
    )
    interaction_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "options of a new interaction head: mm_dim, factors, activ_input, normalize"},
    )
    backbone: BackboneSettings = field(
        default_factory=BackboneSettings,
        metadata={
            "help": "freeze the backbone and read its states from a cache, e.g. "
            "{freeze: all, states: cache/scifact-minilm} (bi-encoders; see docs/training.md)"
        },
    )
    adapter: bool = described(
        False, "bi-encoder: a trainable linear map (identity at first) on the pooled vector"
    )
    max_query_length: QueryTokens = described(32, "query tokens (bi-encoder)")
    max_length: Tokens = described(256, "tokens of a document (bi) or of a query+document pair (cross)")
    lora: LoraSettings | None = described(
        None,
        "train a LoRA adapter on R instead of all weights: a mapping of rank, alpha, dropout, "
        "target_modules (e.g. --set lora.rank=8); null: full fine-tuning",
    )
    # loss
    loss: Literal["pairwise", "listwise", "infonce"] = described(
        "listwise",
        "'pairwise' (softmax CE per (pos, neg) pair, the CET paper's), "
        "'listwise' (CE over 1 positive + n negatives) or 'infonce' (bi: + in-batch)",
    )
    distill: DistillSettings | None = described(
        None,
        "distillation from teacher scores: a mapping of loss (margin_mse|kl), scores, teacher, "
        "weight, alone, teacher_temperature, student_temperature; null: none",
    )
    guide: GuideSettings | None = described(
        None, "GISTEmbed guide masking: a mapping of model or scores, margin, strategy; null: none"
    )
    debias: DebiasSettings | None = described(
        None, "debiased InfoNCE (Chuang et al. 2020): a mapping of tau_plus; null: plain InfoNCE"
    )
    n_negatives: Count = described(3, "hard negatives per query in a step")
    negative_depth: NonNegInt = described(0, "sample negatives among the first N of each list (0: all)")
    scale: PositiveFloat = described(20.0, "bi-encoder logit scale (1 / temperature) on cosine similarities")
    # CET (Cai et al., CIKM 2022)
    selection: Literal["none", "text", "features"] = described(
        "none",
        "CET selection model S: 'none' (plain training), 'text' (a "
        "cross-encoder, the paper's) or 'features' (an MLP over the negative's "
        "retriever rank/score/name)",
    )
    selection_model: str = described("", "starting weights of a text S (default: the cross-encoder `model`)")
    selection_states: str = described(
        "",
        "a `ranker cache-states` folder: the text S becomes a frozen-backbone scorer (mean "
        "pooling + its own trainable adapter, scale * q . d per pair) read from it, instead "
        "of a cross-encoder (default: R's backbone.states when S has no selection_model)",
    )
    selection_lr: OptionalRate = described(
        0.0, "learning rate of S (0: same as lr; features S uses 1e-3 if 0)"
    )
    temperature: PositiveFloat = described(10.0, "CET temperature T in w = 1 / (1 - sigmoid(score / T))")
    max_weight: NonNegFloat = described(0.0, "clip CET weights to at most this (0: no clipping)")
    normalize_weights: Literal["auto", "none", "batch", "query"] | bool = described(
        "auto",
        "rescale CET's weights to mean 1: 'query' (over each query's hard negatives, so "
        "constant weights leave a listwise/infonce loss exactly unweighted), 'batch' (over the "
        "batch; true is the same), 'none' (false) or 'auto' (query for listwise and infonce, "
        "none for the authors' pairwise form, where a constant weight only scales the loss)",
    )
    selection_warmup: NonNegInt = described(
        0,
        "CET: train S alone for this many steps first (weighted by the starting R's scores); R "
        "then trains its max_steps steps on the batches a run without warm-up sees",
    )
    selection_evidence: list[str] = field(
        default_factory=list,
        metadata={
            "help": "feature S: the retrievers whose ranks and scores it sees. []: the negatives "
            "file's evidence-only retrievers (`ranker mine --evidence-index`, the systems that "
            "built the judging pool); name the mining retriever too (e.g. [bm25, dense]) only "
            "when it was one of the pool's systems or on purpose"
        },
    )
    weight_pass: Literal["auto", "eval", "shared"] = described(
        "auto",
        "where CET's weights come from: 'eval' (a separate no-grad eval-mode pass over the "
        "negatives, the authors' way), 'shared' (the training forward's detached scores; "
        "cheaper, but with dropout noise) or 'auto' (shared when neither model has active "
        "dropout, where both give the same weights, else eval)",
    )
    dump_weights: bool = described(True, "write weights.jsonl (qid, docid, weight, step) for audits")
    # optimisation
    batch_size: Count = described(16, "queries per micro-batch (global across processes)")
    grad_accum: Count = described(1, "micro-batches per optimizer step")
    max_steps: Count = described(500, "optimizer steps")
    lr: LearningRate = described(2e-5, "AdamW learning rate (the CET paper: 3e-6 for BERT-base)")
    head_lr: OptionalRate = described(
        0.0,
        "learning rate of the parameters outside the backbone: a trainable pooler, an "
        "interaction head (0: same as lr)",
    )
    weight_decay: NonNegFloat = described(0.01, "AdamW weight decay (not on biases and LayerNorm)")
    warmup_steps: NonNegInt = described(50, "linear warm-up steps, then linear decay to 0 at max_steps")
    max_grad_norm: NonNegFloat = described(1.0, "gradient clipping norm (0: off)")
    precision: Literal["auto", "native", "bf16", "fp32"] = described(
        "auto",
        "'auto' (bf16 autocast on GPU, fp32 on CPU), 'native' (bf16 autocast on GPU and on "
        "CPUs with native bf16 arithmetic, AMX or AVX512-BF16; fp32 on other CPUs), 'bf16' "
        "or 'fp32'",
    )
    gradient_checkpointing: bool = described(False, "recompute activations in backward to save memory")
    seed: NonNegInt = described(42, "fixes data order, negative sampling, dropout and initialisation")
    device: str = described("auto", "'auto', 'cpu', 'cuda' (DDP: one GPU per process)")
    # evaluation, logging, checkpoints
    eval_split: str = described("", "dataset split for periodic evaluation ('' : none)")
    eval_every: NonNegInt = described(0, "evaluate every N steps (0: only at the end, if eval_split is set)")
    eval_metric: str = described("ndcg@10", "ranx metric that picks the best checkpoint")
    patience: NonNegInt = described(
        0,
        "stop early after this many evaluations without a better eval_metric (0: never); "
        "the best model is in best/",
    )
    eval_run: str = described("", "cross-encoder evaluation: TREC run to rerank")
    eval_depth: Count = described(100, "cross-encoder evaluation: documents reranked per query")
    eval_batch_size: Count = described(64, "batch size for encoding/scoring during evaluation")
    log_every: Count = described(10, "write a metrics.csv row every N steps")
    save_every: NonNegInt = described(100, "checkpoint every N steps (0: only at the end)")
    keep_checkpoints: NonNegInt = described(2, "how many recent checkpoints to keep (0: all)")

    def __post_init__(self) -> None:
        if self.loss == "infonce" and self.model_type == "cross":
            raise ValueError(
                "config key 'loss' = 'infonce': expected 'pairwise' or 'listwise' for a "
                "cross-encoder (no in-batch negatives)"
            )
        if self.backbone.frozen != "none" and self.model_type != "bi":
            raise ValueError(
                "config key 'backbone': a frozen or cached backbone is for bi-encoders "
                "(model_type: bi); a cross-encoder's states depend on the pair"
            )
        if self.selection_states and self.selection != "text":
            raise ValueError("config key 'selection_states' is for selection: text")
        if self.backbone.states and self.backbone.frozen == "none":
            raise ValueError("config key 'backbone.states' needs backbone.freeze: all or {bottom: K}")
        if self.backbone.frozen == "all" and self.lora is not None:
            raise ValueError("config keys 'backbone.freeze' = 'all' and 'lora' exclude each other")
        if self.patience and not (self.eval_split and self.eval_every):
            raise ValueError("config key 'patience' needs eval_split and eval_every")
        if self.debias is not None and (self.loss != "infonce" or self.interaction):
            raise ValueError(
                "config key 'debias' is set: expected loss 'infonce' on a bi-encoder without an "
                "interaction head (the estimator's clamp needs the cosine scale)"
            )
        if self.distill is not None and not self.distill.scores:
            raise ValueError(
                f"config key 'distill' asks for {self.distill.loss!r}, but the negatives file "
                f"{self.negatives!r} has no teacher scores: run `ranker score {self.negatives or 'NEG'} "
                "--model TEACHER --out SCORES` and set distill.scores"
            )
        if self.guide is not None and bool(self.guide.model) == bool(self.guide.scores):
            raise ValueError("config key 'guide': expected exactly one of guide.model and guide.scores")
        if self.selection_warmup and self.selection == "none":
            raise ValueError(
                f"config key 'selection_warmup' = {self.selection_warmup}: expected 0 without "
                "CET (selection: none has no S to warm up)"
            )
        if self.interaction and self.model_type != "bi":
            raise ValueError(
                f"config key 'interaction' = {self.interaction!r}: expected '' for a "
                "cross-encoder (the head scores bi-encoder embeddings)"
            )

    def weight_normalization(self) -> Literal["none", "batch", "query"]:
        """How CET's weights are rescaled (``normalize_weights`` with ``auto`` and the
        booleans resolved)."""
        value = self.normalize_weights
        if value is True:
            return "batch"
        if value is False:
            return "none"
        if value == "auto":
            return "none" if self.loss == "pairwise" else "query"
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-safe)."""
        return dataclasses.asdict(self)

    def bf16_on(self, device_type: str, cpu_flags: set[str] | None = None) -> bool:
        """Whether training on ``device_type`` (``"cuda"``, ``"cpu"``) runs under bf16 autocast:
        ``precision: bf16`` anywhere, ``auto`` on GPU only, ``native`` on GPU and on a CPU
        with native bf16 units (``cpu_flags``: its feature flags, read from ``/proc/cpuinfo``
        when not given; bf16 emulated without them is slower than fp32)."""
        if self.precision in ("bf16", "fp32"):
            return self.precision == "bf16"
        if device_type == "cuda":
            return True
        if self.precision == "native" and device_type == "cpu":
            from ranker.precision import native_bf16

            return native_bf16(cpu_flags)
        return False


def _describe(error: Any) -> tuple[str, str]:
    """The dotted key and a one-line message for one pydantic error."""
    key = ".".join(str(part) for part in error["loc"])
    message = " ".join(str(error["msg"]).split())
    if error["type"] == "unexpected_keyword_argument":
        return key, f"unknown config key {key!r}"
    if not key:  # a check across keys (__post_init__)
        return key, message.removeprefix("Value error, ")
    message = message.removeprefix("Value error, ")
    for bound in ("greater", "less"):
        message = message.replace(f"Input should be {bound}", f"expected a value {bound}")
    message = message.replace("Input should be", "expected")
    return key, f"config key {key!r} = {error.get('input')!r}: {message}"


def build_config(
    values: Mapping[str, Any], source: str = "config", lines: Mapping[str, int] | None = None
) -> TrainConfig:
    """A validated :class:`TrainConfig` from a mapping.

    Args:
        values: Keys and values (nested mappings for ``lora``, ``distill``, ``guide``, ``debias``).
        source: The file they come from (or ``--set``), named in errors.
        lines: The line of each top-level key in ``source``, if known.

    Raises:
        InputError: one line naming the first bad key (unknown, wrong type, out of range).
    """
    try:
        return TrainConfig(**values)
    except ValidationError as err:
        key, message = _describe(err.errors()[0])
        if message.startswith("unknown config key"):
            schema = NESTED.get(key.split(".")[0], TrainConfig) if "." in key else TrainConfig
            known = ", ".join(f.name for f in dataclasses.fields(schema))
            message += f"; known keys: {known}"
        top = key.split(".")[0]
        error = InputError(message, source, None if lines is None else lines.get(top))
        error.key = top  # type: ignore[attr-defined]
        raise error from None
    except TypeError as err:  # not a mapping of str keys
        raise InputError(f"expected a mapping of config keys: {err}", source) from None


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-5", "lora.rank=4"]`` -> ``{"lr": 1e-5, "lora": {"rank": 4}}``; values are
    parsed as YAML scalars (bounded, as in :mod:`ranker.yamlfile`), dots in a key address
    nested keys."""
    from ranker.yamlfile import YAMLLimitError, parse_yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise InputError(f"--set {pair!r}: expected KEY=VALUE (KEY.SUBKEY=VALUE for nested keys)")
        try:
            parsed = parse_yaml(value, f"--set {key}") if value.strip() else ""
        except YAMLLimitError:
            raise
        except InputError:  # not YAML: the text as it is
            parsed = value
        target = out
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[parts[-1]] = parsed
    return out


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied, nested mappings merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config and apply ``KEY=VALUE`` overrides.

    Raises:
        InputError: one line naming the file (and line) when the file is missing, a directory,
            not UTF-8, not valid YAML (or has a ``!!python`` tag), or holds a bad key or value.
    """
    from ranker.yamlfile import read_yaml

    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    source = "--set"
    if path is not None:
        loaded = read_yaml(path, "training config")
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError("expected a mapping of config keys at the top level", path, 1)
        values = dict(loaded or {})
        lines = dict(getattr(loaded, "lines", {}))
        source = str(path)
    extra = parse_overrides(overrides)
    config_lines = {k: v for k, v in lines.items() if k not in extra}
    try:
        config = build_config(merge(values, extra), source, config_lines)
    except InputError as err:
        if getattr(err, "key", None) in extra:  # the bad value came from --set
            raise InputError(f"{err.message} (from --set)", source) from None
        raise
    for key in ("dataset", "negatives", "output_dir", "model"):
        if not getattr(config, key):
            raise InputError(f"config key {key!r} is required ({source})")
    return config


def describe_keys() -> str:
    """One line per key: name, default and help (for ``--help-config``)."""
    lines = []
    for f in dataclasses.fields(TrainConfig):
        factory: Any = f.default_factory
        default = factory() if f.default is dataclasses.MISSING else f.default
        lines.append(f"  {f.name} (default {default!r}): {f.metadata['help']}")
    for prefix, schema in NESTED.items():
        for f in dataclasses.fields(schema):
            lines.append(f"  {prefix}.{f.name} (default {f.default!r}): {f.metadata['help']}")
    return "\n".join(lines)
