"""``pooling_search``: read a search config, train the mixture (and K = 1, and optionally each
configuration alone), rank every configuration, write JSON + table + plot + the best config.

Config (YAML)::

    train:   {ranker train keys: dataset, negatives, model, output_dir, lr, batch_size, ...}
    space:   {pooling: [mean, gem, ponet], layers: [[-1], [-2, -1]], settings: {ponet: {segments: [4, 8]}}}
    search:  {supernets: 2, steps: 200, temperature: 5.0, decay: 0.9, threshold: 0.001,
              dev_split: dev, dev_fraction: 0.2, metric: ndcg@10, standalone: false,
              standalone_steps: 0}
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ranker.search.balance import kendall_tau
from ranker.search.mixture import Mixture, Settings
from ranker.search.space import Candidate, build_space
from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """The ``search:`` section."""

    supernets: int = 2
    steps: int = 200
    temperature: float = 5.0
    decay: float = 0.9
    threshold: float = 1e-3
    dev_split: str = "dev"
    dev_fraction: float = 0.2
    metric: str = "ndcg@10"
    standalone: bool = False
    standalone_steps: int = 0

    def __post_init__(self) -> None:
        if self.supernets < 1 or self.steps < 1 or not 0 < self.dev_fraction < 1 or not 0 <= self.decay < 1:
            raise InputError(
                "search: need supernets >= 1, steps >= 1, 0 < dev_fraction < 1 and 0 <= decay < 1"
            )


def read_search_config(
    path: str | Path, overrides: Mapping[str, Any] | None = None
) -> tuple[Any, list[Candidate], SearchSettings]:
    """(TrainConfig, candidates, SearchSettings) from a search YAML, with ``overrides``
    (``{"train": {"model": ...}}``, as :func:`~ranker.training.config.parse_overrides` reads
    ``train.model=...``) merged in; errors name the file."""
    from ranker.training.config import build_config, merge
    from ranker.yamlfile import read_yaml

    path = Path(path)
    raw = read_yaml(path, "search config")
    if not isinstance(raw, Mapping) or set(raw) - {"train", "space", "search"} or "space" not in raw:
        raise InputError("expected top-level keys train, space, search (space required)", path)
    unknown_sections = sorted(set(overrides or {}) - {"train", "search"})
    if unknown_sections:
        raise InputError(
            f"--set {unknown_sections[0]}...: only train.KEY=VALUE and search.KEY=VALUE can be set", path
        )
    for section, values in (overrides or {}).items():
        if not isinstance(values, Mapping):
            raise InputError(f"--set {section}=...: give {section}.KEY=VALUE", path)
    raw = merge(raw, overrides or {})
    train = build_config(raw.get("train") or {}, str(path))
    if train.model_type != "bi":
        raise InputError("pooling search trains bi-encoders: set train.model_type: bi", path)
    for key in ("dataset", "negatives", "output_dir", "model"):
        if not getattr(train, key):
            raise InputError(f"train.{key} is required", path)
    fields = {f.name for f in dataclasses.fields(SearchSettings)}
    search_raw = raw.get("search") or {}
    unknown = sorted(set(search_raw) - fields)
    if unknown:
        raise InputError(f"unknown search key {unknown[0]!r}; known: {', '.join(sorted(fields))}", path)
    try:
        search = SearchSettings(**search_raw)
    except TypeError as err:
        raise InputError(f"search: {err}", path) from None
    return train, build_space(raw["space"], f"{path}: space"), search


def split_examples(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) examples: a fixed ``fraction`` of the queries, chosen by seed."""
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    cut = max(1, round(len(examples) * fraction))
    held = set(order[:cut])
    return [e for i, e in enumerate(examples) if i not in held], [
        e for i, e in enumerate(examples) if i in held
    ]


def pooling_search(config_path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run the search the config describes (``overrides`` as in :func:`read_search_config`);
    returns (and writes) the result."""
    import torch

    from ranker.encoders.backbone import Backbone
    from ranker.training.data import BatchMaker, load_texts, read_training_examples
    from ranker.training.distributed import pick_device
    from ranker.training.evaluate import evaluate_model
    from ranker.training.pipeline import seed_everything
    from ranker.training.selection import FeatureEncoder
    from retrievers.io.dataset import load_dataset

    train, candidates, search = read_search_config(config_path, overrides)
    out = Path(train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(train.seed)
    device = pick_device(train.device)
    dataset = load_dataset(train.dataset)
    examples, retrievers = read_training_examples(train.negatives)
    missing = FeatureEncoder(retrievers).missing()
    fit, held = split_examples(examples, search.dev_fraction, train.seed)
    wanted = {d for e in examples for d in (*e.positives, *e.negatives)}
    texts = load_texts(dataset.docs(), wanted, examples)
    batch = min(train.batch_size, len(fit))
    batches = BatchMaker(fit, texts, train.n_negatives, batch, train.seed, missing)
    dev = BatchMaker(held, texts, train.n_negatives, min(batch, len(held)), train.seed + 1, missing)
    queries, qrels = dataset.queries(search.dev_split), dataset.qrels(search.dev_split)
    corpus = {doc.id: doc.contents for doc in dataset.docs()}

    bf16 = train.bf16_on(device.type)

    def evaluate(model) -> float:
        if bf16:  # the dev pass under the same autocast as training
            model.set_autocast(torch.bfloat16)
        scores, _ = evaluate_model(
            model, "bi", queries, qrels, corpus, [search.metric], batch_size=train.eval_batch_size
        )
        return scores[search.metric]

    backbone: Any = Backbone.from_pretrained(train.model, attention=train.attention or None)
    if train.backbone.frozen != "none":  # poolers on a frozen (and maybe cached) backbone
        from ranker.encoders.cached import cached_or_frozen

        backbone = cached_or_frozen(backbone, train.backbone.frozen, train.backbone.states)
    settings = Settings(
        lr=train.lr,
        weight_decay=train.weight_decay,
        scale=train.scale,
        loss=train.loss,
        max_grad_norm=train.max_grad_norm,
        temperature=search.temperature,
        decay=search.decay,
        threshold=search.threshold,
        seed=train.seed,
        head_lr=train.head_lr,
        bf16=bf16,
    )

    def run(space: list[Candidate], k: int, steps: int) -> tuple[list[float], Mixture]:
        mixture = Mixture(backbone, space, k, settings, train.max_length, train.normalize, device)
        mixture.train(steps, batches.batch, dev.batch)
        with torch.no_grad():
            return mixture.scores(evaluate), mixture

    results: dict[str, Any] = {
        "candidates": [c.to_dict() for c in candidates],
        "settings": dataclasses.asdict(search),
    }
    kinds = [("single", 1)] + ([("mixture", search.supernets)] if search.supernets > 1 else [])
    for label, k in kinds:
        scores, mixture = run(candidates, k, search.steps)
        results[label] = {
            "supernets": k,
            "scores": scores,
            "assigned": mixture.assigned(),
            "assignment": mixture.assignment().tolist(),
            "counts": mixture.counts.tolist(),
        }
        logger.info("%s (K=%d): %s", label, k, scores)
    if search.standalone:
        steps = search.standalone_steps or search.steps
        alone = [run([c], 1, steps)[0][0] for c in candidates]
        results["standalone"] = {"steps": steps, "scores": alone}
        for label, _ in kinds:
            results[label]["kendall_tau"] = kendall_tau(alone, results[label]["scores"])
    ranked_by = "mixture" if "mixture" in results else "single"
    best = max(range(len(candidates)), key=lambda i: results[ranked_by]["scores"][i])
    results["ranked_by"], results["best"] = ranked_by, candidates[best].to_dict()
    write_outputs(out, results, train)
    return results


def ranking_table(results: dict[str, Any]) -> str:
    """A markdown table: every configuration, its scores, rank and supernet."""
    kinds = [k for k in ("single", "mixture", "standalone") if k in results]
    order = sorted(
        range(len(results["candidates"])), key=lambda i: -results[results["ranked_by"]]["scores"][i]
    )
    metric = results["settings"]["metric"]
    head = "| rank | configuration | " + " | ".join(f"{k} {metric}" for k in kinds) + " | supernet |"
    lines = [head, "|" + "---|" * (len(kinds) + 3)]
    for rank, i in enumerate(order, 1):
        cells = " | ".join(f"{results[k]['scores'][i]:.4f}" for k in kinds)
        net = results.get("mixture", results["single"])["assigned"][i]
        lines.append(f"| {rank} | `{results['candidates'][i]['name']}` | {cells} | {net} |")
    taus = [
        f"{k}: {results[k]['kendall_tau']:.3f}"
        for k in ("single", "mixture")
        if "kendall_tau" in results.get(k, {})
    ]
    if taus:
        lines += ["", "Kendall tau against the stand-alone ranking: " + ", ".join(taus)]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, results: dict[str, Any], train) -> None:
    """search.json, search.md, search.png and best.yaml (a `ranker train` config), atomically."""
    with atomic_write(out / "search.json") as f:
        json.dump(results, f, indent=1)
    with atomic_write(out / "search.md") as f:
        f.write(ranking_table(results))
    best = Candidate(
        results["best"]["pooling"], tuple(results["best"]["layers"]), results["best"]["options"]
    ).train_keys()
    config = {**train.to_dict(), **best, "output_dir": str(out / "best")}
    with atomic_write(out / "best.yaml") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    plot(out / "search.png", results)


def plot(path: Path, results: dict[str, Any]) -> None:
    """Scores per configuration, one series per run kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ranker.evaluation.plots import save_figure

    names = [c["name"] for c in results["candidates"]]
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(names)), 3.5))
    for kind in ("single", "mixture", "standalone"):
        if kind in results:
            ax.plot(range(len(names)), results[kind]["scores"], marker="o", label=kind)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(results["settings"]["metric"])
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
