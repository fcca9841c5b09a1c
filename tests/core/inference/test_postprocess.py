"""The clean-up keeps the largest region in 3-D only where slices are neighbours, per slice elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.postprocess import (
    PostprocessOptions,
    postprocess_for_volume,
    postprocess_masks,
    slice_numbers,
    slices_adjacent,
)
from core.types import Volume


def _png_volume(names, kind="kaggle_patient"):
    n = len(names)
    return Volume(np.zeros((n, 8, 8), np.uint8), None, None, [Path(f"{s}.png") for s in names], "kaggle8bit",
                  kind, "p")


def test_slice_numbers_and_adjacency_from_names():
    assert slice_numbers(["1-001", "1-002", "1-010"]) == [1, 2, 10]
    assert slice_numbers(["a", "1-002"]) is None
    assert slices_adjacent(_png_volume(["1-001", "1-002", "1-003"]))
    assert slices_adjacent(_png_volume(["1-09", "1-08", "1-07"]))  # bottom-up, two-digit names
    assert not slices_adjacent(_png_volume(["1-001", "1-004", "1-009"]))  # a random subset: gaps
    assert not slices_adjacent(_png_volume(["left", "right"], kind="png_folder"))  # order unknown
    dicom = Volume(np.zeros((3, 4, 4), np.int16), (2.0, 1.0, 1.0), np.eye(4), [Path(f"{i}.dcm") for i in range(3)],
                   "hu", "dicom", "d")
    assert slices_adjacent(dicom)
    dicom.metadata["irregular_spacing"] = True
    assert not slices_adjacent(dicom)


def _two_hearts():
    masks = np.zeros((3, 20, 20), np.uint8)
    masks[0, 2:10, 2:10] = 1  # slice 0: a heart
    masks[1, 12:14, 12:14] = 1  # slice 1: a small region elsewhere, and a speck
    masks[1, 0, 19] = 1
    masks[2, 10:18, 10:18] = 1  # slice 2: the heart, not overlapping slice 0
    return masks


def test_largest_region_is_3d_for_neighbours_and_per_slice_across_gaps():
    three_d = postprocess_masks(_two_hearts(), PostprocessOptions(keep_largest=True, slices_adjacent=True))
    # in 3-D, slices 1 and 2 join (12:14 lies inside 10:18): slice 0 is a separate, smaller object
    assert three_d[0].sum() == 0 and three_d[2].sum() == 64
    per_slice = postprocess_masks(_two_hearts(), PostprocessOptions(keep_largest=True, slices_adjacent=False))
    assert per_slice[0].sum() == 64 and per_slice[1].sum() == 4 and per_slice[2].sum() == 64


def test_postprocess_for_volume_sets_adjacency():
    opts = PostprocessOptions(keep_largest=True)
    assert postprocess_for_volume(_png_volume(["1-001", "1-005"]), opts).slices_adjacent is False
    assert postprocess_for_volume(_png_volume(["1-001", "1-002"]), opts).slices_adjacent is True
    assert postprocess_for_volume(_png_volume(["1-001"]), None) is None


@pytest.mark.shared
def test_real_kaggle_subset_is_treated_per_slice(shared_data):
    from core.io import open_scan

    patient = shared_data / "kaggle_strips" / "train" / "100053"
    vol = open_scan(patient)
    assert not slices_adjacent(vol)  # ~20 % of the slices: the names skip numbers
    # every dataset mask survives the clean-up unchanged: each slice's ellipse is one region
    kept = postprocess_masks(vol.mask.copy(), postprocess_for_volume(vol, PostprocessOptions(keep_largest=True)))
    np.testing.assert_array_equal(kept, vol.mask)
