"""The correction tools of MaskEditor: fill between slices, threshold-limited brush, 3-D clean-up."""

from __future__ import annotations

import numpy as np
import pytest

from core.editing import MaskEditor, intensity_limit, range_around
from core.editing._interpolate import signed_distance
from core.io import open_scan
from core.metrics import dice
from core.resources import sample_mask_path, sample_scan_path


def _disc(shape, centre, radius):
    r, c = np.ogrid[:shape[0], :shape[1]]
    return ((r - centre[0]) ** 2 + (c - centre[1]) ** 2 <= radius ** 2).astype(np.uint8)


# --------------------------------------------------------------------------------------------- interpolation
def test_signed_distance_zero_level_gives_the_mask_back():
    m = _disc((40, 40), (20, 18), 9)
    assert np.array_equal(signed_distance(m) < 0, m.astype(bool))


def test_interpolation_morphs_between_two_discs_in_one_undo_step():
    shape = (7, 64, 64)
    initial = np.zeros(shape, np.uint8)
    initial[0] = _disc(shape[1:], (32, 32), 8)
    initial[6] = _disc(shape[1:], (32, 32), 20)
    e = MaskEditor(shape, initial)
    e.set_review_state(3, "accepted")
    regions = e.interpolate_slices()
    assert sorted(r.slice_index for r in regions) == [1, 2, 3, 4, 5]
    areas = [e.area_px(i) for i in range(7)]
    assert all(a < b for a, b in zip(areas, areas[1:])), areas  # radius grows monotonically
    mid = np.pi * 14 ** 2
    assert abs(areas[3] - mid) / mid < 0.1
    assert e.undo_steps == 1 and e.undo_label == "Fill between slices (5 slices)"
    assert e.review_state(3) == "not_reviewed"             # a filled slice must be looked at again
    assert e.interpolated_slices == [1, 2, 3, 4, 5]
    assert e.review_state(0) == "not_reviewed" and e.review_state(6) == "not_reviewed"  # keys untouched
    e.set_review_state(2, "accepted")
    e.clear_slice(4)
    assert e.interpolated_slices == [1, 3, 5]              # reviewed or edited: no longer "interpolated"
    e.undo()
    e.undo()
    assert e.interpolated_slices == []
    assert not e.mask[1:6].any() and e.review_state(3) == "accepted"
    e.redo()
    assert e.interpolated_slices == [1, 3, 4, 5]           # slice 2 keeps the state set by hand


def test_interpolation_without_a_gap_records_nothing():
    e = MaskEditor((4, 16, 16))
    assert e.interpolate_slices() == [] and e.undo_steps == 0
    e.set_slices([1], _disc((16, 16), (8, 8), 3)[None], "one key")
    assert e.interpolate_slices() == [] and e.undo_steps == 1


def test_interpolation_with_explicit_keys_replaces_the_slices_between():
    shape = (5, 32, 32)
    initial = np.zeros(shape, np.uint8)
    initial[:] = _disc(shape[1:], (16, 16), 10)
    initial[2] = 0
    initial[2, :4, :4] = 1                                  # a wrong slice between two good keys
    e = MaskEditor(shape, initial)
    e.interpolate_slices(keys=[1, 3])
    assert dice(e.mask[2], initial[1]) > 0.98


def test_interpolation_on_the_sample_recovers_every_second_slice():
    """The README's figure: delete the mask on every second slice of a block of the bundled sample, interpolate,
    and compare the filled slices with the original mask."""
    mask = open_scan(sample_scan_path(), sample_mask_path()).mask
    heart = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    block = np.arange(heart[0] + 2, heart[-1] - 1)
    removed = [int(i) for i in block[1::2]]
    damaged = mask.copy()
    damaged[removed] = 0
    e = MaskEditor(mask.shape, damaged)
    e.interpolate_slices()
    filled = e.mask[removed].astype(bool)
    score = dice(filled, mask[removed].astype(bool))
    print(f"interpolation on the sample: {len(removed)} slices removed, Dice of the filled slices {score:.3f}")
    assert sorted(e.interpolated_slices) == removed
    assert score > 0.93


# ---------------------------------------------------------------------------------------- threshold brush
def test_threshold_brush_paints_only_inside_the_range():
    image = np.zeros((20, 20), np.float32)
    image[:, 10:] = 300.0                                   # right half: contrast blood
    e = MaskEditor((1, 20, 20))
    e.begin_limited_stroke(0, erase=False, radius=6, allowed=intensity_limit(image, 200, 400))
    e.stroke_to(10, 10)
    e.stroke_to(10, 12)
    e.end_stroke()
    painted = e.mask[0].astype(bool)
    assert painted.any() and not painted[:, :10].any()
    assert e.undo_steps == 1
    e.undo()
    assert not e.mask.any()


def test_threshold_eraser_keeps_voxels_outside_the_range():
    image = np.zeros((20, 20), np.float32)
    image[:10] = 500.0
    e = MaskEditor((1, 20, 20), np.ones((1, 20, 20), np.uint8))
    e.begin_limited_stroke(0, erase=True, radius=30, allowed=intensity_limit(image, 400, 600))
    e.stroke_to(10, 10)
    e.end_stroke()
    assert not e.mask[0, :10].any() and e.mask[0, 10:].all()


def test_threshold_range_rules():
    assert range_around(170, 50) == (120.0, 220.0)
    with pytest.raises(ValueError):
        intensity_limit(np.zeros((2, 2)), 5, 1)
    with pytest.raises(ValueError):
        range_around(1, -1)
    e = MaskEditor((1, 8, 8))
    with pytest.raises(ValueError):
        e.begin_limited_stroke(0, erase=False, radius=2, allowed=np.ones((4, 4), bool))
    assert not e.stroke_active


# --------------------------------------------------------------------------------------------- 3-D clean-up
def test_remove_small_islands_and_keep_largest_are_single_steps():
    m = np.zeros((6, 30, 30), np.uint8)
    m[1:5, 5:20, 5:20] = 1                                  # the heart, 900 voxels
    m[2, 25:27, 25:27] = 1                                  # a 4-voxel island
    m[4:6, 0:3, 25:28] = 1                                  # an 18-voxel island
    e = MaskEditor(m.shape, m)
    e.remove_small_islands(10)
    assert e.total_voxels() == 900 + 18 and e.undo_steps == 1
    assert e.review_state(2) == "corrected"
    e.keep_largest_3d_region()
    assert e.total_voxels() == 900 and e.undo_steps == 2 and e.undo_label == "Keep largest 3-D region"
    e.undo()
    e.undo()
    assert np.array_equal(e.mask, m)
    assert e.keep_largest_3d_region() != [] and e.keep_largest_3d_region() == []


def test_smooth_fills_a_notch_and_removes_a_spur_in_mm():
    m = np.zeros((9, 40, 40), np.uint8)
    m[1:8, 10:30, 10:30] = 1
    m[4, 19:21, 10:14] = 0                                  # a thin notch
    m[4, 20, 30:36] = 1                                     # a one-pixel spur
    e = MaskEditor(m.shape, m)
    regions = e.smooth_mask(1.5, spacing=(1.0, 0.75, 0.75))
    assert regions and e.undo_steps == 1 and "mm" in e.undo_label
    assert e.mask[4, 19:21, 11:14].all()                    # (the edge column stays open)
    assert not e.mask[4, 20, 32:36].any()
    assert e.mask[4, 15:25, 15:25].all()                    # the bulk stays
    e.undo()
    assert np.array_equal(e.mask, m)
    with pytest.raises(ValueError):
        e.smooth_mask(0)
