"""The end-to-end pipelines on tiny data (each asserts a metric floor and its outputs),
and the spark-dl command's errors."""

from __future__ import annotations

import json
import os

import pytest

from spark_dl.cli import main as cli
from spark_dl.jobs.config import ConfigError
from spark_dl.jobs.runner import load, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def conf(name: str) -> str:
    return os.path.join(ROOT, "conf", f"{name}.yaml")


def run_tiny(spark, name: str, tmp_path, *overrides: str):
    cfg = load(conf(name), [f"output.dir={tmp_path / name}", *overrides])
    result = run(cfg, spark=spark)
    out = tmp_path / name
    for produced in ("metrics.json", "report.md", "training.png", "skew.png"):
        assert (out / produced).is_file(), produced
    assert (out / "model" / "metadata").is_dir() and (out / "scored").is_dir()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(result.metrics)
    return result, out


@pytest.mark.slow
def test_sentiment_pipeline_beats_the_majority_baseline(spark, tmp_path, mlflow_store):
    """Also the pipeline's MLflow run (tracking.mlflow, as spark-dl run --mlflow sets it)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    result, out = run_tiny(spark, "sentiment", tmp_path, "data.rows=4000",
                           "training.max_epochs=5", "tracking.mlflow=true")
    baseline = json.loads((out / "metrics.json").read_text())["baseline"]["accuracy"]
    assert result.metrics["accuracy"] >= baseline + 0.1, (result.metrics, baseline)
    assert (out / "confusion.png").is_file()
    (run,) = mlflow.search_runs([mlflow_store], output_format="list",
                                filter_string="tags.`spark_dl.pipeline` = 'sentiment'")
    assert run.data.metrics["test.accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert run.data.tags["spark_dl.stage"] == "TorchClassifier"  # the fit logged into it
    assert run.data.params["maxEpochs"] == "5" and "job_time.fit" in run.data.metrics
    client = MlflowClient()
    epochs = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in epochs) == [1, 2, 3, 4, 5]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.md", "report/training.png", "report/metrics.json"} <= artifacts
    uri = f"runs:/{run.info.run_id}"
    assert "spark" in mlflow.models.get_model_info(f"{uri}/model").flavors
    assert "python_function" in mlflow.models.get_model_info(f"{uri}/pyfunc").flavors


def _top_features(out, *, rows: int, method: str) -> dict:
    """The explained rows in metrics.json, after checking the report shows them."""
    top = json.loads((out / "metrics.json").read_text())["top_features"]
    assert top["method"] == method and len(top["rows"]) == rows
    report = (out / "report.md").read_text()
    assert "## Top features of the highest-scoring rows" in report
    assert all(" | ".join(r[-1:]) in report for r in top["rows"])
    return top


@pytest.mark.slow
def test_equipment_fault_pipeline_finds_faults(spark, tmp_path):
    result, out = run_tiny(spark, "equipment_fault", tmp_path, "data.rows=16000",
                           "training.max_epochs=4")
    assert result.metrics["auc_roc"] >= 0.9, result.metrics
    assert (out / "roc_pr.png").is_file() and (out / "scores.png").is_file()
    top = _top_features(out, rows=10, method="reconstruction_error")
    sensors = {"vibration", "current", "temperature", "pressure"}
    for row in top["rows"]:  # series, windowStart, label, score, then 2 "sensor NN%" items
        assert len(row) == 6 and {item.split()[0] for item in row[4:]} <= sensors, row
        assert sum(int(item.split()[1].rstrip("%")) for item in row[4:]) <= 101, row
    scores = [float(row[3]) for row in top["rows"]]
    assert scores == sorted(scores, reverse=True)  # the highest-scoring windows, in order


@pytest.mark.slow
@pytest.mark.compat
def test_fraud_pipeline_ranks_fraud_far_above_the_base_rate(spark, tmp_path):
    result, out = run_tiny(spark, "fraud_detection", tmp_path, "data.rows=30000",
                           "data.generator.fraud_rate=0.02", "training.max_epochs=3")
    base = json.loads((out / "metrics.json").read_text())["baseline"]["auc_pr"]
    assert result.metrics["auc_pr"] >= 5 * base and result.metrics["auc_roc"] >= 0.9, \
        (result.metrics, base)
    assert "recall_at_precision_0.5" in result.metrics
    assert (out / "roc_pr.png").is_file()
    top = _top_features(out, rows=10, method="integrated_gradients")
    names = {"amount", "hour", "card_age_days", "distance_km", "num_tx_24h", "foreign",
             "online", "merchant_risk"}
    for row in top["rows"]:  # id, merchant, label, fraud probability, then 3 features
        assert len(row) == 7 and {item.split()[0] for item in row[4:]} <= names, row


@pytest.mark.slow
def test_image_pipeline_on_digits(spark, tmp_path):
    result, out = run_tiny(spark, "image_classification", tmp_path, "data.dataset=digits",
                           "data.input_shape=[1,8,8]", "image.size=[8,8]", "image.channels=1",
                           "training.max_epochs=4")
    assert result.metrics["accuracy"] >= 0.9, result.metrics
    assert (out / "confusion.png").is_file()


@pytest.mark.slow
def test_price_trend_pipeline_beats_both_naive_baselines(spark, tmp_path):
    result, out = run_tiny(spark, "price_trend", tmp_path, "data.rows=40000",
                           "training.max_epochs=4")
    baseline = json.loads((out / "metrics.json").read_text())["baseline"]
    best_naive = max(baseline["accuracy"], baseline["same as today accuracy"])
    assert result.metrics["accuracy"] >= best_naive + 0.02, (result.metrics, baseline)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "table"])
def test_user_data_is_read_by_path_or_table(spark, tmp_path, fmt):
    from spark_dl.datasets import reviews
    from spark_dl.jobs.runner import read_data, scenario

    df = reviews(spark, 50, seed=1)
    where = str(tmp_path / f"reviews_{fmt}")
    if fmt == "table":
        where = "spark_dl_test_reviews"
        df.write.mode("overwrite").saveAsTable(where)
    else:
        df.write.mode("overwrite").format(fmt).option("header", "true").save(where)
    cfg = load(conf("sentiment"), [f"data.source={fmt}", f"data.path={where}",
                                   f"output.dir={tmp_path}"])
    got = scenario("sentiment").prepare_input(read_data(spark, cfg), cfg)
    assert got.count() == 50 and dict(got.dtypes)["label"] == "double"
    if fmt == "table":
        spark.sql(f"DROP TABLE {where}")


def test_unreadable_user_data_names_the_key(spark, tmp_path):
    from spark_dl.jobs.runner import read_data

    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not parquet")
    cfg = load(conf("sentiment"), ["data.source=parquet", f"data.path={bad}",
                                   f"output.dir={tmp_path}"])
    with pytest.raises(Exception, match=r"broken.parquet"):
        read_data(spark, cfg).count()


def test_missing_user_columns_name_the_config_key(spark, tmp_path):
    from spark_dl.jobs.runner import scenario

    cfg = load(conf("fraud_detection"), [f"output.dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"data.feature_cols: column\(s\) \['amount'"):
        scenario("fraud_detection").prepare_input(spark.range(3).withColumnRenamed("id", "x"),
                                                  cfg)


def write(tmp_path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


def test_missing_config_file(tmp_path, capsys):
    assert cli(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml' does not exist" in capsys.readouterr().err


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = write(tmp_path, "pipeline: sentiment\noutput: {dir: x}\ntraining: {max_epoch: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'training.max_epoch'. Did you mean "
                                          r"'max_epochs'\?"):
        load(path)


@pytest.mark.parametrize("text,match", [
    ("pipeline: sentiment\noutput: {dir: x}\ntraining: {max_epochs: 0}\n",
     r"training.max_epochs must be an int >= 1. Got 0"),
    ("pipeline: sentiment\noutput: {dir: x}\ntraining: {learning_rate: fast}\n",
     r"training.learning_rate must be a number > 0"),
    ("pipeline: sentiment\noutput: {dir: x}\nmodel: {name: gru}\n",
     r"model.name must be one of \['lstm', 'transformer', 'pretrained'\]. Got 'gru'"),
    ("pipeline: nosuch\noutput: {dir: x}\n", r"'pipeline' must be one of"),
    ("pipeline: sentiment\n", r"output.dir is required"),
    ("pipeline: sentiment\noutput: {dir: x}\ndata: {source: parquet}\n",
     r"data.path is required when data.source is 'parquet'"),
    ("pipeline: sentiment\noutput: {dir: x}\ndata: {source: csv, path: /no/such.csv}\n",
     r"data.path '/no/such.csv' does not exist"),
    ("pipeline: sentiment\noutput: {dir: x}\ntraining: {local_mode: 1}\n",
     r"training.local_mode must be true or false. Got 1"),
    ("- just\n- a list\n", r"top level must be a mapping"),
])
def test_bad_values_name_the_key(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load(write(tmp_path, text))


def test_cli_reports_config_errors_on_one_line(tmp_path, capsys):
    path = write(tmp_path, "pipeline: sentiment\noutput: {dir: x}\nbogus: 1\n")
    assert cli(["run", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spark-dl: error:") and "unknown key 'bogus'" in err


def test_score_refuses_a_path_that_is_not_a_saved_model(spark, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    spark.range(3).write.parquet(str(tmp_path / "in"))
    code = cli(["score", "--model", str(tmp_path / "data"), "--input", str(tmp_path / "in"),
                "--output", str(tmp_path / "out")])
    assert code == 2
    assert "is not a saved model" in capsys.readouterr().err


def test_score_reports_unreadable_input(spark, tmp_path, capsys):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer

    model = Pipeline(stages=[SQLTransformer(statement="SELECT * FROM __THIS__")]).fit(
        spark.range(1))
    model.save(str(tmp_path / "m"))
    code = cli(["score", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "nope"),
                "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--input" in err and "does not exist" in err


def test_score_streams_a_saved_pipeline_over_parquet(spark, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    from spark_dl import TorchClassifier

    df = spark.range(400).select("id", (F.col("id") % 7).cast("double").alias("a"),
                                 (F.col("id") % 3).cast("double").alias("b"),
                                 (F.col("id") % 2).cast("double").alias("label"))
    model = Pipeline(stages=[VectorAssembler(inputCols=["a", "b"], outputCol="features"),
                             TorchClassifier(maxEpochs=1)]).fit(df)
    model.save(str(tmp_path / "model"))
    df.drop("label").write.parquet(str(tmp_path / "in"))
    args = ["score", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in"),
            "--output", str(tmp_path / "out")]
    assert cli(args) == 0
    out = spark.read.parquet(str(tmp_path / "out"))
    assert dict(out.dtypes)["probability"] == "array<double>"  # vectors written as arrays
    expected = model.transform(df).select("id", "prediction")
    got = out.select("id", "prediction")
    assert got.count() == 400 and got.exceptAll(expected).count() == 0
    assert cli(args) == 2  # the output exists now: refused without --overwrite
    assert cli(args + ["--overwrite"]) == 0


def test_score_refuses_a_pipeline_stage_of_a_foreign_class_before_importing_it(spark, tmp_path,
                                                                               capsys):
    import glob
    import json
    import os
    import sys

    from pyspark.ml import Pipeline
    from pyspark.ml.feature import SQLTransformer

    inner = Pipeline(stages=[SQLTransformer(statement="SELECT * FROM __THIS__")])
    model = Pipeline(stages=[inner]).fit(spark.range(1))  # a pipeline inside a pipeline
    model.save(str(tmp_path / "m"))
    spark.range(3).write.parquet(str(tmp_path / "in"))
    meta_file = glob.glob(str(tmp_path / "m" / "stages" / "*" / "stages" / "*" / "metadata" /
                               "part-*"))[0]
    meta = json.loads(open(meta_file).read())
    meta["class"] = "sideeffect_net.Net"
    with open(meta_file, "w") as fh:
        fh.write(json.dumps(meta))
    for crc in glob.glob(os.path.join(os.path.dirname(meta_file), ".*.crc")):
        os.remove(crc)
    code = cli(["score", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "in"),
                "--output", str(tmp_path / "out")])
    assert code == 2 and "holds a sideeffect_net.Net" in capsys.readouterr().err
    assert "sideeffect_net" not in sys.modules
