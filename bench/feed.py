"""Data-feed benchmark: rows/s from a Spark partition's Arrow file into torch batches.

Both sides start from the same file: the Arrow stream that TorchDistributor's
``_train_on_dataframe`` writes for each rank (pyspark's ``ArrowStreamSerializer``).

- ours: ``spark_dl.training.data.load_rank_arrays`` (Arrow buffers to numpy, once) plus the
  training loop's batching (``IndexStream`` + ``index_select``), as every rank does;
- pyspark: ``pyspark.ml.torch.distributor._get_spark_partition_data_loader``, the loader
  pyspark offers for that file (it converts to pandas and yields row by row);
- hand: the strongest plain loader a careful user writes without spark_dl: read the
  stream with ``pyarrow.ipc``, one zero-copy ``flatten().to_numpy()`` into a contiguous
  float32 tensor, then ``randperm`` batches with ``index_select``.

Interleaved rounds in an order shuffled every round (seeded), median of per-round ratios.
Targets: ours/pyspark >= 10x (the loader pyspark ships), and ours/hand >= 0.9 (spark_dl's
feed adds no cost over the best hand-written one; it cannot be much faster).

    .venv/bin/python -m bench.feed [--rows 200000] [--features 64] [--batch 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from bench.harness import Row

TARGET = 10.0
TARGET_HAND = 0.9


def write_partition_file(directory: str, rows: int, features: int,
                         with_flag: bool = True) -> tuple[str, str]:
    """The Arrow stream + schema files, as TorchDistributor writes them for one rank.

    pyspark's loader cannot read boolean columns, so its file leaves out the validation
    flag ``v`` (ours reads one column more).
    """
    from pyspark.sql.pandas.serializers import ArrowStreamSerializer
    from pyspark.sql.types import (ArrayType, BooleanType, DoubleType, FloatType, StructField,
                                   StructType)

    rng = np.random.default_rng(0)
    values = rng.normal(size=rows * features).astype(np.float32)
    offsets = np.arange(0, (rows + 1) * features, features, dtype=np.int32)
    columns = {
        "f": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
        "y": pa.array(rng.integers(0, 2, rows).astype(np.float64)),
        "w": pa.array(np.ones(rows)),
    }
    fields = [StructField("f", ArrayType(FloatType())), StructField("y", DoubleType()),
              StructField("w", DoubleType())]
    if with_flag:
        columns["v"] = pa.array(np.zeros(rows, dtype=bool))
        fields.append(StructField("v", BooleanType()))
    table = pa.table(columns)
    os.makedirs(directory, exist_ok=True)
    data_path = os.path.join(directory, "data.arrow")
    with open(data_path, "wb") as fh:
        ArrowStreamSerializer().dump_stream(iter(table.to_batches(max_chunksize=10_000)), fh)
    schema = StructType(fields)
    schema_path = os.path.join(directory, "schema.json")
    with open(schema_path, "w", encoding="utf-8") as fh:
        json.dump(schema.jsonValue(), fh)
    return data_path, schema_path


def _use(files: tuple[str, str]) -> None:
    os.environ["SPARK_PARTITION_ARROW_DATA_FILE"], os.environ["SPARK_DATAFRAME_SCHEMA_FILE"] = files


def feed_ours(rows: int, features: int, batch: int) -> float:
    """Seconds to read the file and produce every batch the way a spark_dl rank does."""
    from spark_dl.training.data import load_rank_arrays
    from spark_dl.training.loop import IndexStream, RankData

    start = time.perf_counter()
    arrays = load_rank_arrays(None, 0, features)
    data = RankData.from_arrays(arrays, ~arrays["v"])
    stream = IndexStream(len(data), seed=0, rank=0)
    seen = 0
    while seen < rows:
        idx = stream.take(batch)
        x, y = data.X.index_select(0, idx), data.y.index_select(0, idx)
        seen += len(x)
    assert x.dtype == torch.float32 and y.shape[0] == batch
    return time.perf_counter() - start


def feed_hand(rows: int, features: int, batch: int) -> float:
    """Seconds for the best plain pyarrow + torch loader to produce every batch."""
    start = time.perf_counter()
    path = os.environ["SPARK_PARTITION_ARROW_DATA_FILE"]
    table = pa.ipc.open_stream(pa.memory_map(path)).read_all()
    f = table.column("f").combine_chunks()
    X = torch.from_numpy(np.ascontiguousarray(
        f.flatten().to_numpy(zero_copy_only=False).reshape(len(f), features)))
    y = torch.from_numpy(table.column("y").to_numpy())
    seen, gen = 0, torch.Generator().manual_seed(0)
    while seen < rows:
        perm = torch.randperm(len(X), generator=gen)
        for s in range(0, len(X), batch):
            idx = perm[s:s + batch]
            x, yb = X.index_select(0, idx), y.index_select(0, idx)
            seen += len(x)
            if seen >= rows:
                break
    assert x.dtype == torch.float32 and yb.shape[0] <= batch
    return time.perf_counter() - start


def feed_pyspark(rows: int, batch: int) -> float:
    """Seconds for pyspark's partition data loader to yield the same number of rows."""
    from pyspark.ml.torch.distributor import _get_spark_partition_data_loader

    start = time.perf_counter()
    seen = 0
    for parts in _get_spark_partition_data_loader(rows, batch, num_workers=0):
        seen += len(parts[1])
    assert seen == rows
    return time.perf_counter() - start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny, one round; for the tests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.rounds = 5_000, 1
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table, return the results."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spark_dl-feed-") as tmp:
        mine = write_partition_file(os.path.join(tmp, "ours"), args.rows, args.features)
        theirs_files = write_partition_file(os.path.join(tmp, "pyspark"), args.rows,
                                            args.features, with_flag=False)
        rounds = []
        runs = {
            "ours": lambda: (_use(mine), feed_ours(args.rows, args.features, args.batch))[1],
            "pyspark": lambda: (_use(theirs_files), feed_pyspark(args.rows, args.batch))[1],
            "hand": lambda: (_use(mine), feed_hand(args.rows, args.features, args.batch))[1],
        }
        order = random.Random(0)
        for _ in range(args.rounds + (0 if args.smoke else 1)):  # first round = warm-up
            names = list(runs)
            order.shuffle(names)
            rps = {name: args.rows / runs[name]() for name in names}
            rounds.append({**rps, "ratio": rps["ours"] / rps["pyspark"],
                           "ratio_hand": rps["ours"] / rps["hand"]})
        counted = rounds if args.smoke else rounds[1:]
    med = {k: statistics.median(r[k] for r in counted)
           for k in ("ours", "pyspark", "hand", "ratio", "ratio_hand")}
    status = "PASS" if med["ratio"] >= TARGET else "FAIL"
    status_hand = "PASS" if med["ratio_hand"] >= TARGET_HAND else "FAIL"
    print(f"\nrows={args.rows:,} features={args.features} batch={args.batch} "
          f"rounds={len(counted)}" + (" (smoke)" if args.smoke else ""))
    print("| feed | median rows/s |\n| --- | ---: |")
    print(f"| ours: load_rank_arrays + IndexStream batches | {med['ours']:,.0f} |")
    print(f"| pyspark: _get_spark_partition_data_loader | {med['pyspark']:,.0f} |")
    print(f"| hand: pyarrow.ipc + zero-copy numpy + randperm batches | {med['hand']:,.0f} |")
    print(f"\nours/pyspark median {med['ratio']:.1f}x "
          f"(min {min(r['ratio'] for r in counted):.1f}, max {max(r['ratio'] for r in counted):.1f});"
          f" target >= {TARGET:.0f}x: {status}")
    print(f"ours/hand median {med['ratio_hand']:.2f} "
          f"(min {min(r['ratio_hand'] for r in counted):.2f}, "
          f"max {max(r['ratio_hand'] for r in counted):.2f}); target >= {TARGET_HAND}: "
          f"{status_hand}")
    ok = med["ratio"] >= TARGET and med["ratio_hand"] >= TARGET_HAND
    return {"rounds": counted, "median": med, "target": TARGET, "target_hand": TARGET_HAND,
            "pass": ok}


def rows(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main`'s results (see :class:`bench.harness.Row`)."""
    m = r["median"]
    return [Row("feed", "ours/pyspark rows/s", f"{m['ratio']:.1f}", f">= {r['target']}",
                m["ratio"] >= r["target"]),
            Row("feed", "ours/hand-written rows/s", f"{m['ratio_hand']:.2f}",
                f">= {r['target_hand']}", m["ratio_hand"] >= r["target_hand"])]


if __name__ == "__main__":
    sys.exit(0 if main()["pass"] else 1)
