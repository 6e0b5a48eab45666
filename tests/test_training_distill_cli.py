"""`ranker score` then `ranker train` with distillation, guide masking and debiased InfoNCE, end
to end on a tiny random BERT; and the refusals (other file, other teacher, no scores)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ranker.models import load_biencoder
from ranker.training.teacher import read_teacher_scores
from retrievers.mining.negatives import read_negatives


def score(cli, negatives: Path, dataset: Path, model: Path, out: Path, *extra: str):
    return cli(
        "-q",
        "score",
        negatives,
        "--dataset",
        dataset,
        "--model",
        model,
        "--out",
        out,
        "--device",
        "cpu",
        *extra,
    )


def train_args(tiny_beir: Path, negatives: Path, model: Path, out: Path, *sets: str) -> list[str]:
    values = {
        "dataset": tiny_beir,
        "negatives": negatives,
        "output_dir": out,
        "model": model,
        "model_type": "bi",
        "loss": "infonce",
        "batch_size": 2,
        "n_negatives": 2,
        "max_steps": 3,
        "warmup_steps": 0,
        "log_every": 1,
        "save_every": 0,
        "max_length": 32,
        "device": "cpu",
        "seed": 3,
    }
    args = ["-q", "train"]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    for item in sets:
        args += ["--set", item]
    return args


@pytest.fixture()
def negatives_file(tiny_beir: Path) -> Path:
    """Every query of the tiny dataset with one positive and the other three documents."""
    path = tiny_beir / "negatives.jsonl"
    rows = [("q1", "cats purr", "d1"), ("q2", "swimming fish", "d3"), ("q3", "singing birds", "d4")]
    with path.open("w") as out:
        for qid, query, positive in rows:
            others = [d for d in ("d1", "d2", "d3", "d4") if d != positive]
            negatives = [
                {"docid": d, "rank": r + 1, "score": 5.0 - r, "retriever": "bm25"}
                for r, d in enumerate(others)
            ]
            line = {"qid": qid, "query": query, "positives": [positive], "negatives": negatives}
            out.write(json.dumps(line) + "\n")
    return path


@pytest.fixture()
def teacher_scores(cli, tiny_beir, tiny_bert, negatives_file, tmp_path):
    out = tmp_path / "teacher.jsonl"
    rc, _, err = score(cli, negatives_file, tiny_beir, tiny_bert, out, "--name", "tiny")
    assert rc == 0, err
    return out


def test_score_writes_every_pair_with_the_teachers_scores(
    teacher_scores, tiny_beir, tiny_bert, negatives_file
):
    scores = read_teacher_scores(teacher_scores)
    assert scores.teacher == "tiny" and scores.header["teacher_kind"] == "bi"
    assert scores.header["teacher_path"] == str(tiny_bert.resolve())
    model = load_biencoder(tiny_bert)
    docs = {json.loads(line)["_id"]: json.loads(line) for line in (tiny_beir / "corpus.jsonl").open()}
    for record in read_negatives(negatives_file):
        ids = [*record.positives, *(n.docid for n in record.negatives)]
        assert sorted(scores.scores[record.qid]) == sorted(ids)
        texts = [f"{docs[d]['title']} {docs[d]['text']}".strip() for d in ids]
        expected = model.score([record.query] * len(ids), texts)
        got = [scores.scores[record.qid][d] for d in ids]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_score_resumes_after_a_torn_line(cli, teacher_scores, tiny_beir, tiny_bert, negatives_file, tmp_path):
    lines = teacher_scores.read_text().splitlines()
    out = tmp_path / "again.jsonl"
    partial = tmp_path / "again.jsonl.partial"
    partial.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:15])  # header, q1, torn q2
    rc, _, err = score(cli, negatives_file, tiny_beir, tiny_bert, out, "--name", "tiny")
    assert rc == 0, err
    assert not partial.exists()
    resumed, fresh = read_teacher_scores(out).scores, read_teacher_scores(teacher_scores).scores
    assert resumed.keys() == fresh.keys()
    for qid in fresh:
        assert resumed[qid] == pytest.approx(fresh[qid], rel=1e-5)
    assert out.read_text().splitlines()[1] == lines[1]  # the finished line was kept, not redone


def test_score_refuses_to_resume_another_teachers_run(
    cli, teacher_scores, tiny_beir, tiny_bert, negatives_file, tmp_path
):
    partial = tmp_path / "other.jsonl.partial"
    partial.write_text(teacher_scores.read_text().splitlines()[0] + "\n")
    rc, _, err = score(cli, negatives_file, tiny_beir, tiny_bert, tmp_path / "other.jsonl", "--name", "big")
    assert rc == 2 and "another teacher" in err and str(partial) in err and errors(err) == 1


def errors(stderr: str) -> int:
    """How many error lines the CLI printed (transformers may draw progress bars before)."""
    return sum("error:" in line for line in stderr.splitlines())


def read_metrics(out: Path) -> list[dict[str, str]]:
    with (out / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("loss", ["margin_mse", "kl"])
def test_train_bi_with_distillation_guide_and_debias(
    cli, teacher_scores, tiny_beir, tiny_bert, negatives_file, tmp_path, loss
):
    sets = [
        f"distill.loss={loss}",
        f"distill.scores={teacher_scores}",
        "distill.teacher=tiny",
        "distill.weight=0.5",
        "distill.student_temperature=2.0",
        f"guide.model={tiny_bert}",
        "guide.margin=0.0",
        "debias.tau_plus=0.1",
    ]
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        rc, _, err = cli(*train_args(tiny_beir, negatives_file, tiny_bert, out, *sets))
        assert rc == 0, err
        runs.append(read_metrics(out))
    rows = runs[0]
    assert len(rows) == 3
    assert all(float(r["distill_loss"]) > 0 for r in rows)
    # the guide is the starting model: a negative scored >= the positive is masked, in some steps
    masked = [float(r["guide_masked"]) for r in rows]
    assert all(0 <= m <= 1 for m in masked) and any(m > 0 for m in masked)
    for key in ("loss", "distill_loss", "guide_masked"):  # deterministic for a seed
        assert [r[key] for r in runs[0]] == [r[key] for r in runs[1]]


def test_train_cross_with_kl_alone(cli, teacher_scores, tiny_beir, tiny_bert, negatives_file, tmp_path):
    out = tmp_path / "cross"
    args = train_args(tiny_beir, negatives_file, tiny_bert, out, "model_type=cross", "loss=listwise")
    rc, _, err = cli(
        *args,
        "--set",
        "distill.loss=kl",
        "--set",
        f"distill.scores={teacher_scores}",
        "--set",
        "distill.alone=true",
    )
    assert rc == 0, err
    rows = read_metrics(out)
    # alone: the loss is the distillation term (weight 1)
    assert all(float(r["loss"]) == pytest.approx(float(r["distill_loss"]), rel=1e-5) for r in rows)


def test_score_with_a_cross_encoder_teacher(cli, tiny_beir, tiny_bert, negatives_file, tmp_path):
    from ranker.models import CrossEncoder

    folder = tmp_path / "ce"
    CrossEncoder.from_pretrained(str(tiny_bert), max_length=32).save(folder)
    out = tmp_path / "ce.jsonl"
    rc, _, err = score(cli, negatives_file, tiny_beir, folder, out)
    assert rc == 0, err
    scores = read_teacher_scores(out)
    assert scores.header["teacher_kind"] == "cross" and scores.teacher == str(folder)
    model = CrossEncoder.load(folder)
    record = read_negatives(negatives_file)[0]
    docs = {json.loads(line)["_id"]: json.loads(line) for line in (tiny_beir / "corpus.jsonl").open()}
    ids = [*record.positives, *(n.docid for n in record.negatives)]
    texts = [f"{docs[d]['title']} {docs[d]['text']}".strip() for d in ids]
    expected = model.score([record.query] * len(ids), texts)
    np.testing.assert_allclose([scores.scores[record.qid][d] for d in ids], expected, rtol=1e-4, atol=1e-5)


def test_guides_from_a_scores_file_and_for_a_cross_encoder(
    cli, teacher_scores, tiny_beir, tiny_bert, negatives_file, tmp_path
):
    rc, _, err = cli(
        *train_args(tiny_beir, negatives_file, tiny_bert, tmp_path / "a", f"guide.scores={teacher_scores}")
    )
    assert rc == 0, err
    assert any(float(r["guide_masked"]) > 0 for r in read_metrics(tmp_path / "a"))
    cross = ["model_type=cross", "loss=listwise", f"guide.model={tiny_bert}", "guide.strategy=relative"]
    rc, _, err = cli(
        *train_args(tiny_beir, negatives_file, tiny_bert, tmp_path / "b", *cross, "guide.margin=0.5")
    )
    assert rc == 0, err
    # relative margin 0.5 on cosines near 0.8-0.9: every hard negative is masked
    assert all(float(r["guide_masked"]) == 1.0 for r in read_metrics(tmp_path / "b"))
    rc, _, err = cli(
        *train_args(
            tiny_beir,
            negatives_file,
            tiny_bert,
            tmp_path / "c",
            f"guide.scores={teacher_scores}",
            f"guide.model={tiny_bert}",
        )
    )
    assert rc == 2 and "exactly one of guide.model and guide.scores" in err


def test_distillation_without_scores_names_the_negatives_file(
    cli, tiny_beir, tiny_bert, negatives_file, tmp_path
):
    rc, _, err = cli(*train_args(tiny_beir, negatives_file, tiny_bert, tmp_path / "o", "distill.loss=kl"))
    assert rc == 2 and str(negatives_file) in err and "no teacher scores" in err
    assert errors(err) == 1 and not (tmp_path / "o").exists()


def test_scores_of_another_file_or_teacher_are_refused(
    cli, teacher_scores, tiny_beir, tiny_bert, negatives_file, tmp_path
):
    edited = tmp_path / "edited.jsonl"
    edited.write_text(negatives_file.read_text().replace('"score": 5.0', '"score": 6.0'))
    sets = ["distill.loss=margin_mse", f"distill.scores={teacher_scores}"]
    rc, _, err = cli(*train_args(tiny_beir, edited, tiny_bert, tmp_path / "o", *sets))
    assert rc == 2 and str(teacher_scores) in err and "not of" in err and errors(err) == 1
    rc, _, err = cli(
        *train_args(tiny_beir, negatives_file, tiny_bert, tmp_path / "o", *sets, "distill.teacher=big")
    )
    assert rc == 2 and "by teacher 'tiny', not 'big'" in err
    rc, _, err = cli(
        *train_args(
            tiny_beir, negatives_file, tiny_bert, tmp_path / "o", *sets, f"distill.teacher={tiny_bert}"
        )
    )
    assert rc == 0, err  # the teacher's path names it too


def test_debias_needs_infonce(cli, tiny_beir, tiny_bert, negatives_file, tmp_path):
    rc, _, err = cli(
        *train_args(
            tiny_beir, negatives_file, tiny_bert, tmp_path / "o", "loss=listwise", "debias.tau_plus=0.1"
        )
    )
    assert rc == 2 and "debias" in err and "infonce" in err


def scifact_negatives(scifact_dir: Path, path: Path, queries: int = 8) -> Path:
    """The first ``queries`` SciFact train queries, each with its judged documents as
    positives and the corpus's first 3 other documents as negatives (no BM25 index needed)."""
    from retrievers.io.dataset import load_dataset

    dataset = load_dataset(str(scifact_dir))
    qrels, texts = dataset.qrels("train"), dataset.queries("train")
    first = [d.id for _, d in zip(range(20), dataset.docs(), strict=False)]
    with path.open("w") as out:
        for qid in list(qrels)[:queries]:
            positives = [d for d, rel in qrels[qid].items() if rel > 0]
            others = [d for d in first if d not in positives][:3]
            negatives = [
                {"docid": d, "rank": r + 1, "score": 1.0, "retriever": "bm25"} for r, d in enumerate(others)
            ]
            line = {"qid": qid, "query": texts[qid], "positives": positives, "negatives": negatives}
            out.write(json.dumps(line) + "\n")
    return path


MINILM_CASES = {
    "margin_mse": ["distill.loss=margin_mse", "distill.teacher_temperature=0.05"],
    "kl": ["distill.loss=kl", "distill.teacher_temperature=0.05"],
    "guide": ["guide.margin=2.0"],
    "debias": ["debias.tau_plus=0.1"],
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(MINILM_CASES))
def test_minilm_trains_from_the_cli_with_each_remedy(cli, scifact_dir, minilm_path, tmp_path, case):
    """all-MiniLM-L6-v2 scores SciFact pairs as a teacher, then trains 2 steps from the CLI with
    margin_mse, kl, guide masking or debiased InfoNCE."""
    negatives = scifact_negatives(scifact_dir, tmp_path / "neg.jsonl")
    scores = tmp_path / "teacher.jsonl"
    rc, _, err = score(cli, negatives, scifact_dir, minilm_path, scores)
    assert rc == 0, err
    teacher = read_teacher_scores(scores)
    assert teacher.header["teacher_kind"] == "bi" and len(teacher.scores) == 8
    assert all(-1.0 <= v <= 1.0 for row in teacher.scores.values() for v in row.values())  # cosines
    sets = list(MINILM_CASES[case])
    if case in ("margin_mse", "kl"):
        sets.append(f"distill.scores={scores}")
    if case == "guide":
        sets.append(f"guide.model={minilm_path}")
    out = tmp_path / case
    args = train_args(scifact_dir, negatives, minilm_path, out, *sets)
    rc, _, err = cli(*args, "--set", "batch_size=4", "--set", "max_steps=2", "--set", "max_length=64")
    assert rc == 0, f"{case}: {err}"
    rows = read_metrics(out)
    assert len(rows) == 2 and all(math.isfinite(float(r["loss"])) for r in rows)
    if case in ("margin_mse", "kl"):
        assert all(float(r["distill_loss"]) > 0 for r in rows)
    if case == "guide":  # a margin of 2 exceeds any cosine gap: every negative leaves the softmax
        assert all(float(r["guide_masked"]) == 1.0 for r in rows)
        assert all(float(r["loss"]) == pytest.approx(0.0, abs=1e-6) for r in rows)
    assert (out / "model" / "ranker_config.json").exists()
