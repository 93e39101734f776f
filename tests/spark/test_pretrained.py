"""HFTokenizer and TextEmbedder against transformers run in-process, on a tiny BERT and a
WordPiece tokenizer built here from the test's own texts (nothing is downloaded)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from spark_dl import HFTokenizer, TextEmbedder  # noqa: E402

MAX_LENGTH = 16


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tokenizer and a 2-layer BERT saved with save_pretrained, as a user's folder."""
    from hf_tiny import build

    folder = tmp_path_factory.mktemp("tiny_bert")
    build(str(folder))
    return folder


@pytest.fixture(scope="module")
def texts_df(spark):
    from hf_tiny import texts

    rows = [(i, t) for i, t in enumerate(texts(120, seed=2))] + [(120, None), (121, "")]
    return spark.createDataFrame(rows, "id int, text string").repartition(2).cache()


def _reference(hf_dir, texts, pooling, normalize):
    tok = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    model = transformers.AutoModel.from_pretrained(str(hf_dir)).eval()
    enc = tok(texts, padding="max_length", truncation=True, max_length=MAX_LENGTH,
              return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    vec = hidden[:, 0] if pooling == "cls" else (hidden * mask).sum(1) / mask.sum(1)
    vec = torch.nn.functional.normalize(vec, dim=1) if normalize else vec
    return enc["input_ids"].numpy(), enc["attention_mask"].numpy(), vec.numpy()


def test_tokenizer_matches_transformers_and_pads_null_text(hf_dir, texts_df):
    tok = HFTokenizer(tokenizerPath=str(hf_dir), maxLength=MAX_LENGTH)
    out = tok.transform(texts_df)
    assert out.schema == tok.transformSchema(texts_df.schema)
    rows = out.orderBy("id").collect()
    texts = [r.text for r in rows if r.text is not None]
    ids, mask, _ = _reference(hf_dir, texts, "mean", False)
    got = [r for r in rows if r.text is not None]
    np.testing.assert_array_equal(np.array([r.input_ids for r in got]), ids)
    np.testing.assert_array_equal(np.array([r.attention_mask for r in got]), mask)
    null = rows[120]
    assert null.text is None and set(null.attention_mask) == {0} and set(null.input_ids) == {0}


@pytest.mark.parametrize("pooling,normalize", [("mean", False), ("cls", True)])
def test_embeddings_equal_transformers_in_process(hf_dir, texts_df, pooling, normalize):
    tok = HFTokenizer(tokenizerPath=str(hf_dir), maxLength=MAX_LENGTH)
    emb = TextEmbedder(modelPath=str(hf_dir), pooling=pooling, normalize=normalize,
                       batchSize=7)  # several length-sorted batches per Arrow batch
    data = texts_df.where("text is not null")
    out = emb.transform(tok.transform(data))
    assert out.schema == emb.transformSchema(tok.transformSchema(data.schema))
    rows = out.orderBy("id").collect()
    _, _, expected = _reference(hf_dir, [r.text for r in rows], pooling, normalize)
    np.testing.assert_allclose(np.array([r.embedding for r in rows]), expected, atol=1e-5)


def test_a_saved_pipeline_loads_without_the_model_folder(spark, hf_dir, texts_df, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    copy = tmp_path / "model_copy"
    shutil.copytree(hf_dir, copy)
    pipeline = Pipeline(stages=[HFTokenizer(tokenizerPath=str(copy), maxLength=MAX_LENGTH),
                                TextEmbedder(modelPath=str(copy))]).fit(texts_df)
    before = [r.embedding for r in pipeline.transform(texts_df).orderBy("id").collect()]
    pipeline.write().overwrite().save(str(tmp_path / "saved"))
    shutil.rmtree(copy)  # the saved stages carry their files
    loaded = PipelineModel.load(str(tmp_path / "saved"))
    after = [r.embedding for r in loaded.transform(texts_df).orderBy("id").collect()]
    assert after == before
    assert before[120] is None and before[121] is not None  # null text: no embedding


def test_missing_or_corrupt_model_folders_name_the_path(spark, hf_dir, texts_df, tmp_path):
    tokens = HFTokenizer(tokenizerPath=str(hf_dir), maxLength=MAX_LENGTH).transform(texts_df)
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=f"'modelPath' directory '{missing}'"):
        TextEmbedder(modelPath=missing).transform(tokens)
    with pytest.raises(FileNotFoundError, match="'tokenizerPath' directory .* no tokenizer.json"):
        HFTokenizer(tokenizerPath=str(tmp_path)).transform(texts_df)
    broken = tmp_path / "broken"
    shutil.copytree(hf_dir, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=f"{broken}/config.json is not JSON"):
        TextEmbedder(modelPath=str(broken)).transform(tokens)
    shutil.copy(hf_dir / "config.json", broken / "config.json")
    (broken / "model.safetensors").write_bytes(b"\x80\x04 pickled")
    with pytest.raises(Exception, match="not a valid safetensors file"):
        TextEmbedder(modelPath=str(broken)).transform(tokens)
    with pytest.raises(ValueError, match="'modelPath' parameter of TextEmbedder must be set"):
        TextEmbedder().transform(tokens)
    assert os.path.isdir(hf_dir)


def test_the_pandas_udf_path_gives_the_same_ids_and_embeddings(spark, hf_dir, texts_df):
    """pyspark < 4.1 has no Arrow UDFs; spark.dl.udf.kind=pandas forces that path here."""
    stages = [HFTokenizer(tokenizerPath=str(hf_dir), maxLength=MAX_LENGTH),
              TextEmbedder(modelPath=str(hf_dir))]

    def run():
        out = texts_df
        for s in stages:
            out = s.transform(out)
        return out.orderBy("id").collect()

    arrow = run()
    spark.conf.set("spark.dl.udf.kind", "pandas")
    try:
        pandas = run()
    finally:
        spark.conf.unset("spark.dl.udf.kind")
    assert [r.input_ids for r in pandas] == [r.input_ids for r in arrow]
    assert [r.attention_mask for r in pandas] == [r.attention_mask for r in arrow]
    assert [r.embedding is None for r in pandas] == [r.embedding is None for r in arrow]
    np.testing.assert_allclose(np.array([r.embedding for r in pandas if r.embedding]),
                               np.array([r.embedding for r in arrow if r.embedding]), atol=1e-6)


def _sentiment(spark, n: int, seed: int):
    """Reviews whose label is which of the two word groups they use (half each)."""
    rng = np.random.default_rng(seed)
    pos, neg = ["good", "great", "loved"], ["bad", "terrible", "hated"]
    filler = ["the", "movie", "plot", "actors", "was", "and", "a", "film", "story", "it"]
    rows = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(filler, size=rng.integers(2, 8)))
        words.insert(int(rng.integers(0, len(words))), rng.choice(pos if label else neg))
        rows.append((i, " ".join(words), float(label)))
    return spark.createDataFrame(rows, "id int, text string, label double").repartition(2)


def test_fine_tuning_a_pretrained_encoder_beats_the_majority_and_saves(spark, hf_dir,
                                                                         tmp_path):
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    from spark_dl import TorchClassificationModel, TorchClassifier

    tok = HFTokenizer(tokenizerPath=str(hf_dir), maxLength=MAX_LENGTH, outputCol="features")
    train, test = _sentiment(spark, 400, seed=3), _sentiment(spark, 200, seed=4)
    clf = TorchClassifier(model=f"hf:{hf_dir}", maxEpochs=4, batchSize=32, learningRate=2e-3,
                          seed=0)
    model = Pipeline(stages=[tok, clf]).fit(train)
    fitted = model.stages[-1]
    assert isinstance(fitted, TorchClassificationModel) and fitted.getModel() == "hf_encoder"
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(
        model.transform(test))
    assert accuracy >= 0.5 + 0.3, accuracy  # the majority baseline is 0.5
    model.write().overwrite().save(str(tmp_path / "tuned"))
    again = PipelineModel.load(str(tmp_path / "tuned")).transform(test)
    a = [r.probability for r in model.transform(test).orderBy("id").collect()]
    assert [r.probability for r in again.orderBy("id").collect()] == a


def test_fine_tuning_starts_from_the_pretrained_weights(spark, hf_dir):
    from spark_dl import TorchClassifier

    tokens = HFTokenizer(tokenizerPath=str(hf_dir), maxLength=MAX_LENGTH,
                         outputCol="features").transform(_sentiment(spark, 64, seed=5))
    fitted = TorchClassifier(model=f"hf:{hf_dir}", maxEpochs=1, batchSize=64,
                             learningRate=1e-12, seed=0).fit(tokens)
    pretrained = transformers.AutoModel.from_pretrained(str(hf_dir)).state_dict()
    encoder = fitted.torchModule.encoder.state_dict()
    for name, value in pretrained.items():
        if name in encoder:
            torch.testing.assert_close(encoder[name], value, atol=1e-6, rtol=0)
    with pytest.raises(FileNotFoundError, match="'model' directory"):
        TorchClassifier(model="hf:/nowhere/at/all").fit(tokens)


def test_spark_dl_embed_writes_a_tables_embeddings(spark, hf_dir, texts_df, tmp_path, capsys):
    from spark_dl.cli import main as cli

    src, dst = str(tmp_path / "texts"), str(tmp_path / "embedded")
    texts_df.where("text is not null").write.parquet(src)
    rc = cli(["embed", "--model-dir", str(hf_dir), "--input", src, "--output", dst,
              "--columns", "id", "--max-length", str(MAX_LENGTH)])
    assert rc == 0
    rows = spark.read.parquet(dst).orderBy("id").collect()
    assert rows[0].__fields__ == ["id", "embedding"]
    texts = {r.id: r.text for r in texts_df.collect()}
    _, _, expected = _reference(hf_dir, [texts[r.id] for r in rows], "mean", False)
    np.testing.assert_allclose(np.array([r.embedding for r in rows]), expected, atol=1e-5)
    rc = cli(["embed", "--model-dir", str(tmp_path / "missing"), "--input", src, "--output",
              dst, "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--model-dir: The 'tokenizerPath' directory '{tmp_path}/missing'" in err


@pytest.mark.slow
def test_sentiment_job_fine_tunes_a_pretrained_folder(spark, tmp_path):
    from hf_tiny import build
    from test_jobs import run_tiny

    from spark_dl.datasets import reviews

    corpus = [r.text for r in reviews(spark, 2000, seed=11, partitions=2).collect() if r.text]
    folder = build(str(tmp_path / "pretrained"), corpus=corpus)
    result, out = run_tiny(spark, "sentiment", tmp_path, "data.rows=3000",
                           "model.name=pretrained", f"model.path={folder}",
                           "training.max_epochs=4", "training.learning_rate=0.002",
                           "text.sequence_length=32")
    import json

    baseline = json.loads((out / "metrics.json").read_text())["baseline"]["accuracy"]
    assert result.metrics["accuracy"] >= baseline + 0.1, (result.metrics, baseline)
