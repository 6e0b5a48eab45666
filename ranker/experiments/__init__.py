"""Experiments as code: YAML specs of ranker commands, cached steps, expected scores, results."""

from ranker.experiments.expect import Check, check_expectations
from ranker.experiments.report import write_results
from ranker.experiments.runner import Runner, RunResult, StepFailed
from ranker.experiments.spec import Spec, Step, load_spec

__all__ = [
    "Check",
    "RunResult",
    "Runner",
    "Spec",
    "Step",
    "StepFailed",
    "check_expectations",
    "load_spec",
    "write_results",
]
