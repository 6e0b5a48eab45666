"""``ranker train-summary``: one row per label, ms/step from each run's summary.json."""

from __future__ import annotations

import json
from pathlib import Path

from ranker.cli import main


def _run(folder: Path, summary: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))


def _row(text: str, label: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_ms_per_step_is_the_mean_over_the_runs_and_blank_without_timing(tmp_path):
    best = {"step": 100, "metric": "ndcg@10", "value": 0.5}
    _run(tmp_path / "b" / "s1", {"steps": 300, "best": best, "last": {"step": 300, "elapsed_s": 3.0}})
    _run(tmp_path / "b" / "s2", {"steps": 300, "best": best, "last": {"step": 300, "elapsed_s": 6.0}})
    # early stopped at 250, last logged (and timed) at step 200: 4 s over 200 steps
    _run(
        tmp_path / "e" / "s1", {"steps": 250, "stopped_early": True, "last": {"step": 200, "elapsed_s": 4.0}}
    )
    _run(tmp_path / "old" / "s1", {"steps": 300, "last": {"step": 300}})  # written before timings
    out = tmp_path / "train.md"
    args = [f"{n}={tmp_path / n}/s*" for n in ("b", "e", "old")]
    assert main(["train-summary", *args, "--out", str(out)]) == 0
    text = out.read_text()
    header = [cell.strip() for cell in text.splitlines()[0].strip("|").split("|")]
    column = header.index("ms/step")
    assert _row(text, "b")[column] == "15.0"  # mean of 10 and 20 ms
    assert _row(text, "e")[column] == "20.0"
    assert _row(text, "old")[column] == ""
    assert _row(text, "b")[header.index("best dev score (mean)")] == "0.5000"
    assert "includes the dev evaluations" in text


def test_a_label_given_twice_is_one_row_without_a_prefix_sibling(tmp_path):
    # 'mltp*' would also match mltp_mean's runs; the label given twice takes exactly its own
    for name in ("mltp", "mltp-s43", "mltp_mean", "mltp_mean-s43"):
        _run(
            tmp_path / name, {"steps": 100 if "mean" in name else 300, "last": {"step": 10, "elapsed_s": 1.0}}
        )
    out = tmp_path / "train.md"
    args = [f"mltp={tmp_path}/mltp", f"mltp={tmp_path}/mltp-s*", f"mltp_mean={tmp_path}/mltp_mean*"]
    assert main(["train-summary", *args, "--out", str(out)]) == 0
    text = out.read_text()
    assert _row(text, "mltp")[1:3] == ["2", "300 / 300"]
    assert _row(text, "mltp_mean")[1:3] == ["2", "100 / 100"]
    assert sum(line.startswith("| mltp |") for line in text.splitlines()) == 1


def test_a_label_whose_patterns_match_no_run_is_an_error(tmp_path, capsys):
    _run(tmp_path / "a", {"steps": 10, "last": {"step": 10, "elapsed_s": 1.0}})
    out = tmp_path / "train.md"
    # a repeated label may have a pattern that matches nothing (no extra seeds)...
    assert main(["train-summary", f"a={tmp_path}/a", f"a={tmp_path}/a-s*", "--out", str(out)]) == 0
    # ...but a label with no run at all is refused in one line, and nothing is written
    out.unlink()
    assert main(["train-summary", f"a={tmp_path}/a", f"b={tmp_path}/b*", "--out", str(out)]) == 2
    assert "b: no training run" in capsys.readouterr().err
    assert not out.exists()


def test_runs_of_one_label_from_two_folders_with_the_same_names_all_count(tmp_path):
    for folder in ("a/s1", "b/s1"):
        _run(tmp_path / folder, {"steps": 10, "last": {"step": 10, "elapsed_s": 1.0}})
    out = tmp_path / "train.md"
    assert main(["train-summary", f"x={tmp_path}/a/s*", f"x={tmp_path}/b/s*", "--out", str(out)]) == 0
    assert _row(out.read_text(), "x")[1] == "2"
