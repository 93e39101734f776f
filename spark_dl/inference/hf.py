"""Executor side of the pretrained-model stages: tokenize text, embed token ids.

Runs in Spark's Python workers and receives plain values only (:class:`TokenizeTask`,
:class:`EmbedTask`). The tokenizer and the encoder are built once per Python worker from
bytes the driver shipped (a broadcast, or under Spark Connect the closure or a session
file), keyed by their SHA-256: nothing is downloaded and no path is read here, so
executors need not see the driver's disk. Building an encoder reads its ``config.json`` as
data (``transformers.AutoConfig``'s dict constructor with a built-in ``model_type``) and
its weights from safetensors; no code from the model directory runs.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

_CACHE: OrderedDict[str, Any] = OrderedDict()
_CACHE_SIZE = 4


@dataclass(frozen=True)
class TokenizeTask:
    """What tokenizing needs: the ``tokenizer.json`` text (as a Broadcast-like handle)."""

    key: str
    tokenizer: Any  # .value -> the tokenizer.json text
    max_length: int


@dataclass(frozen=True)
class EmbedTask:
    """What embedding needs: the encoder's config and weights, and how to pool."""

    key: str
    config: bytes  # config.json
    weights: Any  # .value -> model.safetensors bytes (a Broadcast, Inline or SessionFile)
    pooling: str  # "cls" or "mean"
    normalize: bool
    batch_size: int
    threads: int
    use_gpu: bool = False
    precision: str = "float32"


def _cached(key: str, build: Any) -> Any:
    value = _CACHE.get(key)
    if value is None:
        value = build()
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return value


def get_tokenizer(task: TokenizeTask) -> Any:
    """The fast tokenizer of ``task``, truncating and padding to ``max_length``."""
    def build() -> Any:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(task.tokenizer.value)
        tok.enable_truncation(task.max_length)
        pad_id, pad_token = pad_of(tok)
        tok.enable_padding(length=task.max_length, pad_id=pad_id, pad_token=pad_token)
        return tok

    return _cached(f"tok:{task.key}:{task.max_length}", build)


def pad_of(tok: Any) -> tuple[int, str]:
    """The tokenizer's padding id and token: its own padding settings, else a padding
    token of its vocabulary ([PAD], <pad>), else id 0."""
    if tok.padding:
        return int(tok.padding["pad_id"]), str(tok.padding["pad_token"])
    for token in ("[PAD]", "<pad>", "<|pad|>"):
        found = tok.token_to_id(token)
        if found is not None:
            return int(found), token
    return 0, tok.id_to_token(0) or "[PAD]"


def tokenize(texts: list[str | None], task: TokenizeTask) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, mask)``, each ``(n, max_length)`` int32; a null text is all padding."""
    tok = get_tokenizer(task)
    n, length = len(texts), task.max_length
    ids, mask = np.zeros((n, length), np.int32), np.zeros((n, length), np.int32)
    present = [i for i, t in enumerate(texts) if t is not None]
    if present:
        for i, enc in zip(present, tok.encode_batch([texts[i] for i in present])):
            ids[i], mask[i] = enc.ids, enc.attention_mask
    ids[[i for i, t in enumerate(texts) if t is None]] = pad_of(tok)[0]
    return ids, mask


def _int_lists(mat: np.ndarray) -> Any:
    import pyarrow as pa

    n, k = mat.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(mat.reshape(-1)))


def tokenize_batches(batches: Iterator[Any], task: TokenizeTask) -> Iterator[Any]:
    """Arrow UDF body: string arrays to ``struct<ids array<int>, mask array<int>>``."""
    import pyarrow as pa

    for arr in batches:
        ids, mask = tokenize(arr.to_pylist(), task)
        yield pa.StructArray.from_arrays([_int_lists(ids), _int_lists(mask)], ["ids", "mask"])


def get_encoder(task: EmbedTask) -> Any:
    """The encoder of ``task`` on this task's device and precision, built once per worker."""
    from spark_dl.inference.scoring import _device

    device = _device(task.use_gpu)

    def build() -> Any:
        import torch
        from safetensors.torch import load as st_load

        model = build_encoder(task.config)
        state = st_load(task.weights.value)
        # The driver checked that the weights cover every parameter (check_encoder).
        model.load_state_dict(_strip_prefix(state, model), strict=False)
        model = model.to(device).eval()
        if task.precision in ("bfloat16", "float16"):
            model = model.to(getattr(torch, task.precision))
        return model

    return _cached(f"enc:{task.key}@{device}/{task.precision}", build)


#: config.json keys that would make transformers fetch or run code (Hub attention kernels,
#: remote classes, quantization back ends) or change the dtype; dropped before building.
UNSAFE_KEYS = ("auto_map", "attn_implementation", "_attn_implementation",
               "quantization_config", "dtype", "torch_dtype", "use_kernels")


def build_encoder(config_json: bytes, meta: bool = False) -> Any:
    """The bare encoder (``AutoModel``, float32, PyTorch's own attention, no pooler where the
    architecture has one) of a ``config.json``, randomly initialised (on torch's meta
    device with ``meta``: names and shapes only). The config is read as data: keys that
    could fetch or run code are dropped (:data:`UNSAFE_KEYS`)."""
    import contextlib

    import torch
    from transformers import AutoConfig, AutoModel

    raw = {k: v for k, v in json.loads(config_json).items()
           if k not in UNSAFE_KEYS and "kernel" not in k}
    config = AutoConfig.for_model(**raw)
    with torch.device("meta") if meta else contextlib.nullcontext():
        try:  # the pooler takes no part in our pooling, and DDP refuses unused parameters
            model = AutoModel.from_config(config, attn_implementation="sdpa",
                                          add_pooling_layer=False)
        except TypeError:
            model = AutoModel.from_config(config, attn_implementation="sdpa")
    return model.float()


def _strip_prefix(state: dict[str, Any], model: Any) -> dict[str, Any]:
    """Weights saved from a task model (``bert.encoder...``) for the bare encoder."""
    own = set(model.state_dict())
    prefix = getattr(model, "base_model_prefix", "")
    out = {}
    for name, value in state.items():
        bare = name[len(prefix) + 1:] if prefix and name.startswith(prefix + ".") else name
        if bare in own:
            out[bare] = value
    return out


def embed(ids: np.ndarray, mask: np.ndarray, task: EmbedTask) -> np.ndarray:
    """``(n, hidden)`` float32 embeddings. Rows are sorted by length and run in batches of
    ``task.batch_size``, each cut to its longest row, so padding does not dominate."""
    import torch

    model = get_encoder(task)
    _check_ids(ids, model)
    n = len(ids)
    lengths = mask.sum(axis=1)
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros((n, model.config.hidden_size), np.float32)
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, n, task.batch_size):
            rows = order[start:start + task.batch_size]
            width = max(int(lengths[rows].max()), 1)
            x = torch.from_numpy(ids[rows, :width].astype(np.int64)).to(device)
            m = torch.from_numpy(mask[rows, :width].astype(np.int64)).to(device)
            hidden = model(input_ids=x, attention_mask=m).last_hidden_state.float()
            out[rows] = pool(hidden, m, task.pooling, task.normalize).cpu().numpy()
    return out


def pool(hidden: Any, mask: Any, pooling: str, normalize: bool) -> Any:
    """``cls``: the first token's state; ``mean``: the mean over unmasked tokens."""
    import torch

    if pooling == "cls":
        vec = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        vec = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(vec, dim=1) if normalize else vec


def _id_matrix(arr: Any) -> np.ndarray:
    """An Arrow list array of equal-length int lists as an ``(n, k)`` int64 matrix."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    lengths = np.diff(arr.offsets.to_numpy(zero_copy_only=False)) if n else np.zeros(0)
    if arr.null_count or (n and (lengths != lengths[0]).any()):
        raise ValueError("TextEmbedder's inputCol and attentionMaskCol must hold non-null "
                         "id lists of one length (HFTokenizer's output); this batch has null "
                         "or ragged rows.")
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    return flat.reshape(n, -1) if n else np.zeros((0, 0), np.int64)


def _check_ids(ids: np.ndarray, model: Any) -> None:
    """Ids inside the vocabulary and rows no wider than the position table."""
    vocab = int(model.config.vocab_size)
    width = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"TextEmbedder's inputCol holds token id {int(ids.max())}, outside "
                         f"the modelPath encoder's vocabulary of {vocab}: tokenize with the "
                         "tokenizer saved with that model.")
    if width and ids.shape[1] > width:
        raise ValueError(f"TextEmbedder's rows hold {ids.shape[1]} ids, more than the "
                         f"modelPath encoder's {width} positions: lower HFTokenizer's "
                         "maxLength.")


def _threads(task: EmbedTask) -> None:
    if task.threads > 0:
        import torch

        torch.set_num_threads(task.threads)


def embed_series(batches: Iterator[Any], task: EmbedTask) -> Iterator[Any]:
    """pandas UDF body (pyspark < 4.1): ``(ids, mask)`` Series pairs to embedding lists."""
    import pandas as pd

    _threads(task)
    for ids, mask in batches:
        if len(ids) == 0:
            yield pd.Series([], dtype=object)
            continue
        m = np.stack(mask.to_numpy())
        vecs = embed(np.stack(ids.to_numpy()), m, task)
        yield pd.Series([v if m[i].any() else None for i, v in enumerate(vecs)],
                        index=ids.index)


def embed_batches(batches: Iterator[Any], task: EmbedTask) -> Iterator[Any]:
    """Arrow UDF body: ``(ids, mask)`` list columns to ``array<float>`` embeddings."""
    import pyarrow as pa

    _threads(task)
    for batch in batches:
        ids, mask = _id_matrix(batch.field(0)), _id_matrix(batch.field(1))
        vecs = embed(ids, mask, task) if len(ids) else np.zeros((0, 0), np.float32)
        n, k = vecs.shape
        offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
        empty = pa.array(mask.sum(axis=1) == 0) if n else None  # all padding: no text
        yield pa.ListArray.from_arrays(offsets, pa.array(vecs.reshape(-1)), mask=empty)


__all__ = ["EmbedTask", "TokenizeTask", "build_encoder", "embed", "embed_batches",
           "embed_series", "get_encoder",
           "get_tokenizer", "pool", "tokenize", "tokenize_batches"]
