"""The argument parser class and help format of every ``ranker`` subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default (unless its help states it, or it has none: flags) and
    keeps the line breaks of texts that have them (the examples); others are wrapped."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or action.nargs == 0  # store_true / store_false flags
            or default is None
            or default is argparse.SUPPRESS
            or default == []
            or f"({default})" in text
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else "%(default)s"
        return f"{text} (default: {shown})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class SubcommandParser(argparse.ArgumentParser):
    """Parses positional arguments wherever they stand among the options, and formats help
    with :class:`HelpFormatter`.

    ``ranker evaluate DATASET --split test RUN RUN`` and ``ranker evaluate --qrels FILE RUN``
    both work: plain argparse would stop filling positionals at the first option.
    """

    _intermixed = False

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixed:  # the intermixed parser calls back in here
            return super().parse_known_args(args, namespace)
        self._intermixed = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = False


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (inclusive; no upper
    bound when ``None``), so that a value out of range is refused at the command line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "whole number"
    return parse


SEED = whole_number(0, 2**32 - 1)  # numpy's and torch's seeds alike
