"""ImageTensorizer's executor side without Spark: decoding, channels, resize, normalization."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from spark_dl.feature._images import (
    LUMA,
    InvalidImage,
    TensorSpec,
    bilinear_weights,
    convert_channels,
    decoded_pixels,
    normalize,
    raw_block,
    resize,
    struct_pixels,
    tensorize,
)


def _spec(**kw):
    base = dict(kind="binary", size=(2, 3), channels=3, bgr=False, scale=1 / 255,
                mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_shape=None,
                channels_first=False, on_invalid="keep")
    return TensorSpec(**{**base, **kw})


def _png(pixels: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **save)
    return buf.getvalue()


RGB = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10  # (H, W, C), distinct values
NOISE = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)


# ------------------------------------------------------------------ one row to pixels
def test_struct_pixels_turn_bgr_bytes_into_rgb():
    bgr = RGB[..., ::-1].tobytes()
    np.testing.assert_array_equal(struct_pixels(2, 3, 3, bgr), RGB.astype(np.float32))
    bgra = np.concatenate([RGB[..., ::-1], np.full((2, 3, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(struct_pixels(2, 3, 4, bgra.tobytes()), RGB)  # alpha dropped
    gray = struct_pixels(1, 2, 1, bytes([5, 250]))
    assert gray.shape == (1, 2, 1) and gray.ravel().tolist() == [5.0, 250.0]


@pytest.mark.parametrize("row, reason", [
    ((2, 3, 3, None), "null"),
    ((-1, -1, -1, b""), "could not decode"),  # Spark's row for an undecodable file
    ((2, 3, 3, bytes(17)), r"holds 17 bytes where height \* width \* nChannels = 18"),
    ((2, 3, 2, bytes(12)), "nChannels 1, 3 or 4"),
    ((float("nan"), float("nan"), float("nan"), None), "null"),  # a null struct
])
def test_struct_pixels_reject_invalid_rows(row, reason):
    with pytest.raises(InvalidImage, match=reason):
        struct_pixels(*row)


def test_decoded_pixels_keep_png_values_and_channels():
    np.testing.assert_array_equal(decoded_pixels(_png(RGB)), RGB)
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    np.testing.assert_array_equal(decoded_pixels(_png(gray)), gray[..., None])
    rgba = np.concatenate([RGB, np.full((2, 3, 1), 9, np.uint8)], axis=-1)
    np.testing.assert_array_equal(decoded_pixels(_png(rgba)), RGB)
    palette = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=6)
    buf = io.BytesIO()
    palette.save(buf, format="PNG")
    np.testing.assert_array_equal(decoded_pixels(buf.getvalue()), RGB)


def test_decoded_pixels_scale_16_bit_gray_to_the_8_bit_range():
    deep = np.array([[0, 257, 65535]], np.uint16)
    np.testing.assert_array_equal(decoded_pixels(_png(deep)).ravel(), [0.0, 1.0, 255.0])


def test_decoded_pixels_read_jpeg():
    solid = np.full((8, 8, 3), [200, 100, 50], np.uint8)
    pixels = decoded_pixels(_png(solid, "JPEG", quality=95))
    assert pixels.shape == (8, 8, 3) and np.abs(pixels - solid).max() <= 2


@pytest.mark.parametrize("data, reason", [
    (None, "null"),
    (b"definitely not an image", "does not recognise"),
    (_png(NOISE)[:-40], "cannot decode"),  # truncated PNG
])
def test_decoded_pixels_reject_undecodable_bytes(data, reason):
    with pytest.raises(InvalidImage, match=reason):
        decoded_pixels(data)


def test_raw_block_reshapes_both_layouts_and_flags_bad_rows():
    hwc = RGB.astype(np.float64).ravel()
    chw = RGB.transpose(2, 0, 1).astype(np.float64).ravel()
    values = pd.Series([hwc, None, hwc[:-1], np.where(hwc == 10, np.nan, hwc),
                        np.array([None] + list(hwc[1:]), dtype=object)], dtype=object)
    block, index, reasons = raw_block(values, _spec(kind="array", input_shape=(2, 3, 3)))
    assert index == [0] and block.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(block[0], RGB)
    assert reasons[1] == "the array is null"
    assert reasons[2] == "the array holds 17 values where inputShape [2, 3, 3] needs 18"
    assert "NaN" in reasons[3] and "NaN" in reasons[4]
    chw_spec = _spec(kind="array", input_shape=(2, 3, 3), channels_first=True)
    block, _, _ = raw_block(pd.Series([chw]), chw_spec)
    np.testing.assert_array_equal(block[0], RGB)


# ------------------------------------------------------------------ pixels to tensors
def test_convert_channels_luma_and_copies():
    rgb = RGB.astype(np.float32)
    gray = convert_channels(rgb, 1)
    np.testing.assert_allclose(gray[..., 0], 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1]
                               + 0.114 * rgb[..., 2], rtol=1e-6)
    assert LUMA.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(convert_channels(gray, 3), np.repeat(gray, 3, axis=-1))
    assert convert_channels(rgb, 3) is rgb


def _pillow(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(plane.astype(np.float32))
    return np.asarray(image.resize(size[::-1], Image.Resampling.BILINEAR))


@pytest.mark.parametrize("shape, size", [((8, 8), (32, 32)), ((5, 7), (3, 11)),
                                         ((40, 30), (7, 7)), ((9, 4), (9, 13))])
def test_dense_resize_matches_pillow_bilinear(shape, size):
    block = np.random.default_rng(1).random((3, *shape, 2), dtype=np.float32) * 255
    out = resize(block, size)
    assert out.shape == (3, *size, 2) and out.dtype == np.float32
    for i, k in [(0, 0), (2, 1)]:
        np.testing.assert_allclose(out[i, ..., k], _pillow(block[i, ..., k], size), atol=1e-4)


def test_large_rasters_are_resized_by_pillow_itself():
    block = np.random.default_rng(2).random((1, 150, 20, 1), dtype=np.float32) * 255
    out = resize(block, (10, 30))
    np.testing.assert_array_equal(out[0, ..., 0], _pillow(block[0, ..., 0], (10, 30)))


def test_resize_keeps_constants_and_same_size_images():
    solid = np.full((1, 5, 7, 3), [10.0, 120.0, 250.0], np.float32)
    big = resize(solid, (32, 32))
    np.testing.assert_array_equal(big, np.broadcast_to(solid[0, 0, 0], (1, 32, 32, 3)))
    np.testing.assert_array_equal(resize(solid, (2, 3)), np.broadcast_to(solid[0, 0, 0],
                                                                         (1, 2, 3, 3)))
    assert resize(solid, (5, 7)) is solid
    np.testing.assert_array_equal(bilinear_weights(6, 6), np.eye(6))
    assert bilinear_weights(6, 3).sum(axis=1) == pytest.approx(np.ones(3), abs=1e-15)


def test_normalize_gives_chw_order_bgr_option_and_per_channel_stats():
    block = RGB.astype(np.float32)[None]  # (1, 2, 3, 3)
    spec = _spec(scale=1.0, mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0))
    out = normalize(block, spec)
    assert out.dtype == np.float32 and out.shape == (1, 18)
    planes = RGB.transpose(2, 0, 1).astype(np.float32)
    expected = (planes - np.array([1, 2, 3], np.float32)[:, None, None]) \
        / np.array([2, 4, 8], np.float32)[:, None, None]
    np.testing.assert_array_equal(out[0], expected.ravel())
    bgr = normalize(block, _spec(scale=1.0, bgr=True))
    np.testing.assert_array_equal(bgr[0], planes[::-1].ravel())


# ------------------------------------------------------------------ one batch
def test_tensorize_binary_batch_keeps_invalid_rows_as_null():
    batch = pd.DataFrame({"data": [_png(RGB), b"junk", None], "origin": ["a.png", "b", None]})
    out = tensorize(batch, _spec(size=(2, 3)))
    assert out[1] is None and out[2] is None
    np.testing.assert_allclose(out[0], (RGB.transpose(2, 0, 1) / 255).ravel(), rtol=1e-6)


def test_tensorize_error_names_the_first_invalid_row():
    batch = pd.DataFrame({"data": [_png(RGB), b"junk"], "origin": ["a.png", "file:/x/b.png"]})
    with pytest.raises(ValueError, match=r"the image at 'file:/x/b.png' into a tensor: Pillow "
                                         r"does not recognise it.*handleInvalid='skip'"):
        tensorize(batch, _spec(on_invalid="error"))
    raw = pd.DataFrame({"data": [np.zeros(5)], "origin": [None]})
    with pytest.raises(ValueError, match="cannot turn a raw array into a tensor: the array "
                                         "holds 5 values where inputShape"):
        tensorize(raw, _spec(kind="array", input_shape=(2, 3, 1), on_invalid="error"))


def test_raw_arrays_struct_and_png_of_the_same_pixels_give_the_same_tensor():
    spec = dict(size=(5, 4), mean=(0.5,), std=(0.25,), channels=1)
    png = tensorize(pd.DataFrame({"data": [_png(RGB)]}), _spec(**spec))
    raw = tensorize(pd.DataFrame({"data": [RGB.ravel()]}),
                    _spec(kind="array", input_shape=(2, 3, 3), **spec))
    struct = tensorize(pd.DataFrame({"height": [2], "width": [3], "nChannels": [3],
                                     "data": [RGB[..., ::-1].tobytes()]}),
                       _spec(kind="image", **spec))
    assert png[0].shape == (20,)
    np.testing.assert_array_equal(png[0], raw[0])
    np.testing.assert_array_equal(png[0], struct[0])


def test_empty_batch_gives_an_empty_series():
    out = tensorize(pd.DataFrame({"data": pd.Series([], dtype=object)}),
                    _spec(kind="array", input_shape=(2, 3, 3), size=(4, 4)))
    assert len(out) == 0
