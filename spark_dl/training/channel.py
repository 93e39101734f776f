"""A channel from every training rank back to the driver, independent of TorchDistributor.

TorchDistributor's return value is unreliable: in local mode every rank writes the same
output file (the last writer wins, often a rank that returned None), and it can report
success when another rank failed. So each rank writes its own completion report, or its
traceback, and rank 0 its trained weights, to a small key-value store (torch's
``TCPStore``) served by the driver. The driver then checks that every rank finished with
the same number of optimizer steps.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

_DONE = "spark_dl/done/{rank}"
_ERROR = "spark_dl/error/{rank}"
_RESULT_WEIGHTS = "spark_dl/result/weights"
_RESULT_META = "spark_dl/result/meta"


class ReportServer:
    """Driver-side store that ranks report to; close it when training ends."""

    def __init__(self, host: str) -> None:
        from torch.distributed import TCPStore

        self.host = host
        self._store = TCPStore(
            host, 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=30)
        )
        self.port = int(self._store.port)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` for :class:`ReportClient`."""
        return self.host, self.port

    def _get(self, key: str) -> str | None:
        if not self._store.check([key]):
            return None
        return self._store.get(key).decode("utf-8")

    def reports(self, world_size: int) -> dict[int, dict[str, Any]]:
        """Completion reports received, keyed by rank."""
        found = {}
        for rank in range(world_size):
            text = self._get(_DONE.format(rank=rank))
            if text is not None:
                found[rank] = json.loads(text)
        return found

    def errors(self, world_size: int) -> dict[int, dict[str, Any]]:
        """Failure reports (``traceback``, ``time``) received, keyed by rank."""
        found = {}
        for rank in range(world_size):
            text = self._get(_ERROR.format(rank=rank))
            if text is not None:
                found[rank] = json.loads(text)
        return found

    def result(self) -> dict[str, Any] | None:
        """Rank 0's result: ``weights`` (safetensors bytes) plus its JSON metadata, or None."""
        if not self._store.check([_RESULT_WEIGHTS, _RESULT_META]):
            return None
        meta = json.loads(self._store.get(_RESULT_META).decode("utf-8"))
        return {"weights": self._store.get(_RESULT_WEIGHTS), **meta}

    def close(self) -> None:
        """Stop serving (the store shuts down when released)."""
        self._store = None  # type: ignore[assignment]


class ReportClient:
    """Rank-side writer; never raises, since reporting must not mask the real error."""

    def __init__(self, address: tuple[str, int] | None, rank: int) -> None:
        self.rank = rank
        self._store = None
        if address is None:
            return
        try:
            from torch.distributed import TCPStore

            self._store = TCPStore(
                address[0], int(address[1]), is_master=False, timeout=timedelta(seconds=60)
            )
        except Exception:  # noqa: BLE001 - the driver will notice the missing report
            self._store = None

    def _set(self, key: str, payload: dict[str, Any]) -> None:
        if self._store is None:
            return
        try:
            self._store.set(key, json.dumps(payload))
        except Exception:  # noqa: BLE001
            pass

    def done(self, **report: Any) -> None:
        """Record that this rank finished training."""
        self._set(_DONE.format(rank=self.rank), {"rank": self.rank, **report})

    def result(self, weights: bytes, **meta: Any) -> None:
        """Publish rank 0's trained weights and metadata; raises if the driver is unreachable.

        The result goes through this store rather than TorchDistributor's return value,
        whose output file every local rank overwrites in turn.
        """
        if self._store is None:
            raise RuntimeError("Cannot reach the driver's report store to return the model.")
        self._store.set(_RESULT_WEIGHTS, weights)
        self._store.set(_RESULT_META, json.dumps(meta))

    def error(self, traceback_text: str) -> None:
        """Record this rank's traceback."""
        payload = {"rank": self.rank, "traceback": traceback_text, "time": time.time()}
        self._set(_ERROR.format(rank=self.rank), payload)
