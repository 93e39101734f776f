"""Where scoring time goes: ``transform`` against cheaper variants of the same job.

A follow-up to ``bench/scoring.py`` (to explain its failing targets): for each model, on
the same cached DataFrame and fitted MLP, it times, interleaved in rounds after one
warm-up round, each of

* ``scan``        -- the cached input, noop write, no Python at all;
* ``c``           -- identity ``mapInArrow`` (all columns through Python and back);
* ``const``       -- an ``arrow_udf`` on ``features`` returning a constant (raw, prob,
  pred) struct: ours' UDF plumbing with no model;
* ``const_vec``   -- ``const`` plus ``array_to_vector`` on raw and prob, as ``transform``
  shapes its output: everything of ``transform`` but the Python-side scoring;
* ``ours_struct`` -- the library's own scoring UDF column without the vector conversion;
* ``ours``        -- ``model.transform(df)``;
* ``b_const``     -- ``predict_batch_udf`` whose predict returns constants: (b)'s plumbing;
* ``b``           -- ``predict_batch_udf`` with the model, as in ``bench/scoring.py``;

and, in the driver, the Python-side steps per 10000-row Arrow batch: the library's
``features_matrix``, forward pass and whole ``score_array`` (one thread), (a)'s loop (two
threads), and (b)'s pandas conversions.

Run ``python -m bench.scoring_breakdown`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa  # module level: arrow_udf resolves the type hints in these globals

from bench import harness
from bench import scoring as sb

VARIANTS = ("scan", "c", "const", "const_vec", "ours_struct", "ours", "b_const", "b")
ARROW_BATCH = 10000  # spark.sql.execution.arrow.maxRecordsPerBatch default


def const_struct_udf() -> Callable[[Any], Any]:
    """An ``arrow_udf`` with ours' input and output types that returns zeros, no model."""
    from pyspark.sql.functions import arrow_udf

    def const(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for arr in batches:
            n = len(arr)
            offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
            lists = pa.ListArray.from_arrays(offsets, pa.array(np.zeros(2 * n)))
            yield pa.StructArray.from_arrays([lists, lists, pa.array(np.zeros(n))],
                                             names=["raw", "prob", "pred"])

    return arrow_udf(const, sb.STRUCT_TYPE)  # type: ignore[no-any-return]


def const_predict_udf() -> Callable[[str], Any]:
    """(b)'s ``predict_batch_udf`` plumbing with a predict function that returns zeros."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import _parse_datatype_string

    def make_predict_fn() -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        def predict(x: np.ndarray) -> dict[str, np.ndarray]:
            n = len(x)
            return {"raw": np.zeros((n, 2)), "prob": np.zeros((n, 2)), "pred": np.zeros(n)}

        return predict

    return predict_batch_udf(make_predict_fn, return_type=_parse_datatype_string(sb.STRUCT_TYPE),
                             batch_size=sb.BATCH_SIZE, input_tensor_shapes=[[sb.NUM_FEATURES]])


def variant_runners(case: sb.Case) -> dict[str, Callable[[], None]]:
    """One callable per variant, each scoring all rows of ``case`` once (noop write)."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    df, const, bconst = case.df, const_struct_udf(), const_predict_udf()
    with_vectors = (df.withColumn("s", const("features"))
                    .withColumns({"rawPrediction": array_to_vector("s.raw"),
                                  "probability": array_to_vector("s.prob"),
                                  "prediction": F.col("s.pred")}).drop("s"))
    _, scored = case.model._scoring_column(df)  # the library's UDF column, read-only use
    plans = {
        "scan": df,
        "c": sb.identity_arrow(df),
        "const": df.withColumn("s", const("features")),
        "const_vec": with_vectors,
        "ours_struct": df.withColumn("s", scored),
        "b_const": df.withColumn("s", bconst("features")),
        "b": df.withColumn("s", case.udf("features")),
    }
    run = {name: (lambda p=plan: harness.noop_write(p)) for name, plan in plans.items()}
    run["ours"] = lambda: harness.noop_write(case.model.transform(df))
    return run


def spark_breakdown(case: sb.Case, rounds: int) -> dict[str, dict[str, float]]:
    """Median and spread of seconds per variant over ``rounds`` after one warm-up."""
    run = variant_runners(case)
    secs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i in range(1 + rounds):
        got = {v: harness.timed(run[v]) for v in VARIANTS}
        print(f"  {'warm-up' if i == 0 else f'round {i}'}: "
              + ", ".join(f"{v} {t:.2f}s" for v, t in got.items()), flush=True)
        if i:
            for v, t in got.items():
                secs[v].append(t)
    return {v: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                "rows_per_s": case.rows / statistics.median(t)} for v, t in secs.items()}


class _Value:
    """Stands in for a Broadcast: the scorer reads only ``.value``."""

    def __init__(self, value: bytes) -> None:
        self.value = value


def library_task(case: sb.Case) -> Any:
    """The library's ``ScoringTask`` for ``case.model``, as ``transform`` would build it."""
    from spark_dl.inference.scoring import ScoringTask
    from spark_dl.model_spec import ModelSpec

    spec = ModelSpec(case.model.getModel(), case.model.getModelParams()).to_json()
    return ScoringTask(
        key=f"bench-{case.name}", spec=spec, num_features=sb.NUM_FEATURES, num_outputs=2,
        task="classification", batch_size=sb.BATCH_SIZE, threads=1, handle_invalid="error",
        features_col="features", weights=_Value(case.model._weights),
    )


def b_output(z: np.ndarray) -> pa.Table:
    """Roughly what (b) does with its predictions: a pandas frame of arrays, to Arrow."""
    import pandas as pd

    z = z.astype(np.float64)
    frame = pd.DataFrame({"raw": list(z), "prob": list(z), "pred": z[:, 0]})
    return pa.Table.from_pandas(frame, preserve_index=False)


def driver_breakdown(case: sb.Case) -> dict[str, float]:
    """Seconds per 100k rows (best of 3) of the Python-side steps of ours, (a) and (b)."""
    import torch

    from spark_dl.inference import scoring as lib

    col = case.df.select("features").toArrow().column("features").combine_chunks()
    batches = [col.slice(i, ARROW_BATCH) for i in range(0, len(col), ARROW_BATCH)]
    task = library_task(case)
    module = lib.get_model(task)
    mats = [lib.features_matrix(b, sb.NUM_FEATURES)[0] for b in batches]
    logits = [lib._forward(module, X, sb.BATCH_SIZE) for X in mats]
    steps: dict[str, tuple[int, Callable[[], Any]]] = {
        "ours: features_matrix (Arrow -> numpy), 1 thread":
            (1, lambda: [lib.features_matrix(b, sb.NUM_FEATURES) for b in batches]),
        "ours: forward, 1 thread": (1, lambda: [lib._forward(module, X, sb.BATCH_SIZE)
                                                for X in mats]),
        "ours: score_array total, 1 thread": (1, lambda: [lib.score_array(b, task)
                                                          for b in batches]),
        "a: torch loop (logits, softmax, argmax), 2 threads":
            (2, lambda: sb.torch_loop(module, case.X, sb.BATCH_SIZE)),
        "b: to_pandas + np.vstack (input), 1 thread":
            (1, lambda: [np.vstack(b.to_pandas()) for b in batches]),
        "b: DataFrame of arrays -> Arrow (output, approx.), 1 thread":
            (1, lambda: [b_output(z) for z in logits]),
    }
    per, out = 100_000 / len(col), {}
    for name, (threads, fn) in steps.items():
        torch.set_num_threads(threads)
        out[name] = min(harness.timed(fn) for _ in range(3)) * per
    return out


def format_report(name: str, rows: int, spark: dict[str, dict[str, float]],
                  driver: dict[str, float]) -> str:
    """Markdown tables: Spark variants (seconds, rows/s) and driver-side steps."""
    lines = [f"| {name}: variant ({rows:,} rows, noop write) | median s | min s | max s "
             "| rows/s |", "| --- | ---: | ---: | ---: | ---: |"]
    for v, r in spark.items():
        lines.append(f"| {v} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} "
                     f"| {r['rows_per_s']:,.0f} |")
    lines += ["", f"| {name}: Python-side step (driver) | s per 100k rows |", "| --- | ---: |"]
    lines += [f"| {step} | {sec:.4f} |" for step, sec in driver.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the breakdown for each model, print it, and return the numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows-light", type=int, default=1_000_000)
    p.add_argument("--rows-heavy", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--models", nargs="+", choices=sb.MODELS, default=list(sb.MODELS))
    args = p.parse_args(argv)
    spark, created = harness.get_spark()
    spark.conf.set("spark.dl.inference.batchSize", str(sb.BATCH_SIZE))
    results, reports = {}, []
    try:
        sizes = {"light": args.rows_light, "heavy": args.rows_heavy}
        for name in args.models:
            rows = sizes[name]
            print(f"[{name}] {rows:,} rows: preparing", flush=True)
            case = sb.make_case(spark, name, rows, args.partitions)
            results[name] = {"spark": spark_breakdown(case, args.rounds),
                             "driver": driver_breakdown(case)}
            reports.append(format_report(name, rows, **results[name]))
            case.df.unpersist()
    finally:
        if created:
            spark.stop()
    print("\n" + "\n\n".join(reports))
    return results


if __name__ == "__main__":
    main()
