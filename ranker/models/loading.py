"""Load a bi-encoder from whatever folder a user points at."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ranker.models.biencoder import BiEncoder
from ranker.models.kind import model_kind
from retrievers.errors import InputError, first_line

logger = logging.getLogger(__name__)

# sentence-transformers pooling modes -> ranker pooler names.
ST_POOLING = {
    "mean": "mean",
    "cls": "cls",
    "max": "max",
    "lasttoken": "last",
    "weightedmean": "weighted_mean",
}
ST_POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "last",
    "pooling_mode_weightedmean_tokens": "weighted_mean",
}


def _read(path: Path) -> Any:
    """The parsed JSON of ``path`` (a mapping or a list, as the file holds)."""
    return json.loads(path.read_text(encoding="utf-8"))


def sentence_transformers_settings(folder: Path) -> dict[str, Any]:
    """Pooling, normalization, max length and prompts of a sentence-transformers folder."""
    settings: dict[str, Any] = {}
    modules = _read(folder / "modules.json")
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        if kind == "Pooling":
            config = _read(folder / module["path"] / "config.json")
            mode = config.get("pooling_mode")
            if isinstance(mode, list | tuple):
                mode = mode[0] if len(mode) == 1 else None
            if mode is None:
                modes = [name for flag, name in ST_POOLING_FLAGS.items() if config.get(flag)]
                mode = modes[0] if len(modes) == 1 else None
            if mode is not None:
                settings["pooling"] = ST_POOLING.get(mode, mode)
        elif kind == "Normalize":
            settings["normalize"] = True
    settings.setdefault("normalize", False)
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file() and _read(sbert).get("max_seq_length"):
        settings["max_length"] = int(_read(sbert)["max_seq_length"])
    st_config = folder / "config_sentence_transformers.json"
    if st_config.is_file():
        prompts = _read(st_config).get("prompts") or {}
        settings["query_prefix"] = prompts.get("query", "")
        settings["doc_prefix"] = prompts.get("document", prompts.get("passage", ""))
    return settings


def load_biencoder(model: str | Path, pooling: str | None = None, **kw: Any) -> BiEncoder:
    """A bi-encoder from a saved ranker folder, a sentence-transformers folder, or any
    transformers model (hub id or folder).

    Saved ranker folders carry their own pooling; passing a different ``pooling`` is an
    error. For sentence-transformers folders the folder's pooling, normalization, max length
    and prompts are the defaults, and ``pooling`` / ``kw`` override them. Plain transformers
    models default to mean pooling for encoders and last-token pooling for decoders.
    """
    from ranker.encoders.folders import check_model_folder

    path = Path(model)
    kind = model_kind(model)
    if kind == "crossencoder":
        raise InputError("a cross-encoder saved by ranker; expected a bi-encoder or a backbone", path)
    if kind == "biencoder":
        loaded = BiEncoder.load(path)
        saved = loaded.query_encoder.pooler.mode
        if pooling is not None and pooling != saved:
            raise InputError(f"{path} was saved with pooling {saved!r}; cannot load it as {pooling!r}")
        attention = loaded.query_encoder.backbone.attention or "bidirectional"
        if kw.get("attention") not in (None, attention):
            raise InputError(
                f"{path} was saved with {attention} attention; cannot load it with {kw['attention']!r}"
            )
        return loaded
    check_model_folder(model)
    settings: dict[str, Any] = {}
    if (path / "modules.json").is_file():
        settings = sentence_transformers_settings(path)
    settings.update(kw)
    if pooling is not None:
        settings["pooling"] = pooling
    if "pooling" not in settings:
        from transformers import AutoConfig

        from ranker.encoders.backbone import is_decoder_config

        try:
            config = AutoConfig.from_pretrained(
                str(model), trust_remote_code=kw.get("trust_remote_code", False)
            )
        except OSError as err:  # not on the hub (or offline)
            first = first_line(err)
            raise InputError(f"cannot load the model: {first}", model) from None
        settings["pooling"] = "last" if is_decoder_config(config) else "mean"
    logger.info("loading %s as a bi-encoder with %s", model, settings)
    return BiEncoder.from_pretrained(str(model), **settings)
