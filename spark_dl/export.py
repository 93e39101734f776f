"""ONNX export of fitted models: the network plus the scoring head ``transform`` applies.

:meth:`OnnxExportable.exportOnnx` writes one self-contained ``.onnx`` file that Netron opens
and onnxruntime (or any ONNX server) runs outside Spark. The graph takes a batch of any size
in the model's input layout and returns what ``transform`` writes, under the model's own
column names:

- classifier: ``rawPredictionCol`` and ``probabilityCol`` (float32, ``(n, k)``) and
  ``predictionCol`` (int64 class index, ``(n,)``);
- regressor: ``predictionCol`` (float32, ``(n,)``);
- anomaly detector: ``scoreCol`` (float32 mean squared reconstruction error, ``(n,)``) and
  ``predictionCol`` (bool, ``score > threshold``, the threshold at export time).

The input is named after ``featuresCol``: float32 ``(n, *inputShape)`` (``(n, numFeatures)``
without ``inputShape``), or int64 token ids for an ``inputDtype="int64"`` network. The graph
computes in float32 whatever ``inferencePrecision`` says (the numbers match ``transform``
at float32 to about 1e-6).
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from spark_dl.inputs import InputLayout

#: Exporters ``exportOnnx`` accepts; "auto" tries torch's dynamo exporter, then TorchScript's.
EXPORTERS = ("auto", "dynamo", "torchscript")
# Above this many bytes of weights the dynamo exporter writes them beside the graph
# (``<path>.data``): one protobuf file cannot exceed 2 GiB.
_EXTERNAL_DATA_BYTES = 1_500_000_000


class OnnxExportError(RuntimeError):
    """The network could not be exported to ONNX; the message names the refused layer."""


class OnnxExportable:
    """``exportOnnx`` for the fitted torch models (mixed into their base class)."""

    _task: str

    def exportOnnx(self, path: str, *, exporter: str = "auto", opset: int | None = None
                   ) -> str:
        """Write the model as an ONNX file at ``path`` (a local path) and return the path.

        Parameters
        ----------
        path : str
            File to write, conventionally ending in ``.onnx``; its folder must exist. Written
            to a temporary name first, so an interrupted export leaves no partial file.
        exporter : {"auto", "dynamo", "torchscript"}
            torch's exporter to use. "auto" tries ``torch.onnx.export(dynamo=True)`` (needs
            ``onnxscript``, the ``spark-dl[onnx]`` extra), then the TorchScript exporter.
        opset : int, optional
            ONNX opset; the exporter's default when unset.

        Returns
        -------
        str
            ``path``.

        Raises
        ------
        OnnxExportError
            When every exporter refused the network; the message names the first layer
            (as ``module path (class)``) that cannot be exported on its own.
        """
        if exporter not in EXPORTERS:
            raise ValueError(f"exportOnnx: exporter={exporter!r} is not one of {EXPORTERS}.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"exportOnnx: the folder {folder!r} of path={path!r} does "
                                    "not exist; create it first.")
        graph = scoring_graph(self.torchModule, self._task, self._head_options())
        layout: InputLayout = self._layout
        names = ([self.getFeaturesCol()], self._onnx_output_names())  # type: ignore[attr-defined]
        export_graph(graph, layout, path, names, exporter=exporter, opset=opset)
        return path

    def _head_options(self) -> dict[str, Any]:
        """Per-task values the head needs (the anomaly detector's threshold)."""
        return {}

    def _onnx_output_names(self) -> list[str]:
        return [self.getPredictionCol()]  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=1)
def _graph_class() -> type[nn.Module]:
    """The graph's module class, defined on first use: importing spark_dl imports no torch."""
    import torch
    from torch import nn

    class ScoringGraph(nn.Module):
        """The network followed by the scoring head of ``task`` (see the module docstring)."""

        def __init__(self, net: nn.Module, task: str, threshold: float) -> None:
            super().__init__()
            self.net = net.eval()
            self.task = task
            self.threshold = threshold

        def forward(self, x: torch.Tensor) -> Any:
            out = self.net(x).float()
            if self.task == "classification":
                if out.shape[1] == 2:
                    margin = out[:, 1] - out[:, 0]
                    raw = torch.stack([-margin, margin], dim=1)
                    p1 = torch.sigmoid(margin)
                    prob = torch.stack([1.0 - p1, p1], dim=1)
                else:
                    raw = out - out.mean(dim=1, keepdim=True)
                    prob = torch.softmax(raw, dim=1)
                return raw, prob, torch.argmax(raw, dim=1)
            if self.task == "reconstruction":
                score = ((out.flatten(1) - x.flatten(1).float()) ** 2).mean(dim=1)
                return score, score > self.threshold
            return out.flatten(1)[:, 0]

    return ScoringGraph


def scoring_graph(net: nn.Module, task: str, options: dict[str, Any]) -> nn.Module:
    """``net`` followed by the scoring head of ``task`` ("classification", "regression" or
    "reconstruction"); ``options`` holds the anomaly detector's ``threshold``."""
    return _graph_class()(net, task, float(options.get("threshold", float("inf"))))


def example_input(layout: InputLayout, rows: int = 2) -> torch.Tensor:
    """A batch in ``layout`` to trace with: zeros for token ids (id 0 is valid), else noise."""
    import torch

    if layout.dtype == "int64":
        return torch.zeros((rows, *layout.shape), dtype=torch.int64)
    generator = torch.Generator().manual_seed(0)
    return torch.randn((rows, *layout.shape), generator=generator)


def export_graph(graph: nn.Module, layout: InputLayout, path: str,
                 names: tuple[list[str], list[str]], *, exporter: str = "auto",
                 opset: int | None = None) -> None:
    """Export ``graph`` with a dynamic batch axis to ``path``; raise naming the refused layer."""
    import torch

    x = example_input(layout)
    big = sum(p.numel() * p.element_size() for p in graph.parameters()) > _EXTERNAL_DATA_BYTES
    target = path if big else f"{path}.tmp-{os.getpid()}"
    kinds = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    failures: list[str] = []
    for kind in kinds:
        try:
            with torch.no_grad():
                _export(graph, x, target, names, kind, opset, big)
            break
        except Exception as exc:  # noqa: BLE001 - every exporter's refusal is reported below
            failures.append(f"{kind}: {_first_line(exc)}")
    else:
        if os.path.exists(target) and target != path:
            os.remove(target)
        layer = refused_layer(graph.net, x, kinds[-1], opset)
        where = (f"the layer {layer} cannot be exported" if layer else
                 "no single layer fails on its own; the network's own forward() code does")
        raise OnnxExportError(
            f"exportOnnx: ONNX export of the network failed: {where}. Exporters tried: "
            + "; ".join(failures) + ". Replace that layer by operators ONNX supports, or "
            "pass opset= a newer opset."
        )
    if target != path:
        os.replace(target, path)


def _export(module: nn.Module, x: torch.Tensor, target: str,
            names: tuple[list[str], list[str]], kind: str, opset: int | None,
            external: bool) -> None:
    import torch

    inputs, outputs = names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        if kind == "dynamo":
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(
                module, (x,), None, input_names=inputs, output_names=outputs,
                opset_version=opset, dynamo=True, dynamic_shapes=({0: batch},),
                verbose=False)
            program.save(target, external_data=external)
        else:
            axes = {name: {0: "batch"} for name in inputs + outputs}
            torch.onnx.export(module, (x,), target, input_names=inputs,
                              output_names=outputs, opset_version=opset, dynamo=False,
                              dynamic_axes=axes)


def refused_layer(net: nn.Module, x: torch.Tensor, kind: str, opset: int | None
                  ) -> str | None:
    """The deepest module of ``net`` (``path (Class)``) whose own export fails, trying modules
    in the order the forward pass enters them, leaves first; None when each exports alone."""
    import tempfile

    import torch

    entered: dict[str, tuple[Any, ...]] = {}
    modules = dict(net.named_modules())
    hooks = [m.register_forward_pre_hook(
        lambda _m, args, name=name: entered.setdefault(name, args))
        for name, m in modules.items() if name]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    order = sorted(entered, key=lambda n: -n.count("."))  # deepest first, stable in order
    with tempfile.TemporaryDirectory(prefix="spark_dl-onnx-") as tmp:
        for name in order:
            args = entered[name]
            if len(args) != 1 or not isinstance(args[0], torch.Tensor):
                continue
            one = args[0].detach()
            try:
                with torch.no_grad():
                    _export(modules[name], one, os.path.join(tmp, "layer.onnx"),
                            (["x"], ["y"]), kind, opset, False)
            except Exception:  # noqa: BLE001 - a refusal is what we look for
                return f"{name!r} ({type(modules[name]).__name__})"
    return None


def _first_line(exc: BaseException) -> str:
    """The root cause's first line, without the exporter's terminal colour codes."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"
