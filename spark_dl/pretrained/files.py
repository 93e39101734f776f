"""Reading and checking a pretrained model's directory on the driver.

A directory is read with ``pyarrow.fs`` (a local or mounted path such as ``/dbfs/...``, or
an ``hdfs://``, ``s3://`` or ``gs://`` URI), without a Spark job, once per stage; the
bytes then reach the executors as model weights do (:func:`spark_dl.compat.broadcast`).
Every problem is reported with the path and the Param that named it: a missing directory
or file, a ``config.json`` that is not JSON or names custom code, weights that are not
safetensors or do not fit the network.
"""

from __future__ import annotations

import json
import os
from typing import Any

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def read_files(path: str, names: tuple[str, ...], owner: str, param: str) -> dict[str, bytes]:
    """The bytes of ``names`` in directory ``path``; a clear error for anything missing."""
    from pyarrow import fs

    if not path:
        raise ValueError(f"The '{param}' parameter of {owner} must be set to a directory "
                         "saved by Hugging Face's save_pretrained. Got None instead.")
    uri = path if "://" in path else f"file://{os.path.abspath(path)}"
    try:
        filesystem, root = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(root)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad URIs
        raise ValueError(f"The '{param}' directory {path!r} of {owner} cannot be read: "
                         f"{exc}") from None
    if info.type != fs.FileType.Directory:
        raise FileNotFoundError(
            f"The '{param}' directory {path!r} of {owner} does not exist (or is a file). "
            "Point it at a folder written by save_pretrained, on a path the driver reads.")
    out = {}
    for name in names:
        target = f"{root.rstrip('/')}/{name}"
        if filesystem.get_file_info(target).type != fs.FileType.File:
            raise FileNotFoundError(
                f"The '{param}' directory {path!r} of {owner} has no {name}: save the model "
                "(or tokenizer) with save_pretrained, which writes it.")
        with filesystem.open_input_stream(target) as stream:
            out[name] = stream.read()
    return out


def check_tokenizer(text: bytes, path: str, owner: str) -> str:
    """``tokenizer.json`` as text, parsed once by the ``tokenizers`` library."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ImportError(f"{owner} needs the 'tokenizers' package: pip install "
                          "'spark-dl[hf]'.") from None
    try:
        decoded = text.decode("utf-8")
        Tokenizer.from_str(decoded)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own Exception type
        raise ValueError(f"{path}/{TOKENIZER_FILE} is not a Hugging Face fast tokenizer "
                         f"(tokenizers could not parse it: {exc}).") from None
    return decoded


def check_encoder(files: dict[str, bytes], path: str, owner: str) -> dict[str, Any]:
    """The parsed ``config.json``; refuses custom code, non-safetensors weights and weights
    that leave a parameter of the encoder uninitialised."""
    where = f"{path}/{CONFIG_FILE}"
    try:
        config = json.loads(files[CONFIG_FILE])
    except ValueError as exc:
        raise ValueError(f"{where} is not JSON: {exc}") from None
    if not isinstance(config, dict) or not config.get("model_type"):
        raise ValueError(f"{where} names no 'model_type': it is not a transformers config.")
    if config.get("auto_map"):
        raise ValueError(f"{where} asks for custom model code (auto_map); {owner} only builds "
                         "the architectures built into transformers, and runs no code from "
                         "a model directory.")
    from spark_dl.inference.hf import _strip_prefix, build_encoder
    from spark_dl.persistence import safetensors_header

    try:
        meta = build_encoder(files[CONFIG_FILE], meta=True)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types
        raise ValueError(f"{where} does not describe a transformers encoder: {exc}") from None
    header = safetensors_header(files[WEIGHTS_FILE], f"{path}/{WEIGHTS_FILE}")
    loaded = _strip_prefix(dict(header), meta)
    expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    missing = sorted(set(expected) - set(loaded))
    wrong = sorted(k for k in set(expected) & set(loaded) if tuple(loaded[k][1]) != expected[k])
    if missing or wrong:
        raise ValueError(f"{path}/{WEIGHTS_FILE} does not fit the encoder {where} describes: "
                         f"missing {missing[:5]}, wrong shape {wrong[:5]}.")
    return config


__all__ = ["CONFIG_FILE", "TOKENIZER_FILE", "WEIGHTS_FILE", "check_encoder",
           "check_tokenizer", "read_files"]
