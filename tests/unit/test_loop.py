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


def _trainer(seed: int, epochs: int, checkpoint_dir=None, lr_schedule=None):
    torch.manual_seed(seed)
    module = ModelSpec("mlp", {"hidden_layers": [8], "dropout": 0.3}).build(in_features=4,
                                                                          out_features=2)
    arrays = _data(250)
    arrays["v"] = np.arange(250) % 5 == 0
    train = RankData.from_arrays(arrays, ~arrays["v"])
    val = RankData.from_arrays(arrays, arrays["v"])
    opt = make_optimizer("adam", module.parameters(), 0.01, {})
    cfg = LoopConfig(task="classification", max_epochs=epochs, batch_size=32, seed=seed,
                     checkpoint_dir=checkpoint_dir, log=lambda s: None,
                     lr_schedule=lr_schedule or {"name": "constant"})
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


class NanOnZeros(torch.nn.Module):
    """Scales each row to unit L1 norm first: an all-zero row gives NaN, as some user
    networks do (normalisation, log of a sum)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x / x.abs().sum(dim=1, keepdim=True))


UNEVEN = {"95-5": ((950, 50), "mlp"), "empty-rank": ((400, 0), "mlp"),
          "empty-rank-no-fabricated-input": ((400, 0), "nan-on-zeros")}


def _rank_main(rank, world, port, queue):
    """One rank: trains every UNEVEN case in turn, in one process group."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for case, (sizes, net) in UNEVEN.items():
        torch.manual_seed(0)
        if net == "nan-on-zeros":
            module = NanOnZeros()
        else:
            module = ModelSpec("mlp", {"hidden_layers": [8]}).build(in_features=4,
                                                                     out_features=2)
        model = DDP(module)
        arrays = _data(sizes[rank], seed=rank)
        train = RankData.from_arrays(arrays, ~arrays["v"])
        val = RankData.from_arrays(arrays, arrays["v"])
        cfg = LoopConfig(task="classification", max_epochs=2, batch_size=16, log=lambda s: None)
        trainer = Trainer(model, module, make_optimizer("sgd", model.parameters(), 0.1, {}),
                          train, val, cfg, Collective(world, torch.device("cpu")), rank)
        trainer.fit()
        weights = torch.cat([p.detach().flatten() for p in module.parameters()])
        queue.put((case, rank, trainer.steps_run, weights.numpy()))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def uneven_runs():
    """Two real gloo ranks (spawned once for all cases): case -> [(rank, steps, weights)]."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    runs = {}
    for _ in range(2 * len(UNEVEN)):
        case, rank, steps, weights = queue.get(timeout=90)
        runs.setdefault(case, []).append((rank, steps, weights))
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return {case: sorted(results, key=lambda r: r[0]) for case, results in runs.items()}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", list(UNEVEN))
def test_uneven_ranks_run_equal_steps_and_agree(uneven_runs, case):
    sizes, _ = UNEVEN[case]
    (_, steps0, w0), (_, steps1, w1) = uneven_runs[case]
    assert steps0 == steps1 == 2 * int(np.ceil(max(sizes) / 16))
    np.testing.assert_array_equal(w0, w1)  # DDP replicas stayed identical
    # The empty rank joined each all-reduce with a real training row, never an invented
    # all-zero one that this network would turn into NaN gradients on every rank.
    assert np.isfinite(w0).all()


def test_each_step_descends_the_weighted_mean_loss_of_its_own_rows():
    """The gradient of step s is that of sum(w_i * loss_i) / sum(w_i) over step s's rows,
    not of the loss scaled by the data set's mean weight."""
    n, batch, lr = 8, 4, 0.5
    rng = np.random.default_rng(0)
    arrays = {"X": rng.normal(size=(n, 4)).astype(np.float32), "y": np.arange(n) % 2 * 1.0,
              "w": np.array([1, 1, 1, 1, 1, 1, 1, 50.0]), "v": np.zeros(n, bool)}
    torch.manual_seed(0)
    module = ModelSpec("mlp", {"hidden_layers": []}).build(in_features=4, out_features=2)
    expected = ModelSpec("mlp", {"hidden_layers": []}).build(in_features=4, out_features=2)
    expected.load_state_dict(module.state_dict())
    train = RankData.from_arrays(arrays, ~arrays["v"])
    cfg = LoopConfig(task="classification", max_epochs=1, batch_size=batch, seed=7,
                     log=lambda s: None)
    trainer = Trainer(module, module, torch.optim.SGD(module.parameters(), lr=lr), train,
                      RankData.from_arrays(arrays, arrays["v"]), cfg,
                      Collective(1, torch.device("cpu")), 0)
    trainer.fit()
    stream = IndexStream(n, seed=7, rank=0)
    opt = torch.optim.SGD(expected.parameters(), lr=lr)
    for _ in range(n // batch):
        idx = stream.take(batch)
        x, y, w = train.X[idx], train.y[idx], train.w[idx].float()
        losses = torch.nn.functional.cross_entropy(expected(x), y.long(), reduction="none")
        opt.zero_grad()
        ((losses * w).sum() / w.sum()).backward()
        opt.step()
    for a, b in zip(module.parameters(), expected.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_average_precision_matches_scikit_learn():
    from sklearn.metrics import average_precision_score

    from spark_dl.training.loop import average_precision

    rng = np.random.default_rng(3)
    labels = (rng.random(500) < 0.05).astype(float)
    scores = np.round(labels * 0.7 + rng.normal(size=500), 1)  # with ties
    assert average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12)


def test_binary_validation_metric_is_unweighted_auc_pr():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(1)
    n = 400
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=n) > 2.0).astype(np.float64)  # a rare positive class
    arrays = {"X": X, "y": y, "w": np.where(y == 1, 30.0, 1.0), "v": np.arange(n) % 2 == 0}
    torch.manual_seed(0)
    module = ModelSpec("mlp", {"hidden_layers": [8]}).build(in_features=4, out_features=2)
    val = RankData.from_arrays(arrays, arrays["v"])
    cfg = LoopConfig(task="classification", max_epochs=2, batch_size=32, num_outputs=2,
                     log=lambda s: None)
    trainer = Trainer(module, module, make_optimizer("adam", module.parameters(), 0.01, {}),
                      RankData.from_arrays(arrays, ~arrays["v"]), val, cfg,
                      Collective(1, torch.device("cpu")), 0)
    history = trainer.fit()
    assert history[-1]["metric"] == "auc_pr"
    with torch.no_grad():
        out = module(val.X)
    margin = (out[:, 1] - out[:, 0]).numpy()
    assert history[-1]["val_metric"] == pytest.approx(
        average_precision_score(val.y.numpy(), margin), abs=1e-9)


def _early_stopping_trainer(patience, epochs):
    """Validation labels are the opposite of training labels: every epoch of learning makes
    the validation loss worse, so epoch 1 is the best."""
    arrays = _data(300, seed=4)
    val = {k: v.copy() for k, v in arrays.items()}
    val["y"] = 1.0 - val["y"]
    torch.manual_seed(2)
    module = ModelSpec("mlp", {"hidden_layers": [8]}).build(in_features=4, out_features=2)
    cfg = LoopConfig(task="classification", max_epochs=epochs, batch_size=32, seed=2,
                     patience=patience, log=lambda s: None)
    return Trainer(module, module, make_optimizer("adam", module.parameters(), 0.02, {}),
                   RankData.from_arrays(arrays, np.ones(300, bool)),
                   RankData.from_arrays(val, np.ones(300, bool)), cfg,
                   Collective(1, torch.device("cpu")), 0)


def test_early_stopping_stops_and_keeps_the_best_weights():
    trainer = _early_stopping_trainer(patience=2, epochs=10)
    history = trainer.fit()
    losses = [h["val_loss"] for h in history]
    assert losses[0] == min(losses)  # the premise: validation only gets worse
    assert [h["epoch"] for h in history] == [1, 2, 3]  # best, then `patience` stale epochs
    best = _early_stopping_trainer(patience=0, epochs=1)
    best.fit()
    for a, b in zip(trainer.module.state_dict().values(), best.module.state_dict().values()):
        assert torch.equal(a, b)  # the returned weights are epoch 1's, not epoch 3's
