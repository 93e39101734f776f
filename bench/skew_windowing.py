"""Skew benchmark 3: sequence windowing with a hot key, against the plain
``groupBy(key).applyInArrow`` a careful user writes, in time and Python-worker memory
(see :mod:`bench.skew`)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

import numpy as np

from bench.harness import get_spark, interleave, noop_write, summarize
from bench.memsample import WorkerMemory, run_tagged, worker_baseline
from bench.skew_common import NUM_VALUES, Config, cached

def series_data(spark: Any, rows: int, keys: int, hot_share: float) -> Any:
    """Per-key series ``key, t, v0..v3, label``: ``keys`` keys with equal rows, or (hot_share
    > 0) one key ``k00`` with ``hot_share`` of the rows and the rest spread over the others.
    Deterministic (fixed partitions and seeds); not cached."""
    from pyspark.sql import functions as F

    idc = F.col("id")
    hot = int(rows * hot_share)
    if hot:
        rest = keys - 1
        k = F.when(idc < hot, F.lit(0)).otherwise(F.lit(1) + (idc - hot) % rest)
        t = F.when(idc < hot, idc).otherwise(F.floor((idc - hot) / rest))
    else:
        k, t = idc % keys, F.floor(idc / keys)
    df = spark.range(0, rows, 1, 8).select(
        F.format_string("k%02d", k.cast("int")).alias("key"), t.cast("long").alias("t"))
    vals = [(F.sin(F.col("t") * (0.01 * (i + 1))) + 0.1 * F.randn(200 + i)).alias(f"v{i}")
            for i in range(NUM_VALUES)]
    return df.select("key", "t", *vals, F.rand(300).alias("label"))


def windower(cfg: Config, max_rows: int | None = None) -> Any:
    """The SequenceWindower under test."""
    from spark_dl.feature import SequenceWindower

    return SequenceWindower(keyCol="key", timeCol="t",
                            valueCols=[f"v{i}" for i in range(NUM_VALUES)],
                            windowLength=cfg.window_length, step=cfg.window_step,
                            horizon=cfg.horizon, labelCol="label",
                            maxRowsPerTask=max_rows or cfg.max_rows_per_task)


WINDOW_SCHEMA = "key string, windowStart long, windowEnd long, features array<float>, label double"


def plain_function(length: int, step: int, horizon: int, nv: int,
                   with_rss: bool = False) -> Callable[[Any], Any]:
    """The plain ``make_windows`` a careful user writes: one whole key as one Arrow table,
    numpy's ``sliding_window_view`` for the windows, and the features built as one Arrow
    list array over a flat float32 buffer (no Python object per window). The same windows
    as the windower (row-major float32 steps, label ``horizon`` rows after the last step).
    ``with_rss`` adds an ``rss_kib`` column: this worker's ``ru_maxrss`` after building them."""

    def make_windows(table):  # type: ignore[no-untyped-def]  # hints would be parsed by pyspark
        import resource

        import pyarrow as pa
        import pyarrow.compute as pc
        from numpy.lib.stride_tricks import sliding_window_view

        table = table.take(pc.sort_indices(table, [("t", "ascending")]))  # stable
        values = np.column_stack([table.column(f"v{i}").to_numpy() for i in range(nv)])
        starts = np.arange(0, table.num_rows - length - horizon + 1, step, dtype=np.int64)
        n, width = len(starts), length * nv
        if n:
            flat = sliding_window_view(values, (length, nv))[starts, 0].reshape(n, width)
            flat = flat.astype(np.float32)
        else:
            flat = np.zeros((0, width), np.float32)
        feats = pa.ListArray.from_arrays(
            pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32)),
            pa.array(flat.reshape(-1)))
        t = table.column("t").to_numpy()
        columns = {
            "key": table.column("key").take(pa.array(np.zeros(n, np.int64))),
            "windowStart": pa.array(t[starts]), "windowEnd": pa.array(t[starts + length - 1]),
            "features": feats,
            "label": pa.array(table.column("label").to_numpy()[starts + length - 1 + horizon]),
        }
        if with_rss:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            columns["rss_kib"] = pa.array(np.full(n, rss, np.int64))
        return pa.table(columns)

    return make_windows


def plain_windows(df: Any, cfg: Config, with_rss: bool = False) -> Any:
    """``groupBy(key).applyInArrow(make_windows)``: each key whole in one Arrow table."""
    fn = plain_function(cfg.window_length, cfg.window_step, cfg.horizon, NUM_VALUES, with_rss)
    schema = WINDOW_SCHEMA + (", rss_kib long" if with_rss else "")
    return df.groupBy("key").applyInArrow(fn, schema)


def checksum(out: Any) -> dict[str, Any]:
    """Count, label sum, feature sum and a sum of per-window xxhash64 values (mod a prime)."""
    from pyspark.sql import functions as F

    h = F.pmod(F.xxhash64("key", "windowStart", "windowEnd", "features", "label"),
               F.lit(1_000_000_007))
    r = out.agg(F.count(F.lit(1)).alias("n"), F.sum(h).alias("h"), F.sum("label").alias("y"),
                F.sum(F.aggregate("features", F.lit(0.0), lambda a, x: a + x)).alias("f")
                ).first()
    return {"windows": int(r["n"]), "hash": int(r["h"] or 0), "label_sum": float(r["y"] or 0),
            "feature_sum": float(r["f"] or 0)}


def same_checksum(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Exact on count and hash; float sums (summed in any order) to a relative 1e-9."""
    close = all(abs(a[k] - b[k]) <= 1e-9 * max(1.0, abs(a[k]))
                for k in ("label_sum", "feature_sum"))
    return a["windows"] == b["windows"] and a["hash"] == b["hash"] and close


def expected_windows(df: Any, cfg: Config) -> int:
    """Windows the key sizes call for: floor((n - T - h) / step) + 1 per key with n >= T + h."""
    need = cfg.window_length + cfg.horizon
    return sum((n - need) // cfg.window_step + 1
               for n in (int(r["count"]) for r in df.groupBy("key").count().collect())
               if n >= need)


#: Spark SQL's samples per output partition when it computes range-partition bounds.
RANGE_SAMPLE_KEY = "spark.sql.execution.rangeExchange.sampleSizePerPartition"


#: With this hint the sample reaches Spark's cap of 1e6 rows, i.e. 3e6 / (input partitions)
#: rows per input partition: every row of an input of up to 3M rows, so the bounds, and
#: with them the windower's row numbering, are the same in every job.
RANGE_SAMPLE_ALL = 1_000_000


def try_defaults(w: Any, layouts: dict[str, Any]) -> str | None:
    """Run the windower once per layout with Spark's defaults; the first error, if any."""
    for name, df in layouts.items():
        try:
            noop_write(w.transform(df))
        except Exception as exc:  # noqa: BLE001 - reported
            text = str(exc)
            lines = [ln for ln in text.splitlines() if "SequenceWindower" in ln] or [text]
            return f"layout {name}: {lines[-1].strip()[:300]}"
    return None


def bench_windowing(spark: Any, cfg: Config) -> dict[str, Any]:
    """Windower B/A timing, split/unsplit/plain output agreement on B, and worker memory.

    The windower first runs once per layout with Spark's defaults. If that fails, the rest
    runs with every row sampled for range bounds (``RANGE_SAMPLE_KEY``), and says so."""
    rows = cfg.window_rows
    print(f"[windowing] {rows:,} rows, A: {cfg.window_keys} equal keys, B: one key with "
          f"{cfg.hot_share:.0%}; T={cfg.window_length}, step={cfg.window_step}, "
          f"horizon={cfg.horizon}, maxRowsPerTask={cfg.max_rows_per_task}: preparing",
          flush=True)
    even = cached(series_data(spark, rows, cfg.window_keys, 0.0), rows)
    skewed = cached(series_data(spark, rows, cfg.window_keys, cfg.hot_share), rows)
    w = windower(cfg)
    result: dict[str, Any] = {"rows": rows, "keys": cfg.window_keys, "hot_share": cfg.hot_share,
                              "window_length": cfg.window_length, "step": cfg.window_step,
                              "horizon": cfg.horizon, "max_rows_per_task": cfg.max_rows_per_task}
    previous = spark.conf.get(RANGE_SAMPLE_KEY, None)
    if previous is not None:
        spark.conf.unset(RANGE_SAMPLE_KEY)
    try:
        start = time.perf_counter()
        # Smoke: its one round runs with the defaults, and a failure there fails the smoke.
        error = try_defaults(w, {"A": even, "B": skewed}) if not cfg.smoke else None
        result["defaults_error"] = error
        print(f"  windower with Spark defaults: {'FAILED: ' + error if error else 'ok'} "
              f"({time.perf_counter() - start:.1f}s)", flush=True)
        result["range_sample"] = RANGE_SAMPLE_ALL if error else None
        if error:
            if rows > 3_000_000:
                print("  WARNING: over 3M rows even the workaround samples only part of "
                      "the rows; the windower may fail again", flush=True)
            spark.conf.set(RANGE_SAMPLE_KEY, str(RANGE_SAMPLE_ALL))
            print(f"  continuing with {RANGE_SAMPLE_KEY}={RANGE_SAMPLE_ALL} (every row sampled "
                  "for the range bounds)", flush=True)
        runs = {"A": lambda: noop_write(w.transform(even)),
                "B": lambda: noop_write(w.transform(skewed))}
        per_round, loads = interleave(runs, cfg.window_rounds, cfg.warmup, "windowing",
                                      {"B/A": ("B", "A")}, cfg.quiet_wait)
        result.update(rounds=per_round, foreign_cores=loads, summary=summarize(per_round))
        if cfg.smoke:
            # In-session sampler check only: fresh subprocesses cost ~20-50 s each.
            sampler = WorkerMemory(os.getpid())
            sampler.start()
            result["agreement"] = check_windows(spark, cfg, w, skewed, rows)
            sampler.stop()
            assert sampler.workers(), "the /proc sampler found no Python worker"
            result["memory"] = {"in_session_worker_peaks_kib": sorted(sampler.workers().values())}
        else:
            result["agreement"] = check_windows(spark, cfg, w, skewed, rows)
    finally:
        even.unpersist()
        skewed.unpersist()
        if previous is None:
            spark.conf.unset(RANGE_SAMPLE_KEY)
        else:
            spark.conf.set(RANGE_SAMPLE_KEY, previous)
    if not cfg.smoke:
        result["memory"] = measure_memory(cfg, result["range_sample"])
    return result


def check_windows(spark: Any, cfg: Config, w: Any, skewed: Any, rows: int) -> dict[str, Any]:
    """Split, unsplit and plain outputs on B agree (exactly, row by row, in smoke mode)."""
    expected = expected_windows(skewed, cfg)
    unsplit = windower(cfg, max_rows=rows)
    outs = {"split": w.transform(skewed), "unsplit": unsplit.transform(skewed),
            "plain": plain_windows(skewed, cfg)}
    sums, secs = {}, {}
    for name, out in outs.items():
        start = time.perf_counter()
        sums[name] = checksum(out)
        secs[name] = time.perf_counter() - start
    identical = all(same_checksum(sums["split"], s) for s in sums.values())
    complete = sums["split"]["windows"] == expected
    print(f"  windowing agreement on B (expected {expected:,} windows): "
          + "; ".join(f"{k} {v['windows']:,} windows, hash {v['hash']}, {secs[k]:.1f}s"
                      for k, v in sums.items()), flush=True)
    check: dict[str, Any] = {"expected_windows": expected, "checksums": sums,
                             "checksum_seconds": secs, "identical": identical,
                             "complete": complete}
    if cfg.smoke:
        def rows_of(df: Any) -> list[tuple[Any, ...]]:
            return sorted((r["key"], r["windowStart"], r["windowEnd"],
                           tuple(r["features"]), r["label"]) for r in df.collect())
        exact = {k: rows_of(v) for k, v in outs.items()}
        assert len(exact["split"]) == expected, (len(exact["split"]), expected)
        assert exact["split"] == exact["unsplit"] == exact["plain"], "windows differ"
        groups = w._chunks(skewed).groupBy("_k", "_chunk").count().agg({"count": "max"}).first()
        assert groups[0] <= cfg.max_rows_per_task + cfg.window_length - 1 + cfg.horizon, groups
        check["exact_rows_equal"] = True
        check["largest_group"] = int(groups[0])
    assert identical and complete, check
    return check


def mem_child(cfg: Config, mode: str, range_sample: int | None) -> dict[str, Any]:
    """In a fresh process: the approach ``mode`` on layout B, sampling worker memory."""
    from pyspark.sql import functions as F

    spark, _ = get_spark(f"spark_dl-bench-skew-mem-{mode}")
    if range_sample:
        spark.conf.set(RANGE_SAMPLE_KEY, str(range_sample))
    try:
        df = cached(series_data(spark, cfg.window_rows, cfg.window_keys, cfg.hot_share),
                    cfg.window_rows)
        sampler = WorkerMemory(os.getpid())
        sampler.start()
        baseline = worker_baseline(spark, sampler)
        start = time.perf_counter()
        if mode == "windower":
            out = windower(cfg).transform(df)
            r = out.agg(F.count(F.lit(1)), F.lit(0)).first()
        else:
            out = plain_windows(df, cfg, with_rss=True)
            r = out.agg(F.count(F.lit(1)), F.max("rss_kib")).first()
        secs = time.perf_counter() - start
        sampler.stop()
        workers = sampler.workers()
        return {"mode": mode, "windows": int(r[0]), "seconds": secs,
                "worker_peak_kib": max(workers.values(), default=0),
                "worker_peaks_kib": sorted(workers.values(), reverse=True),
                "baseline_kib": baseline, "daemon_peak_kib": max(sampler.daemons().values(),
                                                                  default=0),
                "ru_maxrss_kib": int(r[1] or 0) if mode == "plain" else None,
                "polls": sampler.polls}
    finally:
        spark.stop()


def run_mem_child(cfg: Config, mode: str, range_sample: int | None,
                  timeout: float = 900.0) -> dict[str, Any]:
    """Run :func:`mem_child` in a subprocess and return what it printed."""
    cmd = [sys.executable, "-m", "bench.skew", "--mem-child", mode,
           "--window-rows", str(cfg.window_rows), "--window-keys", str(cfg.window_keys),
           "--hot-share", str(cfg.hot_share), "--window-length", str(cfg.window_length),
           "--max-rows-per-task", str(cfg.max_rows_per_task)]
    if cfg.smoke:
        cmd.append("--smoke")
    if range_sample:
        cmd += ["--range-sample", str(range_sample)]
    return run_tagged(cmd, mode, timeout)


def measure_memory(cfg: Config, range_sample: int | None = None) -> dict[str, Any]:
    """Peak Python-worker RSS of the windower and of the plain approach, each on B alone."""
    print("  worker memory: one fresh SparkSession subprocess per approach", flush=True)
    from concurrent.futures import ThreadPoolExecutor

    # Both at once: a peak is per process, so running side by side only costs time.
    with ThreadPoolExecutor(2) as pool:
        futures = {mode: pool.submit(run_mem_child, cfg, mode, range_sample)
                   for mode in ("windower", "plain")}
        res = {mode: f.result() for mode, f in futures.items()}
    for mode, r in res.items():
        print(f"  {mode}: worker peak {r['worker_peak_kib'] / 1024:,.0f} MiB (baseline "
              f"{r['baseline_kib'] / 1024:,.0f} MiB, {r['polls']} polls, "
              f"{r['seconds']:.1f}s)" + (f", ru_maxrss in make_windows "
                                         f"{r['ru_maxrss_kib'] / 1024:,.0f} MiB"
                                         if r["ru_maxrss_kib"] else ""), flush=True)
    assert res["windower"]["windows"] == res["plain"]["windows"], res
    assert res["windower"]["worker_peak_kib"] > 0 and res["plain"]["worker_peak_kib"] > 0, res
    res["ratio"] = res["plain"]["worker_peak_kib"] / res["windower"]["worker_peak_kib"]
    return res
