"""Run spark_dl's stages from a Spark Connect client (no SparkContext, no JVM in this
process). Usage: ``connect_job.py sc://127.0.0.1:PORT WORKDIR``; prints one JSON line."""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark_dl import (ImageTensorizer, SequenceWindower, TorchClassifier, TrainingFailedError,
                      Vocabulary)
from spark_dl.compat import is_connect
from spark_dl.skew import Rebalancer, partition_stats, profile


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def quickstart(url: str, save_path: str) -> dict:
    """The README quickstart, verbatim but for the session line (and the save path)."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    code = re.search(r"<!-- quickstart -->\s*```python\n(.*?)```", readme, re.S).group(1)
    classic = 'SparkSession.builder.master("local[2]").getOrCreate()'
    assert code.count(classic) == 1 and code.count('"/tmp/spark_dl_quickstart"') == 2
    code = code.replace(classic, f"SparkSession.builder.remote({url!r}).getOrCreate()")
    namespace: dict = {}
    exec(compile(code.replace('"/tmp/spark_dl_quickstart"', repr(save_path)), "README", "exec"),
         namespace)
    return namespace


def main(url: str, work: str) -> dict:
    path = os.path.join(work, "pipeline")
    qs = quickstart(url, path)
    spark = SparkSession.builder.remote(url).getOrCreate()
    out: dict = {"connect": is_connect(spark), "auc": qs["auc"]}
    model, loaded, test = qs["model"], qs["reloaded"], qs["test"]
    a = [r.prediction for r in model.transform(test).orderBy("x0").select("prediction").collect()]
    b = [r.prediction for r in loaded.transform(test).orderBy("x0").select("prediction").collect()]
    out["reloaded_equal"] = a == b
    out["uid_equal"] = [s.uid for s in loaded.stages] == [s.uid for s in model.stages]
    marks = os.path.join(work, "marks")
    os.makedirs(marks)

    @F.udf("double")
    def mark(value):  # leaves a file per evaluated row: transform() must evaluate none
        import uuid

        open(os.path.join(marks, uuid.uuid4().hex), "w").close()
        return value

    lazy = loaded.transform(test.withColumn("x0", mark("x0")))
    out["marks_after_transform"] = len(os.listdir(marks))
    lazy.write.format("noop").mode("overwrite").save()
    out["marks_after_write"] = len(os.listdir(marks))
    out["test_rows"] = test.count()

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(float)
    df = spark.createDataFrame([(*map(float, r), float(t)) for r, t in zip(X, y)],
                               "a double, b double, c double, d double, label double")
    assembled = VectorAssembler(inputCols=["a", "b", "c", "d"], outputCol="features").transform(df)
    clf = TorchClassifier(modelParams={"hidden_layers": [4]}, maxEpochs=2, batchSize=64)
    grid = ParamGridBuilder().addGrid(clf.learningRate, [0.001, 0.05]).build()
    cv = CrossValidator(estimator=clf, estimatorParamMaps=grid, numFolds=2, seed=0,
                        parallelism=2, evaluator=BinaryClassificationEvaluator())
    cv_model = cv.fit(assembled)
    out["cv_metrics"] = len(cv_model.avgMetrics)
    out["cv_best_lr"] = cv_model.bestModel.getLearningRate()
    _train_on_executors(assembled, out)
    _recommend(spark, out)
    _pretrained(spark, work, out)

    tokens = spark.createDataFrame([(["a", "b", "a"],), (["c"],)], "tokens array<string>")
    vocab = Vocabulary(vocabSize=5, sequenceLength=3).fit(tokens)
    out["ids"] = [r.ids for r in vocab.transform(tokens).collect()]
    px = spark.createDataFrame([([0.5] * 12,)], "px array<double>")
    tens = ImageTensorizer(inputCol="px", inputShape=[2, 2, 3], size=[2, 2], scale=1.0)
    out["pixels"] = len(tens.transform(px).first().features)
    series = spark.createDataFrame([("k", t, float(t)) for t in range(6)], "k string, t long, x double")
    w = SequenceWindower(keyCol="k", timeCol="t", valueCols=["x"], windowLength=3)
    out["windows"] = w.transform(series).count()
    skewed = df.repartition(4)
    out["rebalanced_rows"] = Rebalancer(numPartitions=2).transform(skewed).count()
    out["partitions"] = partition_stats(skewed).counts
    out["profile_rows"] = profile(df, label_col="label").partitions.rows
    from spark_dl.cli import main as spark_dl

    src, dst = os.path.join(work, "to_score"), os.path.join(work, "scored")
    test.write.parquet(src)
    out["score_rc"] = spark_dl(["score", "--remote", url, "--model", path, "--input", src,
                                "--output", dst, "--columns", "x0,prediction"])
    out["scored_rows"] = spark.read.parquet(dst).count()
    conf = os.path.join(ROOT, "conf", "fraud_detection.yaml")
    job = os.path.join(work, "job")
    out["run_rc"] = spark_dl(["run", conf, "--remote", url, "--set", "data.rows=3000",
                              "--set", "training.max_epochs=1", "--set", f"output.dir={job}",
                              "--set", "output.report=false"])
    with open(os.path.join(job, "metrics.json"), encoding="utf-8") as f:
        saved = json.load(f)
    out["job_metrics"] = sorted(saved["metrics"])
    # The report's explained rows: attributionsCol scored from the Connect client.
    out["job_top_features"] = [len(r) for r in saved["top_features"]["rows"]]
    spark.stop()
    return out


def _pretrained(spark, work: str, out: dict) -> None:
    """HFTokenizer and TextEmbedder from the client: the folder is read client-side."""
    from hf_tiny import build, texts

    from spark_dl import HFTokenizer, TextEmbedder

    folder = build(os.path.join(work, "tiny_bert"))
    df = spark.createDataFrame(list(enumerate(texts(20))), "id long, text string")
    tokens = HFTokenizer(tokenizerPath=folder, maxLength=16).transform(df)
    rows = TextEmbedder(modelPath=folder).transform(tokens).collect()
    out["hf_embeddings"] = sorted({len(r.embedding) for r in rows}), len(rows)


def _recommend(spark, out: dict) -> None:
    """TorchRecommender from the client: fit, transform, both top-k plans, factors."""
    from spark_dl import TorchRecommender
    from spark_dl.datasets.interactions import interactions

    df = interactions(spark, 3000, users=100, items=40, seed=1)
    rec = TorchRecommender(maxEpochs=2, userFeaturesCol="user_features").fit(df)
    out["rec_predictions"] = rec.transform(df).filter("prediction = prediction").count()
    plans = [[[x.item for x in r.recommendations] for r in
              rec.copy({rec.recommendStrategy: s}).recommendForAllUsers(3).orderBy("user")
              .collect()] for s in ("broadcast", "blocked")]
    out["rec_plans_equal"] = plans[0] == plans[1] and len(plans[0]) == 100
    out["rec_item_factors"] = rec.itemFactors.count()


def _train_on_executors(assembled, out: dict) -> None:
    """Ranks on the server's executors: results and tracebacks come back as job rows."""
    ranks = TorchClassifier(modelParams={"hidden_layers": [8]}, maxEpochs=4, batchSize=32,
                            learningRate=0.02, seed=1, numProcesses=2, localMode=False)
    fitted = ranks.fit(assembled)
    out["executors_rows"] = fitted.rowsPerRank
    # Its first score sends the weights as a session file: the workers have never built
    # this network, so they must read the file. The client's own forward pass checks it.
    spark = assembled.sparkSession
    spark.conf.set("spark.dl.connect.weightsTransport", "file")
    scored = fitted.transform(assembled).orderBy("a").select("features", "probability")
    rows = scored.collect()
    out["file_handle"] = type(fitted._bc[1]).__name__
    out["executors_auc"] = BinaryClassificationEvaluator().evaluate(fitted.transform(assembled))
    import torch

    with torch.no_grad():
        x = torch.tensor(np.array([r.features.toArray() for r in rows]), dtype=torch.float32)
        local = torch.softmax(fitted.torchModule(x), dim=1).numpy()
    by_file = np.array([r.probability.toArray() for r in rows])
    out["file_max_diff"] = float(np.abs(by_file - local).max())
    spark.conf.unset("spark.dl.connect.weightsTransport")
    failing = TorchClassifier(model="netlib:FailOnRank1", numProcesses=2, localMode=False,
                              maxEpochs=2, batchSize=16, maxTrainAttempts=1)
    try:
        failing.fit(assembled)
        out["failure"] = None
    except TrainingFailedError as exc:
        out["failure"] = str(exc)
        out["failure_ranks"] = sorted(exc.rank_errors)


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], sys.argv[2])), flush=True)
