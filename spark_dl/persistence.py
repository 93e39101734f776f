"""Saving and loading every spark_dl stage: one atomic writer, one checked reader.

Every stage mixes in :class:`Persistable` and says what it saves through four hooks (in
the spirit of pyspark's ``CoreModelReadWrite``): ``_metadata`` (values saved beside the
Params in Spark's JSON metadata), ``_save_data`` (a ``data/`` folder, if any),
``_from_saved`` (build the instance from them, checking them first) and ``_check_loaded``
(after the Params and uid are restored). :class:`StageWriter` writes Spark's
``DefaultParamsWriter`` metadata and the data atomically; :class:`StageReader` recovers
from an interrupted overwrite, checks the class, and restores the uid and the Params, as
pyspark's own readers do. Stages without fitted state (estimators, transformers) use the
hooks' defaults.

A fitted torch model's layout under ``path``::

    metadata/   Spark's DefaultParamsWriter JSON: class, Params (the network's name and
                JSON keyword arguments among them), numFeatures, numOutputs, history,
                the weights' SHA-256
    data/       one parquet row: format ("safetensors"), sha256, the safetensors bytes

Everything is written through Spark, so any path Spark can write works (local, HDFS,
object stores). Loading never executes code from the files: the network must be a built-in
one or come from a module the caller allowed (checked before any import, see
:meth:`~spark_dl.model_spec.ModelSpec.check_loadable`); the weights are parsed with
safetensors, never with pickle; and the tensor names and shapes in the safetensors header
must equal those of the network built on torch's ``meta`` device before the real network
is allocated, so metadata cannot make the loader allocate more than the weights hold.

Saves are atomic (:func:`replace_atomically`): the model is written completely to
``<path>.tmp-<id>`` and only then renamed into place; an overwrite first renames the old
model to ``<path>.old-<id>`` and deletes it after the new one is in place. A crash at any
point leaves either the old or the new model loadable, and :class:`TorchModelReader` finds
the old one if the crash fell between the two renames. :func:`save_atomic` does the same
for any ``MLWritable``, such as a ``PipelineModel`` (whose own writer deletes the old
directory first), and :func:`load_atomic` reads it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any, Callable, Sequence

from pyspark.ml.util import DefaultParamsReader, MLReadable, MLReader, MLWritable, MLWriter

from spark_dl.compat import active_session, filesystem, load_metadata, save_metadata
from spark_dl.errors import UnsafeModelError
from spark_dl.inputs import InputLayout
from spark_dl.model_spec import ModelSpec

logger = logging.getLogger(__name__)

WEIGHTS_FORMAT = "safetensors"


def digest(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def replace_atomically(spark: Any, path: str, write: Callable[[str], None], *,
                       overwrite: bool) -> None:
    """Run ``write(tmp)`` into ``<path>.tmp-<id>``, then rename it to ``path``.

    An existing ``path`` (only with ``overwrite``) is first renamed to ``<path>.old-<id>``
    and deleted once the new one is in place. A crash leaves the old or the new complete
    directory at ``path``, except between the two renames, where ``path`` is missing and
    the old one sits at ``<path>.old-<id>``: :func:`recover` (used by spark_dl's readers,
    :func:`load_atomic` and ``spark-dl score``) finds it.
    """
    fs = filesystem(spark, path)
    if fs.exists(path) and not overwrite:
        raise FileExistsError(
            f"Path {path} already exists. Use model.write().overwrite().save(path) (or "
            "save_atomic(model, path, overwrite=True)) to replace it."
        )
    token = uuid.uuid4().hex[:12]
    tmp, old = f"{path}.tmp-{token}", f"{path}.old-{token}"
    try:
        write(tmp)
    except BaseException:
        fs.delete(tmp)
        raise
    if fs.exists(path):
        fs.rename(path, old)
        fs.rename(tmp, path)
        fs.delete(old)
    else:
        fs.rename(tmp, path)


def save_atomic(stage: Any, path: str, *, overwrite: bool = False) -> None:
    """Save any ``MLWritable`` (a ``PipelineModel``, a ``CrossValidatorModel``, one of our
    models) so that a crash at any moment leaves the old or the new one loadable.

    pyspark's own ``write().overwrite().save(path)`` deletes the old directory before it
    writes the new one; a crash in between loses both. This writes beside ``path`` and
    renames into place (see :func:`replace_atomically`); load with :func:`load_atomic`
    (or any reader, outside the instant between the two renames).

    Examples
    --------
    >>> save_atomic(pipeline_model, "hdfs:///models/fraud", overwrite=True)  # doctest: +SKIP
    >>> model = load_atomic(PipelineModel, "hdfs:///models/fraud")  # doctest: +SKIP
    """
    replace_atomically(active_session(), path, lambda tmp: stage.write().save(tmp),
                       overwrite=overwrite)


def load_atomic(cls: Any, path: str) -> Any:
    """``cls.load(path)``, or the previous version an interrupted :func:`save_atomic` left
    beside ``path``."""
    return cls.load(recover(filesystem(active_session(), path), path))


class StageWriter(MLWriter):
    """Writes a :class:`Persistable` stage: metadata JSON, then its data, atomically."""

    def __init__(self, instance: Any) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        """Write to a temporary sibling, then rename into place (see :func:`replace_atomically`)."""
        replace_atomically(self.sparkSession, path, self.saveImpl,
                           overwrite=self.shouldOverwrite)

    def saveImpl(self, path: str) -> None:
        save_metadata(self.instance, path, self.sparkSession, self.instance._metadata())
        self.instance._save_data(self.sparkSession, f"{path}/data")


class StageReader(MLReader):
    """Reads what :class:`StageWriter` wrote: recovers an interrupted overwrite, checks the
    class, lets the stage check and rebuild its state, restores uid and Params."""

    def __init__(self, cls: type, allowed_modules: Sequence[str] = ()) -> None:
        super().__init__()
        self.cls = cls
        self.allowed = list(allowed_modules)

    def allowModules(self, modules: Sequence[str]) -> StageReader:
        """Also allow these modules (or ``module:Class`` entries) as a saved network."""
        self.allowed.extend(modules)
        return self

    def load(self, path: str) -> Any:
        path = recover(filesystem(self.sparkSession, path), path)
        metadata = load_metadata(path, self.sparkSession)
        expected = f"{self.cls.__module__}.{self.cls.__name__}"
        if metadata["class"] != expected:
            raise ValueError(f"{path!r} holds a {metadata['class']}, not a {expected}.")
        instance = self.cls._from_saved(self, path, metadata)
        instance._resetUid(metadata["uid"])  # as pyspark's own readers: the uid survives
        DefaultParamsReader.getAndSetParams(instance, metadata)
        instance._check_loaded(path, metadata)
        return instance


class Persistable(MLReadable, MLWritable):
    """``write()``/``read()`` through :class:`StageWriter`/:class:`StageReader`, and the
    hooks a stage overrides to save fitted state."""

    def write(self) -> StageWriter:
        """Returns an MLWriter for this stage (atomic: written beside, renamed into place)."""
        return StageWriter(self)

    @classmethod
    def read(cls) -> StageReader:
        """Returns an MLReader for this stage class."""
        return StageReader(cls)

    def _metadata(self) -> dict[str, Any]:
        """Fitted values saved beside the Params (JSON-serializable)."""
        return {}

    def _save_data(self, spark: Any, path: str) -> None:
        """Write fitted state that does not belong in JSON to ``path`` (the data folder)."""

    @classmethod
    def _from_saved(cls, reader: StageReader, path: str, metadata: dict[str, Any]) -> Any:
        """A new instance holding the saved state, checked before anything is built."""
        return cls()

    def _check_loaded(self, path: str, metadata: dict[str, Any]) -> None:
        """Checks once the Params are restored."""


def torch_parts(reader: StageReader, path: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The checked parts of a saved torch model, refusing anything that could run code:
    the network is allowed before it is imported, the weights are safetensors with the
    recorded SHA-256, and their header fits the network built on ``meta``."""
    from spark_dl import conf

    # Params left at their defaults are saved apart (defaultParamMap); both are set on the
    # instance later, so both decide the network that is checked here.
    params = {**(metadata.get("defaultParamMap") or {}), **metadata["paramMap"]}
    spec = ModelSpec(params.get("model", "mlp"), json.loads(params.get("modelParams", "{}")))
    spec.check_loadable(reader.allowed + conf.allowed_modules(reader.sparkSession))
    spec.resolve()  # refuses anything but an nn.Module subclass, before touching weights
    weights = read_weights(reader.sparkSession, path, metadata.get("weightsSha256"))
    num_features, num_outputs = int(metadata["numFeatures"]), int(metadata["numOutputs"])
    layout = InputLayout.from_dict(metadata.get("inputLayout"), num_features)
    _check_before_building(spec, layout.injected(num_outputs), weights, f"{path}/data")
    return {"weights": weights, "num_features": num_features, "num_outputs": num_outputs,
            "history": list(metadata.get("history") or []), "layout": layout, "spec": spec}


def write_weights(spark: Any, path: str, weights: bytes, sha: str) -> None:
    """One parquet row under ``path``: format, SHA-256 and the safetensors bytes."""
    rows = [(WEIGHTS_FORMAT, sha, bytearray(weights))]
    spark.createDataFrame(rows, "format string, sha256 string, payload binary").coalesce(
        1).write.parquet(path)


def _check_before_building(spec: ModelSpec, injected: dict[str, Any], weights: bytes,
                           where: str) -> None:
    """Compare the weights' header with the network built on ``meta``. A network from an
    allowed user module that cannot be built on ``meta`` is checked after building instead."""
    from spark_dl.models import REGISTRY

    try:
        meta = spec.build_meta(**injected)
    except Exception as exc:  # noqa: BLE001 - user constructors may not support meta tensors
        if spec.name in REGISTRY:
            raise
        logger.warning("Network %r cannot be built on torch's meta device (%s); its weights "
                       "are checked against it after building it.", spec.name, exc)
        return
    check_weights_fit(weights, meta, where, spec.name)


def recover(fs: Any, path: str) -> str:
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


_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
           "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
           "BOOL": "bool"}


def safetensors_header(payload: bytes, where: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from the safetensors header alone (no tensor read)."""
    try:
        size = int.from_bytes(payload[:8], "little")
        if not 0 < size <= len(payload) - 8:
            raise ValueError(f"header length {size} does not fit a {len(payload)}-byte file")
        header = json.loads(payload[8 : 8 + size])
        header.pop("__metadata__", None)
        return {name: (_DTYPES.get(info["dtype"], info["dtype"]), tuple(info["shape"]))
                for name, info in header.items()}
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not safetensors"
        raise _not_safetensors(where, exc) from None


def _not_safetensors(where: str, exc: Exception) -> UnsafeModelError:
    return UnsafeModelError(
        f"The weights at {where} are not a valid safetensors file ({exc}); refusing to load "
        "them. spark_dl never unpickles weights."
    )


def check_weights_fit(payload: bytes, meta_module: Any, where: str, name: str) -> None:
    """The header's tensors must be exactly the network's (built on ``meta``): same names,
    shapes and dtypes. Runs before the real network is allocated."""
    header = safetensors_header(payload, where)
    expected = {k: (str(v.dtype).removeprefix("torch."), tuple(v.shape))
                for k, v in meta_module.state_dict().items()}
    if header == expected:
        return
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    differ = [f"{k}: {header[k]} saved, {expected[k]} in the network"
              for k in sorted(set(header) & set(expected)) if header[k] != expected[k]]
    raise ValueError(
        f"The weights at {where} do not fit network {name!r} as its saved Params describe it "
        f"(checked before building it): missing {missing[:5]}, unexpected {extra[:5]}, "
        f"differing {differ[:5]}. The metadata or the weights were edited or mixed up; save "
        "the model again."
    )


def check_safetensors(payload: bytes, where: str) -> None:
    """Parse ``payload`` as safetensors (header and buffers) or raise ``UnsafeModelError``."""
    from safetensors.torch import load as st_load

    try:
        st_load(payload)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not safetensors"
        raise _not_safetensors(where, exc) from None
