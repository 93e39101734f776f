"""The per-rank training loop: pure torch, no Spark, so it can be unit-tested on its own.

Every rank runs exactly ``steps_per_epoch`` optimizer steps per epoch, agreed from the
largest local row count, drawing ``batch_size`` rows per step from its own shuffled rows
and wrapping around when it runs out (as ``DistributedSampler`` pads). A rank without rows
still joins every gradient all-reduce with a zero-valued loss, so an uneven split can never
hang DDP; the row it feeds the network for that is a real training row broadcast from
another rank, never an invented one.

Each step's loss is the weighted mean over every row that took part in it, on all ranks:
``sum(w_i * loss_i) / sum(w_i)``. Every rank draws its whole epoch's indices up front (the
stream is deterministic), and one all-reduce per epoch gives each step's global weight sum,
so the averaged DDP gradient is exactly the gradient of that weighted mean.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from spark_dl.inputs import InputLayout
from spark_dl.training.plan import OPTIMIZERS

from spark_dl.training import checkpoint
from spark_dl.training.negatives import NegativeSampler, implicit_losses, sampled_auc_hits
from spark_dl.training.schedule import LrSchedule


def make_optimizer(
    name: str, params: Any, lr: float, extra: dict[str, Any]
) -> torch.optim.Optimizer:
    """Build the optimizer named by the ``optimizer`` Param with ``optimizerParams``."""
    try:
        return getattr(torch.optim, OPTIMIZERS[name.lower()])(params, lr=lr, **extra)
    except TypeError as exc:
        raise ValueError(
            f"The 'optimizerParams' {extra} do not fit optimizer {name!r}: {exc}"
        ) from None


def per_sample_loss(task: str, out: torch.Tensor, y: torch.Tensor,
                    x: torch.Tensor | None = None) -> torch.Tensor:
    """Unreduced loss: cross-entropy for classification, squared error for regression, and
    for reconstruction the mean squared error between the output and the input row."""
    if task == "classification":
        return F.cross_entropy(out, y.long(), reduction="none")
    if task == "reconstruction":
        assert x is not None  # internal: the loop always passes the input
        return ((out.flatten(1) - x.flatten(1).to(out.dtype)) ** 2).mean(dim=1)
    return (out.reshape(-1) - y.to(out.dtype)) ** 2


@dataclass
class RankData:
    """One rank's rows, already on the CPU as tensors."""

    X: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], mask: np.ndarray,
                    layout: InputLayout | None = None) -> RankData:
        """The rows where ``mask`` holds, as tensors; with every row selected (no
        validation split) the arrays are used as they are, without a copy."""
        everything = bool(mask.all())

        def pick(a: np.ndarray) -> torch.Tensor:
            with warnings.catch_warnings():  # read-only Arrow memory; training never writes X
                warnings.simplefilter("ignore", UserWarning)
                return torch.from_numpy(np.ascontiguousarray(a if everything else a[mask]))
        X = pick(arrays["X"])
        return cls(layout.to_tensor(X) if layout is not None else X, pick(arrays["y"]),
                   pick(arrays["w"]))

    def __len__(self) -> int:
        return int(self.X.shape[0])


@dataclass
class LoopConfig:
    """Plain values the loop needs (resolved from Params on the driver)."""

    task: str
    max_epochs: int
    batch_size: int
    patience: int = 0
    checkpoint_dir: str | None = None
    seed: int = 0
    attempt: int = 1
    fit_id: str | None = None  # the fit's fingerprint, stored in every checkpoint
    num_outputs: int = 0  # network outputs (classes); 2 selects AUC-PR as validation metric
    log: Callable[[str], None] = print
    history: list[dict[str, Any]] = field(default_factory=list)
    #: ``name``, ``warmup_epochs``, ``params`` of the learning-rate schedule (schedule.py).
    lr_schedule: dict[str, Any] = field(default_factory=lambda: {"name": "constant"})
    #: Rank 0's trackers: ``on_step(step, loss, lr)`` after each optimizer step and
    #: ``on_epoch(entry)`` after each epoch (TensorBoard, MLflow); None on other ranks.
    on_step: Callable[[int, float, float], None] | None = None
    on_epoch: Callable[[dict[str, Any]], None] | None = None
    #: task "implicit": ``count``, ``num_items``, ``popularity`` of the negative sampler.
    negatives: dict[str, Any] | None = None


class Collective:
    """All-reduce helpers that do nothing in a single process."""

    def __init__(self, world_size: int, device: torch.device) -> None:
        self.world_size = world_size
        self.device = device

    def sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def max(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """Every rank's 1-D ``values`` (float64, any length), concatenated in rank order."""
        if self.world_size == 1:
            return values
        sizes = [int(v) for v in self.all_values([float(len(values))])]
        longest = max(sizes)
        padded = torch.zeros(longest, dtype=torch.float64, device=self.device)
        padded[: len(values)] = values.to(self.device)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([p[:k] for p, k in zip(parts, sizes)]).cpu()

    def all_values(self, values: list[float]) -> list[float]:
        """``values`` of every rank (one value each), in rank order."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t)
        return [float(p[0]) for p in parts]

    def shared_row(self, X: torch.Tensor, rank: int) -> torch.Tensor:
        """One real row of ``X`` from the lowest rank that has rows, on every rank.

        Collective: every rank calls it. A rank without rows feeds this row to the network
        to join the gradient all-reduce, so no invented input (zeros) ever reaches it.
        """
        src = int(-self.max([-float(rank if len(X) else self.world_size)])[0])
        if src >= self.world_size:
            raise ValueError("No rank holds a training row.")
        row = X[:1].clone() if len(X) else X.new_zeros((1, *X.shape[1:]))
        row = row.to(self.device)
        if self.world_size > 1:
            dist.broadcast(row, src=src)
        return row


def _mix(*parts: int) -> int:
    """A 63-bit seed derived from several integers."""
    value = 0
    for part in parts:
        value = (value * 1_000_003 + int(part)) % (2**63 - 1)
    return value


class IndexStream:
    """Endless shuffled row indices over ``n`` rows: one permutation per pass over the data.

    Pass ``p``'s permutation is a pure function of ``(seed, rank, p)``, so the stream can be
    restarted at any position (``consumed`` indices already drawn) and continue exactly as
    an uninterrupted run would: that is what makes a resumed run equal the original.
    """

    def __init__(self, n: int, seed: int, rank: int, consumed: int = 0) -> None:
        self.n, self.seed, self.rank = n, seed, rank
        self.passes, self.pos = divmod(consumed, n)
        self.perm = self._perm(self.passes)

    def _perm(self, p: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_mix(self.seed, self.rank, p))
        return torch.randperm(self.n, generator=gen)

    def take(self, size: int) -> torch.Tensor:
        """The next ``size`` indices, wrapping into the next pass when one runs out."""
        parts, need = [], size
        while need:
            if self.pos == self.n:
                self.passes, self.pos = self.passes + 1, 0
                self.perm = self._perm(self.passes)
            k = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos : self.pos + k])
            self.pos += k
            need -= k
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class Trainer:
    """Runs the epochs on one rank. ``model`` may be DDP-wrapped; ``module`` is the bare one."""

    def __init__(
        self,
        model: nn.Module,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        train: RankData,
        val: RankData,
        cfg: LoopConfig,
        coll: Collective,
        rank: int,
    ) -> None:
        self.model, self.module, self.opt = model, module, optimizer
        self.train, self.val, self.cfg, self.coll, self.rank = train, val, cfg, coll, rank
        max_rows, nonempty, val_n = (
            *coll.max([float(len(train))]),
            *coll.sum([float(len(train) > 0), float(len(val))]),
        )
        self.steps_per_epoch = max(1, math.ceil(max_rows / cfg.batch_size))
        sched = cfg.lr_schedule
        self.schedule = LrSchedule(sched["name"], float(optimizer.defaults["lr"]),
                                   self.steps_per_epoch, cfg.max_epochs,
                                   float(sched.get("warmup_epochs", 0.0)),
                                   dict(sched.get("params", {})))
        self.nonempty = int(nonempty)
        self.has_val = val_n > 0
        self._stream = IndexStream(len(train), cfg.seed, rank) if len(train) else None
        # A real training row for ranks without rows (see _step), agreed collectively.
        self._filler = coll.shared_row(train.X, rank) if self.nonempty < coll.world_size \
            else None
        self.steps_run = 0  # optimizer steps in this attempt
        self.step = 0  # global optimizer step of the fit (continued by a resume)
        self.lr = self.schedule.lr(0)
        self.first_step_at: float | None = None  # wall-clock time of this attempt's first step
        self.start_epoch = 0
        self.best: dict[str, Any] = {"loss": math.inf, "state": None, "stale": 0}
        self.sampler = NegativeSampler.from_plan(cfg.negatives) if cfg.negatives else None
        if cfg.task == "implicit" and self.sampler is None:
            raise ValueError("Task 'implicit' needs a negative sampler (LoopConfig.negatives).")

    def _losses(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                seed: int) -> torch.Tensor:
        """Per-row losses; for implicit feedback each positive row with its negatives,
        sampled from ``seed`` and scored in the same forward pass."""
        if self.sampler is None:
            return per_sample_loss(self.cfg.task, net(x), y, x)
        out = net(torch.cat([x, self.sampler.sample(x, seed)]))
        return implicit_losses(out, len(x), self.sampler.count)

    # ---------------------------------------------------------------- checkpoints
    def state(self, epoch: int) -> dict[str, Any]:
        """Everything needed to continue exactly after ``epoch``."""
        return {
            "fit": self.cfg.fit_id,
            "epoch": epoch,
            "step": epoch * self.steps_per_epoch,
            "rows_consumed_per_rank": epoch * self.steps_per_epoch * self.cfg.batch_size,
            "model": self.module.state_dict(),
            "optimizer": self.opt.state_dict(),
            "history": self.cfg.history,
            "rng": torch.get_rng_state(),
            "best_loss": self.best["loss"],
            "best_model": self.best["state"],
            "stale": self.best["stale"],
            "lr_schedule": self.schedule.to_dict(),  # the rates follow from "step"
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`state`."""
        self.module.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.cfg.history[:] = list(state["history"])
        self.start_epoch = int(state["epoch"])
        self.step = self.start_epoch * self.steps_per_epoch
        self.best = {"loss": float(state["best_loss"]), "state": state["best_model"],
                     "stale": int(state["stale"])}
        torch.set_rng_state(state["rng"])
        if self._stream is not None:
            self._stream = IndexStream(len(self.train), self.cfg.seed, self.rank,
                                       int(state["rows_consumed_per_rank"]))

    # ---------------------------------------------------------------- one epoch
    def _step(self, idx: torch.Tensor | None, scale: float) -> tuple[float, float]:
        self.opt.zero_grad(set_to_none=True)
        for group in self.opt.param_groups:
            group["lr"] = self.lr
        if idx is None:
            # No rows here: run the same DDP forward/backward on a real training row from
            # another rank with a zero loss, so this rank joins every gradient all-reduce
            # and contributes nothing to it. Eval mode keeps BatchNorm statistics and
            # dropout untouched.
            self.model.eval()
            loss = self.model(self._filler).sum() * 0.0
            self.model.train()
            loss.backward()
            self.opt.step()
            return 0.0, 0.0
        dev = self.coll.device
        x, y, w = (t.index_select(0, idx).to(dev) for t in (self.train.X, self.train.y,
                                                            self.train.w))
        seed = _mix(self.cfg.seed, self.rank, self.step, 1)
        losses = self._losses(self.model, x, y, seed) * w.to(torch.float32)
        (losses.sum() * scale).backward()
        self.opt.step()
        return float(losses.detach().sum()), float(w.sum())

    def _epoch_plan(self) -> tuple[list[torch.Tensor | None], list[float]]:
        """This epoch's row indices per step, and each step's loss scale.

        DDP averages gradients over the ranks, so scaling a rank's summed loss by
        ``world_size / W_s`` (``W_s``: the weight of every row in step ``s``, all ranks
        together) makes the averaged gradient that of the weighted mean loss.
        """
        steps, batch = self.steps_per_epoch, self.cfg.batch_size
        if self._stream is None:
            plan: list[torch.Tensor | None] = [None] * steps
            local = [0.0] * steps
        else:
            idx = self._stream.take(steps * batch).view(steps, batch)
            plan = list(idx.unbind(0))
            local = self.train.w.index_select(0, idx.reshape(-1)).view(steps, batch) \
                .sum(dim=1).tolist()
        totals = self.coll.sum(local)
        world = self.coll.world_size
        return plan, [world / t if t > 0 else 0.0 for t in totals]

    def train_epoch(self) -> float:
        """One epoch of ``steps_per_epoch`` steps; returns the weighted mean training loss."""
        self.model.train()
        loss_sum = weight_sum = 0.0
        plan, scales = self._epoch_plan()
        for idx, scale in zip(plan, scales):
            self.lr = self.schedule.lr(self.step)
            ls, ws = self._step(idx, scale)
            if self.cfg.on_step is not None:
                self.cfg.on_step(self.step, ls / ws if ws > 0 else math.nan, self.lr)
            self.step += 1
            if self.first_step_at is None:
                self.first_step_at = time.time()
            loss_sum += ls
            weight_sum += ws
            self.steps_run += 1
        loss_sum, weight_sum = self.coll.sum([loss_sum, weight_sum])
        return loss_sum / max(weight_sum, 1e-12)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, str, float]:
        """``(val_loss, metric name, metric)`` on the validation rows of every rank.

        The loss is weighted like the training loss (weightCol times classWeights): it is
        what early stopping watches. The metric is unweighted and fits the task: AUC-PR
        (average precision) for two classes, accuracy for more, RMSE for regression and
        reconstruction.
        """
        self.module.eval()
        loss_sum = w_sum = hits = sq_sum = 0.0
        dev, task = self.coll.device, self.cfg.task
        binary = task == "classification" and self.cfg.num_outputs == 2
        margins, labels = [], []
        for start in range(0, len(self.val), 4096):
            sl = slice(start, start + 4096)
            x, y, w = self.val.X[sl].to(dev), self.val.y[sl].to(dev), self.val.w[sl].to(dev)
            if self.sampler is not None:  # the same negatives every epoch
                k = self.sampler.count
                out = self.module(torch.cat([x, self.sampler.sample(x, _mix(self.cfg.seed,
                                                                           start, 2))]))
                losses = implicit_losses(out, len(x), k).double()
                hits += sampled_auc_hits(out, len(x), k)
            else:
                out = self.module(x)
                losses = per_sample_loss(task, out, y, x).double()
            loss_sum += float((losses * w).sum())
            w_sum += float(w.sum())
            sq_sum += float(losses.sum())
            if binary:
                margins.append((out[:, 1] - out[:, 0]).double().cpu())
                labels.append(y.double().cpu())
            elif task == "classification":
                hits += float((out.argmax(dim=1) == y.long()).double().sum())
        loss_sum, w_sum, hits, sq_sum, n = self.coll.sum(
            [loss_sum, w_sum, hits, sq_sum, float(len(self.val))])
        val_loss = loss_sum / max(w_sum, 1e-12)
        if binary:
            scores = self.coll.gather(torch.cat(margins) if margins else torch.zeros(0,
                                      dtype=torch.float64))
            truth = self.coll.gather(torch.cat(labels) if labels else torch.zeros(0,
                                     dtype=torch.float64))
            return val_loss, "auc_pr", average_precision(scores.numpy(), truth.numpy())
        if task == "classification":
            return val_loss, "accuracy", hits / max(n, 1.0)
        if self.sampler is not None:
            return val_loss, "sampled_auc", hits / max(n * self.sampler.count, 1.0)
        return val_loss, "rmse", math.sqrt(sq_sum / max(n, 1.0))

    # ---------------------------------------------------------------- all epochs
    def fit(self) -> list[dict[str, Any]]:
        """Train up to ``max_epochs``, with early stopping on validation loss if asked."""
        cfg = self.cfg
        rows_per_epoch = self.steps_per_epoch * cfg.batch_size * self.nonempty
        for epoch in range(self.start_epoch + 1, cfg.max_epochs + 1):
            if self._stopped_early():
                break
            # Dropout and other random ops draw from a stream fixed by (seed, epoch, rank).
            torch.manual_seed(_mix(cfg.seed, epoch, self.rank))
            t0 = time.perf_counter()
            train_loss = self.train_epoch()
            seconds = time.perf_counter() - t0
            entry: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": train_loss,
                "samples_per_sec": rows_per_epoch / max(seconds, 1e-9),
                "seconds": seconds,
                "attempt": cfg.attempt,
                "lr": self.lr,  # the rate of the epoch's last step
            }
            if self.has_val:
                entry["val_loss"], entry["metric"], entry["val_metric"] = self.evaluate()
                self._track_best(entry["val_loss"])
            cfg.history.append(entry)
            if self.rank == 0:
                cfg.log(format_epoch(entry, cfg.max_epochs))
                if cfg.on_epoch is not None:
                    cfg.on_epoch(entry)
                if cfg.checkpoint_dir:
                    checkpoint.commit(cfg.checkpoint_dir, self.state(epoch))
        if self.best["state"] is not None:
            self.module.load_state_dict(self.best["state"])
        return cfg.history

    def _track_best(self, val_loss: float) -> None:
        if not self.cfg.patience:
            return
        if val_loss < self.best["loss"]:
            state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.best = {"loss": val_loss, "state": state, "stale": 0}
        else:
            self.best["stale"] += 1

    def _stopped_early(self) -> bool:
        return bool(self.cfg.patience) and self.best["stale"] >= self.cfg.patience


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (scikit-learn's
    ``average_precision_score``: no interpolation, tied scores as one threshold); NaN
    without a positive label."""
    if labels.sum() <= 0:
        return math.nan
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def format_epoch(entry: dict[str, Any], max_epochs: int) -> str:
    """One progress line, as printed by rank 0 after each epoch."""
    text = f"spark_dl epoch {entry['epoch']}/{max_epochs} train_loss={entry['train_loss']:.4f}"
    if "val_loss" in entry:
        text += f" val_loss={entry['val_loss']:.4f} val_{entry['metric']}={entry['val_metric']:.4f}"
    text += f" {entry['samples_per_sec']:.0f} samples/s"
    remaining = max_epochs - int(entry["epoch"])
    if remaining > 0 and entry.get("seconds"):
        text += f" ETA {_duration(remaining * float(entry['seconds']))}"
    return text


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
