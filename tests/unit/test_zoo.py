"""The model zoo as plain torch: shapes, padding, errors, and that each network learns."""

from __future__ import annotations

import pytest
import torch

from spark_dl.inputs import InputLayout, check_network
from spark_dl.model_spec import ModelSpec
from spark_dl.models import REGISTRY

CASES = {
    "mlp": (InputLayout((12,)), {}, 3),
    "cnn": (InputLayout((3, 32, 32)), {}, 10),
    "lstm": (InputLayout((20,), "int64"), {"vocab_size": 50}, 2),
    "transformer": (InputLayout((20,), "int64"), {"vocab_size": 50}, 2),
    "autoencoder": (InputLayout((16, 4)), {"kind": "lstm"}, 64),
    "hf_encoder": (InputLayout((20,), "int64"), {"config": {
        "model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32,
        "pad_token_id": 0}}, 2),
}


def build(name: str, layout: InputLayout, kwargs: dict, out: int) -> torch.nn.Module:
    return ModelSpec(name, kwargs).build(**layout.injected(out))


#: Recommenders read [user, item] index rows and return one score each (test_recommenders.py).
RECOMMENDERS = {"ncf", "two_tower"}


def test_every_registered_network_is_covered_here_or_as_a_recommender():
    assert set(REGISTRY) == set(CASES) | RECOMMENDERS


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_registered_network_builds_and_returns_its_output_shape(name):
    layout, kwargs, out = CASES[name]
    net = build(name, layout, kwargs, out)
    check_network(net, layout, [(out,)], "test", name)  # raises on a wrong shape
    x = layout.to_tensor(torch.randint(0, 50, (4, layout.size)).float())
    assert net(x).shape == (4, out)


def test_hf_encoder_masks_padding_and_refuses_custom_code():
    torch.manual_seed(0)
    layout, kwargs, _ = CASES["hf_encoder"]
    short = build("hf_encoder", InputLayout((5,), "int64"), {**kwargs, "dropout": 0.0}, 2).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0], [9, 8, 7, 6, 5]])
    padded = torch.cat([tokens, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(short(tokens), short(padded), atol=1e-5, rtol=1e-5)
    custom = {"config": {**kwargs["config"], "auto_map": {"AutoModel": "x.Net"}}}
    with pytest.raises(ValueError, match="custom model code"):
        build("hf_encoder", layout, custom, 2)



def test_hf_encoder_ignores_config_keys_that_fetch_code_and_has_no_unused_parameters():
    """A config asking for Hub attention kernels or another dtype builds PyTorch's own
    attention in float32, without the pooler (DDP refuses parameters without gradients)."""
    layout, kwargs, _ = CASES["hf_encoder"]
    poisoned = {"config": {**kwargs["config"], "attn_implementation": "kernels-community/x",
                           "dtype": "bfloat16", "quantization_config": {"quant_method": "x"}}}
    net = build("hf_encoder", layout, poisoned, 2)
    assert net.encoder.config._attn_implementation == "sdpa"
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert not any("pooler" in name for name, _ in net.named_parameters())
    loss = net(torch.randint(1, 50, (3, 20))).sum()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    no_pad = {"config": {k: v for k, v in kwargs["config"].items()}}
    no_pad["config"]["pad_token_id"] = None
    with pytest.raises(ValueError, match="no pad_token_id"):
        build("hf_encoder", layout, no_pad, 2)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_windows_without_vocab(name):
    net = build(name, InputLayout((16, 4)), {}, 1)
    assert net(torch.randn(3, 16, 4)).shape == (3, 1)
    assert net(torch.randn(3, 64)).shape == (3, 1)  # flat rows are reshaped


def test_cnn_depth_and_grayscale():
    net = build("cnn", InputLayout((1, 8, 8)), {"channels": [8, 16, 32, 64], "kernel_size": 3},
                10)
    assert net(torch.zeros(2, 64)).shape == (2, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64]


@pytest.mark.parametrize("name,kwargs", [("lstm", {}), ("transformer", {"dropout": 0.0})])
def test_trailing_padding_does_not_change_the_output(name, kwargs):
    """Padding is masked: the same tokens padded to T=5 and T=9 score the same."""
    torch.manual_seed(0)
    short = build(name, InputLayout((5,), "int64"), {"vocab_size": 30, **kwargs}, 2).eval()
    long = build(name, InputLayout((9,), "int64"), {"vocab_size": 30, **kwargs}, 2).eval()
    long.load_state_dict(short.state_dict())
    tokens = torch.tensor([[5, 6, 7, 0, 0], [9, 8, 7, 6, 5]])
    padded = torch.cat([tokens, torch.zeros(2, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(short(tokens), long(padded))


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_a_row_of_padding_only_scores_finite(name):
    net = build(name, InputLayout((6,), "int64"), {"vocab_size": 10}, 3).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 6, dtype=torch.long))
    assert torch.isfinite(out).all()


def test_lstm_last_step_pooling_finds_the_last_real_token_on_either_side():
    torch.manual_seed(0)
    net = build("lstm", InputLayout((6,), "int64"), {"vocab_size": 10, "pool": "last"}, 2).eval()
    post = torch.tensor([[3, 4, 5, 0, 0, 0]])
    with torch.no_grad():
        ref = net.head(net.lstm(net.inp.embed(post))[0][:, 2])
        torch.testing.assert_close(net(post), ref)


@pytest.mark.parametrize("name,kwargs,layout,match", [
    ("cnn", {}, InputLayout((64,)), r"'input_shape' argument of CNN must be \(C, H, W\)"),
    ("lstm", {"vocab_size": 10}, InputLayout((4, 4)), r"input_shape' must be \(T,\)"),
    ("lstm", {}, InputLayout((16,)), r"must be \(T, F\)"),
    ("transformer", {"d_model": 30, "nhead": 4}, InputLayout((8,)), "divisible by 'nhead'"),
    ("autoencoder", {"kind": "conv"}, InputLayout((8,)), r"'kind' argument of AutoEncoder"),
    ("lstm", {"pool": "median"}, InputLayout((8, 2)), r"'pool' argument of LSTMNet"),
    ("mlp", {"hidden_layers": [0]}, InputLayout((8,)), r"'hidden_layers' argument of MLP"),
])
def test_bad_arguments_name_the_argument(name, kwargs, layout, match):
    with pytest.raises(ValueError, match=match):
        build(name, layout, kwargs, 2)


def test_check_network_names_the_wrong_output_shape():
    net = build("mlp", InputLayout((4,)), {}, 3)
    with pytest.raises(ValueError, match=r"returns shape \(2, 3\).*needs \(2, 5\)"):
        check_network(net, InputLayout((4,)), [(5,)], "TorchClassifier", "mlp")


@pytest.mark.parametrize("kind,shape", [("dense", (12,)), ("lstm", (6, 2))])
def test_autoencoder_learns_to_reconstruct(kind, shape):
    torch.manual_seed(0)
    layout = InputLayout(shape)
    net = build("autoencoder", layout, {"kind": kind, "latent_dim": 8}, 12)
    t = torch.linspace(0, 6.28, 12)
    x = torch.stack([torch.sin(t + p) for p in torch.rand(256) * 6.28])  # a 2-dim manifold
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = ((net(x) - x) ** 2).mean()
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first
