"""The one adapter to everything beyond the DataFrame API, and to pyspark's versions.

Every branch on the pyspark version lives here, with the Spark change that needs it, and
so does every classic-only or private call: ``sparkContext``, ``_jsc``/``_jvm``, ``rdd``,
broadcast variables, the JVM Hadoop FileSystem, TorchDistributor's private DataFrame
entry point and ``toArrow``/``_collect_as_arrow``. The rest of the library calls these
functions, so serving Spark Connect (which has none of them) is a change to this module.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

MIN_PYSPARK = (3, 5)
logger = logging.getLogger(__name__)


def check_pyspark() -> None:
    """TorchDistributor's DataFrame input (``_train_on_dataframe``) arrived in Spark 3.5."""
    import pyspark

    version = tuple(int(p) for p in pyspark.__version__.split(".")[:2])
    if version < MIN_PYSPARK:
        raise RuntimeError(
            f"spark_dl needs pyspark >= {'.'.join(map(str, MIN_PYSPARK))} for TorchDistributor "
            f"training. Found {pyspark.__version__}."
        )


#: Values of the ``spark.dl.udf.kind`` conf.
UDF_KINDS = ("auto", "arrow", "pandas")


def arrow_udf(kind: str = "auto") -> Callable[..., Any] | None:
    """``pyspark.sql.functions.arrow_udf``, or None where the pandas-UDF fallback is used.

    Spark 4.1 added ``arrow_udf`` (iterator of ``pyarrow.Array`` in and out, no pandas);
    pyspark 3.5 and 4.0 have only ``pandas_udf``. ``kind`` is the ``spark.dl.udf.kind``
    conf: ``"pandas"`` forces the fallback (for testing it on a recent pyspark, or to work
    around an Arrow UDF problem), ``"arrow"`` refuses to fall back.
    """
    if kind not in UDF_KINDS:
        raise ValueError(f"Spark conf 'spark.dl.udf.kind' must be one of {list(UDF_KINDS)}. "
                         f"Got {kind!r}.")
    if kind == "pandas":
        return None
    try:
        from pyspark.sql.functions import arrow_udf as factory
    except ImportError:  # pyspark < 4.1
        if kind == "arrow":
            import pyspark

            raise ValueError(
                f"Spark conf 'spark.dl.udf.kind' is 'arrow', but pyspark {pyspark.__version__} "
                "has no arrow_udf (added in Spark 4.1). Set it to 'auto' or 'pandas'."
            ) from None
        return None
    return factory  # type: ignore[no-any-return]


def collect_arrow(df: DataFrame) -> pa.Table:
    """Collect a DataFrame to the driver as one Arrow table.

    ``DataFrame.toArrow`` arrived in Spark 4.0; pyspark 3.5 has only the private
    ``_collect_as_arrow``.
    """
    import pyarrow as pa

    if hasattr(df, "toArrow"):
        return df.toArrow()
    batches = df._collect_as_arrow()  # pyspark 3.5
    return pa.Table.from_batches(batches, schema=batches[0].schema) if batches else pa.table({})


def iter_arrow_batches(df: DataFrame, spill_dir: str) -> Iterator[pa.RecordBatch]:
    """The rows of ``df`` as Arrow record batches in partition order, without ever holding
    more than one batch in this process.

    Classic sessions: ``Dataset.collectAsArrowToPython`` (what ``toArrow`` and pyspark 3.5's
    ``_collect_as_arrow`` call) sends the batches in the order the tasks finish, then the
    order; pyspark keeps them all in a list to reorder them. Here each arriving batch is
    appended to an Arrow IPC file in ``spill_dir`` instead, and once the order is known the
    batches are read back from the file one at a time. Spark Connect: the
    client's ordered result stream (``to_table_as_iterator``, as ``toLocalIterator`` uses),
    table by table. Elsewhere (no such entry point) it falls back to :func:`collect_arrow`.
    """
    if is_connect(df.sparkSession):
        client = df.sparkSession.client
        if hasattr(client, "to_table_as_iterator"):  # pyspark >= 4.0
            plan = df._plan.to_proto(client)
            for item in client.to_table_as_iterator(plan, df._plan.observations):
                if hasattr(item, "to_batches"):  # a pyarrow.Table (else the schema)
                    yield from item.to_batches()
            return
    elif hasattr(df._jdf, "collectAsArrowToPython"):
        yield from _spilled_arrow_collect(df, spill_dir)
        return
    yield from collect_arrow(df).to_batches()


def _spilled_arrow_collect(df: DataFrame, spill_dir: str) -> Iterator[pa.RecordBatch]:
    import os

    import pyarrow as pa

    try:  # pyspark >= 4.0
        from pyspark.util import local_connect_and_auth
    except ImportError:  # pyspark 3.5
        from pyspark.java_gateway import local_connect_and_auth  # type: ignore[no-redef]
    from pyspark.serializers import UTF8Deserializer, read_int

    port, secret, server = df._jdf.collectAsArrowToPython()
    path = os.path.join(spill_dir, "collected.arrow")
    sockfile, sock = local_connect_and_auth(port, secret)
    try:
        sock.settimeout(None)
        writer = None
        reader = pa.ipc.open_stream(sockfile)
        for batch in reader:  # in the order the tasks finished
            if writer is None:
                writer = pa.ipc.new_file(pa.OSFile(path, "wb"), batch.schema)
            writer.write_batch(batch)
            del batch
        if writer is not None:
            writer.close()
        count = read_int(sockfile)
        if count == -1:
            message = UTF8Deserializer().loads(sockfile)
            raise RuntimeError(f"Collecting the training rows failed in the JVM: {message}")
        order = [read_int(sockfile) for _ in range(count)]
    finally:
        sockfile.close()
        sock.close()
        server.getResult()  # raises the JVM's own error, if any
    if writer is None:
        return
    # Read, not memory-mapped: mapped pages would count in this process's resident memory.
    try:
        with pa.OSFile(path, "rb") as source:
            spilled = pa.ipc.open_file(source)
            for i in order:
                yield spilled.get_batch(i)
    finally:
        os.remove(path)  # the shards now hold the rows: do not keep them twice on disk


# ---------------------------------------------------------------------- session type
def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect session (no SparkContext, no JVM)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def active_session() -> SparkSession:
    """The active SparkSession, or the default one (as pyspark's readers and writers)."""
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()


# ---------------------------------------------------------------------- by session type
#: Per Connect session (by session id): the default parallelism probed once.
_PARALLELISM: dict[str, int] = {}


def default_parallelism(spark: Any, *, probe: bool = True) -> int:
    """The task slots Spark plans with (``SparkContext.defaultParallelism``).

    Spark Connect has no SparkContext: ``spark.default.parallelism`` when set, else the
    partitions of ``spark.range`` (which Spark makes ``defaultParallelism`` of), probed by
    one small job per session and remembered. ``probe=False`` (for ``transform()``, which
    runs no job) reads the slots from the settings instead (:func:`slots_from_conf`).
    """
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    conf = spark.conf.get("spark.default.parallelism", None)
    if conf:
        return int(conf)
    key = str(getattr(spark, "session_id", id(spark)))
    if key not in _PARALLELISM and not probe:
        return slots_from_conf(lambda k: spark.conf.get(k, None))
    if key not in _PARALLELISM:
        from pyspark.sql import functions as F

        ids = spark.range(0, 1 << 20).select(F.spark_partition_id().alias("p"))
        _PARALLELISM[key] = max(1, int(ids.agg(F.max("p")).first()[0]) + 1)
    return _PARALLELISM[key]


def slots_from_conf(get: Callable[[str], str | None]) -> int:
    """Task slots as the settings give them, without a job: ``local[N]`` (or
    ``local-cluster[n, cores, mem]``) masters, else ``spark.executor.instances`` times
    ``spark.executor.cores``, else ``spark.sql.shuffle.partitions`` (Spark's default 200 is
    far more tasks than a small cluster has slots, hence the order)."""
    import re

    master = (get("spark.master") or "").strip()
    local = re.fullmatch(r"local(?:\[(\d+)(?:,\s*\d+)?\])?", master)
    if local:
        return int(local.group(1) or 1)
    cluster = re.fullmatch(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,.*\]", master)
    if cluster:
        return int(cluster.group(1)) * int(cluster.group(2))
    instances, cores = get("spark.executor.instances"), get("spark.executor.cores")
    if instances and cores and instances.isdigit() and cores.isdigit():
        return max(1, int(instances) * int(cores))
    return int(get("spark.sql.shuffle.partitions") or "200")


def num_partitions(df: DataFrame) -> int | None:
    """How many partitions ``df`` has (``df.rdd.getNumPartitions()``); None under Spark
    Connect, which has no RDDs (callers count the partitions their own job sees)."""
    if is_connect(df.sparkSession):
        return None
    return int(df.rdd.getNumPartitions())


def max_concurrent_tasks(spark: Any) -> int | None:
    """Spark's own count of tasks the cluster can run at once with the default resource
    profile (it divides each executor's cores by ``spark.task.cpus``); None where the
    private JVM call is unavailable (Spark Connect, or a pyspark without it)."""
    if is_connect(spark):
        return None
    try:
        jsc = spark.sparkContext._jsc.sc()
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # noqa: BLE001 - private JVM API
        return None


#: Under Spark Connect (``spark.dl.connect.weightsTransport=auto``), values up to this size
#: travel in the UDF's closure and larger ones as a session file (measured cut-over, see
#: :func:`broadcast`).
INLINE_MAX_BYTES = 16 * 2**20
#: Values of the ``spark.dl.connect.weightsTransport`` conf.
TRANSPORTS = ("auto", "closure", "file")


class Inline:
    """A value shipped inside the UDF's closure, read like a Broadcast (``.value``)."""

    def __init__(self, value: Any) -> None:
        self.value = value


class SessionFile:
    """A value the workers read from a file added to the Spark Connect session
    (``SparkSession.addArtifacts(path, file=True)``), read like a Broadcast (``.value``).

    Spark Connect copies such a file once to each executor, into the session's own
    directory, which is ``SparkFiles.getRootDirectory()`` (and the working directory) of
    the session's Python workers. The name holds the value's SHA-256, so one name always
    means one content; the size is checked on read.
    """

    def __init__(self, name: str, size: int, digest: str) -> None:
        self.name, self.size, self.digest = name, size, digest

    @property
    def value(self) -> bytes:
        import os

        roots = [os.getcwd()]
        try:
            from pyspark import SparkFiles

            roots.insert(0, SparkFiles.getRootDirectory())
        except Exception:  # noqa: BLE001 - no Spark files root in this process
            pass
        for root in roots:
            path = os.path.join(root, self.name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    data = f.read()
                if len(data) != self.size:
                    raise RuntimeError(f"Session file {path} holds {len(data)} bytes; "
                                       f"{self.size} were added. It was changed or truncated.")
                return data
        raise FileNotFoundError(
            f"Session file {self.name!r} (model weights) is not in {roots}: the Spark "
            "Connect session that added it has ended, or the server does not distribute "
            "session artifacts. Set spark.dl.connect.weightsTransport=closure to send the "
            "weights inside the scoring UDF instead.")


def broadcast(spark: Any, value: Any, cached: tuple[Any, Any] | None) -> tuple[Any, Any]:
    """``value`` for the executors as ``(owner, handle)``, ``handle.value`` giving it back.

    Classic sessions broadcast it (sent once per executor, reused by every task);
    ``cached`` (an earlier result) is reused while it belongs to the same SparkContext.
    Spark Connect has no broadcast variables. There, by the Spark conf
    ``spark.dl.connect.weightsTransport``: ``"closure"`` sends the value inside the UDF's
    closure, so with every task and through the server's heap; ``"file"`` adds it (bytes
    only: model weights) to the session once as a file (:class:`SessionFile`) that each
    executor fetches once; ``"auto"`` (default) takes the closure up to
    :data:`INLINE_MAX_BYTES` (16 MiB) and the file above. Measured
    (``python -m bench.connect_weights``, ``bench/RESULTS.md``) on a ``local[2]`` server
    with a 1 GiB heap, a cold first score of 2000 rows: up to 34 MB the two take the same
    time within noise (file / closure 1.02x-1.24x: the file adds a fixed ~0.3 s), and at
    64 MB the closure stopped the server (out of heap) while the file scored 64 MB in
    8.5 s and 128 MB in 12.8 s. 16 MiB leaves the closure a margin below where it broke.
    """
    if not is_connect(spark):
        sc = spark.sparkContext
        if cached is not None and cached[0] is sc._jsc:
            return cached
        return sc._jsc, sc.broadcast(value)
    from spark_dl import conf

    transport = conf.get_str(spark, conf.CONNECT_WEIGHTS)
    if transport not in TRANSPORTS:
        raise ValueError(f"Spark conf {conf.CONNECT_WEIGHTS[0]!r} must be one of "
                         f"{list(TRANSPORTS)}. Got {transport!r}.")
    size = len(value) if isinstance(value, (bytes, bytearray)) else None  # None: not a file
    if size is None or transport == "closure" or (transport == "auto"
                                                   and size <= INLINE_MAX_BYTES):
        if cached is not None and isinstance(cached[1], Inline) and cached[1].value is value:
            return cached
        return None, Inline(value)
    import hashlib

    digest = hashlib.sha256(value).hexdigest()
    owner = getattr(spark, "session_id", None)
    if (cached is not None and isinstance(cached[1], SessionFile)
            and cached[0] == owner and cached[1].digest == digest):
        return cached
    return owner, _add_session_file(spark, value, digest)


def _add_session_file(spark: Any, value: bytes, digest: str) -> SessionFile:
    import os
    import tempfile

    name = f"spark_dl-{digest[:32]}.bin"
    with tempfile.TemporaryDirectory(prefix="spark_dl-") as folder:
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(value)
        spark.addArtifacts(path, file=True)
    logger.info("Spark Connect: %.1f MB of model weights added to the session as %s.",
                len(value) / 2**20, name)
    return SessionFile(name, len(value), digest)


def set_log_level(spark: Any, level: str) -> None:
    """``SparkContext.setLogLevel`` (a Connect server's log level is the server's own)."""
    if not is_connect(spark):
        spark.sparkContext.setLogLevel(level)


def read_text_lines(spark: Any, path: str) -> list[str]:
    """Every line of the text files at ``path`` (a file or folder, any Hadoop filesystem)."""
    return [str(row[0]) for row in spark.read.text(path).collect()]


def train_on_dataframe(distributor: Any, fn: Callable[..., Any], df: DataFrame,
                       *args: Any) -> Any:
    """Run ``fn(*args)`` in TorchDistributor's barrier tasks with ``df``'s partitions as the
    ranks' input (the private entry point behind ``TorchDistributor.train_on_dataframe``)."""
    return distributor._train_on_dataframe(fn, df, *args)


def save_metadata(instance: Any, path: str, spark: Any, extra: dict[str, Any]) -> None:
    """Spark's ``DefaultParamsWriter`` metadata JSON (class, uid, Params, ``extra``)."""
    from pyspark.ml.util import DefaultParamsWriter

    owner = spark if is_connect(spark) else spark.sparkContext  # pyspark 4 takes a session
    DefaultParamsWriter.saveMetadata(instance, path, owner, extraMetadata=extra)


def load_metadata(path: str, spark: Any) -> dict[str, Any]:
    """What :func:`save_metadata` wrote."""
    from pyspark.ml.util import DefaultParamsReader

    owner = spark if is_connect(spark) else spark.sparkContext
    return dict(DefaultParamsReader.loadMetadata(path, owner))


def filesystem(spark: Any, path: str) -> HadoopFS | ArrowFS:
    """The filesystem that owns ``path``: Hadoop's through the JVM on classic sessions;
    under Spark Connect pyarrow's, from the client (local paths then mean the client's
    disk, which is the server's only when both run on one machine)."""
    return ArrowFS(path) if is_connect(spark) else HadoopFS(spark, path)


class HadoopFS:
    """The Hadoop FileSystem that owns ``path``, from the driver, for any path Spark can
    write (resolved through the session's Hadoop configuration).

    Used for atomic saves (write beside, then rename into place). Renames are atomic on
    HDFS and local filesystems; on object stores without atomic rename (S3A) a crash during
    the final rename can still leave a partial directory, which the loader then reports.
    """

    def __init__(self, spark: Any, path: str) -> None:
        sc = spark.sparkContext
        self._jvm = sc._jvm
        self._conf = sc._jsc.hadoopConfiguration()
        self._fs = self._path(path).getFileSystem(self._conf)

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(self._path(path)))

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"Could not rename {src!r} to {dst!r}.")

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def metadata_dirs(self, root: str) -> list[str]:
        """Every directory named ``metadata`` below ``root`` (recursively), as paths."""
        found = set()
        files = self._fs.listFiles(self._path(root), True)
        while files.hasNext():
            parent = files.next().getPath().getParent()
            if parent.getName() == "metadata":
                found.add(parent.toString())
        return sorted(found)

    def siblings(self, pattern: str) -> list[str]:
        """Paths matching a glob ``pattern``, sorted by modification time (oldest first)."""
        statuses = self._fs.globStatus(self._path(pattern)) or []
        found = [(s.getModificationTime(), s.getPath().toString()) for s in statuses]
        return [p for _, p in sorted(found)]


class ArrowFS:
    """:class:`HadoopFS`'s operations through ``pyarrow.fs`` (no JVM: Spark Connect)."""

    def __init__(self, path: str) -> None:
        self._fs, _ = self._resolve(path)

    @staticmethod
    def _resolve(path: str) -> tuple[Any, str]:
        from pyarrow import fs

        import os

        return fs.FileSystem.from_uri(path if "://" in path else
                                      f"file://{os.path.abspath(path)}")

    def _p(self, path: str) -> str:
        return str(self._resolve(path)[1])

    def exists(self, path: str) -> bool:
        from pyarrow import fs

        return bool(self._fs.get_file_info(self._p(path)).type != fs.FileType.NotFound)

    def rename(self, src: str, dst: str) -> None:
        self._fs.move(self._p(src), self._p(dst))

    def delete(self, path: str) -> None:
        from pyarrow import fs

        info = self._fs.get_file_info(self._p(path))
        if info.type == fs.FileType.Directory:
            self._fs.delete_dir(self._p(path))
        elif info.type != fs.FileType.NotFound:
            self._fs.delete_file(self._p(path))

    def metadata_dirs(self, root: str) -> list[str]:
        """Every directory named ``metadata`` below ``root`` (recursively), as paths."""
        from pyarrow import fs

        infos = self._fs.get_file_info(fs.FileSelector(self._p(root), recursive=True))
        return sorted(i.path for i in infos
                      if i.type == fs.FileType.Directory and i.base_name == "metadata")

    def siblings(self, pattern: str) -> list[str]:
        """Paths matching a glob ``pattern`` in its folder, oldest first."""
        import fnmatch
        import posixpath

        from pyarrow import fs

        folder, name = posixpath.split(self._p(pattern))
        infos = self._fs.get_file_info(fs.FileSelector(folder or "/", allow_not_found=True))
        found = [(i.mtime_ns or 0, i.path) for i in infos if fnmatch.fnmatch(i.base_name, name)]
        return [p for _, p in sorted(found)]
