"""A LeNet-style convolutional network for images given as (C, H, W) tensors."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from spark_dl.models.mlp import MLP, check_choice, check_positive


class CNN(nn.Module):
    """Convolution blocks (conv, [batch norm], ReLU, 2x2 max-pool) then a dense head.

    With the defaults it is LeNet-5 widened for colour images: two blocks of 5x5
    convolutions with 32 and 64 channels over a 3x32x32 input, then dense layers of 256
    and 128 units.

    Parameters
    ----------
    input_shape : sequence of int, default (3, 32, 32)
        ``(C, H, W)`` of each image (passed by the estimator from its ``inputShape``).
    out_features : int
        Number of outputs (classes; passed by the estimator).
    channels : sequence of int, default (32, 64)
        Output channels of each convolution block; its length is the depth.
    kernel_size : int, default 5
        Square kernel of every convolution; padding keeps the spatial size ("same").
    hidden_layers : sequence of int, default (256, 128)
        Dense layers after the convolutions.
    dropout : float, default 0.25
        Dropout before each dense layer.
    batch_norm : bool, default True
        ``BatchNorm2d`` after each convolution.
    pool : {"max", "avg"}, default "max"
        2x2 pooling at the end of each block; blocks stop pooling once a side reaches 1.

    Examples
    --------
    >>> CNN(input_shape=(1, 8, 8), out_features=10, channels=[8])(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        out_features: int,
        input_shape: Sequence[int] = (3, 32, 32),
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 5,
        hidden_layers: Sequence[int] = (256, 128),
        dropout: float = 0.25,
        batch_norm: bool = True,
        pool: str = "max",
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                "The 'input_shape' argument of CNN must be (C, H, W), three ints; set the "
                f"estimator's inputShape, for example [3, 32, 32]. Got {list(input_shape)!r}."
            )
        check_choice("CNN", "pool", pool, ("max", "avg"))
        check_positive("CNN", "kernel_size", kernel_size)
        c, h, w = (int(v) for v in input_shape)
        self.input_shape = (c, h, w)
        layers: list[nn.Module] = []
        for width in channels:
            check_positive("CNN", "channels", width)
            layers.append(nn.Conv2d(c, int(width), int(kernel_size), padding=int(kernel_size) // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(width)))
            layers.append(nn.ReLU())
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = int(width)
        self.features = nn.Sequential(*layers)
        self.head = MLP(in_features=c * h * w, out_features=out_features,
                        hidden_layers=hidden_layers, dropout=dropout, dropout_first=dropout > 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.input_shape)
        return self.head(self.features(x).flatten(1))
