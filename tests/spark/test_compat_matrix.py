"""What differs between the pyspark versions of the support matrix (marker ``compat``).

``make test`` runs the whole suite on the pinned stack and the ``compat`` tests again in
``.venv-spark35`` and ``.venv-spark40``; there ``SPARK_DL_PEER_PYTHON`` names the pinned
stack's interpreter, so models cross between the two pyspark versions in both directions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyspark
import pytest
from cross_version import pipeline_and_rows, predictions
from pyspark.ml import PipelineModel

from spark_dl import compat
from spark_dl.training import petastorm_feed

pytestmark = pytest.mark.compat

PEER = os.environ.get("SPARK_DL_PEER_PYTHON")
HELPERS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "helpers")


def _version() -> tuple[int, int]:
    return tuple(int(p) for p in pyspark.__version__.split(".")[:2])  # type: ignore[return-value]


@pytest.mark.skipif(not PEER, reason="needs SPARK_DL_PEER_PYTHON: make test's compatibility "
                                     "legs set it to the pinned stack's interpreter")
@pytest.mark.timeout(400)
def test_models_saved_on_one_pyspark_load_and_score_alike_on_the_other(spark, tmp_path):
    pipeline, df = pipeline_and_rows(spark)
    here = pipeline.fit(df)
    here.write().overwrite().save(str(tmp_path / "here"))
    mine = predictions(here, df)

    env = {**os.environ, "PYSPARK_PYTHON": PEER, "PYSPARK_DRIVER_PYTHON": PEER,
           "PYTHONPATH": HELPERS}
    done = subprocess.run([PEER, os.path.join(HELPERS, "cross_version.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=360)
    assert done.returncode == 0, done.stderr[-4000:]

    scored_there = json.loads((tmp_path / "here-scored-by-peer.json").read_text())
    peer = json.loads((tmp_path / "peer.json").read_text())
    assert peer["pyspark"] != pyspark.__version__, "the peer must run another pyspark"
    assert scored_there.keys() == mine.keys()
    for key, probs in mine.items():
        assert scored_there[key] == pytest.approx(probs, abs=1e-6), key

    loaded = PipelineModel.load(str(tmp_path / "peer"))
    scored_here = predictions(loaded, df)
    for key, probs in peer["predictions"].items():
        assert scored_here[key] == pytest.approx(probs, abs=1e-6), key


def test_scoring_uses_arrow_udf_where_pyspark_has_it_and_pandas_udf_elsewhere(
        spark, fitted_clf, binary_df):
    factory = compat.arrow_udf("auto")
    assert (factory is not None) == (_version() >= (4, 1))
    out = fitted_clf.transform(binary_df)
    assert out.count() == binary_df.count()
    assert out.where("prediction IS NULL").count() == 0
    if _version() < (4, 1):
        with pytest.raises(ValueError, match=r"'spark.dl.udf.kind' is 'arrow'.*Spark 4\.1"):
            compat.arrow_udf("arrow")


def test_the_prepared_rows_reach_the_driver_as_one_arrow_table(spark):
    table = compat.collect_arrow(spark.range(5).selectExpr("id", "CAST(id AS DOUBLE) AS x"))
    assert table.num_rows == 5 and table.column_names == ["id", "x"]
    empty = compat.collect_arrow(spark.range(0).selectExpr("id"))
    assert empty.num_rows == 0


def test_driver_local_shards_stream_in_partition_order_and_deal_rows_evenly(spark, tmp_path):
    import pyarrow as pa

    from spark_dl.training.data import write_local_shards

    def _slow_first_partition(batches):  # partition 0 finishes last: batches arrive out of order
        import time

        from pyspark import TaskContext

        if TaskContext.get().partitionId() == 0:
            time.sleep(2)
        yield from batches

    df = (spark.range(0, 1003, numPartitions=5).selectExpr("id", "CAST(id * 2 AS DOUBLE) AS x")
          .mapInArrow(_slow_first_partition, "id long, x double"))
    expected = compat.collect_arrow(df)
    stream = compat.iter_arrow_batches(df, str(tmp_path))
    streamed = [next(stream)]
    if not compat.is_connect(spark):
        assert (tmp_path / "collected.arrow").exists()  # spilled, not held in memory
    streamed += list(stream)
    assert pa.Table.from_batches(streamed).equals(expected)  # the order, not arrival order
    assert not (tmp_path / "collected.arrow").exists()  # and removed once read
    paths = write_local_shards(compat.iter_arrow_batches(df, str(tmp_path)), 3, str(tmp_path))
    shards = [pa.ipc.open_file(p).read_all() for p in paths]
    ids = expected.column("id").to_pylist()
    assert [s.column("id").to_pylist() for s in shards] == [ids[r::3] for r in range(3)]
    empty = spark.range(0).selectExpr("id")
    paths = write_local_shards(compat.iter_arrow_batches(empty, str(tmp_path)), 2, str(tmp_path))
    assert [pa.ipc.open_file(p).read_all().num_rows for p in paths] == [0, 0]


@pytest.mark.timeout(300)
def test_train_validation_split_tunes_a_torch_classifier(binary_df):
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit

    from spark_dl import TorchClassificationModel, TorchClassifier

    clf = TorchClassifier(modelParams={"hidden_layers": [4]}, maxEpochs=2, batchSize=32, seed=1)
    grid = ParamGridBuilder().addGrid(clf.learningRate, [1e-6, 0.05]).build()
    tvs = TrainValidationSplit(estimator=clf, estimatorParamMaps=grid, trainRatio=0.75,
                               evaluator=BinaryClassificationEvaluator(), seed=2)
    fitted = tvs.fit(binary_df)
    assert isinstance(fitted.bestModel, TorchClassificationModel)
    assert fitted.bestModel.getLearningRate() == 0.05
    assert fitted.validationMetrics[1] > fitted.validationMetrics[0]


def _readme_row() -> dict[str, str]:
    readme = os.path.join(os.path.dirname(HELPERS), os.pardir, "README.md")
    lines = open(readme).read().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| pyspark | Python |"))
    names = [c.strip() for c in lines[header].strip("|").split("|")]
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == pyspark.__version__:
            return dict(zip(names, cells))
    raise AssertionError(f"README's 'Supported versions' table has no row for pyspark "
                         f"{pyspark.__version__}")


def _satisfies(version: str, cell: str) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    specs = []
    for piece in (p.strip() for p in cell.split(",")):
        if piece[0].isdigit():
            specs.append(f"=={piece}" if piece.count(".") >= 2 else f"=={piece}.*")
        else:
            specs.append(piece.replace(" ", ""))
    return Version(version.split("+")[0]) in SpecifierSet(",".join(specs))


def test_the_readme_row_of_this_pyspark_matches_what_runs():
    import numpy
    import pandas
    import pyarrow
    import torch

    row = _readme_row()
    installed = {"Python": "{}.{}.{}".format(*sys.version_info[:3]), "pyarrow": pyarrow.__version__,
                 "pandas": pandas.__version__, "numpy": numpy.__version__,
                 "torch": torch.__version__}
    for name, version in installed.items():
        assert _satisfies(version, row[name]), (name, version, row[name])
    try:
        petastorm = petastorm_feed.import_petastorm("test").__version__
    except ValueError:
        petastorm = None
    if row["petastorm"] == "does not import":
        assert petastorm is None
    else:
        assert petastorm is not None and _satisfies(petastorm, row["petastorm"])
