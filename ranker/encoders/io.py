"""Save and load one encoder tower as a folder that sentence-transformers can also load.

Layout (the sentence-transformers one, plus nothing it would trip on)::

    config.json, model.safetensors, tokenizer files   # the transformers backbone
    sentence_bert_config.json                         # max_seq_length
    modules.json                                      # Transformer -> RankerPooling [-> Normalize]
    1_Pooling/config.json       # sentence-transformers' Pooling when it computes the same thing
    1_Pooling/ranker_pooler.json  #   (the ranker pooler config beside it), otherwise:
    ranker_pooling.py           # a shim importing ranker.pooling.st_module.RankerPooling
    1_Pooling/config.json, 1_Pooling/model.safetensors (the ranker pooler; weights if any)
    2_Dense/                    # an adapter on the pooled vector (sentence-transformers' Dense)
    2_Normalize/ (3_Normalize/ after an adapter)      # when embeddings are normalized

Parameter-free poolers that sentence-transformers computes identically load with a plain
``SentenceTransformer(path)``; the others need ``SentenceTransformer(path,
trust_remote_code=True)``, which makes transformers import the shim (i.e. ``ranker``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from ranker.encoders.backbone import Backbone
from ranker.encoders.encoder import Encoder
from ranker.encoders.folders import check_safetensors, read_json_file
from ranker.pooling import pooler_from_config

POOLING_DIR = "1_Pooling"
RANKER_POOLER_CONFIG = "ranker_pooler.json"
NORMALIZE_DIR = "2_Normalize"
DENSE_DIR = "2_Dense"
ST_DENSE = "sentence_transformers.models.Dense"
ST_TRANSFORMER = "sentence_transformers.models.Transformer"
ST_NORMALIZE = "sentence_transformers.models.Normalize"
ST_POOLING = "sentence_transformers.models.Pooling"
SHIM_NAME = "ranker_pooling.py"
SHIM_POOLING = "ranker_pooling.RankerPooling"
SHIM_SOURCE = (
    '"""Loads the ranker pooler of this folder in sentence-transformers '
    '(needs the ranker package installed)."""\n\n'
    "from ranker.pooling.st_module import RankerPooling\n\n"
    '__all__ = ["RankerPooling"]\n'
)
# ranker poolers that sentence-transformers' own Pooling module computes identically.
NATIVE = {
    "mean": "mean",
    "max": "max",
    "last": "lasttoken",
    "cls": "cls",
    "weighted_mean": "weightedmean",
}
# These two index positions from the left edge in sentence-transformers: right padding only.
RIGHT_PADDING_ONLY = {"cls", "weighted_mean"}


def native_pooling_mode(encoder: Encoder) -> str | None:
    """The sentence-transformers ``pooling_mode`` equal to this encoder's pooler, if any."""
    pooler = encoder.pooler
    if pooler.mode not in NATIVE or pooler.needs_all_layers:
        return None
    if pooler.mode in RIGHT_PADDING_ONLY and encoder.backbone.tokenizer.padding_side != "right":
        return None
    return NATIVE[pooler.mode]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def save_tower(encoder: Encoder, folder: Path) -> None:
    """Write ``encoder`` into ``folder`` (which must exist) in the layout above."""
    backbone = encoder.backbone
    model = backbone.merged_model()
    previous = model.config.output_hidden_states
    model.config.output_hidden_states = encoder.pooler.needs_all_layers
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        model.config.output_hidden_states = previous
    backbone.tokenizer.save_pretrained(folder)
    _write_json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": encoder.max_length, "do_lower_case": False},
    )
    native = native_pooling_mode(encoder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER},
        {
            "idx": 1,
            "name": "1",
            "path": POOLING_DIR,
            "type": ST_POOLING if native else SHIM_POOLING,
        },
    ]
    if encoder.adapter is not None:
        modules.append({"idx": 2, "name": "2", "path": DENSE_DIR, "type": ST_DENSE})
        _save_adapter(encoder.adapter, folder / DENSE_DIR)
    if encoder.normalize:
        idx = len(modules)
        path = f"{idx}_Normalize"
        modules.append({"idx": idx, "name": str(idx), "path": path, "type": ST_NORMALIZE})
        (folder / path).mkdir(exist_ok=True)
    _write_json(folder / "modules.json", modules)
    pooling = folder / POOLING_DIR
    pooling.mkdir(exist_ok=True)
    if native:
        _write_json(
            pooling / "config.json",
            {
                "embedding_dimension": encoder.pooler.output_dim,
                "pooling_mode": native,
                "include_prompt": True,
            },
        )
        _write_json(pooling / RANKER_POOLER_CONFIG, encoder.pooler.get_config())
        return
    (folder / SHIM_NAME).write_text(SHIM_SOURCE, encoding="utf-8")
    _write_json(pooling / "config.json", encoder.pooler.get_config())
    state = {k: v.detach().contiguous().cpu() for k, v in encoder.pooler.state_dict().items()}
    if state:
        save_file(state, str(pooling / "model.safetensors"))


def _save_adapter(adapter: nn.Linear, folder: Path) -> None:
    """An adapter in sentence-transformers' ``Dense`` layout (identity activation)."""
    folder.mkdir(exist_ok=True)
    _write_json(
        folder / "config.json",
        {
            "in_features": adapter.in_features,
            "out_features": adapter.out_features,
            "bias": adapter.bias is not None,
            "activation_function": "torch.nn.modules.linear.Identity",
        },
    )
    state = {f"linear.{k}": v.detach().float().contiguous().cpu() for k, v in adapter.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))


def _load_adapter(folder: Path) -> nn.Linear:
    config = read_json_file(folder / "config.json", "adapter")
    weights = folder / "model.safetensors"
    check_safetensors(weights)
    adapter = nn.Linear(int(config["in_features"]), int(config["out_features"]), bias=bool(config["bias"]))
    state = {k.removeprefix("linear."): v for k, v in load_file(str(weights)).items()}
    adapter.load_state_dict(state, strict=True)
    return adapter


def tower_config(encoder: Encoder) -> dict[str, Any]:
    """What :func:`load_tower` needs beyond the files (the ranker side of the config)."""
    return {
        "max_length": encoder.max_length,
        "prefix": encoder.prefix,
        "normalize": encoder.normalize,
        "attention": encoder.backbone.attention,
        "append_eos": encoder.backbone.append_eos,
        "adapter": encoder.adapter is not None,
    }


def load_tower(folder: Path, config: dict[str, Any], **backbone_kwargs: Any) -> Encoder:
    """Rebuild an :class:`Encoder` saved by :func:`save_tower`."""
    backbone = Backbone.from_pretrained(
        folder,
        attention=config.get("attention"),
        append_eos=config.get("append_eos"),
        **backbone_kwargs,
    )
    name = RANKER_POOLER_CONFIG if (folder / POOLING_DIR / RANKER_POOLER_CONFIG).is_file() else "config.json"
    pooler_config = read_json_file(folder / POOLING_DIR / name, "encoder tower")
    pooler = pooler_from_config(pooler_config)
    weights = folder / POOLING_DIR / "model.safetensors"
    if weights.exists():
        check_safetensors(weights)
        pooler.load_state_dict(load_file(str(weights)), strict=True)
    return Encoder(
        backbone,
        pooler,
        max_length=config["max_length"],
        prefix=config.get("prefix", ""),
        normalize=config.get("normalize", False),
        adapter=_load_adapter(folder / DENSE_DIR) if config.get("adapter") else None,
    )
