"""Learning-rate schedules: their shapes, torch's OneCycleLR, refusals, and resume."""

from __future__ import annotations

import math

import pytest
import torch
from test_loop import _trainer

from spark_dl.training import checkpoint
from spark_dl.training.schedule import LrSchedule, check_schedule


def rates(schedule: LrSchedule) -> list[float]:
    return [schedule.lr(s) for s in range(schedule.total_steps)]


def test_constant_warms_up_linearly_then_holds():
    lrs = rates(LrSchedule("constant", 0.1, steps_per_epoch=10, max_epochs=3, warmup_epochs=0.5))
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert set(lrs[5:]) == {0.1}


def test_cosine_decays_from_the_rate_to_min_lr_at_the_last_step():
    lrs = rates(LrSchedule("cosine", 0.1, 10, 4, params={"min_lr": 0.001}))
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[20] == pytest.approx(0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 20 / 39)))


def test_step_multiplies_by_gamma_every_step_epochs():
    lrs = rates(LrSchedule("step", 1.0, 5, 6, params={"step_epochs": 2, "gamma": 0.5}))
    assert [lrs[e * 5] for e in range(6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    default = LrSchedule("step", 1.0, 5, 9)  # every maxEpochs / 3 epochs, gamma 0.1
    assert default.lr(14) == 1.0 and default.lr(15) == pytest.approx(0.1)


@pytest.mark.parametrize("warmup_epochs", [0.0, 1.0])
def test_onecycle_follows_torchs_one_cycle_lr(warmup_epochs):
    schedule = LrSchedule("onecycle", 0.05, steps_per_epoch=8, max_epochs=5,
                          warmup_epochs=warmup_epochs)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    pct = schedule.warmup_steps / schedule.total_steps
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.05, total_steps=schedule.total_steps, pct_start=pct,
        anneal_strategy="cos", cycle_momentum=False, three_phase=False)
    expected = []
    for _ in range(schedule.total_steps):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        torch_sched.step()
    assert rates(schedule) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name, params, match", [
    ("cosine", {"gamma": 0.5}, r"has \['gamma'\], which lrSchedule='cosine' does not take"),
    ("cosine", {"min_lr": 0.5}, r"'min_lr' .* \[0, learningRate=0.1\); got 0.5"),
    ("step", {"step_epochs": 0}, r"'step_epochs' .* \[1, maxEpochs=5\]; got 0"),
    ("step", {"gamma": 2}, r"'gamma' .* \(0, 1\]; got 2"),
    ("onecycle", {"div_factor": 0.5}, r"'div_factor' .* >= 1; got 0.5"),
    ("constant", {"min_lr": 0.0}, "accepts no keys"),
])
def test_bad_schedule_params_are_refused_naming_the_key(name, params, match):
    with pytest.raises(ValueError, match=match):
        check_schedule(name, params, lr=0.1, max_epochs=5, owner="TorchClassifier")


def _scheduled(tmp=None, stop_after=None):
    trainer = _trainer(7, 4, checkpoint_dir=tmp,
                       lr_schedule={"name": "cosine", "warmup_epochs": 1.0, "params": {}})
    seen: list[tuple[int, float]] = []
    trainer.cfg.on_step = lambda step, loss, lr: seen.append((step, lr))

    def crash(entry):
        if entry["epoch"] == stop_after:
            raise KeyboardInterrupt("killed")
    trainer.cfg.on_epoch = crash
    return trainer, seen


def test_a_resumed_fit_continues_the_schedule_at_its_step(tmp_path):
    whole, whole_steps = _scheduled()
    whole.fit()
    killed, _ = _scheduled(str(tmp_path), stop_after=3)  # epochs 1-2 checkpointed, 3 lost
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    resumed, resumed_steps = _scheduled()
    resumed.restore(checkpoint.load_latest(str(tmp_path)))
    resumed.fit()
    n = whole.steps_per_epoch
    assert [s for s, _ in resumed_steps] == list(range(2 * n, 4 * n))
    assert resumed_steps == whole_steps[2 * n:]  # same steps, same rates
    assert whole_steps[0][1] == pytest.approx(0.01 / n) and whole_steps[n - 1][1] == 0.01
    assert [h["lr"] for h in resumed.cfg.history] == [h["lr"] for h in whole.cfg.history]
    for a, b in zip(whole.module.state_dict().values(), resumed.module.state_dict().values()):
        assert torch.equal(a, b)
