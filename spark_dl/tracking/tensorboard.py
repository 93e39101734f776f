"""TensorBoard events of one fit, written by rank 0 through torch's ``SummaryWriter``.

The run folder is ``tensorboardDir/<Stage>-<time>-<fit id>``; ``tensorboard --logdir
tensorboardDir`` shows each fit as a run. Every scalar is logged against the fit's global
optimizer step, so per-step and per-epoch curves share one x-axis:

- each step: ``train/loss`` (rank 0's weighted batch loss) and ``train/lr``;
- each epoch, at the step that ends it: ``epoch/train_loss``, ``epoch/samples_per_sec``,
  ``epoch/lr`` and, with validation, ``epoch/val_loss`` and ``epoch/val_<metric>``;
- the network's graph, once, when a run starts at step 0.

A retried or resumed attempt purges the events its predecessor wrote after the step it
continues from, so a curve never holds two values for one step.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

logger = logging.getLogger(__name__)


def check_available(owner: str) -> None:
    """Refuse ``tensorboardDir`` before any job when the writer cannot be imported."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            f"The 'tensorboardDir' parameter of {owner} is set, but the tensorboard package "
            "is not installed: pip install 'spark-dl[tensorboard]' (on the driver and the "
            "executors), or unset tensorboardDir.")


class TensorBoardLog:
    """Rank 0's event writer; pass ``on_step`` / ``on_epoch`` to the training loop."""

    def __init__(self, run_dir: str, trainer: Any, continued: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.steps_per_epoch = trainer.steps_per_epoch
        start = trainer.start_epoch * self.steps_per_epoch
        # purge_step drops what an earlier attempt wrote at or after the step we continue at.
        self.writer = SummaryWriter(run_dir, purge_step=start if continued else None)
        if start == 0:
            self._graph(trainer)

    def _graph(self, trainer: Any) -> None:
        data = trainer.train if len(trainer.train) else None
        example = data.X[:2] if data is not None else trainer._filler
        if example is None:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.writer.add_graph(trainer.module, example.to(trainer.coll.device))
        except Exception as exc:  # noqa: BLE001 - the curves matter more than the picture
            logger.warning("TensorBoard: the network's graph could not be traced (%s); "
                           "scalars are still written.", exc)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def on_epoch(self, entry: dict[str, Any]) -> None:
        step = entry["epoch"] * self.steps_per_epoch - 1
        add = self.writer.add_scalar
        add("epoch/train_loss", entry["train_loss"], step)
        add("epoch/samples_per_sec", entry["samples_per_sec"], step)
        add("epoch/lr", entry["lr"], step)
        if "val_loss" in entry:
            add("epoch/val_loss", entry["val_loss"], step)
            add(f"epoch/val_{entry['metric']}", entry["val_metric"], step)
        self.writer.flush()  # a user watching TensorBoard sees each epoch as it ends

    def close(self) -> None:
        self.writer.close()
