"""Text to fixed-length token ids for embedding layers: :class:`Vocabulary` and its model.

Driver side: :class:`Vocabulary` validates its Params, counts tokens with one Spark
aggregation (``explode`` + ``groupBy``), and fetches only the ``vocabSize`` most frequent
tokens to the driver (``orderBy(...).limit(k)``; the full count table stays on the
executors). :class:`VocabularyModel` broadcasts its vocabulary and maps tokens to ids in an
Arrow UDF. Executor side (:mod:`spark_dl.feature._text_ids`): ``token_id_matrix`` turns one Arrow batch of token arrays
into an ``(n, sequenceLength)`` int64 matrix with numpy, given plain values only.

Ids: ``PAD_ID`` (0) pads short rows, ``UNK_ID`` (1) stands for tokens outside the
vocabulary, and the vocabulary's token ``i`` has id ``i + NUM_RESERVED``. Ids are int64
(``array<bigint>``), the dtype ``torch.nn.Embedding`` expects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

from pyspark.ml import Estimator, Model
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from spark_dl import compat, conf
from spark_dl.feature._text_ids import NUM_RESERVED, PAD_ID, UNK_ID, IdsTask, ids_udf
from spark_dl.persistence import Persistable
from spark_dl.param_table import (
    HANDLE_INVALID,
    ParamSpec,
    TableParams,
    at_least,
    declare,
    one_of,
    stage,
    validate_params,
)
from spark_dl.validation import check_column_exists, refuse_streaming, require

logger = logging.getLogger(__name__)

#: PAD_ID (0) pads short rows; UNK_ID (1) stands for a token not in the vocabulary;
#: NUM_RESERVED (2) ids come before the first vocabulary token.
#: Display names of the reserved ids (they are never looked up in the text).
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
#: Accepted values of ``padding`` and ``truncation``.
SIDES = ("post", "pre")

_EST, _MODEL = "Vocabulary", "VocabularyModel"


@dataclass(frozen=True)
class _Plan:
    """The resolved, validated Params of one fit() or transform() call."""

    input: str
    output: str
    length: int
    pre_pad: bool
    pre_truncate: bool
    handle: str


@declare(
    ParamSpec("inputCol", default="tokens", model_setter=True),
    ParamSpec("outputCol", default="ids", model_setter=True),
    ParamSpec(
        "vocabSize", "Maximum number of tokens the vocabulary keeps (>= 1): the most frequent "
        "ones, ties broken by the token (UTF-8 byte order). The reserved padding and unknown "
        "ids are not counted, so ids run from 0 to at most vocabSize + 1.", kind="int",
        default=20_000, check=at_least(1)),
    ParamSpec(
        "minCount", "A token enters the vocabulary only if it occurs at least this many times "
        "in the whole input column (>= 1).", kind="int", default=1, check=at_least(1)),
    ParamSpec(
        "sequenceLength", "Length of every output id array (>= 1): longer token arrays are "
        "truncated, shorter ones padded with the padding id 0.", kind="int", default=128,
        check=at_least(1), model_setter=True),
    ParamSpec(
        "padding", "Where short rows get their padding ids: 'post' (after the tokens) or "
        "'pre' (before).", default="post", check=one_of(SIDES), model_setter=True),
    ParamSpec(
        "truncation", "Which tokens a long row loses: 'post' keeps the first sequenceLength "
        "tokens, 'pre' keeps the last sequenceLength.", default="post", check=one_of(SIDES),
        model_setter=True),
    ParamSpec(
        "handleInvalid", "What transform() does with a null token array: 'error' raises, "
        "'skip' drops the row, 'keep' outputs an all-padding row. Null and empty tokens "
        "inside an array are always dropped; fit() ignores null arrays.", default="error",
        check=one_of(HANDLE_INVALID), model_setter=True),
)
class _VocabularyParams(TableParams, HasInputCol, HasOutputCol):
    """Params of :class:`Vocabulary`, shared with :class:`VocabularyModel`."""

    # ------------------------------------------------------------------ driver: validation
    def _resolve(self, schema: StructType, owner: str) -> _Plan:
        """Validate every Param against ``schema`` (no Spark job) into plain values."""
        self._check_ranges(owner)
        inp, out = self.getInputCol(), self.getOutputCol()
        dt = check_column_exists(schema, inp, "inputCol", owner)
        if not (isinstance(dt, ArrayType) and isinstance(dt.elementType, StringType)):
            raise TypeError(
                f"The 'inputCol' column {inp!r} of {owner} must be an array<string> of tokens "
                f"(the output of Tokenizer or RegexTokenizer). Got {dt.simpleString()}."
            )
        if out in schema.names:
            raise ValueError(f"The 'outputCol' column {out!r} of {owner} already exists in the "
                             f"DataFrame; choose a new name. Existing columns: {schema.names}.")
        return _Plan(inp, out, self.getSequenceLength(), self.getPadding() == "pre",
                     self.getTruncation() == "pre", self.getHandleInvalid())

    def _check_ranges(self, owner: str) -> None:
        validate_params(self, owner)

    def _output_schema(self, schema: StructType, plan: _Plan) -> StructType:
        return StructType([*schema.fields, StructField(plan.output, ArrayType(LongType()))])


@stage()
class Vocabulary(Estimator, _VocabularyParams, Persistable):
    """Learns a token vocabulary; its model maps token arrays to fixed-length int64 id arrays.

    ``inputCol`` holds ``array<string>`` tokens, such as the output of Spark's ``Tokenizer``
    or ``RegexTokenizer``. ``fit`` counts every token over the whole column, keeps those
    seen at least ``minCount`` times, and of these the ``vocabSize`` most frequent, ties
    broken by the token itself (UTF-8 byte order), so the vocabulary does not depend on the
    partitioning. Only those ``vocabSize`` rows reach the driver. Fewer distinct tokens than
    ``vocabSize`` is fine: the vocabulary is shorter (logged at INFO level). A fit that finds
    no token at all raises.

    Ids are ``PAD_ID`` = 0 (padding), ``UNK_ID`` = 1 (unknown token), then 2, 3, ... for
    the vocabulary in order of frequency; pass ``model.numIds`` as an embedding's
    ``num_embeddings``. ``outputCol`` is ``array<bigint>`` of exactly ``sequenceLength`` ids,
    truncated and padded on the side given by ``truncation`` and ``padding``.

    Awkward input:

    * A null token array: ignored by ``fit``; ``handleInvalid`` decides in ``transform``
      (``'error'``, the default, raises; ``'skip'`` drops the row; ``'keep'`` gives all
      padding). ``Tokenizer`` itself fails on null text, so fill it first, for example
      ``df.fillna("", subset=["text"])``: empty text then becomes an all-padding row.
    * Null tokens and empty tokens (``Tokenizer`` yields ``[""]`` for empty text and ``""``
      between repeated spaces) are dropped in ``fit`` and ``transform``.
    * An empty token array gives an all-padding row; tokens not in the vocabulary give
      ``UNK_ID``.

    Examples
    --------
    >>> from pyspark.ml.feature import Tokenizer
    >>> df = spark.createDataFrame([("the cat sat",), ("the dog",)], "text string")
    >>> tokens = Tokenizer(inputCol="text", outputCol="tokens").transform(df)
    >>> model = Vocabulary(vocabSize=10, sequenceLength=4).fit(tokens)
    >>> model.vocabulary, model.numIds
    (['the', 'cat', 'dog', 'sat'], 6)
    >>> [r.ids for r in model.transform(tokens).collect()]
    [[2, 3, 5, 0], [2, 4, 0, 0]]
    """

    def transformSchema(self, schema: StructType) -> StructType:
        """The schema the fitted model outputs, from the input schema alone."""
        return self._output_schema(schema, self._resolve(schema, _EST))

    def _fit(self, dataset: DataFrame) -> VocabularyModel:
        refuse_streaming(dataset, _EST, "fit on", "counting tokens needs all of them. Fit on "
                         "a batch DataFrame (for example the stream's stored history), then "
                         "use the VocabularyModel on the stream.")
        plan = self._resolve(dataset.schema, _EST)
        k, min_count = self.getVocabSize(), self.getMinCount()
        vocab = top_tokens(dataset, plan.input, k, min_count)
        if not vocab:
            raise ValueError(
                f"{_EST} found no token occurring at least minCount={min_count} time(s) in the "
                f"'inputCol' column {plan.input!r}: the rows are empty or null. Check the "
                "tokenizer's output, or lower minCount."
            )
        if len(vocab) < k:
            logger.info("%s: %d distinct tokens occur >= %d time(s), fewer than vocabSize=%d; "
                        "the vocabulary holds all of them.", _EST, len(vocab), min_count, k)
        model = VocabularyModel._create(vocab)
        return self._copyValues(model)


def top_tokens(dataset: DataFrame, column: str, k: int, min_count: int) -> list[str]:
    """The ``k`` most frequent non-empty tokens of ``column`` seen ``>= min_count`` times.

    Ties are broken by the token (UTF-8 byte order). One aggregation job; only ``k`` rows
    are collected.
    """
    return [r["token"] for r in _top_tokens_df(dataset, column, k, min_count).collect()]


def _top_tokens_df(dataset: DataFrame, column: str, k: int, min_count: int) -> DataFrame:
    """The query behind :func:`top_tokens`: Spark plans it as a top-k (TakeOrderedAndProject)."""
    tok = F.col("token")
    tokens = dataset.select(F.explode(F.col(column)).alias("token"))
    counts = (tokens.where(tok.isNotNull() & (F.length(tok) > 0))
              .groupBy(tok).count().where(F.col("count") >= min_count))
    return counts.orderBy(F.desc("count"), tok.asc()).limit(k)


@stage(constructor=False, setters="model")
class VocabularyModel(Model, _VocabularyParams, Persistable):
    """Maps a token array column to fixed-length ``array<bigint>`` ids (see :class:`Vocabulary`).

    ``vocabulary`` lists the learned tokens in id order (token ``i`` has id ``i + 2``);
    ``numIds`` is ``len(vocabulary) + 2``, the ``num_embeddings`` of an embedding layer.
    ``inputCol``, ``outputCol``, ``sequenceLength``, ``padding``, ``truncation`` and
    ``handleInvalid`` can be changed on the model; ``vocabSize`` and ``minCount`` record the
    fit.

    Persistence writes Spark's JSON metadata (the Params, the token count and a SHA-256 of
    the vocabulary) and a ``data/`` parquet file of ``(id, token)`` rows, as Spark's own
    ``CountVectorizerModel`` does: a vocabulary of hundreds of thousands of tokens stays out
    of the one-line JSON metadata, and nothing is pickled. Loading checks the ids, the count
    and the checksum.

    Examples
    --------
    >>> model = VocabularyModel.fromVocabulary(["the", "cat"], sequenceLength=3)
    >>> df = spark.createDataFrame([(["the", "dog"],)], "tokens array<string>")
    >>> model.transform(df).first().ids
    [2, 1, 0]
    """

    def __init__(self) -> None:
        super().__init__()
        self._vocabulary: tuple[str, ...] = ()

    @classmethod
    def _create(cls, vocabulary: Sequence[str]) -> VocabularyModel:
        model = cls()
        model._vocabulary = tuple(vocabulary)
        return model

    @classmethod
    def fromVocabulary(cls, vocabulary: Sequence[str], **params: Any) -> VocabularyModel:
        """A model from a known vocabulary (distinct, non-empty strings, in id order from 2).

        ``params`` are Params of :class:`Vocabulary` by keyword (``inputCol``,
        ``sequenceLength``, ...); ``vocabSize`` defaults to ``len(vocabulary)``.
        """
        vocab = list(vocabulary)
        ok = (len(vocab) > 0 and all(isinstance(t, str) and t for t in vocab)
              and len(set(vocab)) == len(vocab))
        require(ok, _MODEL, "vocabulary",
                "a non-empty list of distinct, non-empty strings", _preview(vocab))
        model = cls._create(vocab)
        names = sorted(p.name for p in model.params)
        for name in params:
            if name not in names:
                raise ValueError(f"{_MODEL}.fromVocabulary got an unknown Param {name!r}. "
                                 f"Known Params: {names}.")
        model._set(**{"vocabSize": len(vocab), **params})
        return model

    @property
    def vocabulary(self) -> list[str]:
        """The learned tokens in id order: ``vocabulary[i]`` has id ``i + NUM_RESERVED``."""
        return list(self._vocabulary)

    @property
    def numIds(self) -> int:
        """Number of distinct ids, ``len(vocabulary) + 2``: an embedding's ``num_embeddings``."""
        return len(self._vocabulary) + NUM_RESERVED

    @property
    def paddingId(self) -> int:
        """The id of padding, 0."""
        return PAD_ID

    @property
    def unknownId(self) -> int:
        """The id of tokens outside the vocabulary, 1."""
        return UNK_ID

    def transformSchema(self, schema: StructType) -> StructType:
        """The output schema, from the input schema alone (validates the Params)."""
        return self._output_schema(schema, self._resolve(schema, _MODEL))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        plan = self._resolve(dataset.schema, _MODEL)
        tokens = F.col(plan.input)
        if plan.handle == "skip":
            dataset = dataset.where(tokens.isNotNull())
        _, broadcast = compat.broadcast(dataset.sparkSession, self._vocabulary, None)
        task = IdsTask(_digest(self._vocabulary), broadcast, plan.length, plan.pre_pad,
                       plan.pre_truncate)
        ids = ids_udf(task, conf.get_str(dataset.sparkSession, conf.UDF_KIND))(tokens)
        if plan.handle == "error":
            msg = (f"The 'inputCol' column {plan.input!r} of {_MODEL} holds a null token "
                   "array and handleInvalid='error'. Fill null text before tokenizing (for "
                   "example df.fillna('', subset=[...])), or set handleInvalid='skip' (drops "
                   "the row) or 'keep' (an all-padding row).")
            ids = F.when(tokens.isNull(), F.raise_error(F.lit(msg))).otherwise(ids)
        return dataset.withColumn(plan.output, ids)

    def _metadata(self) -> dict[str, Any]:
        return {"numTokens": len(self._vocabulary), "vocabularySha256": _digest(self._vocabulary)}

    def _save_data(self, spark: Any, path: str) -> None:
        rows = [(i + NUM_RESERVED, t) for i, t in enumerate(self._vocabulary)]
        spark.createDataFrame(rows, "id long, token string").coalesce(1).write.parquet(path)

    @classmethod
    def _from_saved(cls, reader: Any, path: str, metadata: dict[str, Any]) -> VocabularyModel:
        """The saved vocabulary, checked: ids without gaps, the count and the SHA-256."""
        rows = reader.sparkSession.read.parquet(f"{path}/data").orderBy("id").collect()
        vocab = [r["token"] for r in rows]
        ids = [r["id"] for r in rows]
        if (ids != list(range(NUM_RESERVED, NUM_RESERVED + len(rows)))
                or len(vocab) != metadata.get("numTokens")
                or _digest(vocab) != metadata.get("vocabularySha256")):
            raise ValueError(
                f"The vocabulary at {path}/data does not match its metadata ({len(vocab)} "
                f"rows, {metadata.get('numTokens')} expected, ids must run from "
                f"{NUM_RESERVED} without gaps, SHA-256 must match): the files were modified "
                "or corrupted. Save the model again."
            )
        return cls._create(vocab)

    def __repr__(self) -> str:
        return f"{_MODEL}: uid={self.uid}, numIds={self.numIds}"


def _preview(tokens: list[Any], n: int = 5) -> str:
    shown = ", ".join(repr(t) for t in tokens[:n])
    return f"[{shown}{', ...' if len(tokens) > n else ''}] ({len(tokens)} tokens)"


def _digest(vocabulary: Sequence[str]) -> str:
    text = json.dumps(list(vocabulary), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
