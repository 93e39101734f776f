"""What ``rebalance="auto"`` costs the light MLP on an even input: ours with the default
(a round-robin shuffle into the default parallelism before scoring, see
``spark_dl.skew.policy``) and with ``rebalance="never"``, beside ``bench.scoring``'s
``predict_batch_udf`` (b) and same-width floor (c), neither of which rebalances.

Run ``python -m bench.scoring_rebalance`` (``MODEL=heavy ROWS=200000`` for the heavy MLP):
1,000,000 rows in 4 cached partitions, batches of 4096, 3 rounds after a warm-up,
interleaved with the order reversed every other round; medians of seconds.
"""

from __future__ import annotations

import os
import statistics

from bench import scoring as S
from bench.harness import get_spark, interleave, noop_write


def main() -> dict[str, float]:
    spark, _ = get_spark()
    spark.conf.set("spark.dl.inference.batchSize", "4096")
    case = S.make_case(spark, os.environ.get("MODEL", "light"),
                       int(os.environ.get("ROWS", "1000000")), 4, "array")
    floor, feats = S.floor_column(), S.as_array(case.df, "array")
    never = case.model.copy({case.model.rebalance: "never"})
    runs = {"auto": lambda: noop_write(case.model.transform(case.df)),
            "never": lambda: noop_write(never.transform(case.df)),
            "b": lambda: noop_write(case.df.withColumn("s", case.udf(feats))),
            "c": lambda: noop_write(case.df.withColumn("s", floor(feats)))}
    per_round, _ = interleave(runs, 3, 1, case.name, {})
    medians = {k: statistics.median(r[k] for r in per_round) for k in runs}
    for k, v in medians.items():
        print(f"{k}: {v:.3f} s")
    print(f"b/auto {medians['b'] / medians['auto']:.2f}, b/never "
          f"{medians['b'] / medians['never']:.2f}, c/never {medians['c'] / medians['never']:.2f}")
    return medians


if __name__ == "__main__":
    main()
