"""The pandas-UDF scoring path that pyspark < 4.1 uses, forced on the pinned stack.

``spark.dl.udf.kind=pandas`` makes scoring and the text stage build ``pandas_udf``s, as on
pyspark 3.5 and 4.0; their output must equal the Arrow path's, nulls included.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from chispa import assert_df_equality
from safetensors.torch import save as st_save

from spark_dl import TorchRegressionModel, Vocabulary
from spark_dl.models.mlp import MLP


@contextlib.contextmanager
def udf_kind(spark, kind):
    spark.conf.set("spark.dl.udf.kind", kind)
    try:
        yield
    finally:
        spark.conf.unset("spark.dl.udf.kind")


def _both(spark, transform):
    """The frame ``transform()`` gives on the Arrow path and on the pandas path, collected
    (a UDF's kind is fixed when the plan is built)."""
    with udf_kind(spark, "arrow"):
        arrow = transform().cache()
        arrow.count()
    with udf_kind(spark, "pandas"):
        pandas = transform().cache()
        pandas.count()
    return arrow, pandas


def _plan(df):
    return df._jdf.queryExecution().executedPlan().toString()


def test_classifier_scores_the_same_through_pandas_udf(spark, fitted_clf, binary_df):
    from pyspark.sql import functions as F

    data = binary_df.withColumn("id", F.monotonically_increasing_id()).cache()
    arrow, pandas = _both(spark, lambda: fitted_clf.transform(data))
    assert "score_struct(" in _plan(pandas) and "score_struct(" not in _plan(arrow)
    assert_df_equality(arrow, pandas, ignore_row_order=True, ignore_nullable=True)


def test_regressor_scores_the_same_through_pandas_udf_with_invalid_rows(spark):
    torch.manual_seed(0)
    net = MLP(in_features=3, out_features=1, hidden_layers=[4])
    weights = st_save({k: v.contiguous() for k, v in net.state_dict().items()})
    model = TorchRegressionModel._from_parts(weights, 3, 1, [])
    model.set(model.modelParams, {"hidden_layers": [4]})
    model.setHandleInvalid("keep")
    df = spark.createDataFrame(
        [(0, [1.0, 2.0, 3.0]), (1, None), (2, [1.0, float("nan"), 0.0]), (3, [0.5, 0.5]),
         (4, [-1.0, 0.0, 1.0])], "id int, features array<float>").repartition(2)
    arrow, pandas = _both(spark, lambda: model.transform(df))
    assert "score_double(" in _plan(pandas)
    assert_df_equality(arrow, pandas, ignore_row_order=True, allow_nan_equality=True,
                       ignore_nullable=True)
    preds = {r.id: r.prediction for r in pandas.collect()}
    with torch.no_grad():
        expected = float(net(torch.tensor([[1.0, 2.0, 3.0]]))[0, 0])
    # float32 rounding: the numpy MLP sums in another order than torch (1e-8 here, on an
    # output that is small only after cancellation)
    assert preds[0] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert all(p != p for i, p in preds.items() if i in (1, 2, 3))  # NaN for invalid rows


def test_vocabulary_maps_the_same_through_pandas_udf(spark):
    df = spark.createDataFrame([(["a", "b", "a"],), (["c"],), ([],)], "tokens array<string>")
    vocab = Vocabulary(inputCol="tokens", outputCol="ids", sequenceLength=4).fit(df)
    arrow, pandas = _both(spark, lambda: vocab.transform(df))
    assert_df_equality(arrow, pandas, ignore_row_order=True)


def test_kept_invalid_rows_score_nan_through_pandas_udf(spark, fitted_clf):
    df = spark.createDataFrame([(0, [1.0, 2.0, 3.0, 4.0]), (1, None)],
                               "id int, features array<float>")
    from pyspark.ml.functions import vector_to_array

    model = fitted_clf.copy().setHandleInvalid("keep")
    arrow, pandas = _both(spark, lambda: model.transform(df))
    arrays = [vector_to_array(c).alias(c) for c in ("rawPrediction", "probability")]
    assert_df_equality(arrow.select("id", "prediction", *arrays),
                       pandas.select("id", "prediction", *arrays), ignore_row_order=True, allow_nan_equality=True,
                       ignore_nullable=True)
    bad = pandas.where("id = 1").first()
    assert bad.prediction != bad.prediction and all(p != p for p in bad.probability)


def test_attributions_are_the_same_through_pandas_udf_with_invalid_rows(spark):
    from pyspark.ml.functions import vector_to_array

    torch.manual_seed(1)
    net = MLP(in_features=3, out_features=1, hidden_layers=[4])
    weights = st_save({k: v.contiguous() for k, v in net.state_dict().items()})
    model = TorchRegressionModel._from_parts(weights, 3, 1, [])
    model.set(model.modelParams, {"hidden_layers": [4]})
    model.setHandleInvalid("keep").setAttributionsCol("attr")
    model.setAttributionMethod("gradient_x_input")
    df = spark.createDataFrame([(0, [1.0, 2.0, 3.0]), (1, None), (2, [-1.0, 0.5, 1.0])],
                               "id int, features array<float>")
    arrow, pandas = _both(spark, lambda: model.transform(df))
    assert "score_struct(" in _plan(pandas)
    cols = ["id", "prediction", vector_to_array("attr").alias("attr")]
    assert_df_equality(arrow.select(*cols), pandas.select(*cols), ignore_row_order=True,
                       allow_nan_equality=True, ignore_nullable=True)
    x = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    rows = {r.id: r for r in pandas.collect()}
    assert list(rows[0].attr) == pytest.approx((x * grad)[0].tolist(), rel=1e-5, abs=1e-6)
    assert all(v != v for v in rows[1].attr)  # NaN for the invalid row, as its prediction
