"""The per-rank loop, in pure torch: convergence, determinism, and uneven ranks under DDP."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket

import numpy as np
import pytest
import torch

from spark_dl.model_spec import ModelSpec
from spark_dl.training.loop import Collective, IndexStream, LoopConfig, RankData, Trainer, \
    make_optimizer


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float64)
    return {"X": X, "y": y, "w": np.ones(n), "v": np.zeros(n, bool)}


def _trainer(seed: int, epochs: int, checkpoint_dir=None):
    torch.manual_seed(seed)
    module = ModelSpec("mlp", {"hidden_layers": [8], "dropout": 0.3}).build(in_features=4,
                                                                          out_features=2)
    arrays = _data(250)
    arrays["v"] = np.arange(250) % 5 == 0
    train = RankData.from_arrays(arrays, ~arrays["v"])
    val = RankData.from_arrays(arrays, arrays["v"])
    opt = make_optimizer("adam", module.parameters(), 0.01, {})
    cfg = LoopConfig(task="classification", max_epochs=epochs, batch_size=32, seed=seed,
                     checkpoint_dir=checkpoint_dir, log=lambda s: None)
    return Trainer(module, module, opt, train, val, cfg, Collective(1, torch.device("cpu")), 0)


def _train_single(seed: int, epochs: int = 3):
    trainer = _trainer(seed, epochs)
    return trainer.fit(), trainer.module, trainer


def test_loss_decreases():
    history, _, _ = _train_single(0, epochs=8)
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]


def test_same_seed_same_weights_bit_for_bit():
    _, a, _ = _train_single(1)
    _, b, _ = _train_single(1)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_steps_per_epoch_covers_every_row():
    _, _, trainer = _train_single(0, epochs=2)
    assert trainer.steps_per_epoch == 7  # ceil(200 training rows / 32)
    assert trainer.steps_run == 2 * 7


def test_resumed_run_equals_uninterrupted(tmp_path):
    from spark_dl.training import checkpoint

    whole = _trainer(5, 4)
    whole.fit()
    first = _trainer(5, 2, checkpoint_dir=str(tmp_path))
    first.fit()
    resumed = _trainer(5, 4)
    resumed.restore(checkpoint.load_latest(str(tmp_path)))
    assert resumed.start_epoch == 2
    history = resumed.fit()
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    for a, b in zip(whole.module.state_dict().values(), resumed.module.state_dict().values()):
        assert torch.equal(a, b)


def test_index_stream_wraps_and_covers():
    stream = IndexStream(5, seed=0, rank=0)
    first = stream.take(5)
    assert sorted(first.tolist()) == [0, 1, 2, 3, 4]
    assert len(stream.take(7)) == 7


def test_index_stream_restarts_exactly_at_any_position():
    full = IndexStream(7, seed=3, rank=1).take(40)
    for consumed in (0, 5, 7, 23):
        restarted = IndexStream(7, seed=3, rank=1, consumed=consumed).take(40 - consumed)
        assert torch.equal(restarted, full[consumed:])


def test_optimizer_params_errors_name_the_param():
    with pytest.raises(ValueError, match="optimizerParams"):
        make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], 0.1, {"betas": (0.9, 0.9)})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world, port, sizes, queue):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    module = ModelSpec("mlp", {"hidden_layers": [8]}).build(in_features=4, out_features=2)
    model = DDP(module)
    arrays = _data(sizes[rank], seed=rank)
    train = RankData.from_arrays(arrays, ~arrays["v"])
    val = RankData.from_arrays(arrays, arrays["v"])
    cfg = LoopConfig(task="classification", max_epochs=2, batch_size=16, log=lambda s: None)
    trainer = Trainer(model, module, make_optimizer("sgd", model.parameters(), 0.1, {}), train,
                      val, cfg, Collective(world, torch.device("cpu")), rank)
    trainer.fit()
    weights = torch.cat([p.detach().flatten() for p in module.parameters()])
    queue.put((rank, trainer.steps_run, weights.numpy()))
    dist.destroy_process_group()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sizes", [(950, 50), (400, 0)], ids=["95-5", "empty-rank"])
def test_uneven_ranks_run_equal_steps_and_agree(sizes):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, sizes, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    (_, steps0, w0), (_, steps1, w1) = results
    assert steps0 == steps1 == 2 * int(np.ceil(max(sizes) / 16))
    np.testing.assert_array_equal(w0, w1)  # DDP replicas stayed identical
