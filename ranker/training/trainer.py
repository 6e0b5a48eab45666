"""The training loop: one relevance model R, optionally CET's selection model S beside it.

Per micro-batch (CET, following the authors' code): each model scores the batch's negatives
with no gradient in eval mode, giving the *other* model's weights (``weight_pass: eval``; or
reuse the training forward's detached scores, ``shared``, which is cheaper and, for models
without dropout, identical -- ``auto`` picks it then); then R and S each
take a weighted loss, and both step on the same batch. AdamW (no decay on biases/LayerNorm),
linear warm-up then linear decay, gradient clipping, accumulation, bf16 autocast on GPU,
periodic ranx evaluation keeping the best model, checkpoints that resume bit-identically.
The losses get the weights rescaled as ``normalize_weights`` says; the ``w_*`` columns of
metrics.csv and weights.jsonl hold them before that rescaling (S's and R's own beliefs, which
``ranker cet-auc`` compares across queries).

With ``selection_warmup: N`` the loop first runs N steps that train S alone (R scores the
negatives for S's weights but does not step), then R's ``max_steps``; R's steps read the
micro-batches a run without warm-up reads, so the warm-up changes nothing but S's start.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from ranker.training import checkpoint as ckpt
from ranker.training.build import build_distillation, build_guide
from ranker.training.cet import WeightStats, cet_weights, rescale
from ranker.training.config import TrainConfig
from ranker.training.data import Batch, BatchMaker
from ranker.training.distributed import Context
from ranker.training.guide import guide_mask, masked
from ranker.training.logfiles import (
    TensorBoardLog,
    append_csv,
    append_jsonl,
    truncate_csv,
    truncate_jsonl,
    zero_stats,
)
from ranker.training.losses import DebiasedInfoNCE, RankingLoss, Scores, make_loss
from ranker.training.optim import linear_schedule, make_optimizer
from ranker.training.scorers import BiEncoderModule, BiScorer, CrossScorer, FeatureScorer, PairScorer
from ranker.training.selection import FeatureSelector
from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write, replace_directory
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)


def has_dropout(model: nn.Module) -> bool:
    """Whether ``model`` behaves differently in train mode: a dropout module with p > 0, a
    float ``*dropout*`` attribute > 0 (attention dropout that transformers passes to its
    attention functions), batch norm, or a randomized activation (RReLU, as in the
    layer-wise attention pooler)."""
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return True
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.RReLU)):
            return True
        for name, value in vars(module).items():
            if "dropout" in name and isinstance(value, float) and value > 0:
                return True
    return False


@dataclass(frozen=True)
class SelectionModel:
    """CET's selection model S, trained beside R.

    Attributes:
        model: S itself (a cross-encoder or a :class:`FeatureSelector`), saved at the end.
        module: What runs forward and backward (``model``, or DDP around it).
        scorer: Scores a batch with ``module``.
        loss: S's weighted loss (pairwise or listwise, as R's).
    """

    model: Any  # an nn.Module with save(directory); Any as for Trainer.relevance
    module: nn.Module
    scorer: CrossScorer | FeatureScorer | PairScorer
    loss: RankingLoss


@dataclass
class TrainResult:
    """What a finished run reports."""

    steps: int
    final_loss: float
    first_loss: float
    best: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Train R (and S with CET) from a :class:`TrainConfig`.

    Args:
        config: the resolved configuration.
        ctx: process context (rank, world size, device).
        batches: deterministic micro-batches.
        relevance: the model R (a cross-encoder or a bi-encoder).
        selection: CET's S (a cross-encoder or a FeatureSelector), or None.
        evaluator: optional ``callable(model) -> (metrics dict, run)`` for periodic evaluation.
    """

    def __init__(
        self,
        config: TrainConfig,
        ctx: Context,
        batches: BatchMaker,
        relevance: nn.Module,
        selection: nn.Module | None = None,
        evaluator=None,
    ):
        self.config, self.ctx, self.batches = config, ctx, batches
        self.out = Path(config.output_dir)
        self.evaluator = evaluator
        # loaders hand models back in eval mode; training wants dropout on. Typed Any: the
        # models' own methods (save) are hidden from the type checker by nn.Module.__getattr__
        self.relevance: Any = relevance.to(ctx.device).train()
        self.r_module: nn.Module = BiEncoderModule(relevance) if config.model_type == "bi" else relevance
        self.r_module = self._wrap(self.r_module)
        self.loss: RankingLoss = (
            make_loss(config.loss)
            if config.debias is None
            else DebiasedInfoNCE(config.debias.tau_plus, config.scale)
        )
        self.distill, self.teacher = build_distillation(config, batches.examples)
        self.guide = build_guide(config, ctx)
        self.r_scorer: BiScorer | CrossScorer
        if config.model_type == "bi":
            self.r_scorer = BiScorer(self.r_module, ctx.device, config.scale)
        else:
            self.r_scorer = CrossScorer(self.r_module, ctx.device)
        self.models: dict[str, nn.Module] = {"relevance": relevance}
        self.optimizers = {
            "relevance": make_optimizer(relevance, config.lr, config.weight_decay, config.head_lr)
        }
        self.cet: SelectionModel | None = None
        if selection is not None:
            selection = selection.to(ctx.device).train()
            features = isinstance(selection, FeatureSelector)
            scorer: CrossScorer | FeatureScorer | PairScorer
            if hasattr(selection, "embed_queries"):  # a text S on a frozen, cached backbone
                module = self._wrap(BiEncoderModule(selection))
                scorer = PairScorer(module, ctx.device, config.scale)
            else:
                module = self._wrap(selection)
                scorer = FeatureScorer(module, ctx.device) if features else CrossScorer(module, ctx.device)
            s_loss = make_loss("pairwise" if config.loss == "pairwise" else "listwise")
            self.cet = SelectionModel(selection, module, scorer, s_loss)
            lr = config.selection_lr or (1e-3 if features else config.lr)
            self.models["selection"] = selection
            self.optimizers["selection"] = make_optimizer(selection, lr, config.weight_decay)
        # S alone first (selection_warmup steps), then R and S together for max_steps
        self.s_warmup = config.selection_warmup if selection is not None else 0
        self.total_steps = self.s_warmup + config.max_steps
        self.schedulers = {
            k: linear_schedule(
                o, config.warmup_steps, config.max_steps + (self.s_warmup if k == "selection" else 0)
            )
            for k, o in self.optimizers.items()
        }
        bf16 = config.bf16_on(ctx.device.type)
        self.weight_pass = config.weight_pass
        if self.weight_pass == "auto":
            models = [relevance] if selection is None else [relevance, selection]
            self.weight_pass = "eval" if any(map(has_dropout, models)) else "shared"
            if selection is not None:
                logger.info("CET weight pass: %s", self.weight_pass)
        self.autocast = torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        if config.patience and ctx.distributed:
            raise InputError(
                "config key 'patience': early stopping runs on one process only (the main rank "
                "evaluates alone); set patience: 0 under torchrun"
            )
        self.stale = 0  # evaluations since the best one (early stopping with ``patience``)
        self.stopped = 0  # the step training stopped early at (0: ran to max_steps)
        self.tensorboard: TensorBoardLog | None = None  # opened by train() on the main rank

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.ctx.distributed:
            return model
        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DDP(model, device_ids=ids)

    # -- one step ----------------------------------------------------------------------------
    def _micro_step(self, batch: Batch, step: int, stats: dict[str, float]) -> None:
        cfg, accum, cet = self.config, self.config.grad_accum, self.cet
        if cet is not None and step <= self.s_warmup:
            self._selection_only(batch, stats)
            return
        if cet is None:
            with self.autocast:
                r_scores = self.r_scorer(batch)
            loss = self._relevance_loss(batch, r_scores, None, stats)
            (loss / accum).backward()
            return

        def weights(scores: torch.Tensor) -> torch.Tensor:  # before normalization: logged, dumped
            return cet_weights(scores, cfg.temperature, cfg.max_weight)

        if self.weight_pass == "eval":
            with torch.no_grad(), self.autocast:
                self.r_module.eval()
                cet.module.eval()
                r_neg = self.r_scorer.negatives(batch)
                s_neg = cet.scorer.negatives(batch)
                self.r_module.train()
                cet.module.train()
        with self.autocast:
            r_scores = self.r_scorer(batch)
            s_scores = cet.scorer(batch)
        if self.weight_pass == "shared":
            r_neg, s_neg = r_scores.negatives(), s_scores.negatives()
        w_r, w_s = weights(s_neg), weights(r_neg)
        norm = cfg.weight_normalization()
        loss = self._relevance_loss(batch, r_scores, rescale(w_r, norm), stats)
        (loss / accum).backward()
        s_loss = cet.loss(s_scores, rescale(w_s, norm))
        (s_loss / accum).backward()
        stats["selection_loss"] += s_loss.item() / accum
        for key, value in asdict(WeightStats.of(w_r, cfg.max_weight)).items():
            stats[f"w_{key}"] += value / accum
        if cfg.dump_weights:
            self._dump(batch, w_r, w_s, step)

    def _relevance_loss(
        self, batch: Batch, scores: Scores, weights: torch.Tensor | None, stats: dict[str, float]
    ) -> torch.Tensor:
        """R's loss on a micro-batch: the ranking loss (guide-masked, CET-weighted) plus the
        distillation term; adds its parts to ``stats``."""
        accum = self.config.grad_accum
        ranked = scores
        if self.guide is not None and self.config.guide is not None:
            settings = self.config.guide
            guide = self.guide.scores(batch).to(scores.logits.device)
            mask = guide_mask(guide, scores.target, settings.margin, settings.strategy)
            ranked = masked(scores, mask)
            negatives = mask.numel() - mask.shape[0]  # every column but each row's positive
            stats["guide_masked"] += float(mask.sum()) / max(negatives, 1) / accum
        loss = self.loss(ranked, weights)
        plain = loss if weights is None else self.loss(ranked, None)
        stats["loss_unweighted"] += plain.item() / accum
        if self.distill is not None and self.teacher is not None:
            teacher = self.teacher.group(batch.qids, batch.pos_ids, batch.neg_ids)
            term = self.distill(scores, teacher)
            stats["distill_loss"] += term.item() / accum
            loss = self.distill.combine(loss, term)
        stats["loss"] += loss.item() / accum
        return loss

    def _selection_only(self, batch: Batch, stats: dict[str, float]) -> None:
        """One micro-batch of S's warm-up: S steps on weights from R's (frozen) scores."""
        cfg, cet = self.config, self.cet
        assert cet is not None
        with torch.no_grad(), self.autocast:
            self.r_module.eval()
            r_neg = self.r_scorer.negatives(batch)
            self.r_module.train()
        with self.autocast:
            s_scores = cet.scorer(batch)
        w_s = cet_weights(r_neg, cfg.temperature, cfg.max_weight, cfg.weight_normalization())
        s_loss = cet.loss(s_scores, w_s)
        (s_loss / cfg.grad_accum).backward()
        stats["selection_loss"] += s_loss.item() / cfg.grad_accum

    def _dump(self, batch: Batch, w_r: torch.Tensor, w_s: torch.Tensor, step: int) -> None:
        wr, wsel = w_r.cpu().tolist(), w_s.cpu().tolist()
        with self._weights_path().open("a", encoding="utf-8") as out:
            for i, qid in enumerate(batch.qids):
                for j, docid in enumerate(batch.neg_ids[i]):
                    out.write(
                        json.dumps(
                            {
                                "qid": qid,
                                "docid": docid,
                                "weight": round(wr[i][j], 6),
                                "weight_s": round(wsel[i][j], 6),
                                "step": step,
                            }
                        )
                        + "\n"
                    )

    def _weights_path(self) -> Path:
        suffix = f".rank{self.ctx.rank}" if self.ctx.distributed else ""
        return self.out / f"weights{suffix}.jsonl"

    def _step(self, step: int) -> dict[str, float]:
        stats = zero_stats()
        # S's warm-up reads batches 0.. and R's steps read them again from 0, as without it
        r_step = step - self.s_warmup if step >= self.s_warmup else step
        for micro in range(self.config.grad_accum):
            index = r_step * self.config.grad_accum + micro
            batch = self.batches.batch(index, self.ctx.rank, self.ctx.world)
            self._micro_step(batch, step + 1, stats)
        for name, opt in self.optimizers.items():
            if name == "relevance" and step < self.s_warmup:
                continue
            if self.config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.models[name].parameters(), self.config.max_grad_norm)
            opt.step()
            self.schedulers[name].step()
            opt.zero_grad(set_to_none=True)
        if self.ctx.distributed:  # log the global batch's means, not rank 0's share
            import torch.distributed as dist

            values = torch.tensor(list(stats.values()), dtype=torch.float64, device=self.ctx.device)
            dist.all_reduce(values)
            stats = dict(zip(stats, (values / self.ctx.world).tolist(), strict=True))
        return stats

    # -- the loop ----------------------------------------------------------------------------
    def train(self, resume: bool = False) -> TrainResult:
        """Run to ``max_steps`` (after S's warm-up, if any; from the latest checkpoint when
        ``resume``)."""
        cfg, ctx = self.config, self.ctx
        start = self._start(resume)
        metrics_path = self.out / "metrics.csv"
        if ctx.main:
            truncate_csv(metrics_path, start)
        if cfg.dump_weights and self.cet is not None:
            truncate_jsonl(self._weights_path(), start)
        if ctx.main and self.tensorboard is None:
            self.tensorboard = TensorBoardLog(self.out / "tensorboard")
        window = zero_stats()
        first_loss = last_loss = float("nan")
        began, window_start, since = time.perf_counter(), time.perf_counter(), 0
        total = self.total_steps
        bar = tqdm(total=total, initial=start, desc="train", unit="step", disable=bars_disabled(ctx.main))
        for step in range(start, total):
            stats = self._step(step)
            for k, v in stats.items():
                window[k] += v
            since += 1
            done = step + 1
            last_loss = stats["loss"]
            if not math.isfinite(last_loss):
                raise InputError(
                    f"loss became non-finite ({last_loss}) at step {done}; lower lr (now {cfg.lr}) "
                    "or check the data; the last checkpoint is kept",
                    self.out,
                )
            if done == max(start, self.s_warmup) + 1:
                first_loss = stats["loss"]
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.4f}")
            if ctx.main and (done % cfg.log_every == 0 or done == total):
                elapsed = time.perf_counter() - window_start
                row = {
                    "step": done,
                    "lr": self.schedulers["relevance"].get_last_lr()[0],
                    **{k: v / since for k, v in window.items()},
                    "samples_per_s": since * cfg.batch_size * cfg.grad_accum / max(elapsed, 1e-9),
                    "elapsed_s": time.perf_counter() - began,
                }
                append_csv(metrics_path, row)
                if self.tensorboard is not None:
                    self.tensorboard.log(row)
                self.history.append(row)
                window = dict.fromkeys(window, 0.0)
                window_start, since = time.perf_counter(), 0
            if self.evaluator is not None and cfg.eval_every and done % cfg.eval_every == 0 and done != total:
                self._evaluate(done)
                if cfg.patience and self.stale >= cfg.patience:
                    logger.info(
                        "early stop at step %d: %s not better for %d evaluations (best %.4f at step %d)",
                        done,
                        cfg.eval_metric,
                        self.stale,
                        self.best["value"],
                        self.best["step"],
                    )
                    self.stopped = done
                    break
            if cfg.save_every and done % cfg.save_every == 0 and done != total:
                self._checkpoint(done)
        bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        steps = self.stopped or total
        if self.evaluator is not None and not self.stopped:
            self._evaluate(total)
        self._checkpoint(steps)
        if ctx.main:
            self._save_final()
        return TrainResult(steps, last_loss, first_loss, self.best, self.history)

    def _start(self, resume: bool) -> int:
        root = self.out / "checkpoints"
        latest = ckpt.latest_checkpoint(root)
        if not resume:
            if latest is not None or (self.out / "model").exists():
                raise FileExistsError(
                    f"{self.out} already holds a training run; pass --resume "
                    "to continue it or choose another output_dir"
                )
            self.out.mkdir(parents=True, exist_ok=True)
            if self.ctx.main:
                with atomic_write(self.out / "config.yaml") as handle:
                    handle.write(yaml.safe_dump(self.config.to_dict()))
            return 0
        if latest is None:
            logger.info("--resume: no checkpoint in %s; starting from step 0", root)
            self.out.mkdir(parents=True, exist_ok=True)
            return 0
        meta = ckpt.load_checkpoint(latest, self.models, self.optimizers, self.schedulers, self.ctx.device)
        self.best, self.history = meta.get("best", {}), meta.get("history", [])
        self.stale = int(meta.get("stale", 0))
        logger.info("resumed from %s (step %d)", latest, meta["step"])
        return int(meta["step"])

    def _checkpoint(self, step: int) -> None:
        if self.ctx.main:
            ckpt.save_checkpoint(
                self.out / "checkpoints",
                step,
                self.models,
                self.optimizers,
                self.schedulers,
                {"best": self.best, "history": self.history, "stale": self.stale},
                self.config.to_dict(),
                keep=self.config.keep_checkpoints,
            )
        from ranker.training.distributed import barrier

        barrier(self.ctx)

    def _evaluate(self, step: int) -> None:
        from ranker.training.distributed import barrier

        if self.ctx.main:
            scores, _ = self.evaluator(self.relevance)
            value = scores[self.config.eval_metric]
            logger.info("step %d: %s", step, ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
            append_jsonl(self.out / "eval.jsonl", {"step": step, **scores})
            if not self.best or value > self.best["value"]:
                self.best = {"step": step, "metric": self.config.eval_metric, "value": value}
                replace_directory(self.out / "best", self.relevance.save)
                self.stale = 0
            else:
                self.stale += 1
        barrier(self.ctx)

    def _save_final(self) -> None:
        replace_directory(self.out / "model", self.relevance.save)
        if self.cet is not None:
            replace_directory(self.out / "selection", self.cet.model.save)
        summary = {
            "steps": self.stopped or self.total_steps,
            "stopped_early": bool(self.stopped),
            "best": self.best,
            "last": self.history[-1] if self.history else {},
        }
        with atomic_write(self.out / "summary.json") as handle:
            handle.write(json.dumps(summary, indent=1))
