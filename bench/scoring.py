"""Scoring throughput of ``TorchClassificationModel.transform`` against three baselines.

Rows per second, same data, same run, for three binary classifiers: a light MLP on 64
features (64 -> 32 -> 2), a compute-heavy one (64 -> 1024 -> 1024 -> 2), and the zoo's
``cnn`` (its defaults: two 5x5 conv blocks of 32 and 64 channels, dense 256 -> 128 -> 2)
on 3x32x32 images (3072 floats per row, ``inputShape=[3, 32, 32]``).

* ``ours`` -- ``model.transform(df)``, forced with a ``noop`` write.
* ``a``    -- the same ``nn.Module`` in an in-process torch loop over the same rows held
  as a float32 numpy array (collected before timing): logits, softmax, argmax per batch,
  ``torch.set_num_threads(2)``.
* ``b``    -- ``pyspark.ml.functions.predict_batch_udf`` with the same module, returning
  the same struct (raw logits array, probability array, prediction double), noop write.
* ``c``    -- the floor: an Arrow UDF of the same kind as ours over the same feature
  column, returning a struct of the same type and width (two-element ``raw`` and
  ``prob`` arrays and a ``pred`` double) filled with zeros, noop write. It moves exactly
  the data ours moves through Python, and computes nothing.

* ``q``    -- ours with reduced precision (``inferencePrecision``): ``int8-dynamic`` on the
  CPU, ``float16`` with ``--device cuda``; the table reports how much it changes the
  scores (largest change of probability[1], share of predictions that changed, on the first
  20,000 rows).

With ``--device cuda`` every method runs on the GPU: ours and q with ``useGpu=True``, (a)
with the module and each batch moved to ``cuda``, (b) with its predict function's module
there (``scripts/gpu_check`` runs this).

Each model runs on two inputs: ``array`` (``array<float>``) and ``vector`` (an ML
``VectorUDT`` column, as ``VectorAssembler`` produces, the common case). On ``vector``,
(b) and (c) read ``vector_to_array(features, "float32")``, as a user would write it.

Every method uses batches of 4096 rows (``spark.dl.inference.batchSize`` for ``ours``);
``spark.sql.execution.arrow.maxRecordsPerBatch`` is left at its default (10000). The
input DataFrame is cached and counted before any timing. Methods run interleaved in
rounds, in an order shuffled afresh each round (seeded); one warm-up round is not
counted, and the report gives medians across rounds of each method's rows/s and of the
per-round ratios.

Run ``python -m bench.scoring`` (``--help`` for sizes); ``--smoke`` runs one tiny round
and checks that every method returned every row and that ours, (a) and (b) agree.
``main(argv)`` returns the results.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import pyarrow as pa

from bench.harness import Row, get_spark, interleave, noop_write

NUM_FEATURES = 64  # of the MLP cases
BATCH_SIZE = 4096
FIT_ROWS = 5000
METHODS = ("ours", "q", "a", "b", "c")
METHOD_NAMES = {
    "ours": "spark_dl transform",
    "q": "spark_dl transform, reduced precision",
    "a": "in-process torch loop",
    "b": "predict_batch_udf",
    "c": "floor: same-width Arrow UDF",
}


class ModelCase(NamedTuple):
    """A benchmarked network: its input width and shape, zoo name and arguments."""

    features: int
    model: str
    params: dict[str, Any]
    shape: list[int]


MODELS = {
    "light": ModelCase(64, "mlp", {"hidden_layers": [32]}, []),
    "heavy": ModelCase(64, "mlp", {"hidden_layers": [1024, 1024]}, []),
    "cnn": ModelCase(3 * 32 * 32, "cnn", {}, [3, 32, 32]),
}
#: (model, ratio, minimum) targets printed beside the measured medians (issue 15: float32,
#: both input kinds; the light model's ours/b on VectorUDT input, as VectorAssembler gives).
TARGETS = (("light/vector", "ours/b", 3.0), ("light", "ours/c", 0.8),
           ("heavy", "ours/a", 0.9), ("heavy", "ours/b", 1.2),
           ("cnn", "ours/a", 0.9), ("cnn", "ours/b", 1.2))
#: The reduced precision arm (q) per device: what inferencePrecision offers there.
REDUCED = {"cpu": "int8-dynamic", "cuda": "float16"}
STRUCT_TYPE = "raw array<double>, prob array<double>, pred double"
INPUTS = ("array", "vector")


class Config(NamedTuple):
    """Command-line settings."""

    rows_light: int
    rows_heavy: int
    rows_cnn: int
    only: tuple[str, ...]
    inputs: tuple[str, ...]
    rounds: int
    warmup: int
    partitions: int
    smoke: bool
    device: str = "cpu"


def parse_args(argv: list[str] | None) -> Config:
    """Parse ``argv`` (``None``: ``sys.argv[1:]``); ``--smoke`` overrides the sizes."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows-light", type=int, default=1_000_000, help="rows for the light model")
    p.add_argument("--rows-heavy", type=int, default=200_000, help="rows for the heavy model")
    p.add_argument("--rows-cnn", type=int, default=4_000, help="images for the CNN")
    p.add_argument("--only", default="light,heavy,cnn", help="comma-separated models to run")
    p.add_argument("--inputs", default="array,vector", help="input column kinds to run")
    p.add_argument("--rounds", type=int, default=9, help="counted rounds per model")
    p.add_argument("--partitions", type=int, default=4, help="partitions of the input")
    p.add_argument("--smoke", action="store_true", help="one tiny round; check row counts")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: every method on the GPU (ours with useGpu=True)")
    a = p.parse_args(argv)
    only = tuple(m for m in a.only.split(",") if m)
    unknown = [m for m in only if m not in MODELS]
    if unknown:
        p.error(f"--only: unknown model(s) {unknown}; choose from {list(MODELS)}")
    inputs = tuple(k for k in a.inputs.split(",") if k)
    if not set(inputs) <= set(INPUTS):
        p.error(f"--inputs: choose from {list(INPUTS)}; got {a.inputs!r}")
    if a.smoke:
        return Config(600, 600, 64, only, inputs, rounds=1, warmup=0, partitions=2,
                      smoke=True, device=a.device)
    return Config(a.rows_light, a.rows_heavy, a.rows_cnn, only, inputs, a.rounds, warmup=1,
                  partitions=a.partitions, smoke=False, device=a.device)


# ---------------------------------------------------------------------- Spark and data
def make_data(spark: Any, rows: int, partitions: int, seed: int = 0,
              width: int = NUM_FEATURES) -> Any:
    """A cached, counted DataFrame: ``features`` array<float>[width] of standard normal
    values (made on the executors, seeded by each batch's first id) and a ``label``."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    def draw(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            ids = batch.column(0).to_numpy()
            if not len(ids):
                continue
            rng = np.random.default_rng([seed, int(ids[0])])
            values = rng.standard_normal((len(ids), width), dtype=np.float32)
            feats = pa.ListArray.from_arrays(
                pa.array(np.arange(0, (len(ids) + 1) * width, width, dtype=np.int32)),
                pa.array(values.reshape(-1)))
            yield pa.RecordBatch.from_arrays([feats], ["features"])

    df = (
        spark.range(0, rows, 1, partitions)
        .mapInArrow(draw, "features array<float>")
        .withColumn("label", (F.col("features")[0] + F.col("features")[1] > 0).cast("double"))
    )
    df = df.cache()
    assert df.count() == rows
    return df


def collect_matrix(df: Any, width: int = NUM_FEATURES) -> np.ndarray:
    """The ``features`` column as an ``(n, width)`` float32 numpy array on the driver."""
    col = df.select("features").toArrow().column("features").combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)  # writable copy
    return flat.reshape(len(col), width)


def fit_model(df: Any, hidden: list[int] | None = None, case: ModelCase | None = None) -> Any:
    """A ``TorchClassificationModel`` fitted for one epoch on the first 5000 rows: an MLP
    with ``hidden`` layers, or the network ``case`` describes."""
    from spark_dl import TorchClassifier

    case = case or ModelCase(NUM_FEATURES, "mlp", {"hidden_layers": hidden or [32]}, [])
    clf = TorchClassifier(featuresCol="features", model=case.model, modelParams=case.params,
                          inputShape=case.shape, maxEpochs=1, batchSize=1024)
    return clf.fit(df.limit(FIT_ROWS))


# ---------------------------------------------------------------------- the four methods
def torch_loop(module: Any, X: np.ndarray, batch_size: int, device: str = "cpu") -> np.ndarray:
    """Method (a): logits, softmax and argmax per batch in this process; the predictions.
    On ``cuda`` the module and each batch move to the GPU, and the results back."""
    import torch

    t = torch.from_numpy(X)
    module = module.to(device)
    preds = []
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            logits = module(t[start : start + batch_size].to(device))
            prob = torch.softmax(logits, dim=1)
            preds.append(torch.argmax(prob, dim=1).cpu())
    module.to("cpu")
    return torch.cat(preds).numpy()


def predict_batch_column(module: Any, batch_size: int, width: int = NUM_FEATURES,
                         device: str = "cpu") -> Callable[[str], Any]:
    """Method (b): a ``predict_batch_udf`` returning (raw, prob, pred) for ``module``."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import _parse_datatype_string

    def make_predict_fn() -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        import torch

        torch.set_num_threads(1)  # one core per task, as spark_dl uses spark.task.cpus
        net = module.to(device)

        def predict(x: np.ndarray) -> dict[str, np.ndarray]:
            with torch.inference_mode():
                t = torch.from_numpy(x.astype(np.float32, copy=False)).to(device)
                logits = net(t).double()
                prob = torch.softmax(logits, dim=1)
                pred = torch.argmax(logits, dim=1).double()
            return {"raw": logits.cpu().numpy(), "prob": prob.cpu().numpy(),
                    "pred": pred.cpu().numpy()}

        return predict

    return predict_batch_udf(make_predict_fn, return_type=_parse_datatype_string(STRUCT_TYPE),
                             batch_size=batch_size, input_tensor_shapes=[[width]])


def floor_column() -> Callable[[Any], Any]:
    """Method (c): an Arrow UDF of ours' kind returning a zero struct of ours' type."""
    from spark_dl.compat import arrow_udf

    factory = arrow_udf("arrow")

    def zeros(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:  # hints pick the UDF kind
        for arr in batches:
            n = len(arr)
            pair = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
                                            pa.array(np.zeros(2 * n)))
            yield pa.StructArray.from_arrays([pair, pair, pa.array(np.zeros(n))],
                                             names=["raw", "prob", "pred"])

    return factory(zeros, STRUCT_TYPE)  # type: ignore[no-any-return]


def identity_arrow(df: Any) -> Any:
    """Every row through a Python worker and back, untouched (``scoring_breakdown.py``)."""

    def identity(batches: Iterator[Any]) -> Iterator[Any]:
        return batches

    return df.mapInArrow(identity, df.schema)


def as_array(df: Any, kind: str) -> Any:
    """The feature column (b) and (c) read: as is, or ``vector_to_array`` of a vector."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    return F.col("features") if kind == "array" else vector_to_array("features", "float32")


# ---------------------------------------------------------------------- one model
class Case(NamedTuple):
    """Everything one model's rounds need, built before any timing."""

    name: str
    rows: int
    kind: str  # "array" or "vector" input
    df: Any  # cached input DataFrame
    model: Any  # TorchClassificationModel
    X: np.ndarray  # the same rows on the driver, for (a)
    udf: Callable[[str], Any]  # the predict_batch_udf of (b)
    device: str  # "cpu" or "cuda"
    reduced: Any  # the model with inferencePrecision = REDUCED[device], method (q)


_FITTED: dict[tuple[str, int, int], Any] = {}


def make_case(spark: Any, name: str, rows: int, partitions: int, kind: str = "array",
              device: str = "cpu") -> Case:
    """Data, fitted model, driver-side copy and the (b) UDF for model ``name``."""
    from pyspark.ml.functions import array_to_vector

    spec = MODELS[name]
    df = make_data(spark, rows, partitions, width=spec.features)
    # One fit per model, shared by its input kinds (same data, same network).
    model = _FITTED.get((name, rows, partitions))
    if model is None:
        model = _FITTED[(name, rows, partitions)] = fit_model(df, case=spec)
    X = collect_matrix(df, spec.features)
    assert X.shape == (rows, spec.features)
    if kind == "vector":
        arrays = df
        df = df.withColumn("features", array_to_vector("features")).cache()
        assert df.count() == rows
        arrays.unpersist()
    if device == "cuda":
        model = model.copy({model.useGpu: True})
    reduced = model.copy({model.inferencePrecision: REDUCED[device]})
    return Case(name, rows, kind, df, model, X,
                predict_batch_column(model.torchModule, BATCH_SIZE, spec.features, device),
                device, reduced)


def runners(case: Case) -> dict[str, Callable[[], None]]:
    """One zero-argument callable per method, each scoring all of ``case``'s rows once."""
    import torch

    def run_a() -> None:
        torch.set_num_threads(2)  # both cores; the two Spark tasks get one thread each
        torch_loop(case.model.torchModule, case.X, BATCH_SIZE, case.device)

    feats, floor = as_array(case.df, case.kind), floor_column()
    return {
        "ours": lambda: noop_write(case.model.transform(case.df)),
        "q": lambda: noop_write(case.reduced.transform(case.df)),
        "a": run_a,
        "b": lambda: noop_write(case.df.withColumn("scored", case.udf(feats))),
        "c": lambda: noop_write(case.df.withColumn("scored", floor(feats))),
    }


def run_rounds(case: Case, rounds: int, warmup: int) -> list[dict[str, float]]:
    """Interleaved rounds (:func:`bench.harness.interleave`); each holds rows/s per method
    and the ours/x ratios of that round."""
    ratios = {f"ours/{m}": (m, "ours") for m in ("a", "b", "c")}  # secs[m] / secs[ours]
    ratios.update({f"q/{m}": (m, "q") for m in ("ours", "a", "b")})
    per_round, _ = interleave(runners(case), rounds, warmup, f"{case.name}/{case.kind}", ratios)
    return [{**{m: case.rows / r[m] for m in METHODS}, **{k: r[k] for k in ratios}}
            for r in per_round]


def reduced_accuracy(case: Case, limit: int = 20000) -> dict[str, float]:
    """How much (q) changes the scores on the first ``limit`` rows: the largest absolute
    difference of probability[1], and the share of rows whose prediction changed."""
    def scores(model: Any) -> tuple[np.ndarray, np.ndarray]:
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        rows = (model.transform(case.df.limit(limit))
                .select(vector_to_array("probability")[1].alias("p"), F.col("prediction"))
                .toArrow())
        return rows.column("p").to_numpy(), rows.column("prediction").to_numpy()

    p, pred = scores(case.model)
    pq, predq = scores(case.reduced)
    return {"max_abs_prob_diff": float(np.abs(p - pq).max()),
            "prediction_changed": float((pred != predq).mean())}


def check_counts(case: Case) -> dict[str, Any]:
    """Rows out of each method, and a column sum; asserts each method kept every row.

    The sum is of the predictions for ours, (a) and (b), which must agree (same weights),
    and of the floor's zeros for (c), which has no predictions.
    """
    from pyspark.sql import functions as F

    def spark_side(df: Any, col: str) -> tuple[int, float]:
        row = df.agg(F.count(col), F.sum(col)).first()
        return int(row[0]), float(row[1] or 0.0)

    preds = torch_loop(case.model.torchModule, case.X, BATCH_SIZE, case.device)
    summed = {"ours": "prediction", "a": "prediction", "b": "prediction", "c": "zeros"}
    feats = as_array(case.df, case.kind)
    got = {
        "ours": spark_side(case.model.transform(case.df), "prediction"),
        "a": (len(preds), float(preds.sum())),
        "b": spark_side(case.df.withColumn("s", case.udf(feats)), "s.pred"),
        "c": spark_side(case.df.withColumn("s", floor_column()(feats)), "s.pred"),
    }
    for method, (n, _) in got.items():
        assert n == case.rows, f"{case.name}/{method} returned {n} of {case.rows} rows"
    tol = max(1.0, 1e-3 * case.rows)  # argmax may flip on near-ties between batchings
    assert abs(got["ours"][1] - got["a"][1]) <= tol, got
    assert abs(got["ours"][1] - got["b"][1]) <= tol, got
    return {m: {"rows": n, "sum_of": summed[m], "sum": s} for m, (n, s) in got.items()}


def bench_model(spark: Any, name: str, rows: int, cfg: Config,
                kind: str = "array") -> dict[str, Any]:
    """Build one case, run its rounds, summarize (and check row counts in smoke mode)."""
    spec = MODELS[name]
    print(f"[{name}/{kind}] {rows:,} rows, {spec.model} {spec.params} on {spec.features} "
          "values: preparing", flush=True)
    case = make_case(spark, name, rows, cfg.partitions, kind, cfg.device)
    try:
        per_round = run_rounds(case, cfg.rounds, cfg.warmup)
        result: dict[str, Any] = {
            "rows": rows,
            "input": kind,
            "model": spec.model,
            "model_params": spec.params,
            "input_shape": spec.shape or [spec.features],
            "rounds": per_round,
            "median": {k: statistics.median(r[k] for r in per_round) for k in per_round[0]},
            "reduced": {"precision": REDUCED[cfg.device], **reduced_accuracy(case)},
        }
        if cfg.smoke:
            result["counts"] = check_counts(case)
        return result
    finally:
        case.df.unpersist()


# ---------------------------------------------------------------------- report
def check_targets(models: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets with their measured medians and whether each holds."""
    out = []
    for key, res in models.items():
        for name, ratio, minimum in TARGETS:
            if name in (key, key.split("/")[0]):
                got = res["median"][ratio]
                out.append({"model": key, "ratio": ratio, "target": minimum,
                            "measured": got, "pass": got >= minimum})
    return out


def format_table(models: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    """A Markdown table of median rows/s and median ratios (with spread and targets)."""
    lines = ["| model | rows | method | median rows/s | min | max |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for name, res in models.items():
        for m in METHODS:
            vals = [r[m] for r in res["rounds"]]
            lines.append(f"| {name} | {res['rows']:,} | {m}: {METHOD_NAMES[m]} | "
                         f"{res['median'][m]:,.0f} | {min(vals):,.0f} | {max(vals):,.0f} |")
    lines += ["", "| model | ratio (rows/s) | median | min | max | target | status |",
              "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    goals = {(t["model"], t["ratio"]): t for t in targets}
    for name, res in models.items():
        for ratio in ("ours/a", "ours/b", "ours/c", "q/ours", "q/a", "q/b"):
            vals = [r[ratio] for r in res["rounds"]]
            goal = goals.get((name, ratio))
            target = f">= {goal['target']}" if goal else ""
            status = ("PASS" if goal["pass"] else "FAIL") if goal else ""
            lines.append(f"| {name} | {ratio} | {res['median'][ratio]:.3f} | {min(vals):.3f} "
                         f"| {max(vals):.3f} | {target} | {status} |")
    lines += ["", "| model | reduced precision (q) | max abs probability change | "
              "predictions changed |", "| --- | --- | ---: | ---: |"]
    for name, res in models.items():
        red = res["reduced"]
        lines.append(f"| {name} | {red['precision']} | {red['max_abs_prob_diff']:.2e} | "
                     f"{red['prediction_changed']:.2%} |")
    return "\n".join(lines)


def header(cfg: Config) -> str:
    """One line naming the settings of the run."""
    line = (f"rounds={cfg.rounds} (after {cfg.warmup} warm-up), batch={BATCH_SIZE}, "
            f"partitions={cfg.partitions}, arrow.maxRecordsPerBatch=default (10000), "
            f"device={cfg.device}, q={REDUCED[cfg.device]}")
    if cfg.smoke:
        line += "; SMOKE: every method returned every row (timings are cold, not meaningful)"
    return line


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, and return the results."""
    cfg = parse_args(argv)
    spark, created = get_spark()
    key = "spark.dl.inference.batchSize"
    previous = spark.conf.get(key, None)
    spark.conf.set(key, str(BATCH_SIZE))
    try:
        sizes = {"light": cfg.rows_light, "heavy": cfg.rows_heavy, "cnn": cfg.rows_cnn}
        sizes = {k: v for k, v in sizes.items() if k in cfg.only}
        # Smoke: the CNN on arrays only (its vector path is the MLPs' input conversion).
        models = {f"{name}/{kind}": bench_model(spark, name, rows, cfg, kind)
                  for name, rows in sizes.items() for kind in cfg.inputs
                  if not (cfg.smoke and name == "cnn" and kind == "vector")}
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)
        if created:
            spark.stop()
    targets = check_targets(models)
    print("\n" + header(cfg) + "\n")
    print(format_table(models, targets))
    return {"config": cfg._asdict(), "models": models, "targets": targets}


def rows(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main`'s results (see :class:`bench.harness.Row`)."""
    return [Row(f"scoring/{t['model']}", t["ratio"], f"{t['measured']:.2f}", f">= {t['target']}",
                t["pass"]) for t in r["targets"]]


if __name__ == "__main__":
    main()
