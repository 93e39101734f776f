"""TextEmbedder throughput against a hand-written pandas UDF and an in-process loop.

Rows per second on the same tokenized rows (``input_ids`` / ``attention_mask`` of
``--max-length`` ints, cached and counted before timing) with the same encoder: a BERT of
``--layers`` layers and ``--hidden`` units built locally (``tests/helpers/hf_tiny.py``),
texts of 1 to 60 words, so lengths vary as real text does.

* ``ours``: ``TextEmbedder(pooling="mean", batchSize=B).transform(df)``, noop write.
* ``pudf``: what a careful user writes: an iterator ``pandas_udf`` over the two columns that
  builds ``AutoModel.from_pretrained`` once per Python worker, sets one torch thread per
  task (as ours), and runs batches of B rows in their order, each cut to its longest row,
  with the same mean pooling; noop write.
* ``loop``: the encoder in-process on the driver over the same arrays (collected before
  timing), both cores (``torch.set_num_threads(2)``), batches of B rows sorted by length
  (as ours), the same pooling.

Targets: ours >= 1.3x pudf, ours >= 0.85x loop. Arms interleave, the order alternated
every round, a warm-up not counted, medians of per-round ratios.
Run: ``python -m bench.text_embedder`` (``--smoke`` for a tiny run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any, Iterator, Tuple

import numpy as np
import pandas as pd

from bench.harness import Row, format_rows, get_spark, interleave, noop_write, summarize

HELPERS = os.path.join(os.path.dirname(__file__), "..", "tests", "helpers")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.rows, args.rounds, args.hidden, args.layers = 400, 1, 32, 1
    return args


def _model_dir(args: argparse.Namespace) -> str:
    sys.path.insert(0, os.path.abspath(HELPERS))
    from hf_tiny import build

    return build(tempfile.mkdtemp(prefix="spark_dl-bench-hf-"), hidden=args.hidden,
                 layers=args.layers)


def _tokens(spark: Any, folder: str, args: argparse.Namespace) -> Any:
    from spark_dl import HFTokenizer

    rng = np.random.default_rng(0)
    words = ["good", "bad", "movie", "plot", "the", "was", "and", "film", "story", "ending"]
    texts = [(i, " ".join(rng.choice(words, size=rng.integers(1, 61))))
             for i in range(args.rows)]
    df = spark.createDataFrame(texts, "id long, text string").repartition(2)
    tok = HFTokenizer(tokenizerPath=folder, maxLength=args.max_length)
    out = tok.transform(df).select("id", "input_ids", "attention_mask").cache()
    assert out.count() == args.rows
    return out


def _pandas_udf(folder: str, batch: int) -> Any:
    from pyspark.sql.functions import pandas_udf

    state: dict[str, Any] = {}

    def embed(batches: Iterator[Tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        import torch
        from transformers import AutoModel

        torch.set_num_threads(1)
        if "model" not in state:
            state["model"] = AutoModel.from_pretrained(folder).eval()
        model = state["model"]
        for ids, mask in batches:
            x, m = np.stack(ids.to_numpy()), np.stack(mask.to_numpy())
            out = []
            with torch.inference_mode():
                for s in range(0, len(x), batch):
                    width = max(int(m[s:s + batch].sum(1).max()), 1)
                    xi = torch.from_numpy(x[s:s + batch, :width].astype(np.int64))
                    mi = torch.from_numpy(m[s:s + batch, :width].astype(np.int64))
                    h = model(input_ids=xi, attention_mask=mi).last_hidden_state
                    w = mi.unsqueeze(-1).float()
                    out.extend(((h * w).sum(1) / w.sum(1)).numpy())
            yield pd.Series(out, index=ids.index)

    return pandas_udf(embed, "array<float>")


def _loop(folder: str, ids: np.ndarray, mask: np.ndarray, batch: int) -> np.ndarray:
    import torch
    from transformers import AutoModel

    torch.set_num_threads(2)
    model = AutoModel.from_pretrained(folder).eval()
    lengths = mask.sum(1)
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros((len(ids), model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for s in range(0, len(ids), batch):
            rows = order[s:s + batch]
            width = max(int(lengths[rows].max()), 1)
            x = torch.from_numpy(ids[rows, :width].astype(np.int64))
            m = torch.from_numpy(mask[rows, :width].astype(np.int64))
            h = model(input_ids=x, attention_mask=m).last_hidden_state
            w = m.unsqueeze(-1).float()
            out[rows] = ((h * w).sum(1) / w.sum(1)).numpy()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Time the three arms; print a table; return the results."""
    from pyspark.sql import functions as F

    from spark_dl import TextEmbedder

    args = parse_args(argv)
    spark, created = get_spark()
    try:
        folder = _model_dir(args)
        df = _tokens(spark, folder, args)
        collected = df.orderBy("id").collect()
        ids = np.array([r.input_ids for r in collected], np.int64)
        mask = np.array([r.attention_mask for r in collected], np.int64)
        ours = TextEmbedder(modelPath=folder, batchSize=args.batch)
        pudf = _pandas_udf(folder, args.batch)
        arms = {
            "ours": lambda: noop_write(ours.transform(df)),
            "pudf": lambda: noop_write(df.withColumn(
                "embedding", pudf(F.col("input_ids"), F.col("attention_mask")))),
            "loop": lambda: _loop(folder, ids, mask, args.batch),
        }
        per_round, _ = interleave(arms, args.rounds, 1, "embedding",
                                  {"ours_vs_pudf": ("pudf", "ours"),
                                   "ours_vs_loop": ("loop", "ours")})
        got = np.array([r.embedding for r in ours.transform(df).orderBy("id").collect()])
        ref = _loop(folder, ids, mask, args.batch)
        assert np.abs(got - ref).max() < 1e-4, "TextEmbedder and the loop disagree"
        s = summarize(per_round)
        result = {"summary": s, "config": vars(args), "smoke": args.smoke,
                  "rows_per_s": {k: args.rows / s[k]["median"] for k in arms}}
        result["pass"] = None if args.smoke else (
            s["ours_vs_pudf"]["median"] >= 1.3 and s["ours_vs_loop"]["median"] >= 0.85)
        print(format_rows(rows_of(result)))
        return result
    finally:
        if created:
            spark.stop()


def rows_of(r: dict[str, Any]) -> list[Row]:
    """The result rows of :func:`main` (see :class:`bench.harness.Row`)."""
    s, rate = r["summary"], r["rows_per_s"]
    status = None if r["smoke"] else r["pass"]
    note = ", ".join(f"{k} {v:,.0f} rows/s" for k, v in rate.items())
    return [
        Row("text_embedder", "TextEmbedder / hand-written pandas_udf (rows/s)",
            f"{s['ours_vs_pudf']['median']:.2f}", ">= 1.3", status, note),
        Row("text_embedder", "TextEmbedder / in-process loop (rows/s)",
            f"{s['ours_vs_loop']['median']:.2f}", ">= 0.85", status, ""),
    ]


rows = rows_of  # bench/run_all's interface


if __name__ == "__main__":
    sys.exit(0 if main()["pass"] is not False else 1)
