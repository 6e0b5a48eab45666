"""The building blocks of :class:`~ranker.training.config.TrainConfig`: typed number ranges,
the field helper, and the nested settings (``lora``, ``backbone``, ``distill``, ``guide``,
``debias``), each a frozen pydantic dataclass that refuses unknown keys."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass


def _not_bool(value: Any) -> Any:
    """Numbers must be numbers: YAML's ``true`` is not 1."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


_Number = BeforeValidator(_not_bool)
Count = Annotated[int, _Number, Field(ge=1)]
NonNegInt = Annotated[int, _Number, Field(ge=0)]
PositiveFloat = Annotated[float, _Number, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, _Number, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, _Number, Field(ge=0, lt=1, allow_inf_nan=False)]
# an AdamW step past 1 sends every weight far out (the loss turns NaN within a step or two)
LearningRate = Annotated[float, _Number, Field(gt=0, le=1, allow_inf_nan=False)]
OptionalRate = Annotated[float, _Number, Field(ge=0, le=1, allow_inf_nan=False)]
# room for the special tokens ([CLS] query [SEP] document [SEP]) and some text
Tokens = Annotated[int, _Number, Field(ge=8)]
QueryTokens = Annotated[int, _Number, Field(ge=4)]
SCHEMA = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


def described(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text ``--help-config`` prints."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, config=SCHEMA)
class LoraSettings:
    """A LoRA adapter (Hu et al., ICLR 2022, through peft) on R's backbone instead of training
    all its weights; the saved model has the adapter merged in (a plain transformers folder)."""

    rank: Count = described(8, "adapter rank r")
    alpha: PositiveFloat | None = described(None, "scaling lora_alpha (default: 2 * rank)")
    dropout: Probability = described(0.0, "dropout on the adapter's input")
    target_modules: list[str] | str = described(
        "all-linear", "module names to adapt (a list, or 'all-linear' for every linear layer)"
    )

    def peft_kwargs(self) -> dict[str, Any]:
        """Arguments of ``peft.LoraConfig``."""
        return {
            "r": self.rank,
            "lora_alpha": self.alpha if self.alpha is not None else 2 * self.rank,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules,
        }


@dataclass(frozen=True, config=SCHEMA)
class BackboneSettings:
    """Freeze all or the bottom of a bi-encoder's backbone, optionally reading its token states
    from a cache written by ``ranker cache-states`` instead of running it (docs/training.md)."""

    freeze: Literal["none", "all"] | dict[Literal["bottom"], NonNegInt] = described(
        "none", "'none' (train it all), 'all' (only pooler/adapter/head train) or {bottom: K}"
    )
    states: str = described("", "a `ranker cache-states` folder: read the frozen part's token states from it")

    @property
    def frozen(self) -> str | dict[str, int]:
        """``"all"``, ``{"bottom": K}`` or ``"none"`` as a plain value."""
        return (
            {str(k): int(v) for k, v in self.freeze.items()} if isinstance(self.freeze, dict) else self.freeze
        )


@dataclass(frozen=True, config=SCHEMA)
class DistillSettings:
    """Distillation from a teacher's scores (``ranker score``): MarginMSE or listwise KL, alone
    or added to the ranking loss with a weight (see docs/training.md)."""

    loss: Literal["margin_mse", "kl"] = described(
        "margin_mse", "'margin_mse' (MarginMSE) or 'kl' (listwise KL)"
    )
    scores: str = described("", "teacher scores of the negatives file, written by `ranker score` (required)")
    teacher: str = described("", "refuse scores not made by this teacher (its name or path; '' : any)")
    weight: NonNegFloat = described(1.0, "multiplier of the distillation term")
    alone: bool = described(False, "train on the distillation term only (no ranking loss)")
    teacher_temperature: PositiveFloat = described(
        1.0,
        "teacher scores are divided by it (both losses; the teacher's softmax temperature for "
        "kl; 0.05 puts a cosine teacher on a bi-encoder's scale 20)",
    )
    student_temperature: PositiveFloat = described(1.0, "kl: the student's softmax temperature (loss x T^2)")


@dataclass(frozen=True, config=SCHEMA)
class GuideSettings:
    """GISTEmbed guide masking (Solatorio 2024): negatives that a guide scores at least as high
    as the positive (less a margin) leave the softmax."""

    model: str = described("", "guide model (a bi-encoder or cross-encoder ranker loads), scored per batch")
    scores: str = described("", "or: guide scores from `ranker score` (masks only the pairs it scored)")
    margin: NonNegFloat = described(0.0, "mask a negative when guide(neg) >= guide(pos) - margin (absolute)")
    strategy: Literal["absolute", "relative"] = described(
        "absolute", "'absolute': guide(pos) - margin; 'relative': guide(pos) * (1 - margin)"
    )


@dataclass(frozen=True, config=SCHEMA)
class DebiasSettings:
    """Debiased contrastive loss (Chuang et al., NeurIPS 2020) for ``loss: infonce``."""

    tau_plus: Probability = described(0.1, "class prior tau+: the share of negatives that are positives")


NESTED = {
    "lora": LoraSettings,
    "backbone": BackboneSettings,
    "distill": DistillSettings,
    "guide": GuideSettings,
    "debias": DebiasSettings,
}
