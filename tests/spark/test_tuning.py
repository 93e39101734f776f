"""Tuning: CrossValidator and TrainValidationSplit over our Params, then save and load."""

from __future__ import annotations

from chispa import assert_df_equality
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.tuning import (
    CrossValidator,
    CrossValidatorModel,
    ParamGridBuilder,
    TrainValidationSplit,
    TrainValidationSplitModel,
)

from spark_dl import TorchClassificationModel, TorchClassifier

COLS = ["features", "probability", "prediction"]


def test_cross_validator_over_model_params(binary_df, tmp_path):
    clf = TorchClassifier(maxEpochs=2, learningRate=0.02, batchSize=32)
    grid = ParamGridBuilder().addGrid(
        clf.modelParams, [{"hidden_layers": [2]}, {"hidden_layers": [16, 8]}]
    ).build()
    cv = CrossValidator(estimator=clf, estimatorParamMaps=grid, numFolds=2, seed=1,
                        evaluator=BinaryClassificationEvaluator())
    model = cv.fit(binary_df)
    # A 2-unit hidden layer can collapse in 2 epochs; the wider network cannot: CV must
    # score both and pick the wider one.
    assert len(model.avgMetrics) == 2 and model.avgMetrics[1] > 0.9
    assert model.avgMetrics[1] >= model.avgMetrics[0]
    assert isinstance(model.bestModel, TorchClassificationModel)
    assert model.bestModel.getModelParams() == {"hidden_layers": [16, 8]}
    model.save(str(tmp_path / "cv"))
    loaded = CrossValidatorModel.load(str(tmp_path / "cv"))
    assert loaded.avgMetrics == model.avgMetrics
    assert_df_equality(model.transform(binary_df).select(COLS),
                       loaded.transform(binary_df).select(COLS), ignore_row_order=True)


def test_train_validation_split_picks_the_better_rate_and_candidates_share_nothing(binary_df,
                                                                                  tmp_path):
    """Two candidates trained in parallel into one checkpointDir: the better learning rate
    wins, each fit keeps its own checkpoints, and the best model equals a fit of its
    settings alone (nothing leaked between candidates); the tuned model saves and loads."""
    import json

    ckpt = tmp_path / "ckpt"
    clf = TorchClassifier(modelParams={"hidden_layers": [4]}, batchSize=32, maxEpochs=2, seed=4,
                          checkpointDir=str(ckpt))
    grid = ParamGridBuilder().addGrid(clf.learningRate, [1e-5, 0.05]).build()
    tvs = TrainValidationSplit(estimator=clf, estimatorParamMaps=grid, seed=2, trainRatio=0.7,
                               parallelism=2,
                               evaluator=BinaryClassificationEvaluator(metricName="areaUnderPR"))
    model = tvs.fit(binary_df)
    assert model.validationMetrics[0] < model.validationMetrics[1]  # 1e-5 barely trains
    assert model.bestModel.getLearningRate() == 0.05
    fits = sorted(ckpt.iterdir())
    # two candidates on the training split, then the refit of the best on all rows
    assert len(fits) == 3 and all((f / "epoch-0002.pt").exists() for f in fits)
    identities = [json.loads((f / "fit.json").read_text())["identity"] for f in fits]
    split = [i for i in identities if i["rows"] < 400]
    assert sorted(i["learningRate"] for i in split) == [1e-5, 0.05]
    assert [i["learningRate"] for i in identities if i["rows"] == 400] == [0.05]
    alone = TorchClassifier(modelParams={"hidden_layers": [4]}, batchSize=32, maxEpochs=2,
                            seed=4, learningRate=0.05).fit(binary_df)
    assert model.bestModel._weights == alone._weights
    model.save(str(tmp_path / "tvs"))
    loaded = TrainValidationSplitModel.load(str(tmp_path / "tvs"))
    assert loaded.bestModel.getLearningRate() == 0.05
    assert_df_equality(model.transform(binary_df).select(COLS),
                       loaded.transform(binary_df).select(COLS), ignore_row_order=True)
