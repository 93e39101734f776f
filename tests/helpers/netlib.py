"""User-defined networks for the tests, referenced as "netlib:ClassName"."""

from __future__ import annotations

import os
import sys

import torch
from torch import nn


class TinyNet(nn.Module):
    """A user network with its own constructor arguments."""

    def __init__(self, in_features: int, out_features: int, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(),
                                  nn.Linear(width, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FailOnRank1(TinyNet):
    """Raises in the forward pass of rank 1 only, on its third call."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if os.environ.get("RANK") == "1" and self.calls == 3:
            raise ValueError("deliberate failure on rank 1 (FailOnRank1)")
        return super().forward(x)


NOT_A_MODULE = "just a string"


class CrashOnce(TinyNet):
    """Kills its own process at training forward call ``crash_after + 1``, once per marker.

    The first run creates ``marker`` and dies as a killed worker would (``os._exit``);
    later runs see the marker and train normally, so they can resume.
    """

    def __init__(self, in_features: int, out_features: int, marker: str,
                 crash_after: int) -> None:
        super().__init__(in_features, out_features)
        self.marker, self.crash_after, self.calls = marker, crash_after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls > self.crash_after and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os._exit(17)
        return super().forward(x)


class KillWorkerOnce(TinyNet):
    """When scoring (eval mode) in a Spark Python worker, SIGKILLs that worker once per
    ``marker`` file. The driver's shape check (eval mode, no pyspark.worker) is spared."""

    def __init__(self, in_features: int, out_features: int, marker: str) -> None:
        super().__init__(in_features, out_features)
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_worker = "pyspark.worker" in sys.modules
        if not self.training and in_worker and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), 9)
        return super().forward(x)


class BesselJ0(nn.Module):
    """An activation ONNX has no operator for (neither torch exporter converts it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x)


class BesselNet(nn.Module):
    """A user network whose ``head.act`` layer cannot be exported to ONNX."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.body = nn.Linear(in_features, 8)
        self.head = nn.Sequential()
        self.head.add_module("act", BesselJ0())
        self.head.add_module("out", nn.Linear(8, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
