"""Training configuration: one frozen dataclass, read from YAML, overridable from the CLI.

Every key has help text (``ranker train --help-config`` prints it); an unknown key is an error
naming the key and the file, and the resolved configuration is saved beside each checkpoint so
a run can always be reproduced.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrievers.errors import InputError

MODEL_TYPES = ("cross", "bi")
LOSSES = ("pairwise", "listwise", "infonce")
SELECTIONS = ("none", "text", "features")
WEIGHT_PASSES = ("auto", "eval", "shared")


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``ranker train`` needs; see ``docs/training.md``."""

    # data
    dataset: str = _f("", "dataset spec (BEIR/MS MARCO folder, irds:<id>, or a name)")
    negatives: str = _f("", "negatives JSONL written by `ranker mine` (qid, query, positives, negatives)")
    output_dir: str = _f("", "where checkpoints, metrics.csv, weights and the final model go")
    # model
    model_type: str = _f("cross", "'cross' (cross-encoder reranker) or 'bi' (bi-encoder)")
    model: str = _f("", "model name or path to start from (HF folder or a saved ranker model)")
    pooling: str = _f(
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
    attention: str = _f(
        "",
        "decoder attention: '' (the model's: causal for a new decoder), 'causal' or "
        "'bidirectional' (LLM2Vec-style); encoders are always bidirectional",
    )
    normalize: bool = _f(True, "bi-encoder: L2-normalize embeddings (cosine similarity)")
    interaction: str = _f(
        "",
        "bi-encoder scorer: '' (scale * q . d) or a low-rank bilinear head over the two "
        "embeddings, 'mlb' or 'mfb' (see docs/pooling.md); such a model reranks a run "
        "(evaluation needs eval_run)",
    )
    interaction_options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "options of a new interaction head: mm_dim, factors, activ_input, normalize"},
    )
    max_query_length: int = _f(32, "query tokens (bi-encoder)")
    max_length: int = _f(256, "tokens of a document (bi) or of a query+document pair (cross)")
    # loss
    loss: str = _f(
        "listwise",
        "'pairwise' (softmax CE per (pos, neg) pair, the CET paper's), "
        "'listwise' (CE over 1 positive + n negatives) or 'infonce' (bi: + in-batch)",
    )
    n_negatives: int = _f(3, "hard negatives per query in a step")
    negative_depth: int = _f(0, "sample negatives among the first N of each list (0: all)")
    scale: float = _f(20.0, "bi-encoder logit scale (1 / temperature) on cosine similarities")
    # CET (Cai et al., CIKM 2022)
    selection: str = _f(
        "none",
        "CET selection model S: 'none' (plain training), 'text' (a "
        "cross-encoder, the paper's) or 'features' (an MLP over the negative's "
        "retriever rank/score/name)",
    )
    selection_model: str = _f("", "starting weights of a text S (default: the cross-encoder `model`)")
    selection_lr: float = _f(0.0, "learning rate of S (0: same as lr; features S uses 1e-3 if 0)")
    temperature: float = _f(10.0, "CET temperature T in w = 1 / (1 - sigmoid(score / T))")
    max_weight: float = _f(0.0, "clip CET weights to at most this (0: no clipping)")
    normalize_weights: bool = _f(False, "divide each batch's negative weights by their mean")
    weight_pass: str = _f(
        "auto",
        "where CET's weights come from: 'eval' (a separate no-grad eval-mode pass over the "
        "negatives, the authors' way), 'shared' (the training forward's detached scores; "
        "cheaper, but with dropout noise) or 'auto' (shared when neither model has active "
        "dropout, where both give the same weights, else eval)",
    )
    dump_weights: bool = _f(True, "write weights.jsonl (qid, docid, weight, step) for audits")
    # optimisation
    batch_size: int = _f(16, "queries per micro-batch (global across processes)")
    grad_accum: int = _f(1, "micro-batches per optimizer step")
    max_steps: int = _f(500, "optimizer steps")
    lr: float = _f(2e-5, "AdamW learning rate (the CET paper: 3e-6 for BERT-base)")
    weight_decay: float = _f(0.01, "AdamW weight decay (not on biases and LayerNorm)")
    warmup_steps: int = _f(50, "linear warm-up steps, then linear decay to 0 at max_steps")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0: off)")
    precision: str = _f("auto", "'auto' (bf16 autocast on GPU, fp32 on CPU), 'bf16' or 'fp32'")
    gradient_checkpointing: bool = _f(False, "recompute activations in backward to save memory")
    seed: int = _f(42, "fixes data order, negative sampling, dropout and initialisation")
    device: str = _f("auto", "'auto', 'cpu', 'cuda' (DDP: one GPU per process)")
    # evaluation, logging, checkpoints
    eval_split: str = _f("", "dataset split for periodic evaluation ('' : none)")
    eval_every: int = _f(0, "evaluate every N steps (0: only at the end, if eval_split is set)")
    eval_metric: str = _f("ndcg@10", "ranx metric that picks the best checkpoint")
    eval_run: str = _f("", "cross-encoder evaluation: TREC run to rerank")
    eval_depth: int = _f(100, "cross-encoder evaluation: documents reranked per query")
    eval_batch_size: int = _f(64, "batch size for encoding/scoring during evaluation")
    log_every: int = _f(10, "write a metrics.csv row every N steps")
    save_every: int = _f(100, "checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep")

    def __post_init__(self) -> None:
        checks = [
            (self.model_type in MODEL_TYPES, "model_type", f"one of {MODEL_TYPES}"),
            (self.loss in LOSSES, "loss", f"one of {LOSSES}"),
            (self.selection in SELECTIONS, "selection", f"one of {SELECTIONS}"),
            (self.weight_pass in WEIGHT_PASSES, "weight_pass", f"one of {WEIGHT_PASSES}"),
            (self.precision in ("auto", "bf16", "fp32"), "precision", "auto, bf16 or fp32"),
            (
                self.attention in ("", "causal", "bidirectional"),
                "attention",
                "'', 'causal' or 'bidirectional'",
            ),
            (self.interaction in ("", "mlb", "mfb"), "interaction", "'', 'mlb' or 'mfb'"),
            (
                not (self.interaction and self.model_type != "bi"),
                "interaction",
                "'' for a cross-encoder (the head scores bi-encoder embeddings)",
            ),
            (self.n_negatives >= 1, "n_negatives", ">= 1"),
            (self.batch_size >= 1, "batch_size", ">= 1"),
            (self.grad_accum >= 1, "grad_accum", ">= 1"),
            (self.max_steps >= 1, "max_steps", ">= 1"),
            (self.temperature > 0, "temperature", "> 0"),
            (self.max_weight >= 0, "max_weight", ">= 0"),
            (
                not (self.loss == "infonce" and self.model_type == "cross"),
                "loss",
                "'pairwise' or 'listwise' for a cross-encoder (no in-batch negatives)",
            ),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise InputError(f"config key {key!r} = {getattr(self, key)!r}; expected {expected}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-safe)."""
        return dataclasses.asdict(self)


def _key_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _coerce(key: str, value: Any, kind: type, source: str) -> Any:
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if typing.get_origin(kind) is dict:
        if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
            return dict(value)
        raise InputError(f"config key {key!r} = {value!r} in {source}; expected a mapping")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif kind is int and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return int(value)
        except ValueError:
            pass
    elif kind is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"config key {key!r} = {value!r} in {source}; expected {kind.__name__}")


def build_config(values: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from a mapping; unknown keys and wrong types raise InputError."""
    kinds = _key_types()
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise InputError(
            f"unknown config key {unknown[0]!r} in {source}; known keys: {', '.join(sorted(kinds))}"
        )
    return TrainConfig(**{k: _coerce(k, v, kinds[k], source) for k, v in values.items()})


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["lr=1e-5", "loss=listwise"]`` -> dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (``yaml.safe_load``) and apply ``KEY=VALUE`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("config file not found", path) from None
        except yaml.YAMLError as err:
            line = getattr(getattr(err, "problem_mark", None), "line", None)
            raise InputError(f"not valid YAML: {err}", path, None if line is None else line + 1) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError("expected a mapping of config keys at the top level", path)
        values.update(loaded or {})
    source = str(path) if path is not None else "--set"
    config = build_config({**values, **parse_overrides(overrides)}, source)
    for key in ("dataset", "negatives", "output_dir", "model"):
        if not getattr(config, key):
            raise InputError(f"config key {key!r} is required ({source})")
    return config


def describe_keys() -> str:
    """One line per key: name, default and help (for ``--help-config``)."""
    lines = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        lines.append(f"  {f.name} (default {default!r}): {f.metadata['help']}")
    return "\n".join(lines)
