"""``ranker run SPEC.yaml``: run an experiment spec (cached steps, expected scores, results file)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run an experiment spec (experiments/*.yaml) with cached, resumable steps",
        description="Run the steps of an experiment spec, skipping those already done with the "
        "same command, settings and inputs; check the expected scores; write the results "
        "file into the work folder (WORK/results/NAME.md; --publish refreshes the checked-in "
        "SPEC_DIR/results/NAME.md instead, NAME.PROFILE.md for a profile other than cpu and the "
        "spec's default). Exits 1 when a score drifts beyond its "
        "tolerance. An interrupted run continues when given the same command again. "
        "See docs/experiments.md.",
    )
    parser.add_argument("spec", help="experiment spec (YAML)")
    parser.add_argument(
        "--profile", default=None, help="which profile's settings to use (default: the spec's, usually small)"
    )
    parser.add_argument("--work", default=None, help="work folder (default: SPEC_DIR/work/NAME/PROFILE)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--results", default=None, help="results file (default: WORK/results/NAME.md)")
    where.add_argument(
        "--publish",
        action="store_true",
        help="write the checked-in results file SPEC_DIR/results/NAME.md (NAME.PROFILE.md for a "
        "profile other than cpu and the spec's default; and its plots) instead of the one in "
        "the work folder",
    )
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STEP",
        help="rerun this step even if cached (repeatable; 'all' for every step)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a spec variable for this run (VALUE is YAML: a path, a number, a list); "
        "e.g. --set data=/path/to/beir-folder --set name=mine runs a study on your own "
        "collection. Pinned scores are not checked under --set (repeatable)",
    )
    parser.add_argument(
        "--list", action="store_true", help="print the steps and whether each is cached, then exit"
    )
    parser.set_defaults(func=run)


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when inside it (as a user would type it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> ``{KEY: VALUE read as YAML}`` (bounded, see :mod:`ranker.yamlfile`).

    Raises:
        InputError: an item without ``=``, an empty key, or a VALUE that is not YAML.
    """
    from ranker.yamlfile import parse_yaml
    from retrievers.errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = parse_yaml(value, f"--set {key}") if value.strip() else ""
    return out


def run(args: argparse.Namespace) -> int:
    from ranker.experiments import Runner, StepFailed, check_expectations, load_spec, write_results
    from ranker.experiments.cache import work_lock
    from ranker.experiments.report import summary

    spec = load_spec(args.spec)
    profile = args.profile or spec.default_profile
    overrides = parse_overrides(args.overrides)
    spec.settings(profile, overrides)  # unknown profile or variable -> InputError
    spec_dir = spec.path.resolve().parent
    work = Path(args.work) if args.work else spec_dir / "work" / spec.name / profile
    work.mkdir(parents=True, exist_ok=True)
    runner = Runner(spec, profile, work, quiet=args.verbose == 0 and args.quiet, overrides=overrides)
    if args.list:
        for item in runner.plan():
            state = "cached" if item.cached else "to run"
            print(f"{item.step.name:24s} {state:7s} ranker {' '.join(item.argv)}")
        return 0
    import signal

    def terminated(signum, frame):  # stop the running step too, then exit as killed
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    began = time.perf_counter()
    with work_lock(runner.work):
        try:
            result = runner.run(force=set(args.force))
        except StepFailed as err:
            print(f"ranker run: {err}", file=sys.stderr)
            return 1
    checks = [] if overrides else check_expectations(spec.expected, runner.context)
    if overrides:
        logger.warning("pinned scores are not checked: --set changed the spec's settings")
    if args.results:
        out = Path(args.results)
    elif args.publish:
        out = spec_dir / "results" / published_name(spec.name, profile, spec.default_profile)
    else:
        out = runner.work / "results" / f"{spec.name}.md"
    command = f"ranker run {_shown(Path(args.spec))} --profile {profile}" + "".join(
        f" --set {item}" for item in args.overrides
    )
    write_results(spec, runner.context, result, checks, out, command)
    table = summary(spec, runner.context)
    if table:
        print("\n" + table + "\n")
    plots = sorted(out.parent.glob(f"{out.stem}.*.png"))
    print(
        f"ran {len(result.ran)} step(s), {len(result.skipped)} cached, in "
        f"{time.perf_counter() - began:.0f} s wall time; results: {_shown(out)}"
        + (f"; plots: {', '.join(_shown(p) for p in plots)}" if plots else "")
    )
    for check in checks:
        if check.status == "unpinned" and check.measured is not None:
            print(
                f"  measured (not pinned): {check.expectation.run} {check.expectation.metric} "
                f"= {check.measured:.4f}"
            )
    drifted = [c for c in checks if c.failed]
    for check in drifted:
        print(f"DRIFT {check.describe()}", file=sys.stderr)
    if drifted:
        print(
            f"ranker run: {len(drifted)} score(s) drifted beyond their tolerance (profile {profile})",
            file=sys.stderr,
        )
        return 1
    ok = sum(c.status == "ok" for c in checks)
    print(f"all {ok} pinned score(s) within tolerance")
    return 0


def published_name(name: str, profile: str, default_profile: str) -> str:
    """The checked-in results file of a profile: ``NAME.md`` for the spec's default profile and
    for ``cpu`` (the profile the studies publish), ``NAME.PROFILE.md`` for any other, so that
    publishing one profile never overwrites another's results."""
    return f"{name}.md" if profile in (default_profile, "cpu") else f"{name}.{profile}.md"
