"""Saving and loading fitted torch models: Spark JSON metadata plus a safetensors payload.

Layout under ``path``::

    metadata/   Spark's DefaultParamsWriter JSON: class, Params (the network's name and
                JSON keyword arguments among them), numFeatures, numOutputs, history,
                the weights' SHA-256
    data/       one parquet row: format ("safetensors"), sha256, the safetensors bytes

Everything is written through Spark, so any path Spark can write works (local, HDFS,
object stores). Loading parses the weights with safetensors, never with pickle, and
resolves the network only if it names a ``torch.nn.Module`` subclass.

Saves are atomic: the model is written completely to ``<path>.tmp-<id>`` and only then
renamed into place; an overwrite first renames the old model to ``<path>.old-<id>`` and
deletes it after the new one is in place. A crash at any point leaves either the old or
the new model loadable, and :class:`TorchModelReader` finds the old one if the crash
fell between the two renames.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from spark_dl.errors import UnsafeModelError
from spark_dl.fs import HadoopFS
from spark_dl.inputs import InputLayout
from spark_dl.model_spec import ModelSpec

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "safetensors"


def digest(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class TorchModelWriter(MLWriter):
    """Writes a fitted torch model (see module docstring for the layout)."""

    def __init__(self, instance: Any) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        """Write to a temporary sibling, then rename into place (see module docstring)."""
        fs = HadoopFS(self.sc, path)
        if fs.exists(path) and not self.shouldOverwrite:
            raise FileExistsError(
                f"Path {path} already exists. Use model.write().overwrite().save(path) to "
                "replace it."
            )
        token = uuid.uuid4().hex[:12]
        tmp, old = f"{path}.tmp-{token}", f"{path}.old-{token}"
        try:
            self.saveImpl(tmp)
        except BaseException:
            fs.delete(tmp)
            raise
        if fs.exists(path):
            fs.rename(path, old)
            fs.rename(tmp, path)
            fs.delete(old)
        else:
            fs.rename(tmp, path)

    def saveImpl(self, path: str) -> None:
        inst = self.instance
        extra = {
            "numFeatures": inst.numFeatures,
            "numOutputs": inst._num_outputs,
            "history": inst.history,
            "weightsFormat": WEIGHTS_FORMAT,
            "weightsSha256": inst._digest(),
            "inputLayout": inst._layout.to_dict(),
            **inst._extra_metadata(),
        }
        DefaultParamsWriter.saveMetadata(inst, path, self.sc, extraMetadata=extra)
        spark = self.sparkSession
        rows = [(WEIGHTS_FORMAT, inst._digest(), bytearray(inst._weights))]
        spark.createDataFrame(rows, "format string, sha256 string, payload binary").coalesce(
            1
        ).write.parquet(f"{path}/data")


class TorchModelReader(MLReader):
    """Reads what :class:`TorchModelWriter` wrote, refusing anything that could run code."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Any:
        path = _recover(HadoopFS(self.sc, path), path)
        metadata = DefaultParamsReader.loadMetadata(path, self.sc)
        expected = f"{self.cls.__module__}.{self.cls.__name__}"
        if metadata["class"] != expected:
            raise ValueError(f"{path!r} holds a {metadata['class']}, not a {expected}.")
        params = metadata["paramMap"]
        spec = ModelSpec(params.get("model", "mlp"), json.loads(params.get("modelParams", "{}")))
        spec.resolve()  # refuses anything but an nn.Module subclass, before touching weights
        weights = read_weights(self.sparkSession, path, metadata.get("weightsSha256"))
        num_features = int(metadata["numFeatures"])
        instance = self.cls._from_parts(
            weights, num_features, int(metadata["numOutputs"]),
            list(metadata.get("history") or []),
            InputLayout.from_dict(metadata.get("inputLayout"), num_features),
        )
        instance._load_extra_metadata(metadata)
        DefaultParamsReader.getAndSetParams(instance, metadata)
        instance._check_weights()
        return instance


def _recover(fs: HadoopFS, path: str) -> str:
    """``path``, or the old model an interrupted overwrite left beside it."""
    if fs.exists(path):
        return path
    olds = fs.siblings(f"{path}.old-*")
    if olds:
        logger.warning("%s is missing: an overwrite was interrupted; loading the previous model "
                       "from %s", path, olds[-1])
        return olds[-1]
    return path


def read_weights(spark: Any, path: str, expected_sha: str | None) -> bytes:
    """The safetensors payload under ``path/data``, checked for format and checksum."""
    rows = spark.read.parquet(f"{path}/data").collect()
    if len(rows) != 1:
        raise ValueError(f"{path}/data must hold exactly one weights row; found {len(rows)}.")
    row = rows[0]
    payload = bytes(row["payload"])
    if row["format"] != WEIGHTS_FORMAT:
        raise UnsafeModelError(
            f"Refusing weights in format {row['format']!r} at {path}/data: only "
            f"{WEIGHTS_FORMAT!r} is loaded (pickled weights could run code)."
        )
    if expected_sha and digest(payload) != expected_sha:
        raise ValueError(
            f"The weights at {path}/data do not match the SHA-256 recorded in the metadata "
            "(the file was corrupted or modified). Save the model again."
        )
    check_safetensors(payload, f"{path}/data")
    return payload


def check_safetensors(payload: bytes, where: str) -> None:
    """Parse ``payload`` as safetensors (header and buffers) or raise ``UnsafeModelError``."""
    from safetensors.torch import load as st_load

    try:
        st_load(payload)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not safetensors"
        raise UnsafeModelError(
            f"The weights at {where} are not a valid safetensors file ({exc}); refusing to "
            "load them. spark_dl never unpickles weights."
        ) from None
