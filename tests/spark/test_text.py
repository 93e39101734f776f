"""Vocabulary: text to fixed-length int64 token ids, the same after save and load."""

from __future__ import annotations

import logging
import random

import pytest
from chispa import assert_df_equality
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import RegexTokenizer, Tokenizer
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType

from spark_dl.feature.text import PAD_ID, UNK_ID, Vocabulary, VocabularyModel, _top_tokens_df

TEXTS = ["The cat sat on the mat", "the dog sat", "a cat"]
# Counts: the 3, cat 2, sat 2, then a, dog, mat, on once each (ties in token order).
VOCAB = ["the", "cat", "sat", "a", "dog", "mat", "on"]
TOKENS = "tokens array<string>"


@pytest.fixture(scope="module")
def tokens(spark):
    text = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], "id int, text string")
    return Tokenizer(inputCol="text", outputCol="tokens").transform(text)


@pytest.fixture(scope="module")
def model(tokens):
    return Vocabulary(vocabSize=100, sequenceLength=5).fit(tokens)


def _ids(df, col="ids"):
    return [r[col] for r in df.orderBy("id").collect()]


def _token_df(spark, rows):
    return spark.createDataFrame([(i, r) for i, r in enumerate(rows)], f"id int, {TOKENS}")


# ------------------------------------------------------------------ exact ids
def test_tokenizer_to_ids_by_hand(model, tokens):
    assert model.vocabulary == VOCAB
    assert (model.numIds, model.paddingId, model.unknownId) == (9, PAD_ID, UNK_ID) == (9, 0, 1)
    out = model.transform(tokens)
    assert out.schema == model.transformSchema(tokens.schema)
    assert out.schema["ids"].dataType == ArrayType(LongType())
    assert _ids(out) == [[2, 3, 4, 8, 2], [2, 6, 4, 0, 0], [5, 3, 0, 0, 0]]


def test_top_k_and_min_count(tokens):
    def vocab(**kw):
        return Vocabulary(**kw).fit(tokens).vocabulary

    assert vocab(vocabSize=2) == ["the", "cat"]
    assert vocab(minCount=2) == ["the", "cat", "sat"]
    assert vocab(minCount=3) == ["the"]
    assert vocab(vocabSize=4, minCount=1) == ["the", "cat", "sat", "a"]
    # Dropped tokens map to the unknown id.
    small = Vocabulary(vocabSize=2, sequenceLength=3).fit(tokens)
    assert _ids(small.transform(tokens)) == [[2, 3, 1], [2, 1, 1], [1, 3, 0]]


def test_fit_fetches_only_the_top_k_rows(tokens):
    plan = _top_tokens_df(tokens, "tokens", 3, 1)._jdf.queryExecution().executedPlan()
    assert "TakeOrderedAndProject(limit=3" in plan.toString()


def test_ties_are_broken_by_token_whatever_the_partitioning(spark):
    words = ["z", "Z", "é", "a", "ab", "b", "日本", "aa"]  # each three times: all tied
    rows = [[w] for w in words * 3] + [["top"]] * 4
    random.Random(0).shuffle(rows)
    df = _token_df(spark, rows)
    fits = [Vocabulary(vocabSize=6).fit(df.repartition(n)).vocabulary for n in (1, 3, 5)]
    # Spark orders strings by UTF-8 bytes, which is Python's code point order.
    assert fits[0] == fits[1] == fits[2] == ["top", *sorted(words)[:5]]


# ------------------------------------------------------------------ padding, truncation
@pytest.mark.parametrize("padding, truncation, expected", [
    ("post", "post", [[2, 3, 4], [2, 6, 4], [5, 3, 0]]),
    ("pre", "post", [[2, 3, 4], [2, 6, 4], [0, 5, 3]]),
    ("post", "pre", [[8, 2, 7], [2, 6, 4], [5, 3, 0]]),
    ("pre", "pre", [[8, 2, 7], [2, 6, 4], [0, 5, 3]]),
])
def test_padding_and_truncation_sides(model, tokens, padding, truncation, expected):
    m = model.copy().setSequenceLength(3).setPadding(padding).setTruncation(truncation)
    assert _ids(m.transform(tokens)) == expected
    assert model.getSequenceLength() == 5  # the copy did not change the original


# ------------------------------------------------------------------ awkward input
NULL_ROWS = [["the", None, "cat"], None, [], ["", "sat"]]


def test_fit_ignores_null_arrays_null_and_empty_tokens(spark):
    assert Vocabulary().fit(_token_df(spark, NULL_ROWS)).vocabulary == ["cat", "sat", "the"]


@pytest.mark.parametrize("handle, expected", [
    ("keep", [[2, 3, 0], [0, 0, 0], [0, 0, 0], [4, 0, 0]]),
    ("skip", [[2, 3, 0], [0, 0, 0], [4, 0, 0]]),
])
def test_null_token_arrays_keep_and_skip(spark, model, handle, expected):
    m = model.copy().setSequenceLength(3).setHandleInvalid(handle)
    assert _ids(m.transform(_token_df(spark, NULL_ROWS))) == expected


def test_null_token_array_with_error_names_the_column(spark, model):
    df = _token_df(spark, NULL_ROWS)
    out = model.transform(df)  # lazy: no job yet
    with pytest.raises(Exception, match="'tokens' of VocabularyModel holds a null token array"):
        out.collect()
    # Rows without nulls pass under 'error'.
    assert _ids(model.transform(df.where("id != 1")))[0] == [2, 3, 0, 0, 0]


def test_empty_and_null_text(spark, model):
    text = spark.createDataFrame([(0, ""), (1, None), (2, "  cat  ")], "id int, text string")
    filled = text.fillna("", subset=["text"])  # Tokenizer fails on null strings
    for tok in (Tokenizer(inputCol="text", outputCol="tokens"),       # "" -> [""]
                RegexTokenizer(inputCol="text", outputCol="tokens")):  # "" -> []
        assert _ids(model.transform(tok.transform(filled))) == [
            [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [3, 0, 0, 0, 0]]


def test_unseen_tokens_map_to_unknown(spark, model):
    df = _token_df(spark, [["zebra", "cat", "THE", "the"]])
    assert _ids(model.transform(df)) == [[UNK_ID, 3, UNK_ID, 2, PAD_ID]]


def test_vocabulary_smaller_than_requested(tokens, caplog):
    caplog.set_level(logging.INFO, logger="spark_dl.feature.text")
    m = Vocabulary(vocabSize=1000).fit(tokens)
    assert m.vocabulary == VOCAB and m.numIds == len(VOCAB) + 2 and m.getVocabSize() == 1000
    assert "7 distinct tokens" in caplog.text and "vocabSize=1000" in caplog.text


def test_from_vocabulary(spark):
    m = VocabularyModel.fromVocabulary(["the", "cat"], sequenceLength=3, outputCol="x")
    df = _token_df(spark, [["the", "dog"]])
    assert _ids(m.transform(df), "x") == [[2, 1, 0]] and m.numIds == 4
    assert m.getVocabSize() == 2
    with pytest.raises(ValueError, match="unknown Param 'seqLength'"):
        VocabularyModel.fromVocabulary(["a"], seqLength=3)
    for bad in ([], ["a", "a"], ["a", ""]):
        with pytest.raises(ValueError, match="'vocabulary' parameter of VocabularyModel must "
                                             "be a non-empty list of distinct"):
            VocabularyModel.fromVocabulary(bad)


# ------------------------------------------------------------------ persistence
def test_model_round_trip(model, tokens, tmp_path, spark):
    path = str(tmp_path / "vocab")
    model.write().overwrite().save(path)
    loaded = VocabularyModel.load(path)
    assert loaded.vocabulary == model.vocabulary and loaded.uid == model.uid
    assert {p.name: loaded.getOrDefault(p.name) for p in loaded.params} == {
        p.name: model.getOrDefault(p) for p in model.params}
    assert_df_equality(model.transform(tokens), loaded.transform(tokens), ignore_row_order=True)
    data = spark.read.parquet(f"{path}/data").orderBy("id").collect()
    assert [(r.id, r.token) for r in data] == [(i + 2, t) for i, t in enumerate(VOCAB)]


def test_estimator_round_trip(tmp_path):
    est = Vocabulary(inputCol="t", vocabSize=7, minCount=2, sequenceLength=9, padding="pre",
                     truncation="pre", handleInvalid="keep")
    est.save(str(tmp_path / "est"))
    loaded = Vocabulary.load(str(tmp_path / "est"))
    assert {p.name: loaded.getOrDefault(p.name) for p in loaded.params} == {
        p.name: est.getOrDefault(p) for p in est.params}


@pytest.mark.compat
def test_pipeline_round_trip(spark, tmp_path):
    text = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], "id int, text string")
    pipe = Pipeline(stages=[Tokenizer(inputCol="text", outputCol="tokens"),
                            Vocabulary(vocabSize=4, sequenceLength=4, padding="pre")])
    pipe.save(str(tmp_path / "pipe"))
    fitted = Pipeline.load(str(tmp_path / "pipe")).fit(text)
    fitted.save(str(tmp_path / "fitted"))
    loaded = PipelineModel.load(str(tmp_path / "fitted"))
    assert isinstance(loaded.stages[1], VocabularyModel)
    assert loaded.stages[1].vocabulary == ["the", "cat", "sat", "a"]
    expected = [[2, 3, 4, 1], [0, 2, 1, 4], [0, 0, 5, 3]]
    assert _ids(fitted.transform(text)) == _ids(loaded.transform(text)) == expected


def test_edited_vocabulary_data_is_refused(model, tmp_path, spark):
    path = str(tmp_path / "vocab")
    model.save(path)
    rows = [(i + 2, t) for i, t in enumerate(["cat", "the", *VOCAB[2:]])]  # two ids swapped
    spark.createDataFrame(rows, "id long, token string").write.mode("overwrite").parquet(
        f"{path}/data")
    with pytest.raises(ValueError, match="does not match its metadata"):
        VocabularyModel.load(path)


# ------------------------------------------------------------------ errors on the driver
def test_missing_and_mistyped_input_columns(tokens, model):
    with pytest.raises(ValueError, match=r"'inputCol' column 'words' of Vocabulary is not in "
                                         r"the DataFrame. Available columns: \['id', 'text', "
                                         r"'tokens'\]"):
        Vocabulary(inputCol="words").fit(tokens)
    with pytest.raises(TypeError, match="'inputCol' column 'text' of VocabularyModel must be "
                                        "an array<string> of tokens .*Tokenizer or "
                                        "RegexTokenizer.*Got string"):
        model.copy().setInputCol("text").transform(tokens)
    with pytest.raises(ValueError, match="'outputCol' column 'text' of Vocabulary already"):
        Vocabulary(outputCol="text").transformSchema(tokens.schema)


@pytest.mark.parametrize("kw, message", [
    ({"vocabSize": 0}, "The 'vocabSize' parameter of Vocabulary must be an int >= 1. "
                       "Got 0 instead."),
    ({"minCount": -1}, "The 'minCount' parameter of Vocabulary must be an int >= 1. "
                       "Got -1 instead."),
    ({"sequenceLength": 0}, "The 'sequenceLength' parameter of Vocabulary must be an int "
                            ">= 1. Got 0 instead."),
    ({"padding": "left"}, "The 'padding' parameter of Vocabulary must be one of "
                          "['post', 'pre']. Got 'left' instead."),
    ({"truncation": "end"}, "The 'truncation' parameter of Vocabulary must be one of "
                            "['post', 'pre']. Got 'end' instead."),
    ({"handleInvalid": "drop"}, "The 'handleInvalid' parameter of Vocabulary must be one of "
                                "['error', 'skip', 'keep']. Got 'drop' instead."),
])
def test_bad_params_fail_before_any_job(tokens, kw, message):
    with pytest.raises(ValueError) as info:
        Vocabulary(**kw).fit(tokens)
    assert str(info.value) == message


def test_no_tokens_at_all(spark):
    df = _token_df(spark, [[], None, [""]])
    with pytest.raises(ValueError, match="Vocabulary found no token occurring at least "
                                         "minCount=1"):
        Vocabulary().fit(df)
    few = _token_df(spark, [["a", "b"]]).where(F.lit(True))
    with pytest.raises(ValueError, match="minCount=2"):
        Vocabulary(minCount=2).fit(few)
