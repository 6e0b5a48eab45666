"""A backbone's inference forward compiled by OpenVINO (``--dtype bfloat16-openvino``).

OpenVINO's CPU plugin fuses a transformer's attention, layer norms and activations and runs
its matrix products in bf16 on CPUs with native bf16 (AMX, AVX512-BF16), keeping float32
accumulation and float32 outputs; on this project's reference CPU it encodes about 1.5x
faster than PyTorch with bf16 weights (``benchmarks/encode_speed.py``). The model is traced
once from the PyTorch module (``openvino.convert_model``, no ONNX file, no optimum) with
dynamic batch and length, so every padded batch shape reuses one compiled model.

Only inference goes through it: the PyTorch weights stay where they are (the poolers read
float32 hidden states from OpenVINO), and :meth:`ranker.encoders.backbone.Backbone.train`
drops the compiled copy, which would no longer match weights being trained.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

# OpenVINO's names for the inference precisions it is asked for
OV_PRECISION = {"bfloat16": "bf16", "float32": "f32"}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def available() -> bool:
    """Whether the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _no_telemetry() -> Iterator[None]:
    """Convert without OpenVINO's usage reports: its converter sends them to Google
    Analytics unless the user opted out (``opt_in_out --opt_out``); the toolkit never sends
    data anywhere, so it swaps in the converter's own no-op stub for the conversion."""
    try:
        from openvino.tools.ovc import convert_impl, telemetry_stub, telemetry_utils
    except ImportError:  # another layout: nothing to swap
        yield
        return
    saved = {module: getattr(module, "tm", None) for module in (convert_impl, telemetry_utils)}
    for module in saved:
        module.tm = telemetry_stub
    try:
        yield
    finally:
        for module, value in saved.items():
            module.tm = value


@contextlib.contextmanager
def _root_logger_kept() -> Iterator[None]:
    """Keep the root logger as it is: OpenVINO's converter sets it to ERROR (and adds a
    filter) while it converts, and leaves it so when the conversion fails."""
    root = logging.getLogger()
    level, filters, handlers = root.level, list(root.filters), list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        root.filters[:] = filters
        root.handlers[:] = handlers


class _HiddenStates(nn.Module):
    """The transformers model as a function of named id tensors -> a tuple of hidden states."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], all_layers: bool, decoder: bool) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.all_layers = all_layers
        self.decoder = decoder

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        given = dict(zip(INPUT_NAMES, (input_ids, attention_mask, token_type_ids, position_ids), strict=True))
        kwargs: dict[str, Any] = {name: given[name] for name in self.names}
        if self.decoder:
            kwargs["use_cache"] = False
        out = self.model(**kwargs, output_hidden_states=self.all_layers, return_dict=True)
        return tuple(out.hidden_states) if self.all_layers else (out.last_hidden_state,)


class OpenVINOForward:
    """Compiled inference forwards of one transformers model: one per set of input names and
    per ``all_layers`` (the graphs differ), compiled on first use.

    Args:
        model: The transformers model (float32 weights; left untouched).
        dtype: ``"bfloat16"`` or ``"float32"``: OpenVINO's inference precision.
        padding_side: The tokenizer's (the traced example is padded the same way).
        decoder: Whether the model is a decoder (``use_cache=False`` is passed).
        threads: Inference threads (default: ``torch.get_num_threads()``, so OMP/torch
            settings limit OpenVINO too).
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: str,
        padding_side: str = "right",
        decoder: bool = False,
        threads: int | None = None,
    ) -> None:
        if dtype not in OV_PRECISION:
            raise ValueError(f"OpenVINO precision must be one of {sorted(OV_PRECISION)}, got {dtype!r}")
        self.model = model
        self.dtype = dtype
        self.padding_side = padding_side
        self.decoder = decoder
        self.threads = threads
        self._compiled: dict[tuple[tuple[str, ...], bool], Any] = {}

    def _example(self, names: tuple[str, ...]) -> dict[str, Tensor]:
        """Two rows of 8 tokens, the second padded, so the padding-mask path is traced."""
        mask = torch.ones(2, 8, dtype=torch.long)
        pad = slice(0, 3) if self.padding_side == "left" else slice(5, 8)
        mask[1, pad] = 0
        example = {
            "input_ids": torch.full((2, 8), 5, dtype=torch.long),
            "attention_mask": mask,
            "token_type_ids": torch.zeros(2, 8, dtype=torch.long),
            "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
        }
        return {name: example[name] for name in names}

    def _compile(self, names: tuple[str, ...], all_layers: bool) -> Any:
        import openvino as ov

        from ranker.encoders.backbone import transformers_errors_only

        started = time.perf_counter()
        wrapper = _HiddenStates(self.model, names, all_layers, self.decoder).eval()
        shapes = [(name, ov.PartialShape([-1, -1]), ov.Type.i64) for name in names]
        with (
            torch.no_grad(),
            _no_telemetry(),
            _root_logger_kept(),
            transformers_errors_only(),
            warnings.catch_warnings(),
        ):
            # tracing warns about every shape-dependent Python branch it records; the traced
            # example is padded so the mask path is the one recorded (tested against PyTorch)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # tracing reads every attribute of the model, deprecated aliases included
            warnings.simplefilter("ignore", FutureWarning)
            converted = ov.convert_model(wrapper, example_input=self._example(names), input=shapes)
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": OV_PRECISION[self.dtype],
            "INFERENCE_NUM_THREADS": int(self.threads or torch.get_num_threads()),
        }
        compiled = ov.Core().compile_model(converted, "CPU", config)
        logger.info(
            "OpenVINO: compiled %s (%s, %s) in %.1f s",
            type(self.model).__name__,
            self.dtype,
            "all layers" if all_layers else "last layer",
            time.perf_counter() - started,
        )
        return compiled.create_infer_request()

    def __call__(self, inputs: dict[str, Tensor], all_layers: bool) -> tuple[Tensor, ...]:
        """Hidden states (float32 tensors) for ``inputs`` (id tensors named as in
        :data:`INPUT_NAMES`; other keys are ignored)."""
        names = tuple(name for name in INPUT_NAMES if name in inputs)
        key = (names, all_layers)
        request = self._compiled.get(key)
        if request is None:
            request = self._compiled[key] = self._compile(names, all_layers)
        result = request.infer({name: inputs[name].cpu().numpy() for name in names})
        # copies: the request's output buffers are reused by its next inference
        return tuple(torch.from_numpy(result[i].copy()) for i in range(len(result)))
