"""The ``spark-dl`` command.

``spark-dl run conf/<pipeline>.yaml`` runs an end-to-end pipeline; ``spark-dl score
--model M --input I --output O`` scores data with a saved model, reading and writing
through Spark (nothing is collected on the driver), for nightly batch jobs. Errors in
the command line or the config print one line naming what to fix and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import urlparse

from spark_dl.compat import filesystem, read_text_lines
from spark_dl.jobs.config import ConfigError

FORMATS = ("parquet", "csv", "json", "orc", "table")
#: Packages whose saved stages the score command will load (metadata names the class).
TRUSTED_PREFIXES = ("pyspark.ml.", "spark_dl.")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spark-dl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline from its YAML config")
    run.add_argument("config", help="path to a YAML config, e.g. conf/fraud_detection.yaml")
    _run_options(run)
    score = sub.add_parser("score", help="score data with a saved PipelineModel")
    score.add_argument("--model", required=True, help="path of a saved PipelineModel or model")
    score.add_argument("--input", required=True, help="input path (or table name)")
    score.add_argument("--output", required=True, help="output path (or table name)")
    score.add_argument("--input-format", choices=FORMATS, default=None,
                       help="default: from the input's extension, else parquet")
    score.add_argument("--output-format", choices=FORMATS, default="parquet")
    score.add_argument("--columns", default=None,
                       help="comma-separated columns to write (default: all; ML vectors "
                            "are written as arrays of doubles)")
    score.add_argument("--overwrite", action="store_true", help="replace existing output")
    score.add_argument("--master", default="local[*]",
                       help="Spark master when not launched by spark-submit")
    score.add_argument("--remote", default=None, metavar="sc://HOST:PORT",
                       help="score from a Spark Connect client of this server")
    score.add_argument("--verbose", action="store_true", help="Spark's INFO logs and progress")
    stream = score.add_argument_group(
        "streaming", "score --input as a Structured Streaming source: each file (or table "
        "row) once, appended to --output, resumable from --checkpoint")
    stream.add_argument("--stream", action="store_true", help="score as a streaming query")
    stream.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="the query's checkpoint folder (required with --stream); rerun "
                             "with the same one to score only what arrived since")
    stream.add_argument("--trigger-seconds", type=float, default=None, metavar="S",
                        help="keep running, one micro-batch every S seconds, until stopped "
                             "(default: score everything available now, then exit)")
    _embed_parser(sub)
    return p


def _embed_parser(sub: Any) -> None:
    embed = sub.add_parser("embed", help="write text embeddings of a table with a pretrained "
                                         "Hugging Face encoder (needs spark-dl[hf])")
    embed.add_argument("--model-dir", required=True,
                       help="folder written by save_pretrained: tokenizer.json, config.json, "
                            "model.safetensors (local, mounted, or hdfs:// / s3:// / gs://)")
    embed.add_argument("--input", required=True, help="input path (or table name)")
    embed.add_argument("--output", required=True, help="output path (or table name)")
    embed.add_argument("--text-col", default="text", help="the text column (default: text)")
    embed.add_argument("--output-col", default="embedding")
    embed.add_argument("--max-length", type=int, default=128, help="tokens per text")
    embed.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    embed.add_argument("--normalize", action="store_true", help="unit L2 norm")
    embed.add_argument("--batch-size", type=int, default=64, help="rows per forward pass")
    embed.add_argument("--columns", default=None,
                       help="comma-separated input columns to keep beside the embedding "
                            "(default: all)")
    embed.add_argument("--input-format", choices=FORMATS, default=None)
    embed.add_argument("--output-format", choices=FORMATS, default="parquet")
    embed.add_argument("--overwrite", action="store_true", help="replace existing output")
    embed.add_argument("--master", default="local[*]")
    embed.add_argument("--remote", default=None, metavar="sc://HOST:PORT")
    embed.add_argument("--verbose", action="store_true", help="Spark's INFO logs and progress")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (YAML syntax), e.g. training.max_epochs=3")
    p.add_argument("--remote", default=None, metavar="sc://HOST:PORT",
                   help="run as a Spark Connect client of this server (spark.remote)")
    p.add_argument("--verbose", action="store_true", help="Spark's INFO logs and progress")
    p.add_argument("--mlflow", action="store_true",
                   help="track the run in MLflow (tracking.mlflow=true; the tracking server is "
                        "MLFLOW_TRACKING_URI's)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spark-dl``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args.config, _with_remote(args), args.verbose)
        if args.command == "embed":
            return _embed(args)
        return _score(args)
    except ConfigError as exc:
        print(f"spark-dl: error: {exc}", file=sys.stderr)
        return 2


def run_pipeline(name: str, argv: list[str] | None = None) -> int:
    """Entry point of ``pipelines/<name>.py`` (``--config`` defaults to conf/<name>.yaml)."""
    p = argparse.ArgumentParser(prog=f"pipelines/{name}.py",
                                description=f"Run the {name} pipeline.")
    p.add_argument("--config", default=os.path.join("conf", f"{name}.yaml"))
    _run_options(p)
    args = p.parse_args(argv)
    try:
        return _run(args.config, _with_remote(args), args.verbose, expected=name)
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2


def _with_remote(args: argparse.Namespace) -> list[str]:
    return (args.set + ([f"spark.remote={args.remote}"] if args.remote else [])
            + (["tracking.mlflow=true"] if args.mlflow else []))


def _run(config: str, overrides: list[str], verbose: bool, expected: str | None = None) -> int:
    from spark_dl.jobs.runner import load, run

    cfg = load(config, overrides)
    if expected and cfg["pipeline"] != expected:
        raise ConfigError(f"{config} configures pipeline {cfg['pipeline']!r}, not {expected!r}.")
    run(cfg, verbose=verbose)
    return 0


# ---------------------------------------------------------------------- score
def _score(args: argparse.Namespace) -> int:
    _check_stream_args(args)
    spark = _session(args.master, args.verbose, args.remote)
    model = load_model(spark, args.model)
    df = _read(spark, args.input, args.input_format)
    if args.stream:
        df = _read_stream(spark, args.input, args.input_format, df)
    scored = model.transform(df)
    cols = ([c.strip() for c in args.columns.split(",") if c.strip()] if args.columns
            else scored.columns)
    missing = [c for c in cols if c not in scored.columns]
    if missing:
        raise ConfigError(f"--columns {missing} are not in the scored data: {scored.columns}.")
    if args.stream:
        return _score_stream(_portable(scored.select(*cols)), args, cols)
    _write(_portable(scored.select(*cols)), args)
    print(f"spark-dl score: wrote {', '.join(cols)} to {args.output} ({args.output_format})")
    return 0


def _embed(args: argparse.Namespace) -> int:
    """Tokenize and embed ``--text-col``; write the kept columns and the embedding."""
    from spark_dl import HFTokenizer, TextEmbedder

    spark = _session(args.master, args.verbose, args.remote)
    df = _read(spark, args.input, args.input_format)
    keep = ([c.strip() for c in args.columns.split(",") if c.strip()] if args.columns
            else [c for c in df.columns if c != args.output_col])
    missing = [c for c in keep + [args.text_col] if c not in df.columns]
    if missing:
        raise ConfigError(f"--columns / --text-col {missing} are not in the input: "
                          f"{df.columns}.")
    ids, mask = "__spark_dl_ids", "__spark_dl_mask"
    tokens = HFTokenizer(inputCol=args.text_col, outputCol=ids, attentionMaskCol=mask,
                         tokenizerPath=args.model_dir, maxLength=args.max_length)
    embedder = TextEmbedder(inputCol=ids, attentionMaskCol=mask, outputCol=args.output_col,
                            modelPath=args.model_dir, pooling=args.pooling,
                            normalize=args.normalize, batchSize=args.batch_size)
    try:
        out = embedder.transform(tokens.transform(df))
    except FileNotFoundError as exc:
        raise ConfigError(f"--model-dir: {exc}") from None
    except ValueError as exc:  # a bad folder names its path; a bad option its Param
        raise ConfigError(str(exc)) from None
    _write(out.select(*keep, args.output_col), args)
    print(f"spark-dl embed: wrote {', '.join(keep + [args.output_col])} to {args.output} "
          f"({args.output_format})")
    return 0


def _write(df: Any, args: argparse.Namespace) -> None:
    """Write ``df`` to ``--output`` as ``--output-format`` (a table with ``table``)."""
    writer = df.write.mode("overwrite" if args.overwrite else "error")
    try:
        if args.output_format == "table":
            writer.saveAsTable(args.output)
        else:
            writer.format(args.output_format).save(args.output)
    except Exception as exc:  # AnalysisException: path exists, no permission, ...
        first = str(exc).splitlines()[0]
        if "already exists" in first:
            raise ConfigError(f"--output {args.output!r} already exists; pass --overwrite to "
                              "replace it.") from None
        raise


def _check_stream_args(args: argparse.Namespace) -> None:
    if not args.stream:
        if args.checkpoint or args.trigger_seconds is not None:
            raise ConfigError("--checkpoint and --trigger-seconds need --stream.")
        return
    if not args.checkpoint:
        raise ConfigError("--stream needs --checkpoint PATH: the query records there what it "
                          "has scored, so that a rerun scores each input once.")
    if args.overwrite:
        raise ConfigError("--stream appends to --output; --overwrite does not apply (use a "
                          "new --output and --checkpoint to start over).")
    if args.trigger_seconds is not None and args.trigger_seconds <= 0:
        raise ConfigError(f"--trigger-seconds must be > 0. Got {args.trigger_seconds}.")


def _read_stream(spark: Any, path: str, fmt: str | None, batch: Any) -> Any:
    """``path`` as a streaming source, with the schema of the data already there."""
    fmt = fmt or _format_of(path)
    if fmt == "table":
        return spark.readStream.table(path)
    reader = spark.readStream.schema(batch.schema)
    if fmt == "csv":
        reader = reader.option("header", "true")
    return reader.format(fmt).load(path)


def _score_stream(scored: Any, args: argparse.Namespace, cols: list[str]) -> int:
    writer = scored.writeStream.outputMode("append").option("checkpointLocation",
                                                            args.checkpoint)
    if args.trigger_seconds is None:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{args.trigger_seconds} seconds")
    if args.output_format == "table":
        query = writer.toTable(args.output)
    else:
        query = writer.format(args.output_format).option("path", args.output).start()
    print(f"spark-dl score: streaming {', '.join(cols)} to {args.output} "
          f"({args.output_format}), checkpoint {args.checkpoint}", flush=True)
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()
    if query.exception() is not None:
        raise RuntimeError(f"spark-dl score --stream failed: {query.exception()}")
    progress = query.lastProgress
    rows = progress["numInputRows"] if progress else 0
    print(f"spark-dl score: the query stopped; its last micro-batch scored {rows} rows")
    return 0


def _session(master: str, verbose: bool, remote: str | None = None) -> Any:
    from spark_dl.jobs.session import spark_session

    return spark_session("spark-dl-score", master, {}, verbose, remote=remote)


def load_model(spark: Any, path: str) -> Any:
    """Load a saved PipelineModel or single model, refusing paths that hold neither.

    Every class named in the metadata (the model's and each pipeline stage's) must be a
    ``pyspark.ml`` or ``spark_dl`` class, checked before pyspark imports any of them. An
    overwrite that a crash interrupted (:func:`spark_dl.persistence.save_atomic`) is
    recovered: the previous model is loaded.
    """
    import importlib

    from spark_dl.persistence import recover

    fs = filesystem(spark, path.rstrip("/"))
    path = recover(fs, path.rstrip("/"))
    try:
        text = read_text_lines(spark, f"{path}/metadata")[0]
        cls_name = json.loads(text)["class"]
    except Exception:
        raise ConfigError(f"--model {path!r} is not a saved model: it has no readable "
                          "metadata/ folder (save one with model.write().save(path)).") from None
    for name in _metadata_classes(spark, fs, path):  # the model's own and every stage's
        _check_trusted(path, name)
    module, _, name = _python_class(cls_name).rpartition(".")
    return getattr(importlib.import_module(module), name).load(path)


def _python_class(name: str) -> str:
    return name.replace("org.apache.spark.", "pyspark.", 1)  # as pyspark's reader


def _check_trusted(path: str, cls_name: str) -> None:
    if not _python_class(cls_name).startswith(TRUSTED_PREFIXES):
        raise ConfigError(f"--model {path!r} holds a {cls_name}; only pyspark.ml and spark_dl "
                          "models are loaded.")


def _metadata_classes(spark: Any, fs: Any, path: str) -> list[str]:
    """The classes named by every metadata folder at or below ``path``: the model, a
    PipelineModel's stages, nested pipelines, a tuning model's best model, at any depth."""
    classes = []
    for folder in fs.metadata_dirs(path):
        for text in read_text_lines(spark, folder):
            if text.strip():
                classes.append(json.loads(text)["class"])
    return classes


def _read(spark: Any, path: str, fmt: str | None) -> Any:
    fmt = fmt or _format_of(path)
    if fmt == "table":
        return spark.table(path)
    url = urlparse(path)
    if url.scheme in ("", "file") and not os.path.exists(url.path):
        raise ConfigError(f"--input {path!r} does not exist.")
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    try:
        return reader.format(fmt).load(path)
    except Exception as exc:
        raise ConfigError(f"--input {path!r} could not be read as {fmt}: "
                          f"{str(exc).splitlines()[0]}") from None


def _format_of(path: str) -> str:
    ext = os.path.splitext(path.rstrip("/"))[1].lstrip(".").lower()
    return ext if ext in ("csv", "json", "orc", "parquet") else "parquet"


def _portable(df: Any) -> Any:
    """ML Vector columns as array<double>, which every output format can hold."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F

    return df.select(*[vector_to_array(F.col(f.name)).alias(f.name)
                       if isinstance(f.dataType, VectorUDT) else F.col(f.name)
                       for f in df.schema.fields])


if __name__ == "__main__":
    sys.exit(main())
