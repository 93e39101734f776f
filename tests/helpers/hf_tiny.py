"""A tiny BERT and WordPiece tokenizer, built and saved with save_pretrained, for tests
(nothing is downloaded: the tokenizer is trained on the texts made here)."""

from __future__ import annotations

import numpy as np

WORDS = ["good", "bad", "movie", "plot", "actors", "great", "boring", "not", "really", "the",
         "was", "and", "a", "film", "story", "terrible", "loved", "hated", "it", "ending"]


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 24))) for _ in range(n)]


def build(folder: str, hidden: int = 32, layers: int = 2,
          corpus: list[str] | None = None) -> str:
    """Write a fast tokenizer (trained on ``corpus``, else on :func:`texts`) and a randomly
    initialised BertModel into ``folder``."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus or texts(300, seed=1), trainers.WordPieceTrainer(
        vocab_size=120 if corpus is None else 1000, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tok.token_to_id(t)) for t in specials[2:4]])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden,
                                     num_hidden_layers=layers, num_attention_heads=2,
                                     intermediate_size=2 * hidden, max_position_embeddings=64)
    transformers.BertModel(config).eval().save_pretrained(folder)
    return folder
