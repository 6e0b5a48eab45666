"""Examples shown under each subcommand's ``--help`` (its epilog), kept in one place."""

from __future__ import annotations

EXAMPLES: dict[str, list[str]] = {
    "index": [
        "ranker index scifact --index runs/scifact-bm25",
        "ranker index scifact --retriever dense --model MODEL --faiss hnsw --index runs/scifact-dense",
        "ranker index --retriever dense --embeddings emb/scifact --faiss ivfpq --index runs/sf-ivfpq",
        "ranker index scifact --retriever dense --model MODEL --dtype float32 --index runs/sf-fp32",
    ],
    "search": [
        "ranker search scifact --split test --index runs/scifact-bm25 --k 1000 --out runs/bm25.trec",
        "ranker search --queries queries.tsv --index runs/scifact-dense --out run.trec",
    ],
    "evaluate": [
        "ranker evaluate scifact --split test runs/bm25.trec runs/dense.trec --metrics ndcg@10 recall@100",
        "ranker evaluate --qrels qrels.txt.gz run.trec.gz --format json",
    ],
    "compare": [
        "ranker compare scifact --baseline runs/bm25.trec runs/dense.trec runs/fused.trec",
        "ranker compare --qrels qrels.txt --all-pairs a.trec b.trec c.trec --test fisher --plot cmp.png",
        "ranker compare cranfield --baseline 'b=runs/b.s*.trec' 'c=runs/c.s*.trec' 'e=runs/e.s*.trec' "
        "--gap b e",
        "ranker compare cranfield --baseline 'b=runs/b.s*.trec' 'r=runs/r.s*.trec' "
        "--reference 'f=runs/f.s*.trec' --reference 'e=runs/e.s*.trec' --gap b f --gap b e "
        "--gap-plot gaps.png",
    ],
    "encode": [
        "ranker encode scifact --model MODEL --out emb/scifact",
        "ranker encode scifact --model MODEL --dtype float32 --out emb/scifact-fp32",
        "torchrun --nproc-per-node 2 -m ranker encode scifact --model MODEL --max-length 256 --out emb/sf",
    ],
    "cache-states": [
        "ranker cache-states scifact --model MODEL --layers all --max-length 128 --dtype bfloat16 "
        "--out cache/sf",
        "ranker cache-states scifact --model MODEL --layers -1 --split test --out cache/sf-last",
        "torchrun --nproc-per-node 2 -m ranker cache-states scifact --model MODEL --out cache/sf",
    ],
    "convert-gguf": [
        "ranker convert-gguf SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2",
    ],
    "score": [
        "ranker score negatives.train.jsonl --dataset scifact --model MINILM --out teacher.jsonl",
        "ranker score neg.jsonl --dataset scifact --model runs/cross/model --name ce --out ce.jsonl",
    ],
    "train": [
        "ranker train experiments/configs/quickstart-bi.yaml --set lr=2e-5 --set output_dir=runs/bi",
        "ranker train experiments/configs/quickstart-bi.yaml --set distill.loss=margin_mse "
        "--set distill.scores=teacher.jsonl --set output_dir=runs/bi-mmse",
        "ranker train CONFIG.yaml --set guide.model=MINILM --set guide.margin=0.05 --set debias.tau_plus=0.1",
        "ranker train --help-config",
    ],
    "train-summary": [
        "ranker train-summary 'mean=runs/mean*' 'mltp=runs/mltp*' --out steps.md",
    ],
    "rerank": [
        "ranker rerank scifact --split test --run runs/bm25.trec --model runs/cross --depth 100 "
        "--out runs/rerank.trec",
    ],
    "fuse": [
        "ranker fuse runs/bm25.trec runs/dense.trec --out runs/rrf.trec",
        "ranker fuse a.trec b.trec --method wsum --weights 0.3 0.7 --out runs/wsum.trec",
    ],
    "mine": [
        "ranker mine scifact --split train --index runs/scifact-bm25 --out neg.jsonl",
        "ranker mine scifact --index runs/bm25 --index runs/dense --max-relative 0.95 --sampling random "
        "--export sentence-transformers --out neg.jsonl",
        "ranker mine scifact --index runs/dense --sampling simans --simans-a 0.5 --simans-b 0 "
        "--out neg.jsonl",
        "ranker mine scifact --index runs/bm25 --promote-above 0.5 --judge CROSS_ENCODER --out neg.jsonl",
        "ranker mine data/cf-pooled --index runs/dense --evidence-index runs/bm25 "
        "--exclude-relevant data/cf-pooled/qrels/train-hidden.tsv --out clean.neg.jsonl",
    ],
    "pool": [
        "ranker pool scifact --split test --pool-run runs/bm25.trec --depth 10 --out data/scifact-pooled",
        "ranker pool cranfield --pool-run runs/bm25.trec --pool-run runs/dense.trec --depth 5 "
        "--train-fraction 0.5 --seed 7 --out data/cf-pooled",
    ],
    "audit": [
        "ranker audit neg.jsonl --qrels data/scifact/qrels/train.tsv --plot audit.png",
        "ranker audit neg.jsonl --judge MODEL --sample 50 --seed 42 [--qrels FULL_QRELS]",
        "ranker audit neg.jsonl --qrels data/cranfield/qrels/test.tsv --pool data/cf-pooled/pool.train.tsv "
        "--json audit.json",
    ],
    "cet-auc": [
        "ranker cet-auc runs/cet/weights.jsonl --qrels data/scifact-pooled/qrels/train-hidden.tsv",
        "ranker cet-auc runs/cet-s1/weights.jsonl runs/cet-s2/weights.jsonl --qrels full.tsv --plot w.png",
        "ranker cet-auc runs/cet/weights.jsonl --qrels full.tsv --pool data/cf-pooled/pool.train.tsv",
    ],
    "pooling-search": [
        "ranker pooling-search experiments/pooling_search/cranfield-minilm.yaml",
        "ranker pooling-search experiments/pooling_search/cranfield-minilm.yaml --train-best",
    ],
    "pooling-table": [
        "ranker pooling-table cmp.json --plot forest.png",
        "ranker pooling-table cmp.json --model mean=runs/mean/model --model cls=runs/cls/model "
        "--dataset scifact --plot forest.png",
    ],
    "run": [
        "ranker run experiments/scifact.yaml --list",
        "ranker run experiments/scifact.yaml --profile cpu",
        "ranker run experiments/pooling_bias.yaml --profile cpu --set data=/path/to/beir --set name=mine",
    ],
}


def epilog(command: str) -> str:
    """The ``examples:`` block of ``command``'s help."""
    lines = EXAMPLES[command]
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
