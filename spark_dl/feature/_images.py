"""Executor side of :class:`~spark_dl.feature.image.ImageTensorizer`: pixels into tensors.

Module-level functions receiving plain values (a frozen :class:`TensorSpec`), run inside a
``pandas_udf``. Each row becomes an ``(H, W, C)`` float32 array in RGB (or gray) order:
Spark image structs are read from their BGR(A) bytes, binary files are decoded by Pillow,
raw arrays are reshaped as one numpy block (and stay one through channel conversion and
resize). Scaling, ``(x - mean) / std`` and the move to ``(C, H, W)`` happen once per batch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

OWNER = "ImageTensorizer"
#: ITU-R 601-2 luma weights, as Pillow's ``convert("L")``, applied in float32.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_16_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "F")
#: Rasters up to this many pixels per side are resized with dense weight matrices.
MAX_DENSE_RESIZE = 128


@dataclass(frozen=True)
class TensorSpec:
    """Everything a batch needs, as plain values (no Params, no SparkSession)."""

    kind: str  # "image" (Spark image struct), "binary" (encoded file) or "array" (raw pixels)
    size: tuple[int, int]  # (H, W) after the resize
    channels: int  # 1 (gray) or 3
    bgr: bool  # 3-channel output in B, G, R order
    scale: float  # pixel values are multiplied by this before mean and std
    mean: tuple[float, ...]  # one per output channel, in output order
    std: tuple[float, ...]
    input_shape: tuple[int, int, int] | None  # (H, W, C) of raw arrays, whatever their layout
    channels_first: bool  # raw arrays are laid out (C, H, W) rather than (H, W, C)
    on_invalid: str  # "error", "skip" or "keep"

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of each output tensor."""
        return (self.channels, self.size[0], self.size[1])


class InvalidImage(ValueError):
    """One row's input cannot become a tensor; the message says why."""


# ---------------------------------------------------------------------- one row to pixels
def struct_pixels(height: Any, width: Any, n_channels: Any, data: bytes | None) -> np.ndarray:
    """(H, W, 1 or 3) float32 RGB/gray pixels of a Spark image struct (BGR(A) bytes).

    Spark's image source stores row-major ``height x width x nChannels`` bytes, colour in
    B, G, R(, A) order; a file it could not decode has ``nChannels == -1`` and no data.
    The alpha channel is dropped (not composited).
    """
    if data is None:
        raise InvalidImage("the image is null")
    if len(data) == 0 or _int(n_channels) < 0:
        raise InvalidImage("Spark's image source could not decode the file (empty image)")
    h, w, c = _int(height), _int(width), _int(n_channels)
    if c not in (1, 3, 4) or h <= 0 or w <= 0:
        raise InvalidImage(f"height {h}, width {w}, nChannels {c} are not a supported image "
                           "(nChannels 1, 3 or 4 and a positive size)")
    if len(data) != h * w * c:
        raise InvalidImage(f"the data holds {len(data)} bytes where height * width * nChannels "
                           f"= {h * w * c}")
    pixels = np.frombuffer(data, np.uint8).reshape(h, w, c)
    if c > 1:
        pixels = pixels[..., 2::-1]  # B, G, R(, A) -> R, G, B
    return pixels.astype(np.float32)


def decoded_pixels(data: bytes | None) -> np.ndarray:
    """(H, W, 1 or 3) float32 RGB/gray pixels of an encoded file (PNG, JPEG, ... via Pillow).

    Gray images (with or without alpha) stay one channel, everything else becomes RGB;
    alpha is dropped. 16-bit gray is divided by 257, so its range matches 8-bit's 0..255.
    Only the first frame of a multi-frame file is read; EXIF orientation is not applied
    (as in Spark's image source).
    """
    if data is None:
        raise InvalidImage("the file content is null")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode in _16_BIT_MODES:
                return (np.asarray(img, np.float32) / np.float32(257.0))[..., None]
            rgb = img.convert("L" if img.mode in _GRAY_MODES else "RGB")
    # Corrupt or truncated bytes make Pillow raise many types (OSError, SyntaxError,
    # ValueError, struct.error, DecompressionBombError, ...); each means "undecodable".
    except Image.UnidentifiedImageError as e:
        raise InvalidImage("Pillow does not recognise it as an image") from e
    except Exception as e:  # noqa: BLE001
        raise InvalidImage(f"Pillow cannot decode it ({type(e).__name__}: {e})") from e
    pixels = np.asarray(rgb, np.float32)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def raw_block(values: pd.Series, spec: TensorSpec) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Raw arrays as one (m, H, W, C) float32 block of the valid rows, their indices, reasons.

    A row is invalid when null, not ``H * W * C`` values long, or holding a null, NaN or
    infinite value (Spark hands null elements over as NaN).
    """
    if spec.input_shape is None:  # the driver requires inputShape for array input
        raise ValueError(f"{OWNER} needs inputShape to read raw arrays.")
    h, w, c = spec.input_shape
    need = h * w * c
    reasons: dict[int, str] = {}
    rows: list[np.ndarray] = []
    index: list[int] = []
    for i, v in enumerate(values):
        if v is None:
            reasons[i] = "the array is null"
        elif len(v) != need:
            reasons[i] = (f"the array holds {len(v)} values where inputShape "
                          f"{list(spec.input_shape)} needs {need}")
        else:
            a = np.asarray(v)
            rows.append(np.array([np.nan if x is None else x for x in a], np.float32)
                        if a.dtype == object else a)
            index.append(i)
    flat: np.ndarray = np.zeros((0, need), np.float32)
    if rows:
        flat = np.stack(rows).astype(np.float32, copy=False)
    finite: np.ndarray = np.isfinite(flat).all(axis=1)
    for k in np.flatnonzero(~finite):
        reasons[index[int(k)]] = "the array holds null, NaN or infinite values"
    flat, index = flat[finite], [j for j, ok in zip(index, finite.tolist()) if ok]
    if spec.channels_first:
        block = flat.reshape(len(flat), c, h, w).transpose(0, 2, 3, 1)
    else:
        block = flat.reshape(len(flat), h, w, c)
    return (block[..., :3] if c == 4 else block), index, reasons  # alpha dropped


def _int(value: Any) -> int:
    """An int from a pandas cell that may be NaN (a null struct field)."""
    return -1 if value is None or value != value else int(value)


# ---------------------------------------------------------------------- pixels to tensors
def convert_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(..., 1 or 3) float32 pixels with ``channels`` channels: luma for gray, copies for RGB."""
    have = pixels.shape[-1]
    if have == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    return (pixels @ LUMA)[..., None]


def resize(block: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(m, H, W, C) float32 images resized to ``size`` (H', W'): Pillow's bilinear filter.

    The filter is Pillow's on 32-bit float images (mode "F"): antialiased when shrinking,
    no rounding to 8 bits. It is separable and the same for every image of a block, so
    small rasters are resized at once as ``Ry @ image @ Rx.T`` with Pillow's own weights
    (:func:`bilinear_weights`), in float64 as Pillow accumulates, so a constant image stays
    exactly constant; larger ones, where dense weights would cost more than Pillow's sparse
    filter, go to Pillow image by image and channel by channel.
    """
    h, w = size
    if block.shape[1:3] == (h, w):
        return block
    if max(block.shape[1], block.shape[2], h, w) <= MAX_DENSE_RESIZE:
        ry = bilinear_weights(block.shape[1], h)
        rx = bilinear_weights(block.shape[2], w)
        planes = block.transpose(0, 3, 1, 2).astype(np.float64)
        return (ry @ planes @ rx.T).astype(np.float32).transpose(0, 2, 3, 1)
    from PIL import Image

    out = np.empty((len(block), h, w, block.shape[3]), np.float32)
    for i, image in enumerate(block):
        for k in range(block.shape[3]):
            plane = Image.fromarray(np.ascontiguousarray(image[..., k]))
            out[i, ..., k] = np.asarray(plane.resize((w, h), Image.Resampling.BILINEAR))
    return out


@lru_cache(maxsize=64)
def bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 weights of Pillow's bilinear resize along one axis.

    Read off Pillow itself: resizing the identity image vertically resamples each of its
    columns, the unit vectors, so the result is the weight matrix. Pillow normalizes each
    output's weights to sum to 1; the rows are renormalized after the float32 round trip.
    """
    from PIL import Image

    eye = Image.fromarray(np.eye(n_in, dtype=np.float32))
    weights = np.asarray(eye.resize((n_in, n_out), Image.Resampling.BILINEAR), np.float64)
    weights = weights / weights.sum(axis=1, keepdims=True)
    weights.setflags(write=False)  # shared by every call through the cache
    return weights


def fit(block: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """(m, H, W, 1 or 3) pixels with the output channels and size: (m, H', W', channels).

    Both steps are linear, so their order only changes the cost: resize the fewer channels.
    """
    if block.shape[-1] < spec.channels:  # gray to RGB: resize one plane, then copy it
        return convert_channels(resize(block, spec.size), spec.channels)
    return resize(convert_channels(block, spec.channels), spec.size)


def normalize(block: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """(m, H, W, C) fitted pixels into (m, C * H * W) float32 tensors in (C, H, W) order."""
    x = block.transpose(0, 3, 1, 2)
    if spec.bgr and spec.channels == 3:
        x = x[:, ::-1]
    mean = np.asarray(spec.mean, np.float32)[:, None, None]
    std = np.asarray(spec.std, np.float32)[:, None, None]
    out = (x * np.float32(spec.scale) - mean) / std
    return np.ascontiguousarray(out, np.float32).reshape(len(block), int(np.prod(out.shape[1:])))


# ---------------------------------------------------------------------- one batch
def _fitted_rows(batch: pd.DataFrame,
                 spec: TensorSpec) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """(m, H', W', channels) fitted pixels of the valid rows, their indices, and reasons."""
    empty = np.zeros((0, *spec.size, spec.channels), np.float32)
    if spec.kind == "array":  # the whole batch as one block
        block, index, reasons = raw_block(batch["data"], spec)
        return (fit(block, spec) if len(block) else empty), index, reasons
    fitted = []
    index, reasons = [], {}
    for i, row in enumerate(batch.itertuples(index=False)):
        try:
            if spec.kind == "image":
                pixels = struct_pixels(row.height, row.width, row.nChannels, row.data)
            else:
                pixels = decoded_pixels(row.data)
        except InvalidImage as e:
            reasons[i] = str(e)
            continue
        fitted.append(fit(pixels[None], spec)[0])
        index.append(i)
    return (np.stack(fitted) if fitted else empty), index, reasons


def tensorize(batch: pd.DataFrame, spec: TensorSpec) -> pd.Series:
    """One batch's tensors: a float32 array of C * H * W values per row, None when invalid.

    ``batch`` has a ``data`` column (struct bytes, file bytes or raw arrays), an optional
    ``origin`` naming the row, and for image structs ``height``, ``width``, ``nChannels``.
    With ``on_invalid == "error"`` the first invalid row raises a ValueError naming it.
    """
    import pandas as pd

    block, index, reasons = _fitted_rows(batch, spec)
    if reasons and spec.on_invalid == "error":
        first = min(reasons)
        origin = batch["origin"].iloc[first] if "origin" in batch.columns else None
        raise invalid_row_error(origin, reasons[first], spec.kind)
    out: list[Any] = [None] * len(batch)
    for i, tensor in zip(index, normalize(block, spec)):
        out[i] = tensor
    return pd.Series(out, dtype=object)


def invalid_row_error(origin: str | None, reason: str, kind: str) -> ValueError:
    """The handleInvalid='error' message: which row (when known), why, and the way out."""
    what = "raw array" if kind == "array" else "image"
    where = f"the {what} at {origin!r}" if origin else f"a {what}"
    return ValueError(
        f"{OWNER} cannot turn {where} into a tensor: {reason}. handleInvalid='error'; set "
        "handleInvalid='skip' to drop such rows or 'keep' to output null for them."
    )
