"""The attribution methods as plain torch: completeness, linearity, zero for unused inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spark_dl.inference.attributions import attributions
from spark_dl.inputs import InputLayout
from spark_dl.model_spec import ModelSpec


def _rows(n=64, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _mlp(d=6, out=1, seed=0):
    torch.manual_seed(seed)
    return ModelSpec("mlp", {"hidden_layers": [16, 8]}).build(
        in_features=d, out_features=out).eval()


def test_integrated_gradients_add_up_to_the_output_minus_the_baseline():
    net, X = _mlp(), _rows()
    base = tuple(np.linspace(-0.5, 0.5, 6))
    attr = attributions(net, X, task="regression", layout=InputLayout((6,)),
                        method="integrated_gradients", steps=256, baseline=base)
    with torch.no_grad():
        gap = (net(torch.from_numpy(X)) - net(torch.tensor([base], dtype=torch.float32)))[:, 0]
    np.testing.assert_allclose(attr.sum(axis=1), gap.numpy(), atol=2e-3)


def test_gradient_x_input_is_exact_for_a_linear_network():
    net = nn.Linear(5, 1)
    X = _rows(d=5)
    attr = attributions(net, X, task="regression", layout=InputLayout((5,)),
                        method="gradient_x_input", steps=1)
    np.testing.assert_allclose(attr, X * net.weight.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_an_input_the_network_ignores_gets_zero():
    net = _mlp()
    with torch.no_grad():
        net.net[0].weight[:, 2] = 0.0  # feature 2 never reaches the output
    for method in ("integrated_gradients", "gradient_x_input"):
        attr = attributions(net, _rows(), task="regression", layout=InputLayout((6,)),
                            method=method, steps=8)
        assert np.all(attr[:, 2] == 0.0) and np.abs(attr).sum() > 0


def test_classification_explains_the_predicted_class():
    net, X = _mlp(out=2), _rows()
    layout = InputLayout((6,))
    one = attributions(net, X, task="classification", layout=layout,
                       method="gradient_x_input", steps=1, classes=np.ones(len(X)))
    zero = attributions(net, X, task="classification", layout=layout,
                        method="gradient_x_input", steps=1, classes=np.zeros(len(X)))
    np.testing.assert_allclose(one, -zero)  # two classes: rawPrediction is [-m, m]
    net3 = _mlp(out=3)
    attr = attributions(net3, X, task="classification", layout=layout,
                        method="integrated_gradients", steps=256,
                        classes=np.full(len(X), 2))
    with torch.no_grad():
        logits = net3(torch.from_numpy(X))
        l0 = net3(torch.zeros(1, 6))
    centred = (logits - logits.mean(1, keepdim=True))[:, 2]
    centred0 = (l0 - l0.mean(1, keepdim=True))[:, 2]
    np.testing.assert_allclose(attr.sum(axis=1), (centred - centred0).numpy(), atol=2e-3)


def test_reconstruction_error_splits_the_anomaly_score_by_feature():
    torch.manual_seed(0)
    net = ModelSpec("autoencoder", {"hidden_layers": [8], "latent_dim": 2}).build(
        in_features=6, out_features=6).eval()
    X = _rows()
    attr = attributions(net, X, task="reconstruction", layout=InputLayout((6,)),
                        method="reconstruction_error", steps=1, batch_size=10)
    with torch.no_grad():
        score = ((net(torch.from_numpy(X)) - torch.from_numpy(X)) ** 2).mean(1)
    assert attr.shape == (64, 6) and (attr >= 0).all()
    np.testing.assert_allclose(attr.sum(axis=1), score.numpy(), rtol=1e-5)


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_x_input"])
def test_windows_through_an_lstm_keep_the_flat_feature_order(method):
    torch.manual_seed(0)
    layout = InputLayout((4, 3))
    net = ModelSpec("autoencoder", {"kind": "lstm", "hidden_layers": [8], "latent_dim": 2}).build(
        **layout.injected(12)).eval()
    X = _rows(n=20, d=12)
    attr = attributions(net, X, task="reconstruction", layout=layout, method=method, steps=64,
                        batch_size=100)
    assert attr.shape == (20, 12) and np.isfinite(attr).all()
    if method == "integrated_gradients":
        with torch.no_grad():
            def mse(x):
                return ((net(x.view(-1, 4, 3)).flatten(1) - x) ** 2).mean(1)
            gap = mse(torch.from_numpy(X)) - mse(torch.zeros(1, 12))
        np.testing.assert_allclose(attr.sum(axis=1), gap.numpy(), atol=5e-3)


def test_batches_smaller_than_the_steps_give_the_same_result():
    net, X = _mlp(), _rows(n=10)
    kw = dict(task="regression", layout=InputLayout((6,)), method="integrated_gradients",
              steps=16)
    np.testing.assert_allclose(attributions(net, X, batch_size=4, **kw),
                               attributions(net, X, batch_size=4096, **kw), rtol=1e-5,
                               atol=1e-6)
