"""Tiny random transformer folders (BERT and Llama) with a word-level tokenizer, for fast tests."""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "cats",
    "dogs",
    "fish",
    "birds",
    "purr",
    "bark",
    "swim",
    "sing",
    "fly",
    "sleep",
    "water",
    "tree",
    "house",
    "red",
    "blue",
    "green",
    "big",
    "small",
    "fast",
    "slow",
    "one",
    "two",
    "three",
    "query",
    "document",
    "protein",
    "cell",
    "gene",
    "study",
    "results",
    "show",
    "patients",
    "trial",
    "effect",
    "risk",
]


def tiny_tokenizer(decoder: bool):
    """A lower-casing word-level fast tokenizer; BERT-style or Llama-style special tokens."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] if not decoder else ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS])}
    tok = Tokenizer(WordLevel(vocab, unk_token=specials[1]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if decoder:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 2)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="<unk>",
            bos_token="<s>",
            eos_token="</s>",
            padding_side="right",
        )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        padding_side="right",
    )


def make_tiny(folder: Path, kind: str, seed: int = 0) -> Path:
    """Save a tiny random ``kind`` ("bert" or "llama") model and its tokenizer to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

    torch.manual_seed(seed)
    decoder = kind == "llama"
    tokenizer = tiny_tokenizer(decoder)
    size = len(tokenizer)
    if decoder:
        config = LlamaConfig(
            vocab_size=size,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            tie_word_embeddings=False,
        )
        model = LlamaModel(config)
    else:
        config = BertConfig(
            vocab_size=size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=128,
            pad_token_id=0,
        )
        model = BertModel(config, add_pooling_layer=False)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def assert_same_outputs(actual, expected) -> None:
    """A reloaded model's outputs equal the original's up to float32 rounding.

    The weights round-trip bit for bit, but the same forward pass on a reloaded copy is not
    always bit-identical: CPU BLAS/oneDNN kernels may take another path for differently
    aligned buffers (CI saw a 1.4e-9 difference on scores of 2e-3). A weight that was not
    saved or not loaded (a re-initialised head or pooler) moves outputs by orders of
    magnitude more than this tolerance.
    """
    import numpy as np

    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-7)
