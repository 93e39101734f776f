"""How training ranks report back: through their own store and rank 0's result, never a socket
to the driver.

Under Spark Connect the Python driver of a fit is the client (a notebook, a laptop), which
executors may not be able to reach, so nothing here opens a connection toward it.

- Every rank writes its outcome (a completion report, or its traceback) to the key-value
  store its torchrun group already shares: torch's ``TCPStore`` at ``MASTER_ADDR:MASTER_PORT``,
  served by the torchrun agent of the first node (the ranks reach each other anyway; DDP
  needs it).
- Rank 0 waits for every outcome and returns one payload: the trained weights, its history
  and all outcomes.
- On executors the payload comes back as the barrier job's own result rows (TorchDistributor
  returns partition 0's value). Driver-local ranks all write the same TorchDistributor output
  file (the last writer wins), so there rank 0 writes the payload to a folder of the driver's
  and every rank returns None.

A rank that fails catches its error, reports it and leaves the process group, so that peers
blocked on it fail at once and report too, and the driver gets every rank's traceback.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from typing import Any

_OUTCOME = "spark_dl/outcome/{rank}"
_WEIGHTS_FILE = "weights.safetensors"
_META_FILE = "result.json"


class RankChannel:
    """One rank's end of the channel; ``exchange`` on rank 0 returns every rank's outcome."""

    def __init__(self, rank: int, world: int, wait_s: float) -> None:
        self.rank = rank
        self.world = world
        self.wait_s = wait_s
        self._store: Any = None
        if world > 1:
            from torch.distributed import TCPStore

            self._store = TCPStore(
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                timeout=timedelta(seconds=max(wait_s, 30)),
            )

    def exchange(self, outcome: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """Publish this rank's ``outcome``; rank 0 then waits up to ``wait_s`` for the others.

        Returns ``{rank: outcome}`` on rank 0 (ranks that never reported are absent) and an
        empty dict elsewhere.
        """
        outcome = {**outcome, "rank": self.rank}
        if self._store is None:
            return {self.rank: outcome}
        self._store.set(_OUTCOME.format(rank=self.rank), json.dumps(outcome))
        if self.rank != 0:
            return {}
        found = {0: outcome}
        deadline = time.monotonic() + self.wait_s
        while len(found) < self.world and time.monotonic() < deadline:
            for peer in range(1, self.world):
                key = _OUTCOME.format(rank=peer)
                if peer not in found and self._store.check([key]):
                    found[peer] = json.loads(self._store.get(key).decode("utf-8"))
            if len(found) < self.world:
                time.sleep(0.05)
        return found


def deliver(result_dir: str | None, result: dict[str, Any] | None,
            outcomes: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Rank 0's payload: returned as is (executors), or written to ``result_dir`` (driver)."""
    meta = {k: v for k, v in (result or {}).items() if k != "weights"}
    meta["outcomes"] = {str(r): o for r, o in outcomes.items()}
    weights = (result or {}).get("weights")
    if result_dir is None:
        return {"meta": json.dumps(meta), "weights": weights}
    if weights is not None:
        with open(os.path.join(result_dir, _WEIGHTS_FILE), "wb") as f:
            f.write(weights)
    tmp = os.path.join(result_dir, _META_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    os.replace(tmp, os.path.join(result_dir, _META_FILE))
    return None


def read_payload(returned: Any, result_dir: str | None) -> dict[str, Any] | None:
    """The driver's view of rank 0's payload: ``weights`` (bytes or None), ``outcomes``
    keyed by int rank, and the rest of rank 0's result; None when rank 0 delivered nothing."""
    if result_dir is not None:
        meta_path = os.path.join(result_dir, _META_FILE)
        if not os.path.exists(meta_path):
            return None
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        weights_path = os.path.join(result_dir, _WEIGHTS_FILE)
        weights = None
        if os.path.exists(weights_path):
            with open(weights_path, "rb") as f:
                weights = f.read()
    elif isinstance(returned, dict) and "meta" in returned:
        meta, weights = json.loads(returned["meta"]), returned.get("weights")
    else:
        return None
    outcomes = {int(r): o for r, o in meta.pop("outcomes", {}).items()}
    return {**meta, "weights": weights, "outcomes": outcomes}
