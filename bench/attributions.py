"""What attributionsCol costs in transform(): scoring with per-row attributions against
scoring alone, on the same fitted model, rows and threads.

Arms (each writes every column to Spark's ``noop`` sink, so every row is computed):

* ``plain``: attributionsCol unset, the default path (the zoo MLP scores as numpy);
* ``torch``: unset, with ``spark.dl.inference.backend=torch``: the same torch forward pass
  the attribution arms start from, so ``gxi / torch`` isolates the attributions' cost;
* ``gxi``: ``attributionMethod="gradient_x_input"`` (one forward and backward pass);
* ``ig``: ``"integrated_gradients"`` with ``attributionSteps`` points per row.

Targets: ``gxi / torch <= 4`` (a backward pass costs about two forward passes) and
``ig / gxi <= 1.5 * steps`` (integrated gradients is ``steps`` gradient evaluations).
Run: ``python -m bench.attributions`` (``--smoke`` for a tiny run). Arms interleave, the
order alternated every round, a warm-up not counted, medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from bench.harness import Row, format_rows, get_spark, interleave, noop_write, summarize


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.rows, args.rounds = 2000, 1
    return args


def _data(spark: Any, rows: int, d: int) -> Any:
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    cols = [F.randn(seed=i).cast("float") for i in range(d)]
    label = (F.randn(seed=0) + F.randn(seed=1) > 0).cast("double")
    return (spark.range(rows, numPartitions=4)
            .select(array_to_vector(F.array(*cols)).alias("features"), label.alias("label"))
            .cache())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Fit one classifier, then time the four scoring arms; print a table."""
    from spark_dl import TorchClassifier

    args = parse_args(argv)
    spark, created = get_spark()
    try:
        df = _data(spark, args.rows, args.features)
        assert df.count() == args.rows
        model = TorchClassifier(modelParams={"hidden_layers": [64, 32]}, maxEpochs=1,
                                batchSize=512).fit(df.limit(20_000))
        arms = {
            "plain": model,
            "torch": model,
            "gxi": model.copy({model.attributionsCol: "attr",
                               model.attributionMethod: "gradient_x_input"}),
            "ig": model.copy({model.attributionsCol: "attr",
                              model.attributionSteps: args.steps}),
        }

        def score(name: str) -> None:
            spark.conf.set("spark.dl.inference.backend", "torch" if name != "plain" else "auto")
            try:
                noop_write(arms[name].transform(df))
            finally:
                spark.conf.unset("spark.dl.inference.backend")

        per_round, _ = interleave({n: (lambda n=n: score(n)) for n in arms}, args.rounds, 1,
                                  "scoring", {"gxi/torch": ("gxi", "torch"),
                                              "ig/gxi": ("ig", "gxi"),
                                              "torch/plain": ("torch", "plain")})
        sample = arms["ig"].transform(df.limit(50)).collect()
        assert all(np.isfinite(r.attr.toArray()).all() for r in sample)
        result = {"summary": summarize(per_round), "config": vars(args), "smoke": args.smoke}
        s = result["summary"]
        result["pass"] = None if args.smoke else (
            s["gxi/torch"]["median"] <= 4 and s["ig/gxi"]["median"] <= 1.5 * args.steps)
        print(format_rows(rows(result)))
        return result
    finally:
        if created:
            spark.stop()


def rows(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main` (see :class:`bench.harness.Row`)."""
    s, steps = r["summary"], r["config"]["steps"]
    status = None if r["smoke"] else r["pass"]
    seconds = ", ".join(f"{k} {s[k]['median']:.1f}s" for k in ("plain", "torch", "gxi", "ig"))
    return [
        Row("attributions", "scoring with gradient x input / without (torch)",
            f"{s['gxi/torch']['median']:.2f}", "<= 4", status, seconds),
        Row("attributions", f"integrated gradients ({steps} steps) / gradient x input",
            f"{s['ig/gxi']['median']:.2f}", f"<= {1.5 * steps:g}", status, ""),
        Row("attributions", "torch / numpy scoring without attributions",
            f"{s['torch/plain']['median']:.2f}", "-", None, ""),
    ]


if __name__ == "__main__":
    sys.exit(0 if main()["pass"] is not False else 1)
