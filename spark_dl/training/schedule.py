"""Learning-rate schedules: the rate of every optimizer step as a pure function of the step.

A fit's schedule is the ``lrSchedule`` Param with ``warmupEpochs`` and ``lrScheduleParams``.
Because the rate depends only on the global step number (``epoch * steps_per_epoch + i``),
a resumed fit continues the schedule exactly where the checkpoint left it, with no
scheduler state to save; the checkpoint records the schedule for the record.

- ``constant``: ``learningRate`` after the warm-up.
- ``cosine``: cosine decay from ``learningRate`` to ``min_lr`` (default 0) at the last step.
- ``step``: ``learningRate * gamma ** (epoch // step_epochs)`` (defaults: gamma 0.1,
  step_epochs a third of maxEpochs).
- ``onecycle``: as ``torch.optim.lr_scheduler.OneCycleLR``: cosine rise from
  ``learningRate / div_factor`` (25) to ``learningRate`` over the warm-up (30% of the steps
  when ``warmupEpochs`` is 0), then cosine decay to ``learningRate / div_factor /
  final_div_factor`` (1e4).

The other schedules warm up linearly from ``learningRate / warmup_steps`` to
``learningRate`` over ``warmupEpochs`` (which may be fractional).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SCHEDULES = ("constant", "cosine", "step", "onecycle")
#: The ``lrScheduleParams`` keys each schedule accepts, with their defaults.
SCHEDULE_PARAMS: dict[str, dict[str, Any]] = {
    "constant": {},
    "cosine": {"min_lr": 0.0},
    "step": {"step_epochs": None, "gamma": 0.1},
    "onecycle": {"div_factor": 25.0, "final_div_factor": 1e4},
}


def check_schedule(name: str, params: dict[str, Any], lr: float, max_epochs: int,
                   owner: str) -> None:
    """Refuse ``lrScheduleParams`` the schedule ``name`` does not take or cannot use."""
    allowed = SCHEDULE_PARAMS[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"The 'lrScheduleParams' of {owner} has {unknown}, which lrSchedule={name!r} does "
            f"not take. It accepts {sorted(allowed) or 'no keys'}.")

    def bad(key: str, want: str) -> ValueError:
        return ValueError(f"The 'lrScheduleParams' {key!r} of {owner} must be {want}; got "
                          f"{params[key]!r}.")

    number = (int, float)
    if "min_lr" in params and not (isinstance(params["min_lr"], number)
                                   and 0 <= params["min_lr"] < lr):
        raise bad("min_lr", f"a number in [0, learningRate={lr})")
    if "gamma" in params and not (isinstance(params["gamma"], number)
                                  and 0 < params["gamma"] <= 1):
        raise bad("gamma", "a number in (0, 1]")
    if "step_epochs" in params and not (isinstance(params["step_epochs"], int)
                                        and 1 <= params["step_epochs"] <= max_epochs):
        raise bad("step_epochs", f"an int in [1, maxEpochs={max_epochs}]")
    for key in ("div_factor", "final_div_factor"):
        if key in params and not (isinstance(params[key], number) and params[key] >= 1):
            raise bad(key, "a number >= 1")


@dataclass(frozen=True)
class LrSchedule:
    """The rate of each optimizer step of one fit (see the module docstring)."""

    name: str
    base_lr: float
    steps_per_epoch: int
    max_epochs: int
    warmup_epochs: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.max_epochs

    @property
    def warmup_steps(self) -> int:
        steps = round(self.warmup_epochs * self.steps_per_epoch)
        if self.name == "onecycle" and steps == 0:
            steps = round(0.3 * self.total_steps)
        return min(steps, self.total_steps)

    def lr(self, step: int) -> float:
        """The learning rate of global optimizer step ``step`` (0-based)."""
        p = {**SCHEDULE_PARAMS[self.name], **self.params}
        base, warm, total = self.base_lr, self.warmup_steps, self.total_steps
        if self.name == "onecycle":
            start = base / p["div_factor"]
            # OneCycleLR's phases: the rise ends at step warm - 1, the decay at the last step.
            if step < warm:
                return _cosine(start, base, step / max(warm - 1, 1))
            return _cosine(base, start / p["final_div_factor"],
                           (step - warm + 1) / max(total - warm, 1))
        if step < warm:
            return base * (step + 1) / warm
        if self.name == "cosine":
            return _cosine(base, p["min_lr"], (step - warm) / max(total - warm - 1, 1))
        if self.name == "step":
            every = p["step_epochs"] or max(1, self.max_epochs // 3)
            return base * p["gamma"] ** ((step // self.steps_per_epoch) // every)
        return base

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "base_lr": self.base_lr, "warmup_epochs": self.warmup_epochs,
                "params": dict(self.params), "steps_per_epoch": self.steps_per_epoch,
                "max_epochs": self.max_epochs}


def _cosine(start: float, end: float, progress: float) -> float:
    """From ``start`` (progress 0) to ``end`` (progress 1) along half a cosine."""
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))
