"""Label maps read as heart masks (core.io.masks.binary_from_labels)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import HeartsegError
from core.io.masks import binary_from_labels, mask_labels

SRC = "/data/labels.nii.gz"


def volume_with(*labels, dtype=np.uint8) -> np.ndarray:
    """A (4, 6, 7) volume holding background and one block per label."""
    a = np.zeros((4, 6, 7), dtype=dtype)
    for i, value in enumerate(labels):
        a[i, 1:4, 2:5] = value
    return a


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32])
def test_single_label_is_the_heart(dtype):
    a = volume_with(2, dtype=dtype)
    m = binary_from_labels(a, SRC)
    assert m.dtype == np.uint8 and m.shape == a.shape
    np.testing.assert_array_equal(m, (a == 2).astype(np.uint8))
    assert m.sum() == 9


@pytest.mark.parametrize("values", [(1,), (255,), (1, 255), ()])
def test_binary_masks_stay_binary(values):
    a = volume_with(*values)
    np.testing.assert_array_equal(binary_from_labels(a, SRC), (a > 0).astype(np.uint8))


def test_several_labels_are_refused_naming_them():
    a = volume_with(1, 3)
    with pytest.raises(HeartsegError) as exc_info:
        binary_from_labels(a, SRC)
    text = str(exc_info.value)
    assert "\n" not in text and text.startswith(SRC) and "1, 3" in text and "--label" in text


def test_label_picks_one():
    a = volume_with(1, 3)
    np.testing.assert_array_equal(binary_from_labels(a, SRC, label=3), (a == 3).astype(np.uint8))
    np.testing.assert_array_equal(binary_from_labels(a, SRC, label=1), (a == 1).astype(np.uint8))


def test_absent_or_bad_label_is_refused():
    a = volume_with(1, 3)
    with pytest.raises(HeartsegError, match=r"label 2 is not in the mask \(labels present: 1, 3\)"):
        binary_from_labels(a, SRC, label=2)
    with pytest.raises(HeartsegError, match="positive"):
        binary_from_labels(a, SRC, label=0)
    with pytest.raises(HeartsegError, match="empty"):
        binary_from_labels(volume_with(), SRC, label=1)


def test_many_labels_are_listed_briefly():
    a = np.arange(40, dtype=np.int16).reshape(1, 5, 8)
    with pytest.raises(HeartsegError) as exc_info:
        binary_from_labels(a, SRC)
    text = str(exc_info.value)
    assert "39 labels" in text and "1, 2, 3" in text and "39," not in text and len(text) < 300


def test_probability_maps_and_resampled_masks():
    p = np.linspace(0, 1, 4 * 6 * 7, dtype=np.float32).reshape(4, 6, 7)
    np.testing.assert_array_equal(binary_from_labels(p, SRC), (p > 0.5).astype(np.uint8))
    with pytest.raises(HeartsegError, match="fractional"):
        binary_from_labels(p, SRC, label=1)
    grey = volume_with(255)
    grey[0, 1, 2], grey[0, 3, 4] = 64, 200  # anti-aliased edges of a 0/255 mask
    np.testing.assert_array_equal(binary_from_labels(grey, SRC), (grey > 127).astype(np.uint8))


def test_negative_and_nan_values_are_refused():
    with pytest.raises(HeartsegError, match="negative"):
        binary_from_labels(volume_with(-1, dtype=np.int16), SRC)
    f = volume_with(1, dtype=np.float32)
    f[0, 0, 0] = np.nan
    with pytest.raises(HeartsegError, match="NaN"):
        binary_from_labels(f, SRC)


def test_mask_labels_counts_per_slice_without_copying_the_volume():
    a = volume_with(5, 2, 7, dtype=np.uint16)
    assert mask_labels(a) == [2, 5, 7]
    assert mask_labels(a.astype(np.float64)) == [2, 5, 7]
    assert mask_labels(a.astype(bool)) == [1]
    assert mask_labels(np.zeros((2, 3, 3), np.int32)) == []
