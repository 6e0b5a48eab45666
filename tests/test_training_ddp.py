"""DDP on 2 CPU processes (gloo) matches one process on the same global batch: the loss, the
gradients (in-batch negatives gathered across ranks with gradients), and whole training runs."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from training_fakes import TinyBi, write_toy_data
from training_run import make_trainer

from ranker.training.data import BatchMaker, load_texts, read_training_examples
from ranker.training.losses import InfoNCE
from ranker.training.scorers import BiEncoderModule, BiScorer
from ranker.training.selection import FeatureEncoder
from retrievers.io.dataset import load_dataset

# one CET run (bi-encoder R, feature S) for the 2-rank and the 1-process side alike
RUN = dict(dropout=0.0, batch_size=8, max_steps=3, save_every=0, lr=0.01, selection_lr=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batches(data: Path) -> BatchMaker:
    examples, retrievers = read_training_examples(data / "negatives.jsonl")
    wanted = {d for e in examples for d in (*e.positives, *e.negatives)}
    texts = load_texts(load_dataset(str(data)).docs(), wanted)
    return BatchMaker(examples, texts, 2, 8, 3, FeatureEncoder(retrievers).missing())


def _loss_and_grads(data: Path, rank: int, world: int):
    torch.manual_seed(0)
    model = TinyBi(dropout=0.0)
    module = BiEncoderModule(model)
    if world > 1:
        module = torch.nn.parallel.DistributedDataParallel(module)
    batch = _batches(data).batch(1, rank, world)
    scores = BiScorer(module, torch.device("cpu"), scale=20.0)(batch)
    # a weight per (query, negative) that does not depend on how the batch is split
    weights = torch.tensor([[1.0 + int(q[1:]) % 3 + 0.5 * j for j in range(2)] for q in batch.qids])
    loss = InfoNCE()(scores, weights)
    loss.backward()
    if world > 1:
        dist.all_reduce(loss := loss.detach().clone())
        loss /= world
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _grad_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    loss, grads = _loss_and_grads(Path(data), rank, world)
    torch.save({"loss": torch.tensor(loss), **grads}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_gathered_in_batch_negatives_give_single_process_loss_and_gradients(tmp_path):
    data, _ = write_toy_data(tmp_path / "toy")
    mp.spawn(_grad_worker, args=(2, _free_port(), str(data), str(tmp_path)), nprocs=2)
    loss, grads = _loss_and_grads(data, 0, 1)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got.pop("loss").item() == pytest.approx(loss, rel=1e-5)
        for name, grad in grads.items():
            assert torch.allclose(got[name], grad, atol=1e-6, rtol=1e-4), name
    # without the gather, each rank would see only half the in-batch negatives: the test has teeth
    assert any(g.abs().sum() > 0 for g in grads.values())


def _train_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    trainer = make_trainer(Path(data), Path(out), "bi", "features", **RUN)
    trainer.train()
    from ranker.training.distributed import teardown

    teardown(trainer.ctx_for_teardown)


def test_ddp_training_run_matches_one_process(tmp_path):
    """A CET run (bi-encoder R, feature S) on 2 ranks logs the same global losses and ends with
    the same weights as one process. S gets a small lr: its output bias cancels in a softmax
    over (positive, negatives), so its gradient is 0 in exact arithmetic and Adam would blow
    reduction-order rounding up to a full step either way, moving every later CET weight."""
    data, _ = write_toy_data(tmp_path / "toy")
    mp.spawn(_train_worker, args=(2, _free_port(), str(data), str(tmp_path / "ddp")), nprocs=2)
    single = make_trainer(data, tmp_path / "one", "bi", "features", **RUN)
    single.train()
    with open(tmp_path / "ddp" / "metrics.csv") as a, open(tmp_path / "one" / "metrics.csv") as b:
        ddp_rows, one_rows = list(csv.DictReader(a)), list(csv.DictReader(b))
    for key in ("loss", "loss_unweighted", "selection_loss", "w_mean"):
        assert [float(r[key]) for r in ddp_rows] == pytest.approx(
            [float(r[key]) for r in one_rows], rel=1e-4
        ), key
    for name in ("relevance", "selection"):
        a = load_file(str(tmp_path / "ddp" / "checkpoints" / "step-3" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "one" / "checkpoints" / "step-3" / f"{name}.safetensors"))
        for key in a:
            # Adam divides by sqrt(v): rounding differences of the reduction order come out
            # at ~1e-5 of the weights after 3 steps (lr 0.01)
            atol = 1e-5 if name == "relevance" else 2e-4
            assert torch.allclose(a[key], b[key], atol=atol), (name, key)
    ranks = sorted(p.name for p in (tmp_path / "ddp").glob("weights.rank*.jsonl"))
    assert ranks == ["weights.rank0.jsonl", "weights.rank1.jsonl"]


# -- the real all-MiniLM-L6-v2 through the Trainer: cross-encoder, bi-encoder, CET ---------------
# (model_type, selection): a cross-encoder R; a bi-encoder R (BERT's pooler is unused there);
# CET with a bi-encoder R and a cross-encoder S, so both scorers run inside DDP at once.
MINILM_CASES = {"cross": ("cross", "none"), "bi": ("bi", "none"), "cet": ("bi", "text")}


def _minilm_trainer(data: Path, out: Path, minilm: str, model_type: str, selection: str):
    """A Trainer built by the real builders (as ``ranker train`` does), dropout off so that
    2 ranks and 1 process compute the same thing."""
    from ranker.training.build import build_relevance, build_selection
    from ranker.training.config import build_config
    from ranker.training.distributed import setup
    from ranker.training.pipeline import make_batches, seed_everything
    from ranker.training.trainer import Trainer

    config = build_config(
        {
            "dataset": str(data),
            "negatives": str(data / "negatives.jsonl"),
            "output_dir": str(out),
            "model": minilm,
            "model_type": model_type,
            "loss": "infonce" if model_type == "bi" else "listwise",
            "selection": selection,
            "batch_size": 4,
            "n_negatives": 2,
            "max_length": 16,
            "max_steps": 1,
            "seed": 7,
            "device": "cpu",
            "weight_pass": "shared",
            "dump_weights": False,
        }
    )
    ctx = setup("cpu")
    batches, retrievers = make_batches(config, load_dataset(config.dataset))
    seed_everything(config.seed)  # the fresh cross-encoder head: same init on every rank
    models = [build_relevance(config), build_selection(config, retrievers)]
    for model in filter(None, models):
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return Trainer(config, ctx, batches, models[0], models[1])


def _minilm_loss_and_grads(data: Path, out: Path, minilm: str, case: str, rank: int, world: int):
    trainer = _minilm_trainer(data, out / case, minilm, *MINILM_CASES[case])
    stats = {"loss": 0.0, "loss_unweighted": 0.0, "selection_loss": 0.0}
    stats.update({f"w_{k}": 0.0 for k in ("mean", "std", "min", "max", "clipped")})
    trainer._micro_step(trainer.batches.batch(0, rank, world), 1, stats)
    losses = torch.tensor([stats["loss"], stats["selection_loss"]], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(losses)
        losses /= world
    grads = {"loss": losses}
    for name, model in trainer.models.items():
        for param_name, param in model.named_parameters():
            if param.requires_grad:
                # DDP refuses a step in which a trainable parameter got no gradient
                assert param.grad is not None, (case, name, param_name)
                grads[f"{name}.{param_name}"] = param.grad.clone()
            else:
                assert param.grad is None
    return grads


def _minilm_worker(rank: int, world: int, port: int, data: str, out: str, minilm: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    from ranker.training.distributed import Context, teardown

    for case in MINILM_CASES:
        grads = _minilm_loss_and_grads(Path(data), Path(out) / f"rank{rank}", minilm, case, rank, world)
        torch.save(grads, f"{out}/{case}.rank{rank}.pt")
    teardown(Context(rank, world, torch.device("cpu")))


@pytest.mark.integration
def test_ddp_with_real_minilm_matches_one_process(tmp_path, minilm_path):
    """2 gloo ranks through the Trainer with the real MiniLM (DDP around a cross-encoder, whose
    ``tokenize`` is not on the wrapper, and around a bi-encoder with BERT's unused pooler) give
    the single-process loss and gradients, for a cross-encoder, a bi-encoder and CET."""
    data, _ = write_toy_data(tmp_path / "toy", n_queries=8, n_docs=16)
    args = (2, _free_port(), str(data), str(tmp_path), str(minilm_path))
    mp.spawn(_minilm_worker, args=args, nprocs=2)
    for case in MINILM_CASES:
        one = _minilm_loss_and_grads(data, tmp_path / "one", str(minilm_path), case, 0, 1)
        assert any(k.startswith("selection.") for k in one) == (case == "cet")
        for rank in (0, 1):
            got = torch.load(tmp_path / f"{case}.rank{rank}.pt", weights_only=True)
            assert got.keys() == one.keys()
            torch.testing.assert_close(got.pop("loss"), one["loss"], rtol=1e-5, atol=1e-7)
            # float32 sums in another order: each tensor within 1e-4 of its norm, plus 1e-6 of
            # its model's whole gradient for tensors that are 0 in exact arithmetic (key biases);
            # a rank's half batch or a missing gather would be off by tens of percent
            scale = {
                m: torch.cat([g.flatten() for k, g in one.items() if k.startswith(m + ".")]).norm()
                for m in {k.split(".")[0] for k in got}
            }
            for name, grad in got.items():
                ref, total = one[name], scale[name.split(".")[0]]
                assert total > 0
                assert (grad - ref).norm() <= 1e-4 * ref.norm() + 1e-6 * total, (case, name)
