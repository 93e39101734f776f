"""The recommender networks and the negative sampler as plain torch."""

from __future__ import annotations

import pytest
import torch

from spark_dl.model_spec import ModelSpec
from spark_dl.training.negatives import NegativeSampler, implicit_losses, sampled_auc_hits


@pytest.mark.parametrize("name", ["ncf", "two_tower"])
def test_score_matrix_equals_the_forward_pass_on_every_pair(name):
    torch.manual_seed(0)
    net = ModelSpec(name, {"num_users": 7, "num_items": 5, "user_features": 2,
                           "item_features": 3}).build().eval()
    net.entities.user_side.normal_()
    net.entities.item_side.normal_()
    users, items = torch.arange(7), torch.arange(5)
    pairs = torch.stack([users.repeat_interleave(5), items.repeat(7)], dim=1).float()
    with torch.no_grad():
        torch.testing.assert_close(net.score_matrix(users, items), net(pairs).view(7, 5))


def test_side_features_change_the_score():
    torch.manual_seed(0)
    net = ModelSpec("two_tower", {"num_users": 3, "num_items": 3, "user_features": 1,
                                  "tower_layers": [4]}).build().eval()
    x = torch.tensor([[0.0, 1.0]])
    with torch.no_grad():
        before = net(x).clone()
        net.entities.user_side[0] = 5.0
        assert not torch.allclose(before, net(x))


def test_negatives_follow_popularity_and_are_reproducible_by_seed():
    sampler = NegativeSampler.from_plan({"count": 4, "num_items": 3,
                                         "popularity": [8.0, 1.0, 1.0]})
    x = torch.tensor([[5.0, 2.0]] * 5000)
    neg = sampler.sample(x, seed=11)
    assert neg.shape == (20000, 2) and (neg[:, 0] == 5.0).all()
    share = (neg[:, 1] == 0).double().mean().item()
    assert abs(share - 0.8) < 0.02, share
    assert torch.equal(neg, sampler.sample(x, seed=11))
    assert not torch.equal(neg, sampler.sample(x, seed=12))
    uniform = NegativeSampler.from_plan({"count": 1, "num_items": 3, "popularity": None})
    assert abs((uniform.sample(x, 1)[:, 1] == 0).double().mean().item() - 1 / 3) < 0.03


def test_implicit_loss_is_the_binary_cross_entropy_of_each_positive_and_its_negatives():
    out = torch.tensor([2.0, -1.0, 0.5, -3.0, 1.0, 0.0])  # 2 positives, then 2 x 2 negatives
    losses = implicit_losses(out, 2, 2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    want = [bce(torch.tensor([2.0, 0.5, -3.0]), torch.tensor([1.0, 0.0, 0.0]),
                reduction="sum"),
            bce(torch.tensor([-1.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0]),
                reduction="sum")]
    torch.testing.assert_close(losses, torch.stack(want))
    assert sampled_auc_hits(out, 2, 2) == 2.0  # 2 > 0.5, 2 > -3; -1 < 1, -1 < 0
