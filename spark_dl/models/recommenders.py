"""Recommender networks: neural collaborative filtering and a two-tower model.

Both read a row as ``[user_index, item_index]`` (two float32 values, exact below 2**24,
indexed by :class:`~spark_dl.recommendation.TorchRecommender`) and return one score per row:
the predicted rating for explicit feedback, the logit of an interaction for implicit
feedback. Side features of users and items live in the network as buffers
(``user_side``, ``item_side``) that the estimator fills from the data before training, so
they are saved with the weights and a row never has to carry them.

``score_matrix(users, items)`` scores every user against every item of a block at once;
``TorchRecommendationModel.recommendForAllUsers`` uses it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spark_dl.models.mlp import MLP, check_positive


def _check_sizes(owner: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"The '{name}' argument of {owner} must be an int >= 0. "
                             f"Got {value!r} instead.")


class _Entities(nn.Module):
    """Ids, embeddings, biases and side-feature buffers shared by both networks."""

    def __init__(self, owner: str, num_users: int, num_items: int, user_features: int,
                 item_features: int) -> None:
        super().__init__()
        _check_sizes(owner, user_features=user_features, item_features=item_features)
        check_positive(owner, "num_users", num_users)
        check_positive(owner, "num_items", num_items)
        self.num_users, self.num_items = int(num_users), int(num_items)
        self.register_buffer("user_side", torch.zeros(num_users, int(user_features)))
        self.register_buffer("item_side", torch.zeros(num_items, int(item_features)))
        self.user_bias = nn.Embedding(num_users, 1)
        self.item_bias = nn.Embedding(num_items, 1)
        self.global_bias = nn.Parameter(torch.zeros(1))
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    @staticmethod
    def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(users, items)`` int64 indices from ``(N, 2)`` rows."""
        x = x.reshape(x.shape[0], -1)
        return x[:, 0].long(), x[:, 1].long()

    def biases(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
                + self.global_bias)


def _embedding(n: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(n, dim)
    nn.init.normal_(emb.weight, std=0.1)
    return emb


class TwoTower(nn.Module):
    """Separate user and item towers; the score is their dot product plus biases.

    Each tower maps an id's embedding, concatenated with its side features, through an MLP
    (``tower_layers``) to ``embedding_dim`` values; with no tower layers and no side features
    it is biased matrix factorization (ALS's model, trained by gradient descent). The
    towers' outputs are the model's ``userFactors`` and ``itemFactors``.

    Parameters
    ----------
    num_users, num_items : int
        Number of indexed users and items (set by the estimator).
    embedding_dim : int, default 32
        Width of the id embeddings and of each tower's output.
    tower_layers : sequence of int, default (64,)
        Hidden widths of each tower's MLP; empty: the embedding (plus a linear map of the
        side features, if any) is the factor.
    user_features, item_features : int, default 0
        Widths of the side features (set by the estimator from userFeaturesCol/itemFeaturesCol).
    dropout : float, default 0.0
        Dropout inside the towers.

    Examples
    --------
    >>> net = TwoTower(num_users=10, num_items=5, embedding_dim=4, tower_layers=[])
    >>> net(torch.tensor([[0.0, 1.0], [9.0, 4.0]])).shape
    torch.Size([2])
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 32,
                 tower_layers: Sequence[int] = (64,), user_features: int = 0,
                 item_features: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        check_positive("TwoTower", "embedding_dim", embedding_dim)
        self.entities = _Entities("TwoTower", num_users, num_items, user_features,
                                  item_features)
        self.user_emb = _embedding(num_users, embedding_dim)
        self.item_emb = _embedding(num_items, embedding_dim)
        self.user_tower = self._tower(embedding_dim, user_features, tower_layers, dropout)
        self.item_tower = self._tower(embedding_dim, item_features, tower_layers, dropout)

    @staticmethod
    def _tower(dim: int, side: int, layers: Sequence[int], dropout: float) -> nn.Module | None:
        if not layers and not side:
            return None
        return MLP(in_features=dim + side, out_features=dim, hidden_layers=list(layers),
                   dropout=dropout)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """The user tower's output ``(N, embedding_dim)`` for int64 user indices."""
        return self._vectors(self.user_emb(users), self.entities.user_side[users],
                             self.user_tower)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """The item tower's output ``(N, embedding_dim)`` for int64 item indices."""
        return self._vectors(self.item_emb(items), self.entities.item_side[items],
                             self.item_tower)

    @staticmethod
    def _vectors(emb: torch.Tensor, side: torch.Tensor, tower: nn.Module | None) -> torch.Tensor:
        if tower is None:
            return emb
        return tower(torch.cat([emb, side], dim=1) if side.shape[1] else emb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = self.entities.split(x)
        dot = (self.user_vectors(users) * self.item_vectors(items)).sum(dim=1)
        return dot + self.entities.biases(users, items)

    def score_matrix(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ``(len(users), len(items))``: one matrix product for the whole block."""
        e = self.entities
        dots = self.user_vectors(users) @ self.item_vectors(items).T
        return (dots + e.user_bias(users) + e.item_bias(items).T + e.global_bias)


class NCF(nn.Module):
    """Neural collaborative filtering (NeuMF, He et al. 2017): a generalized matrix
    factorization branch (element-wise product of embeddings) and an MLP over the
    concatenated embeddings and side features, joined by a linear output layer.

    Parameters
    ----------
    num_users, num_items : int
        Number of indexed users and items (set by the estimator).
    embedding_dim : int, default 16
        Width of each embedding (the GMF and MLP branches have their own).
    hidden_layers : sequence of int, default (64, 32)
        Hidden widths of the MLP branch.
    user_features, item_features : int, default 0
        Widths of the side features (set by the estimator).
    dropout : float, default 0.0
        Dropout in the MLP branch.

    Examples
    --------
    >>> NCF(num_users=10, num_items=5)(torch.tensor([[0.0, 1.0]])).shape
    torch.Size([1])
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 16,
                 hidden_layers: Sequence[int] = (64, 32), user_features: int = 0,
                 item_features: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        check_positive("NCF", "embedding_dim", embedding_dim)
        self.entities = _Entities("NCF", num_users, num_items, user_features, item_features)
        self.gmf_user, self.gmf_item = (_embedding(n, embedding_dim) for n in (num_users,
                                                                                num_items))
        self.mlp_user, self.mlp_item = (_embedding(n, embedding_dim) for n in (num_users,
                                                                                num_items))
        width = 2 * embedding_dim + int(user_features) + int(item_features)
        hidden = list(hidden_layers)
        self.mlp = MLP(in_features=width, out_features=hidden[-1] if hidden else width,
                       hidden_layers=hidden[:-1], dropout=dropout)
        self.act = nn.ReLU()
        self.out = nn.Linear(embedding_dim + (hidden[-1] if hidden else width), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        users, items = self.entities.split(x)
        e = self.entities
        gmf = self.gmf_user(users) * self.gmf_item(items)
        deep = torch.cat([self.mlp_user(users), self.mlp_item(items), e.user_side[users],
                          e.item_side[items]], dim=1)
        joined = torch.cat([gmf, self.act(self.mlp(deep))], dim=1)
        return self.out(joined).squeeze(-1) + e.biases(users, items)

    def score_matrix(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores ``(len(users), len(items))``: every pair through the network."""
        pairs = torch.stack([users.repeat_interleave(len(items)), items.repeat(len(users))],
                            dim=1)
        return self.forward(pairs).view(len(users), len(items))
