"""How model weights should reach the scoring workers under Spark Connect: closure or file.

Spark Connect has no broadcast variables. ``spark.dl.connect.weightsTransport`` chooses
between sending the weights inside the scoring UDF's closure (``closure``: with every task,
through the server's heap) and adding them to the session once as a file that each
executor fetches once (``file``). This benchmark finds the cut-over that ``auto`` uses.

One Connect client (this process) and a local ``local[2]`` server with Spark's default
1 GiB driver heap. For each network width H (MLP 4 -> H -> H -> 2, float32), every run
scores 2000 generated rows into Spark's ``noop`` sink with a model holding *fresh* random
weights, so each run pays the whole first-score cost: the transfer to the server, the
copy to the workers and the network build (a model already on the workers costs neither
arm anything). The arms are interleaved, the order reversed every other round, a warm-up
not counted; the figure is the median per-round ratio file / closure (below 1: the file
is faster). At the two largest widths (64 and 128 MB) only the file arm runs, once: the
closure stopped this server there when tried (recorded in ``bench/RESULTS.md``).

    .venv/bin/python -m bench.connect_weights [--widths 256,1024,2048,2896] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

from bench.harness import Row, interleave, summarize

ROWS, FEATURES = 2000, 4
#: Scored with the file arm only: the closure arm stopped the 1 GiB server (out of heap)
#: at 4096 (64 MB) when tried, which ends the benchmark.
FILE_ONLY_WIDTHS = (4096, 5800)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="256,1024,2048,2896")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny and cold: checks it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.widths, args.rounds, args.warmup = "64", 1, 0
    args.widths = [int(w) for w in args.widths.split(",")]
    return args


def fresh_model(width: int, seed: int) -> Any:
    """A classification model with new random weights (a new digest, so a cold score)."""
    import torch
    from safetensors.torch import save as st_save

    from spark_dl import TorchClassificationModel
    from spark_dl.model_spec import ModelSpec

    torch.manual_seed(seed)
    net = ModelSpec("mlp", {"hidden_layers": [width, width]}).build(
        in_features=FEATURES, out_features=2, input_shape=[FEATURES])
    weights = st_save({k: v.contiguous() for k, v in net.state_dict().items()})
    model = TorchClassificationModel._from_parts(weights, FEATURES, 2, [])
    model.set(model.modelParams, {"hidden_layers": [width, width]})
    return model


def score(spark: Any, width: int, transport: str, seed: list[int]) -> float:
    """Score the rows once with fresh weights sent by ``transport``; weights in MB."""
    from pyspark.sql import functions as F

    seed[0] += 1
    model = fresh_model(width, seed[0])
    spark.conf.set("spark.dl.connect.weightsTransport", transport)
    df = spark.range(ROWS).select(
        F.array(*[F.rand(i) for i in range(FEATURES)]).cast("array<float>").alias("features"))
    model.transform(df).write.format("noop").mode("overwrite").save()
    return len(model._weights) / 2**20


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from pyspark.sql import SparkSession

    from bench import connect_server

    os.environ.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
                      PYSPARK_DRIVER_PYTHON=sys.executable)
    seed = [0]
    sizes: dict[int, float] = {}
    summaries: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="spark_dl-bench-weights-") as tmp:
        with open(os.path.join(tmp, "server.log"), "w") as log:
            server, url = connect_server.start(
                log, extra_conf={"spark.ui.showConsoleProgress": "false"})
        try:
            spark = SparkSession.builder.remote(url).getOrCreate()
            for width in args.widths:
                sizes[width] = len(fresh_model(width, 0)._weights) / 2**20
                runs = {t: (lambda t=t, w=width: score(spark, w, t, seed))
                        for t in ("closure", "file")}
                per_round, _ = interleave(runs, args.rounds, args.warmup, f"H={width}",
                                          {"ratio": ("file", "closure")})
                summaries[width] = summarize(per_round)
            file_only = []
            for width in () if args.smoke else FILE_ONLY_WIDTHS:
                start = time.perf_counter()
                mb = score(spark, width, "file", seed)
                file_only.append({"width": width, "secs": time.perf_counter() - start,
                                  "mb": mb})
            spark.stop()
        finally:
            connect_server.stop(server)
    return {"args": vars(args), "sizes": sizes, "summary": summaries, "file_only": file_only}


def rows(result: dict[str, Any]) -> list[Row]:
    """File / closure per weight size (informational: it places the cut-over)."""
    out = []
    for width, s in result["summary"].items():
        out.append(Row("connect_weights", f"file / closure, {result['sizes'][width]:.1f} MB",
                       f"{s['ratio']['median']:.2f}x", "informational (cut-over)", None,
                       f"H={width}; closure {s['closure']['median']:.2f}s, file "
                       f"{s['file']['median']:.2f}s, {result['args']['rounds']} rounds"))
    for f in result.get("file_only", []):
        out.append(Row("connect_weights", f"file only, {f['mb']:.1f} MB", f"{f['secs']:.2f}s",
                       "scores (the closure stopped the server at 64 MB)", None,
                       f"H={f['width']}, one cold run"))
    return out


if __name__ == "__main__":
    from bench.harness import format_rows

    print(format_rows(rows(main())))
