"""How a row's flat feature values become the tensor a network sees: its shape and dtype.

Spark ML columns hold flat rows (a Vector or an array). A stage's ``inputShape`` Param
says how to read them: ``[3, 32, 32]`` for images (C, H, W), ``[T, F]`` for windows,
``[T]`` for token ids, ``[]`` for flat vectors. Integer arrays (token ids) reach the
network as int64, everything else as float32. The layout is resolved and checked on the
driver; ranks and scoring tasks receive it as plain values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import torch

#: Token ids travel as float32, which holds every integer below 2**24 exactly.
MAX_EXACT_ID = 2**24
DTYPES = ("float32", "int64")


@dataclass(frozen=True)
class InputLayout:
    """Per-row tensor shape (without the batch dimension) and dtype."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def size(self) -> int:
        """Number of flat values per row."""
        return math.prod(self.shape)

    def injected(self, num_outputs: int) -> dict[str, Any]:
        """Constructor arguments the estimator supplies where the network accepts them."""
        return {"in_features": self.size, "out_features": num_outputs,
                "input_shape": list(self.shape)}

    def to_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, size)`` float32 rows to ``(N, *shape)`` in this layout's dtype."""
        x = x.reshape(x.shape[0], *self.shape)
        return x.long() if self.dtype == "int64" else x

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, num_features: int) -> InputLayout:
        """Parse :meth:`to_dict`; ``None`` (models saved before layouts) is flat float32."""
        if not data:
            return cls((int(num_features),))
        if data.get("dtype") not in DTYPES:
            raise ValueError(f"Unknown input dtype {data.get('dtype')!r}; expected {DTYPES}.")
        return cls(tuple(int(v) for v in data["shape"]), data["dtype"])


def check_input_shape(shape: Sequence[int], owner: str) -> None:
    """Raise unless every entry of the ``inputShape`` Param is an int >= 1."""
    if any(int(v) < 1 for v in shape):
        raise ValueError(
            f"The 'inputShape' parameter of {owner} must be a list of ints >= 1 (for example "
            f"[3, 32, 32] for images or [16, 4] for windows), or [] for flat vectors. Got "
            f"{list(shape)!r} instead."
        )


def resolve_layout(shape: Sequence[int], num_features: int, dtype: str, owner: str,
                   column: str) -> InputLayout:
    """The layout for rows of ``num_features`` values; its size must match."""
    check_input_shape(shape, owner)
    layout = InputLayout(tuple(int(v) for v in shape) or (int(num_features),), dtype)
    if layout.size != num_features:
        raise ValueError(
            f"The 'inputShape' parameter of {owner} ({list(shape)}, {layout.size} values per "
            f"row) does not fit the 'featuresCol' column {column!r}, whose rows hold "
            f"{num_features} values. Set inputShape to a shape whose product is {num_features} "
            "(the row is read in row-major order), or [] for flat vectors."
        )
    return layout


def check_network(module: Any, layout: InputLayout, expected: list[tuple[int, ...]],
                  owner: str, model: str) -> None:
    """Run the untrained network on two zero rows and check its output shape on the driver."""
    import torch

    x = layout.to_tensor(torch.zeros(2, layout.size))
    module.eval()
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as exc:  # the user's network: any error is a shape or argument problem
        raise ValueError(
            f"Network {model!r} of {owner} fails on a batch of input shape "
            f"{tuple(x.shape)} ({layout.dtype}): {type(exc).__name__}: {exc}. Check the "
            "'inputShape' parameter and the 'modelParams'."
        ) from None
    if tuple(out.shape) not in [(2, *e) for e in expected]:
        raise ValueError(
            f"Network {model!r} of {owner} returns shape {tuple(out.shape)} for a batch of 2 "
            f"rows; {owner} needs {(2, *expected[0])}. Check the network's 'out_features'."
        )
