"""Shared utilities the trainer and the runner build on: transformers' linear schedule,
the filelock work-folder lock, and replacing an output folder by renames."""

from __future__ import annotations

import os

import pytest
import torch

from ranker.experiments.cache import work_lock
from ranker.training.optim import linear_schedule
from retrievers.errors import InputError
from retrievers.io.atomic import replace_directory


def test_linear_schedule_warms_up_then_decays_to_zero():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_schedule(opt, warmup=4, total=12)
    lrs = []
    for _ in range(12):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    # the first step already learns (1/5), the peak is reached at step 4, the last step is 1/8
    assert lrs == pytest.approx(
        [1 / 5, 2 / 5, 3 / 5, 4 / 5, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]
    )
    assert sched.get_last_lr()[0] == 0.0
    # the values are the ones of the schedule every pinned result was trained with
    old = [(s + 1) / 5 if s < 4 else (12 - s) / 8 for s in range(12)]
    assert lrs == pytest.approx(old)


def test_work_lock_refuses_a_second_holder_and_is_released(tmp_path):
    busy = pytest.raises(InputError, match="another `ranker run` is using this work folder")
    with work_lock(tmp_path), busy, work_lock(tmp_path):
        pass
    with work_lock(tmp_path):  # released: the next run gets it
        pass


def _writer(text):
    def save(folder):
        folder.mkdir()
        (folder / "weights").write_text(text)

    return save


def test_replace_directory_swaps_in_the_new_version_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "best"
    replace_directory(target, _writer("one"))
    replace_directory(target, _writer("two"))
    assert (target / "weights").read_text() == "two"
    assert os.listdir(tmp_path) == ["best"]


def test_replace_directory_keeps_the_old_version_when_saving_fails(tmp_path):
    target = tmp_path / "best"
    replace_directory(target, _writer("one"))

    def broken(folder):
        folder.mkdir()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        replace_directory(target, broken)
    assert (target / "weights").read_text() == "one"
    assert os.listdir(tmp_path) == ["best"]
