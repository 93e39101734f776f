"""The run report: report.md with readable PNG plots, curves equal to scikit-learn's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spark_dl.jobs.curves import _thin, average_precision, roc_auc, roc_curve
from spark_dl.jobs.report import ReportData, fmt, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RNG_SEED = 7


def history(epochs: int = 4) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "val_metric": 0.5 + e / 10,
             "metric": "accuracy", "samples_per_sec": 1000.0 + e, "seconds": 2.0}
            for e in range(1, epochs + 1)]


def binary_data(n: int = 20_000, **kw) -> ReportData:
    rng = np.random.default_rng(RNG_SEED)
    labels = (rng.random(n) < 0.02).astype(int)
    scores = 1 / (1 + np.exp(-(rng.normal(-3, 1, n) + 3 * labels)))
    skew = {"rows": 1_000_000, "rows_per_partition": [900_000] + [12_500] * 8,
            "key_col": "merchant", "hot_keys": [("m0", 512_000, 0.512), ("m1", 98_000, 0.098)],
            "label_col": "is_fraud", "classes": [(0, 998_000, 0.998), (1, 2_000, 0.002)]}
    base = dict(title="fraud_detection", task="binary",
                metrics={"auc_pr": 0.61234, "recall_at_precision_0.9": 0.4},
                history=history(), labels=labels, scores=scores, class_names=["legit", "fraud"],
                skew=skew, baseline={"random auc_pr": 0.02}, config={"model": {"name": "mlp"}},
                timings={"data": 12.1, "fit": 80.2, "score": 9.3}, notes=["a note"])
    base.update(kw)
    return ReportData(**base)


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = imread(path)
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300, pixels.shape
    assert pixels.std() > 0.01, f"{path.name} is blank"


def pngs(out: Path) -> set[str]:
    return {p.name for p in out.glob("*.png")}


def test_binary_report_has_plots_metrics_and_sections(tmp_path):
    out = tmp_path / "new" / "report"
    path = write_report(binary_data(), str(out))
    assert path == str(out / "report.md")
    assert pngs(out) == {"training.png", "roc_pr.png", "scores.png", "skew.png"}
    for name in pngs(out):
        assert_png(out / name)
    md = Path(path).read_text()
    assert md.startswith("# fraud_detection\n")
    assert "| auc_pr | 0.6123 | 0.02 (random auc_pr) |" in md
    assert "| recall_at_precision_0.9 | 0.4 |" in md
    for image in ("training.png", "roc_pr.png", "scores.png", "skew.png"):
        assert f"]({image})" in md
    assert "1,000,000 rows" in md
    assert "the largest partition holds 8.1x the mean" in md
    assert "merchant 'm0' has 51% of rows" in md
    assert "| fit | 80.2 s | 79% |" in md
    assert "- a note" in md
    assert "<details>" in md and "name: mlp" in md


def test_roc_auc_and_average_precision_equal_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(RNG_SEED)
    for n, ties in ((1_000, False), (5_000, True)):
        labels = (rng.random(n) < 0.1).astype(int)
        scores = rng.random(n) + 0.5 * labels
        if ties:  # many tied scores, the case a naive rank formula gets wrong
            scores = np.round(scores, 1)
        assert roc_auc(labels, scores) == pytest.approx(metrics.roc_auc_score(labels, scores),
                                                        abs=1e-9)
        assert average_precision(labels, scores) == pytest.approx(
            metrics.average_precision_score(labels, scores), abs=1e-9)
        fpr, tpr = roc_curve(labels, scores)
        ref_fpr, ref_tpr, _ = metrics.roc_curve(labels, scores, drop_intermediate=False)
        np.testing.assert_allclose(fpr, ref_fpr)
        np.testing.assert_allclose(tpr, ref_tpr)


def test_thinned_curve_keeps_its_shape():
    rng = np.random.default_rng(RNG_SEED)
    labels = (rng.random(50_000) < 0.01).astype(int)
    fpr, tpr = roc_curve(labels, rng.random(50_000) + labels)
    x, y = _thin(fpr, tpr, limit=200)
    assert x.size <= 201 and (x[0], y[0], x[-1], y[-1]) == (0, 0, 1, 1)
    length = np.hypot(np.diff(fpr), np.diff(tpr)).sum()
    probe = rng.choice(fpr.size, 2_000)
    gaps = np.hypot(fpr[probe, None] - x[None], tpr[probe, None] - y[None]).min(axis=1)
    assert gaps.max() <= length / 200


def test_curves_refuse_single_class_labels():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.zeros(10), np.linspace(0, 1, 10))


def test_multiclass_report_draws_confusion(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    labels = rng.integers(0, 4, 2_000)
    predictions = np.where(rng.random(2_000) < 0.7, labels, rng.integers(0, 4, 2_000))
    data = ReportData("news", "multiclass", {"accuracy": 0.77}, history(2), labels=labels,
                      predictions=predictions.astype(float),
                      class_names=["world", "sports", "business", "sci/tech"],
                      baseline={"majority accuracy": 0.26})
    md = Path(write_report(data, str(tmp_path))).read_text()
    assert pngs(tmp_path) == {"training.png", "confusion.png"}
    assert_png(tmp_path / "confusion.png")
    assert "| accuracy | 0.77 | 0.26 (majority accuracy) |" in md
    assert "No skew plot" in md


def test_regression_report_draws_predictions_from_a_sample(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    actual = rng.normal(100, 30, 150_000)
    data = ReportData("taxi", "regression", {"rmse": 8.0}, [], labels=actual,
                      predictions=actual + rng.normal(0, 8, actual.size))
    md = Path(write_report(data, str(tmp_path), max_points=5_000)).read_text()
    assert pngs(tmp_path) == {"predictions.png"}
    assert_png(tmp_path / "predictions.png")
    assert "sample of 5,000 of 150,000 rows" in md
    assert "No training history was recorded" in md


def test_anomaly_report_with_heavy_tailed_scores(tmp_path):
    rng = np.random.default_rng(RNG_SEED)
    labels = (rng.random(10_000) < 0.01).astype(int)
    scores = np.abs(rng.standard_cauchy(10_000)) + 3 * labels
    data = ReportData("sensors", "anomaly", {"auc_pr": 0.3}, [], labels=labels, scores=scores)
    md = Path(write_report(data, str(tmp_path))).read_text()
    assert pngs(tmp_path) == {"roc_pr.png", "scores.png"}
    assert f"ROC AUC {fmt(roc_auc(labels, scores))}" in md


def test_missing_pieces_still_write_a_report_with_messages(tmp_path):
    data = ReportData("bare", "binary", {}, [])
    md = Path(write_report(data, str(tmp_path))).read_text()
    assert pngs(tmp_path) == set()
    assert "_No metrics were recorded._" in md
    assert "No training history was recorded" in md
    assert "No ROC or precision-recall curve: the test labels or scores were not collected" in md
    assert "No score histogram" in md and "No skew plot" in md


def test_single_class_labels_and_nan_scores_do_not_crash(tmp_path):
    scores = np.linspace(0, 1, 500)
    scores[:7] = np.nan
    data = binary_data(labels=np.zeros(500, dtype=int), scores=scores, history=[], skew=None)
    md = Path(write_report(data, str(tmp_path))).read_text()
    assert pngs(tmp_path) == {"scores.png"}
    assert "hold only one class, so both are undefined" in md
    assert "7 of 500 rows with a NaN score or label were dropped" in md


def test_labels_other_than_0_1_give_a_message(tmp_path):
    data = binary_data(labels=np.array([-1, 1] * 50), scores=np.linspace(0, 1, 100),
                       history=[], skew=None)
    md = Path(write_report(data, str(tmp_path))).read_text()
    assert "the test labels must be 0 or 1" in md


def test_rerun_overwrites_and_removes_stale_plots(tmp_path):
    first = ReportData("first", "multiclass", {}, [], labels=np.arange(3), predictions=np.arange(3))
    write_report(first, str(tmp_path))
    assert pngs(tmp_path) == {"confusion.png"}
    data = ReportData("second", "regression", {"rmse": 1.0}, [],
                      labels=np.arange(50.0), predictions=np.arange(50.0) + 0.5)
    md = Path(write_report(data, str(tmp_path))).read_text()
    assert md.startswith("# second\n")
    assert pngs(tmp_path) == {"predictions.png"}


def test_unknown_task_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"The 'task' of ReportData must be one of .* "
                                         r"Got 'ranking' instead"):
        write_report(ReportData("x", "ranking", {}, []), str(tmp_path))


@pytest.mark.parametrize("value, text", [(1234567, "1,234,567"), (0.612345, "0.6123"),
                                         (12345.678, "12,350"), (float("nan"), "n/a"),
                                         (None, "n/a"), (2.5e-5, "2.5e-05")])
def test_numbers_are_formatted_for_reading(value, text):
    assert fmt(value) == text
