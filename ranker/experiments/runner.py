"""Run a spec's steps in order, skipping those whose done-marker matches their current key.

Each step is a ``ranker`` command run in a child process inside the work folder. Before a
step runs, outputs left by an earlier attempt with other settings are removed (only outputs
this runner made, inside the work folder); a step marked ``resumable`` keeps the partial
outputs of an interrupted attempt with the same key, so commands that resume (``ranker train
--resume``, ``ranker mine``, dense ``ranker index``) continue where they stopped.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ranker.experiments.cache import Fingerprints, StepState, step_key
from ranker.experiments.paths import portable
from ranker.experiments.spec import STEP_NAME, Spec, Step
from ranker.experiments.variables import Context, combinations, expand_args, substitute
from retrievers.errors import InputError

logger = logging.getLogger(__name__)


class StepFailed(RuntimeError):
    """A step's command failed or did not write a declared output."""

    def __init__(self, step: str, message: str, log_file: Path):
        self.step, self.log_file = step, log_file
        super().__init__(
            f"step {step!r} {message} (log: {log_file}); fix it and rerun the same "
            "command: finished steps are skipped"
        )


@dataclass
class PlannedStep:
    """A step with its arguments resolved and its cache key computed."""

    step: Step
    argv: list[str]
    outputs: list[Path]
    key: str
    inputs: dict[str, str]
    upstream: dict[str, str]
    state: StepState
    cached: bool = False
    seconds: float | None = None


@dataclass
class RunResult:
    """What a run did: every active step, in order, and whether it was cached."""

    steps: list[PlannedStep] = field(default_factory=list)

    @property
    def ran(self) -> list[str]:
        return [p.step.name for p in self.steps if not p.cached]

    @property
    def skipped(self) -> list[str]:
        return [p.step.name for p in self.steps if p.cached]


def _candidates(arg: str) -> list[str]:
    """The texts inside an argument that may name a path: itself and the value of KEY=VALUE."""
    out = [arg]
    if "=" in arg:
        out.append(arg.split("=", 1)[1])
    return [c for c in out if c and not c.startswith("-")]


def _is_pattern(text: str) -> bool:
    """Whether ``text`` is a glob (``runs/b.s*.trec``), as seed groups give them."""
    return any(c in text for c in "*?[")


def _related(path: Path, output: Path) -> bool:
    """Whether ``path`` is ``output``, inside it, or a folder that holds it."""
    return path == output or output in path.parents or path in output.parents


def _dataset_folder(name: str) -> Path | None:
    """A bare dataset name resolved as ``load_dataset`` does ($RANKER_DATA, then data/)."""
    if "/" in name or os.sep in name or name.startswith("irds:"):
        return None
    from retrievers.io.dataset import search_path

    for base in search_path():
        folder = base / name
        if (folder / "corpus.jsonl").is_file() or (folder / "collection.tsv").is_file():
            return folder
    return None


class _Producers:
    """Which planned step writes each output, indexed for the lookups ``plan`` makes (a spec
    with hundreds of steps would otherwise compare every argument with every output)."""

    def __init__(self) -> None:
        self.by_output: dict[Path, PlannedStep] = {}
        self.under: dict[Path, list[Path]] = {}  # folder -> the outputs anywhere below it

    def add(self, output: Path, item: PlannedStep) -> None:
        self.by_output[output] = item
        for folder in output.parents:
            self.under.setdefault(folder, []).append(output)

    def related(self, path: Path) -> list[PlannedStep]:
        """The steps whose output is ``path``, holds it, or lies inside it."""
        found = [self.by_output[p] for p in (path, *path.parents) if p in self.by_output]
        return found + [self.by_output[out] for out in self.under.get(path, ())]

    def matching(self, base: Path, pattern: str) -> list[PlannedStep]:
        """The steps with an output below ``base`` that matches the glob ``pattern``."""
        return [
            self.by_output[out] for out in self.under.get(base, ()) if fnmatch.fnmatchcase(str(out), pattern)
        ]


class Runner:
    """Plans and runs one spec under one profile in one work folder.

    Args:
        spec: The parsed spec.
        profile: Which profile's variables to use.
        work: The work folder (created if needed); steps run inside it.
        quiet: Pass ``-q`` to every step.
        overrides: Variables set on the command line (``--set KEY=VALUE``).
    """

    def __init__(
        self,
        spec: Spec,
        profile: str,
        work: Path,
        quiet: bool = False,
        overrides: dict[str, Any] | None = None,
    ):
        self.spec = spec
        self.profile = profile
        self.work = work.resolve()
        self.quiet = quiet
        self.context = Context(
            work=self.work,
            spec_dir=spec.path.resolve().parent,
            profile=profile,
            settings=spec.settings(profile, overrides),
            spec_path=spec.path,
        )
        self.steps: list[tuple[Step, Context]] = []
        names: set[str] = set()
        for step in spec.steps:
            if step.profiles is not None and profile not in step.profiles:
                continue
            for context in combinations(step.matrix, self.context, step.line):
                name = substitute(step.name, context, step.line)
                if not STEP_NAME.match(name) or name in names:
                    raise InputError(
                        f"step {step.name!r}: name {name!r} is not a valid, unique "
                        "step name (use ${m.KEY} in the names of matrix steps)",
                        spec.path,
                        step.line,
                    )
                names.add(name)
                self.steps.append((replace(step, name=name), context))
        self.fingerprints = Fingerprints(self.work / ".ranker-run" / "fingerprints.json")

    def _portable(self, text: str) -> str:
        """``text`` with this machine's paths replaced by placeholders (for hashing and records)."""
        return portable(text, self.work, self.context.spec_dir)

    def _resolve(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.work / path

    def _add_matches(
        self,
        text: str,
        producers: _Producers,
        inputs: dict[str, str],
        upstream: dict[str, str],
    ) -> None:
        """A glob argument reads every earlier step's output it matches (their keys become
        the step's upstream) and every existing file it matches that no step makes."""
        parts = self._resolve(text).parts
        first = next(i for i, part in enumerate(parts) if _is_pattern(part))
        base, rest = Path(*parts[:first]).resolve(), Path(*parts[first:])
        for producer in producers.matching(base, str(base / rest)):
            upstream[producer.step.name] = producer.key
        for match in sorted(base.glob(str(rest))):
            resolved = match.resolve()
            if resolved.is_file() and not producers.related(resolved):
                inputs[self._portable(str(match))] = self.fingerprints.of(resolved)

    def plan(self) -> list[PlannedStep]:
        """Resolve every active step's arguments, outputs and key (runs nothing)."""
        planned: list[PlannedStep] = []
        producers = _Producers()
        for step, context in self.steps:
            argv = expand_args(step.run, context, step.line)
            outputs = []
            for out in expand_args(step.outputs, context, step.line):
                path = self._resolve(out).resolve()
                if path != self.work and self.work not in path.parents:
                    raise InputError(
                        f"step {step.name!r}: output {out!r} is outside the work folder {self.work}",
                        self.spec.path,
                        step.line,
                    )
                if path in producers.by_output:
                    raise InputError(
                        f"step {step.name!r}: output {out!r} is also written by step "
                        f"{producers.by_output[path].step.name!r}",
                        self.spec.path,
                        step.line,
                    )
                outputs.append(path)
            inputs: dict[str, str] = {}
            upstream: dict[str, str] = {}
            texts = [c for a in argv for c in _candidates(a)]
            declared = expand_args(step.inputs, context, step.line)
            texts += declared
            for text in texts:
                path = self._resolve(text).resolve()
                found = producers.related(path)
                if _is_pattern(text) and not found and not path.exists():
                    self._add_matches(text, producers, inputs, upstream)  # a seed group's glob
                    continue
                if any(_related(path, o) for o in outputs):
                    continue  # the step's own output, inside it, or a folder holding it
                for producer in found:  # inside another step's output, or a folder holding some
                    upstream[producer.step.name] = producer.key
                if found:
                    continue
                if path.exists():
                    inputs[self._portable(text)] = self.fingerprints.of(path)
                elif (folder := _dataset_folder(text)) is not None:
                    inputs[f"dataset:{text}"] = self.fingerprints.of(folder)
                elif text in declared:
                    raise InputError(
                        f"step {step.name!r}: input {text!r} not found", self.spec.path, step.line
                    )
            key = step_key([self._portable(a) for a in argv], inputs, upstream)
            item = PlannedStep(step, argv, outputs, key, inputs, upstream, StepState(self.work, step.name))
            record = item.state.done_record()
            item.cached = bool(record and record.get("key") == key and all(o.exists() for o in outputs))
            if item.cached and record is not None:
                item.seconds = record.get("seconds")
            planned.append(item)
            for output in outputs:
                producers.add(output, item)
        self.fingerprints.save()
        return planned

    def run(self, force: set[str] | frozenset[str] = frozenset()) -> RunResult:
        """Run every step that is not done (and the ``force``d ones); raise StepFailed on error."""
        unknown = force - {s.name for s, _ in self.steps} - {"all"}
        if unknown:
            raise InputError(f"--force: no step named {', '.join(sorted(unknown))}", self.spec.path)
        result = RunResult()
        planned = self.plan()
        total = len(planned)
        for number, item in enumerate(planned, 1):
            if item.cached and item.step.name not in force and "all" not in force:
                logger.info("[%d/%d] %s: done already (cached)", number, total, item.step.name)
                result.steps.append(item)
                continue
            item.cached = False
            logger.info("[%d/%d] %s: ranker %s", number, total, item.step.name, " ".join(item.argv))
            self._clear_outputs(item, force=bool(force & {item.step.name, "all"}))
            item.state.mark_started(item.key)
            start = time.perf_counter()
            status = self._execute(item)
            item.seconds = round(time.perf_counter() - start, 1)
            if status != 0:
                raise StepFailed(item.step.name, f"exited with status {status}", item.state.log_file)
            missing = [o for o in item.outputs if not o.exists()]
            if missing:
                names = ", ".join(str(m.relative_to(self.work)) for m in missing)
                raise StepFailed(
                    item.step.name, f"did not write its declared output(s) {names}", item.state.log_file
                )
            item.state.mark_done(
                {
                    "key": item.key,
                    "argv": [self._portable(a) for a in item.argv],
                    "inputs": item.inputs,
                    "upstream": item.upstream,
                    "seconds": item.seconds,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
            logger.info("[%d/%d] %s: finished in %.1f s", number, total, item.step.name, item.seconds)
            result.steps.append(item)
        return result

    def _clear_outputs(self, item: PlannedStep, force: bool) -> None:
        """Remove outputs of an earlier attempt, unless a resumable step continues its own."""
        existing = [o for o in item.outputs if o.exists()]
        if not existing:
            return
        if item.step.resumable and not force and item.state.started_key() == item.key:
            logger.info("%s: continuing the interrupted attempt", item.step.name)
            return
        if not item.state.made_by_runner():
            raise InputError(
                f"step {item.step.name!r}: {existing[0]} exists, but no `ranker run` "
                "made it; move it away or choose another --work",
                self.spec.path,
                item.step.line,
            )
        for path in existing:
            logger.info("%s: removing the output of an earlier attempt: %s", item.step.name, path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def _execute(self, item: PlannedStep) -> int:
        """Run the step's command in a child process inside the work folder.

        A child process (not this one) because the JVM behind BM25 keeps the working folder it
        started in, memory is returned between steps, and a crash cannot take the runner down.
        The child's stdout goes to the step's log; its stderr to the log and to our stderr.
        """
        argv = [sys.executable, "-m", "ranker", *(["-q"] if self.quiet else []), *item.argv]
        item.state.log_file.parent.mkdir(parents=True, exist_ok=True)
        with item.state.log_file.open("wb") as log:
            log.write(("$ ranker " + " ".join(map(self._portable, item.argv)) + "\n").encode())
            log.flush()
            child = subprocess.Popen(
                argv, cwd=self.work, stdout=log, stderr=subprocess.PIPE, env=_child_environment()
            )
            assert child.stderr is not None  # stderr=PIPE
            try:
                while chunk := os.read(child.stderr.fileno(), 65536):
                    log.write(chunk)
                    log.flush()
                    sys.stderr.write(chunk.decode(errors="replace"))
                    sys.stderr.flush()
                return child.wait()
            except BaseException:
                child.terminate()
                child.wait()
                raise


def _child_environment() -> dict[str, str]:
    """This environment, with this process's ``ranker`` package first on the child's path."""
    import ranker

    root = str(Path(ranker.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
