"""The argument parser class of every ``ranker`` subcommand."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default and keeps the line breaks of descriptions and examples."""


class SubcommandParser(argparse.ArgumentParser):
    """Parses positional arguments wherever they stand among the options.

    ``ranker evaluate DATASET --split test RUN RUN`` and ``ranker evaluate --qrels FILE RUN``
    both work: plain argparse would stop filling positionals at the first option.
    """

    _intermixed = False

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
