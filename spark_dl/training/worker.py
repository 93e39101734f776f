"""Executor side: the function TorchDistributor runs in every rank.

It receives only plain values (a :class:`~spark_dl.training.plan.TrainPlan`), imports
torch inside, and reports its outcome through :mod:`spark_dl.training.channel`: rank 0
returns the trained weights with every rank's completion report or traceback.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spark_dl.training.plan import TrainPlan


def run_rank(plan: TrainPlan) -> dict[str, Any] | None:
    """Train on this rank's rows and report the outcome (see :mod:`spark_dl.training.channel`).

    Returns rank 0's payload on executors, and None on every other rank and for driver-local
    training (where rank 0 writes the payload to ``plan.result_dir``). A failure is caught,
    reported and turned into a clean exit once this rank has left the process group, so
    that the driver receives every rank's traceback through rank 0.
    """
    from spark_dl.training.channel import RankChannel, deliver

    started = time.time()
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    import torch  # noqa: F401 - timed apart from the process group

    imported = time.time()
    device = _join(plan, world)
    result: dict[str, Any] | None = None
    try:
        channel = RankChannel(rank, world, plan.timeout_s)
        try:
            result, report = _train(plan, device, rank, world)
            result["timings"].update(rank_started=started, imports_done=imported)
            outcome = {"status": "ok", "world_size": world, **report}
        except Exception:  # noqa: BLE001 - reported to the driver with its traceback
            outcome = {"status": "error", "traceback": traceback.format_exc(), "time": time.time()}
            print(outcome["traceback"], file=sys.stderr, flush=True)
            result = None
    finally:
        _leave(world)  # peers blocked on this rank fail now, not at the collective timeout
    outcomes = channel.exchange(outcome)
    return deliver(plan.result_dir, result, outcomes) if rank == 0 else None


def _join(plan: TrainPlan, world: int) -> Any:
    device = _device(plan.use_gpu)
    if world > 1:
        import torch.distributed as dist

        backend = "nccl" if plan.use_gpu else "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=plan.timeout_s))
    return device


def _leave(world: int) -> None:
    import torch.distributed as dist

    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def _device(use_gpu: bool) -> Any:
    import torch

    if not use_gpu:
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _maybe_resume(plan: TrainPlan, trainer: Any, rank: int) -> None:
    """Restore the latest valid checkpoint when resuming (every rank reads the same one)."""
    from spark_dl.training import checkpoint

    if plan.checkpoint_dir and rank == 0:
        checkpoint.describe(plan.checkpoint_dir, plan.fit_id, plan.fit_identity)
    if not (plan.resume and plan.checkpoint_dir):
        return
    state = checkpoint.load_latest(plan.checkpoint_dir, plan.fit_id)
    source = plan.checkpoint_dir
    if state is None and plan.resume_from:  # an earlier run of this fit, fewer epochs
        source, source_fit = plan.resume_from
        state = checkpoint.load_latest(source, source_fit)
    if state is None:
        return
    trainer.restore(state)
    if rank == 0:
        print(f"spark_dl resuming after epoch {trainer.start_epoch} from {source}", flush=True)


def _train(plan: TrainPlan, device: Any, rank: int, world: int
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """This rank's training: ``(result, report)``; only rank 0's result is used."""
    import torch
    from safetensors.torch import save as st_save

    from spark_dl.inputs import InputLayout
    from spark_dl.model_spec import ModelSpec
    from spark_dl.training.data import load_rank_arrays
    from spark_dl.training.loop import Collective, LoopConfig, RankData, Trainer, make_optimizer

    timings = {"process_group_ready": time.time()}
    arrays = load_rank_arrays(plan.shard_paths, rank, plan.num_features, plan.petastorm, world)
    timings["data_loaded"] = time.time()
    layout = InputLayout.from_dict(plan.layout, plan.num_features)
    train, val = (RankData.from_arrays(arrays, m, layout) for m in (~arrays["v"], arrays["v"]))
    torch.manual_seed(plan.seed)
    module = ModelSpec.from_json(plan.spec).build(**layout.injected(plan.num_outputs))
    if plan.init_state is not None:
        _load_initial(module, plan.init_state)
    module = module.to(device)
    model = module
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(module, device_ids=[device.index] if plan.use_gpu else None)
    opt = make_optimizer(plan.optimizer, model.parameters(), plan.lr, plan.optimizer_params)
    loop_cfg = LoopConfig(
        task=plan.task, max_epochs=plan.max_epochs, batch_size=plan.batch_size,
        patience=plan.patience, checkpoint_dir=plan.checkpoint_dir, seed=plan.seed,
        attempt=plan.attempt, fit_id=plan.fit_id, num_outputs=plan.num_outputs,
        log=lambda line: print(line, file=sys.stdout, flush=True),
        lr_schedule=plan.lr_schedule, negatives=plan.negatives,
    )
    trainer = Trainer(model, module, opt, train, val, loop_cfg, Collective(world, device), rank)
    _maybe_resume(plan, trainer, rank)
    close = _trackers(plan, trainer, loop_cfg) if rank == 0 else None
    try:
        history = trainer.fit()
    finally:
        if close is not None:
            close()
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    timings["first_step"] = trainer.first_step_at
    result = {"weights": st_save(state), "history": history,
              "steps_per_epoch": trainer.steps_per_epoch, "timings": timings}
    report = {"steps": trainer.steps_run, "epochs": len(history),
              "rows": {"train": len(train), "validation": len(val)}}
    return result, report


def _load_initial(module: Any, payload: bytes) -> None:
    """Load ``payload``'s tensors (a subset of the network's) into ``module``."""
    from safetensors.torch import load as st_load

    missing, unexpected = module.load_state_dict(st_load(payload), strict=False)
    if unexpected:
        raise ValueError(f"The initial state names tensors the network lacks: {unexpected}.")


def _trackers(plan: TrainPlan, trainer: Any, loop_cfg: Any) -> Any:
    """Rank 0's trackers hooked into the loop; returns the function that closes them."""
    epoch_hooks, closers = [], []
    if plan.tensorboard_dir:
        from spark_dl.tracking.tensorboard import TensorBoardLog

        board = TensorBoardLog(plan.tensorboard_dir, trainer, plan.attempt > 1 or plan.resume)
        loop_cfg.on_step = board.on_step
        epoch_hooks.append(board.on_epoch)
        closers.append(board.close)
    if plan.mlflow:
        from spark_dl.tracking.mlflow_run import RankLog

        epoch_hooks.append(RankLog(plan.mlflow).on_epoch)
    if epoch_hooks:
        loop_cfg.on_epoch = lambda entry: [hook(entry) for hook in epoch_hooks]
    return lambda: [close() for close in closers]
