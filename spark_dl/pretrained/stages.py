"""Pretrained Hugging Face models as Spark ML stages: ``HFTokenizer`` and ``TextEmbedder``.

Both read a directory written by ``save_pretrained`` on the driver (no Spark job, never
the network; see :mod:`spark_dl.pretrained.files`), ship its bytes to the executors once
per stage (a broadcast; under Spark Connect the UDF's closure or a session file), and
build the tokenizer or encoder once per Python worker (:mod:`spark_dl.inference.hf`).
``transform`` only builds a plan. Saving a stage copies the files into its own directory
(``data/``, with their SHA-256), so a saved pipeline loads without the original folder.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator, Tuple

import pandas as pd
import pyarrow as pa
from pyspark.ml import Transformer
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, IntegerType, StringType, StructField, StructType

from spark_dl import compat, conf
from spark_dl.param_table import (
    ParamSpec,
    TableParams,
    at_least,
    declare,
    one_of,
    stage,
    validate_params,
)
from spark_dl.params import PRECISIONS
from spark_dl.persistence import Persistable
from spark_dl.pretrained.files import (
    CONFIG_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    check_encoder,
    check_tokenizer,
    read_files,
)
from spark_dl.validation import check_column_exists, check_inference_precision


class _DirectoryStage(Transformer, Persistable):
    """The files of a model directory, read once on the driver and saved with the stage."""

    _FILES: tuple[str, ...] = ()
    _PATH_PARAM = ""

    def __init__(self) -> None:
        super().__init__()
        self._files: dict[str, bytes] = {}
        self._files_from: str | None = None  # the path they were read from; None if loaded
        self._bc: Any = None

    def _read(self) -> dict[str, bytes]:
        path = self.getOrDefault(self._PATH_PARAM) if self.isDefined(self._PATH_PARAM) else None
        if self._files and (self._files_from is None or self._files_from == path):
            return self._files
        files = read_files(path or "", self._FILES, type(self).__name__, self._PATH_PARAM)
        self._check_files(files, path or "")
        self._files, self._files_from, self._bc = files, path, None
        return files

    def _check_files(self, files: dict[str, bytes], path: str) -> None:
        """Parse and check the files (subclasses)."""

    def _check_loaded(self, path: str, metadata: dict[str, Any]) -> None:
        # The saved files stand for the saved path; a new path Param reads the new folder.
        if self.isDefined(self._PATH_PARAM):
            self._files_from = self.getOrDefault(self._PATH_PARAM)

    def _shipped(self, spark: Any, value: Any) -> Any:
        self._bc = compat.broadcast(spark, value, self._bc)
        return self._bc[1]

    def _digest(self) -> str:
        sha = hashlib.sha256()
        for name in self._FILES:
            sha.update(hashlib.sha256(self._read()[name]).digest())
        return sha.hexdigest()

    def _metadata(self) -> dict[str, Any]:
        return {"files": {n: hashlib.sha256(b).hexdigest() for n, b in self._read().items()}}

    def _save_data(self, spark: Any, path: str) -> None:
        rows = [(n, bytearray(b)) for n, b in self._read().items()]
        spark.createDataFrame(rows, "name string, payload binary").coalesce(1).write.parquet(
            path)

    @classmethod
    def _from_saved(cls, reader: Any, path: str, metadata: dict[str, Any]) -> Any:
        rows = reader.sparkSession.read.parquet(f"{path}/data").collect()
        files = {r["name"]: bytes(r["payload"]) for r in rows}
        recorded = metadata.get("files") or {}
        if (set(files) != set(cls._FILES) or any(
                hashlib.sha256(files[n]).hexdigest() != recorded.get(n) for n in files)):
            raise ValueError(f"The files at {path}/data do not match the SHA-256 recorded in "
                             "the metadata (modified or corrupted). Save the stage again.")
        instance = cls()
        instance._check_files(files, f"{path}/data")
        instance._files = files
        return instance


@declare(
    ParamSpec("inputCol", default="text"),
    ParamSpec("outputCol", default="input_ids"),
    ParamSpec("attentionMaskCol", "Output column of the attention mask (array<int>, 1 for "
              "a token and 0 for padding).", default="attention_mask"),
    ParamSpec("tokenizerPath", "Directory of a Hugging Face fast tokenizer (the "
              "tokenizer.json that save_pretrained writes): a local or mounted path, or an "
              "hdfs://, s3:// or gs:// URI the driver reads. Read once, never downloaded.",
              required=True),
    ParamSpec("maxLength", "Tokens per row (>= 2): longer texts are truncated, shorter "
              "ones padded with the tokenizer's padding id.", kind="int", default=128,
              check=at_least(2)),
)
class _HFTokenizerParams(TableParams, HasInputCol, HasOutputCol):
    """Columns, tokenizer directory and length of :class:`HFTokenizer`."""


@stage()
class HFTokenizer(_DirectoryStage, _HFTokenizerParams):
    """Tokenize a string column with a Hugging Face fast tokenizer, on the executors.

    Writes ``outputCol`` (``array<int>`` token ids, ``maxLength`` of them, with the
    tokenizer's special tokens) and ``attentionMaskCol``; a null text gives an all-padding
    row. The tokenizer is built once per Python worker; each Arrow batch is encoded in one
    ``encode_batch`` call.

    Examples
    --------
    >>> tok = HFTokenizer(inputCol="review", tokenizerPath="/models/bert-mini", maxLength=64)
    >>> tok.transform(df).select("input_ids", "attention_mask").first()  # doctest: +SKIP
    """

    _FILES = (TOKENIZER_FILE,)
    _PATH_PARAM = "tokenizerPath"

    def _check_files(self, files: dict[str, bytes], path: str) -> None:
        check_tokenizer(files[TOKENIZER_FILE], path, type(self).__name__)

    def transformSchema(self, schema: StructType) -> StructType:
        """The input schema plus the ids and mask columns (validates Params and input)."""
        owner = type(self).__name__
        validate_params(self, owner)
        dt = check_column_exists(schema, self.getInputCol(), "inputCol", owner)
        if not isinstance(dt, StringType):
            raise TypeError(f"The 'inputCol' column {self.getInputCol()!r} of {owner} must be a "
                            f"string. Got {dt.simpleString()}.")
        return _with_columns(schema, {self.getOutputCol(): ArrayType(IntegerType()),
                                      self.getAttentionMaskCol(): ArrayType(IntegerType())})

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from spark_dl.inference.hf import TokenizeTask, tokenize_batches

        self.transformSchema(dataset.schema)
        files = self._read()
        spark = dataset.sparkSession
        task = TokenizeTask(self._digest(), self._shipped(
            spark, files[TOKENIZER_FILE].decode("utf-8")), self.getMaxLength())
        factory = compat.arrow_udf(conf.get_str(spark, conf.UDF_KIND))
        kind = "ids array<int>, mask array<int>"
        if factory is not None:
            def run(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
                return tokenize_batches(batches, task)
            udf = factory(run, kind)
        else:
            udf = _pandas_tokenize(task, kind)
        tmp = "__spark_dl_tokens"
        out = dataset.withColumn(tmp, udf(F.col(self.getInputCol())))
        return out.withColumns({self.getOutputCol(): F.col(f"{tmp}.ids"),
                                self.getAttentionMaskCol(): F.col(f"{tmp}.mask")}).drop(tmp)


def _with_columns(schema: StructType, added: dict[str, Any]) -> StructType:
    """``schema`` with ``added`` columns replaced in place or appended, as withColumns."""
    fields = {n: StructField(n, t) for n, t in added.items()}
    kept = [fields.pop(f.name, f) for f in schema.fields]
    return StructType(kept + list(fields.values()))


def _pandas_tokenize(task: Any, kind: str) -> Any:
    """The iterator pandas UDF of pyspark < 4.1 (no Arrow UDFs there)."""
    from pyspark.sql.functions import pandas_udf

    from spark_dl.inference.hf import tokenize

    def run(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        for series in batches:
            ids, mask = tokenize([None if v is None else str(v) for v in series], task)
            yield pd.DataFrame({"ids": list(ids), "mask": list(mask)})

    return pandas_udf(run, kind)


@declare(
    ParamSpec("inputCol", default="input_ids"),
    ParamSpec("outputCol", default="embedding"),
    ParamSpec("attentionMaskCol", "Input column of the attention mask (array<int>), as "
              "HFTokenizer writes it.", default="attention_mask"),
    ParamSpec("modelPath", "Directory of a pretrained transformers encoder (config.json and "
              "model.safetensors, as save_pretrained writes them): a local or mounted path, "
              "or an hdfs://, s3:// or gs:// URI the driver reads. Read once, never "
              "downloaded; only architectures built into transformers are built.",
              required=True),
    ParamSpec("pooling", "How token states become one vector: 'cls' (the first token's) or "
              "'mean' (the mean over unmasked tokens).", default="mean",
              check=one_of(("cls", "mean"))),
    ParamSpec("normalize", "Scale each embedding to unit L2 norm.", kind="bool",
              default=False),
    ParamSpec("batchSize", "Rows per forward pass (>= 1). Rows of an Arrow batch are sorted "
              "by length and each forward pass is cut to its longest row.", kind="int",
              default=64, check=at_least(1)),
    ParamSpec("inferencePrecision", "Arithmetic of the forward pass: 'float32', 'bfloat16' "
              "or 'float16' (GPU only).", default="float32",
              check=one_of(PRECISIONS[:3])),
    ParamSpec("useGpu", "Embed on the GPU Spark assigned to each task.", kind="bool",
              default=False),
)
class _TextEmbedderParams(TableParams, HasInputCol, HasOutputCol):
    """Columns, encoder directory and scoring options of :class:`TextEmbedder`."""


@stage()
class TextEmbedder(_DirectoryStage, _TextEmbedderParams):
    """Embed token ids with a pretrained transformers encoder, on the executors.

    Reads ``inputCol`` / ``attentionMaskCol`` (``array<int>``, as :class:`HFTokenizer`
    writes them) and writes ``outputCol`` (``array<float>``, the encoder's hidden size)
    pooled by ``pooling``. The encoder is built once per Python worker.

    Examples
    --------
    >>> emb = TextEmbedder(modelPath="/models/bert-mini", pooling="mean", normalize=True)
    >>> emb.transform(tok.transform(df)).select("embedding").first()  # doctest: +SKIP
    """

    _FILES = (CONFIG_FILE, WEIGHTS_FILE)
    _PATH_PARAM = "modelPath"

    def _check_files(self, files: dict[str, bytes], path: str) -> None:
        check_encoder(files, path, type(self).__name__)

    def transformSchema(self, schema: StructType) -> StructType:
        """The input schema plus the embedding column (validates Params and input)."""
        owner = type(self).__name__
        validate_params(self, owner)
        check_inference_precision(self.getInferencePrecision(), self.getUseGpu(), owner)
        for param, col in (("inputCol", self.getInputCol()),
                           ("attentionMaskCol", self.getAttentionMaskCol())):
            dt = check_column_exists(schema, col, param, owner)
            if not (isinstance(dt, ArrayType) and isinstance(dt.elementType, IntegerType)):
                raise TypeError(f"The '{param}' column {col!r} of {owner} must be array<int> "
                                f"(HFTokenizer's output). Got {dt.simpleString()}.")
        return _with_columns(schema, {self.getOutputCol(): ArrayType(FloatType())})

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from spark_dl.inference.hf import EmbedTask, embed_batches

        self.transformSchema(dataset.schema)
        files = self._read()
        spark = dataset.sparkSession
        task = EmbedTask(
            key=self._digest(), config=files[CONFIG_FILE],
            weights=self._shipped(spark, files[WEIGHTS_FILE]),
            pooling=self.getPooling(), normalize=self.getNormalize(),
            batch_size=self.getBatchSize(),
            threads=conf.get_int(spark, conf.INFERENCE_THREADS) or conf.task_cpus(spark),
            use_gpu=self.getUseGpu(), precision=self.getInferencePrecision())
        factory = compat.arrow_udf(conf.get_str(spark, conf.UDF_KIND))
        ids, mask = F.col(self.getInputCol()), F.col(self.getAttentionMaskCol())
        if factory is None:
            return dataset.withColumn(self.getOutputCol(), _pandas_embed(task)(ids, mask))

        def run(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return embed_batches(batches, task)

        udf = factory(run, "array<float>")
        return dataset.withColumn(self.getOutputCol(), udf(F.struct(ids, mask)))


def _pandas_embed(task: Any) -> Any:
    """The iterator pandas UDF of pyspark < 4.1 (no Arrow UDFs there)."""
    from pyspark.sql.functions import pandas_udf

    from spark_dl.inference.hf import embed_series

    def run(batches: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        return embed_series(batches, task)

    return pandas_udf(run, "array<float>")


__all__ = ["HFTokenizer", "TextEmbedder"]
