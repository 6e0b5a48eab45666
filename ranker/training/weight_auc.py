"""How well CET's weights tell hidden positives from true negatives (ROC AUC).

Under pooling bias, some mined "negatives" are relevant documents the shallow pool never
judged (hidden positives). CET (Cai et al., CIKM 2022, arXiv 2209.05072) weights each
negative's loss by ``w_R = 1 + exp(S/T)``: a negative the selection model S believes was
never looked at counts about once, so a good S gives hidden positives *lower* weights than
true negatives. ``weight_s = 1 + exp(R/T)`` is monotone in the relevance model's score, so
hidden positives should get *higher* ``weight_s``. The AUC (Mann-Whitney U / n1 n0; 0.5 =
no separation, ties count half) is reported in those directions.

What S can learn is *selection*: whether a document was judged. With the judging pool,
:func:`selection_diagnostics` measures that directly (the AUC of ``w_R`` at telling judged
from unjudged negatives, pooled and per query) and puts the hidden-positive AUC beside its
ceiling ``0.5 + f / 2`` (f: the share of the weighted true negatives that were judged; hidden
positives are never judged, so a true negative that was not judged looks just like one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

from scipy.stats import mannwhitneyu

from retrievers.errors import InputError
from retrievers.io.lines import read_jsonl


def last_weights(path: str | Path) -> dict[tuple[str, str], dict[str, float]]:
    """Each (qid, docid)'s weights from the latest step it was seen in a ``weights.jsonl``."""
    latest: dict[tuple[str, str], dict[str, float]] = {}
    for number, row in read_jsonl(path):
        try:
            key, step = (str(row["qid"]), str(row["docid"])), int(row["step"])
            values = {"weight": float(row["weight"]), "weight_s": float(row["weight_s"]), "step": step}
        except (KeyError, TypeError, ValueError):
            raise InputError(
                "expected qid, docid, weight, weight_s and step (written by "
                "`ranker train` with dump_weights)",
                path,
                number,
            ) from None
        if key not in latest or latest[key]["step"] <= step:
            latest[key] = values
    return latest


def _auc(positives: list[float], negatives: list[float]) -> float:
    if not positives or not negatives:
        return math.nan
    u = mannwhitneyu(positives, negatives, alternative="two-sided").statistic
    return float(u) / (len(positives) * len(negatives))


def weight_auc(
    weights: Mapping[tuple[str, str], Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    min_relevance: int = 1,
) -> dict[str, Any]:
    """AUCs of ``-weight`` and ``weight_s`` for hidden positives (relevant in ``qrels``) vs the rest.

    Only queries present in ``qrels`` count (the others have no full judgments).
    """
    pos_r: list[float] = []
    neg_r: list[float] = []
    pos_s: list[float] = []
    neg_s: list[float] = []
    for (qid, docid), values in weights.items():
        if qid not in qrels:
            continue
        hidden = qrels[qid].get(docid, 0) >= min_relevance
        (pos_r if hidden else neg_r).append(-values["weight"])
        (pos_s if hidden else neg_s).append(values["weight_s"])
    return {
        "negatives": len(pos_r) + len(neg_r),
        "hidden_positives": len(pos_r),
        "auc_selection": _auc(pos_r, neg_r),
        "auc_relevance": _auc(pos_s, neg_s),
        "mean_weight_hidden": -sum(pos_r) / len(pos_r) if pos_r else math.nan,
        "mean_weight_true_negative": -sum(neg_r) / len(neg_r) if neg_r else math.nan,
    }


def selection_diagnostics(
    weights: Mapping[tuple[str, str], Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    pool: Mapping[str, Set[str]],
    min_relevance: int = 1,
) -> dict[str, Any]:
    """How well ``w_R`` (monotone in S) tells judged from unjudged negatives, and f.

    Only queries in both ``qrels`` (full judgments) and ``pool`` count. ``auc_judged`` is
    P(a judged negative's weight > an unjudged one's), pooled over queries;
    ``auc_judged_per_query`` its mean over the queries that have both kinds (their number in
    ``queries_with_both``). ``f`` is the share of the true negatives (not relevant in
    ``qrels``) that were judged, and ``auc_ceiling = 0.5 + f / 2`` the best ``auc_selection``
    any S can reach on these negatives.
    """
    judged: list[float] = []
    unjudged: list[float] = []
    per_query: dict[str, tuple[list[float], list[float]]] = {}
    true_negatives = judged_true = 0
    for (qid, docid), values in weights.items():
        if qid not in qrels or qid not in pool:
            continue
        inside = docid in pool[qid]
        groups = per_query.setdefault(qid, ([], []))
        (judged if inside else unjudged).append(values["weight"])
        groups[0 if inside else 1].append(values["weight"])
        if qrels[qid].get(docid, 0) < min_relevance:
            true_negatives += 1
            judged_true += inside
    aucs = [_auc(a, b) for a, b in per_query.values() if a and b]
    f = judged_true / true_negatives if true_negatives else math.nan
    return {
        "judged_negatives": len(judged),
        "unjudged_negatives": len(unjudged),
        "auc_judged": _auc(judged, unjudged),
        "auc_judged_per_query": sum(aucs) / len(aucs) if aucs else math.nan,
        "queries_with_both": len(aucs),
        "f": f,
        "auc_ceiling": 0.5 + f / 2,
    }


def split_weights(
    weights: Mapping[tuple[str, str], Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    min_relevance: int = 1,
) -> dict[str, dict[str, list[float]]]:
    """``{"weight" | "weight_s": {"hidden": [...], "true_negative": [...]}}`` over the
    negatives of queries in ``qrels``."""
    out: dict[str, dict[str, list[float]]] = {
        key: {"hidden": [], "true_negative": []} for key in ("weight", "weight_s")
    }
    for (qid, docid), values in weights.items():
        if qid not in qrels:
            continue
        group = "hidden" if qrels[qid].get(docid, 0) >= min_relevance else "true_negative"
        for key in out:
            out[key][group].append(values[key])
    return out


def plot_weights(groups: Mapping[str, Mapping[str, list[float]]], path: str | Path, title: str = "") -> None:
    """ECDFs of each weight for hidden positives vs true negatives, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from retrievers.io.atomic import atomic_write

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("png", "pdf", "svg"):
        raise InputError("plot file must end in .png, .pdf or .svg", path)
    labels = {
        "weight": "w_R = 1 + exp(S/T): weight of R's loss (lower = S thinks unjudged)",
        "weight_s": "w_S = 1 + exp(R/T): weight of S's loss (higher = R thinks relevant)",
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (key, label) in zip(axes, labels.items(), strict=True):
        for group, colour in (("true_negative", "tab:blue"), ("hidden", "tab:red")):
            values = np.sort(np.asarray(groups[key][group], dtype=float))
            if len(values):
                ax.step(
                    values,
                    np.arange(1, len(values) + 1) / len(values),
                    where="post",
                    color=colour,
                    label=f"{group.replace('_', ' ')} (n={len(values)})",
                )
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("share of negatives <= x")
        ax.legend(fontsize=8)
    fig.suptitle(title or "CET weights of mined negatives: hidden positives vs true negatives", fontsize=9)
    fig.tight_layout()
    with atomic_write(path, "wb") as out:
        fig.savefig(out, format=fmt, dpi=120)
    plt.close(fig)


def write_json(path: str | Path, result: Mapping[str, Any]) -> None:
    """Write ``result`` as JSON (atomically; NaN written as null)."""
    from ranker.evaluation.report import nan_as_null
    from retrievers.io.atomic import atomic_write

    clean = nan_as_null(result)
    with atomic_write(path) as handle:
        json.dump(clean, handle, indent=1)
        handle.write("\n")
