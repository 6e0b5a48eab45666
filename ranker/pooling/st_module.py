"""Any ranker pooler as a sentence-transformers module, so saved bi-encoders load in ST.

A folder saved by :meth:`ranker.models.BiEncoder.save` lists this class in ``modules.json``;
``SentenceTransformer(path)`` imports it from ``ranker`` and loads the pooler's config and
(safetensors) weights from the module's subfolder.
"""

from __future__ import annotations

import json
import os
from typing import Any

from safetensors.torch import load_file, save_file
from sentence_transformers.base.modules.module import Module
from torch import Tensor

from ranker.pooling.base import Pooler, pooler_from_config

WEIGHTS_NAME = "model.safetensors"


class RankerPooling(Module):
    """Wrap a ranker :class:`~ranker.pooling.Pooler` for sentence-transformers.

    Reads ``token_embeddings`` (and ``all_layer_embeddings`` when the pooler needs several
    layers; the saved transformer config then sets ``output_hidden_states``) and the
    ``attention_mask``, and writes ``sentence_embedding``.
    """

    config_file_name = "config.json"

    def __init__(self, pooler: Pooler | None = None, **config: Any) -> None:
        super().__init__()
        self.pooler = pooler if pooler is not None else pooler_from_config(config)

    def get_config_dict(self) -> dict[str, Any]:
        return self.pooler.get_config()

    def forward(self, features: dict[str, Tensor | Any], **kwargs: Any) -> dict[str, Tensor | Any]:
        if self.pooler.needs_all_layers:
            if "all_layer_embeddings" not in features:
                raise ValueError(
                    "this pooler needs all hidden states: set output_hidden_states "
                    "in the transformer's config.json"
                )
            hidden = tuple(features["all_layer_embeddings"])
        else:
            hidden = (features["token_embeddings"],)
        features["sentence_embedding"] = self.pooler(hidden, features["attention_mask"])
        return features

    def get_embedding_dimension(self) -> int:
        return self.pooler.output_dim

    def get_sentence_embedding_dimension(self) -> int:
        return self.pooler.output_dim

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        os.makedirs(output_path, exist_ok=True)
        with open(os.path.join(output_path, self.config_file_name), "w", encoding="utf-8") as out:
            json.dump(self.get_config_dict(), out, indent=2)
        state = {k: v.detach().contiguous().cpu() for k, v in self.pooler.state_dict().items()}
        if state:
            save_file(state, os.path.join(output_path, WEIGHTS_NAME))

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        init_defaults: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> RankerPooling:
        hub: dict[str, Any] = {
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        config = cls.load_config(model_name_or_path, subfolder=subfolder, **hub)
        for key, value in (init_defaults or {}).items():  # the saved config has priority
            config.setdefault(key, value)
        module = cls(**config)
        weights = cls.load_file_path(model_name_or_path, filename=WEIGHTS_NAME, subfolder=subfolder, **hub)
        if weights is not None:
            module.pooler.load_state_dict(load_file(weights), strict=True)
        return module
