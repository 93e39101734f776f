"""Minimal Hadoop FileSystem access from the driver, for any path Spark can write.

Used for atomic model saves (write beside, then rename into place). Renames are atomic on
HDFS and local filesystems; on object stores without atomic rename (S3A) a crash during
the final rename can still leave a partial directory, which the loader then reports.
"""

from __future__ import annotations

from typing import Any


class HadoopFS:
    """The Hadoop FileSystem that owns ``path`` (resolved through the SparkContext's conf)."""

    def __init__(self, sc: Any, path: str) -> None:
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
