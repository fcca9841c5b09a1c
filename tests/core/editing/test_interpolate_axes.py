"""Fill between slices along the coronal and sagittal axes (MaskEditor.interpolate_planes): the user draws a few
coronal / sagittal slices and the planes between them are filled by signed-distance interpolation, as one undo
step of cropped per-axial-slice diffs that marks the axial slices it changed "corrected" and is in the journal."""

from __future__ import annotations

import numpy as np
import pytest

from core.editing import MaskEditor
from core.editing._interpolate import plane_sampling, signed_distance
from core.io import open_scan
from core.metrics import dice
from core.resources import sample_mask_path, sample_scan_path

AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}


def ball(shape, centre, radius) -> np.ndarray:
    """A ``(n_slices, rows, cols)`` uint8 ball drawn in numpy (voxel centres within ``radius``)."""
    zz, yy, xx = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    d2 = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
    return (d2 <= radius ** 2).astype(np.uint8)


def take(volume: np.ndarray, plane: str, indices) -> np.ndarray:
    index = [slice(None)] * 3
    index[AXIS[plane]] = list(indices)
    return volume[tuple(index)]


def every_second_plane_removed(mask: np.ndarray, plane: str) -> tuple[np.ndarray, list[int]]:
    """``mask`` with every second plane of its extent along ``plane``'s axis emptied, and those planes."""
    axis = AXIS[plane]
    idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    removed = [int(i) for i in np.arange(idx[0] + 2, idx[-1] - 1)[1::2]]
    damaged = mask.copy()
    index = [slice(None)] * 3
    index[axis] = removed
    damaged[tuple(index)] = 0
    return damaged, removed


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_planes_between_drawn_ones_are_filled_as_one_undo_step(plane):
    truth = ball((24, 30, 34), (12, 15, 17), 9)
    damaged, removed = every_second_plane_removed(truth, plane)
    e = MaskEditor(truth.shape, damaged)
    e.set_review_state(12, "flagged")
    regions = e.interpolate_planes(plane)
    filled = take(e.mask, plane, removed).astype(bool)
    assert dice(filled, take(truth, plane, removed).astype(bool)) > 0.9
    assert e.mask[damaged == 1].all()                           # what was drawn stays
    assert e.undo_steps == 1 and e.undo_label == f"Fill between {plane} slices ({len(removed)} slices)"
    changed = sorted({r.slice_index for r in regions})
    assert changed == [s for s in range(truth.shape[0]) if not np.array_equal(e.mask[s], damaged[s])]
    states = e.review_states
    assert all(states[s] == "corrected" for s in changed if s != 12)
    assert states[12] == "flagged"                              # a flagged slice stays flagged
    assert all(states[s] == "not_reviewed" for s in range(truth.shape[0]) if s not in changed and s != 12)
    assert e.interpolated_slices == []                          # axial "interpolated" is for whole slices only
    e.undo()
    assert np.array_equal(e.mask, damaged)
    assert [s for s in e.review_states if s != "not_reviewed"] == ["flagged"]
    e.redo()
    assert np.array_equal(take(e.mask, plane, removed).astype(bool), filled)


def test_the_step_is_cropped_diffs_not_a_volume_copy():
    shape = (40, 128, 128)
    truth = np.zeros(shape, np.uint8)
    truth[10:30, 50:70, 40:90] = 1
    damaged, _ = every_second_plane_removed(truth, "sagittal")
    e = MaskEditor(shape, damaged)
    e.interpolate_planes("sagittal")
    assert np.array_equal(e.mask, truth)                        # a box interpolates to itself
    # 20 axial slices changed, each a 20 x 23 column-set box: far below one volume (655 kB) or one slice per step
    assert e.undo_bytes < 20 * 20 * 50
    assert {r.slice_index for r in e.undo()} == set(range(10, 30))


def test_the_fill_is_in_the_journal():
    truth = ball((16, 20, 20), (8, 10, 10), 6)
    damaged, _ = every_second_plane_removed(truth, "coronal")
    e = MaskEditor(truth.shape, damaged)
    e.interpolate_planes("coronal")
    payload = e.journal_payload()
    recovered = MaskEditor.from_journal(payload, damaged)
    assert np.array_equal(recovered.mask, e.mask)
    assert recovered.review_states == e.review_states
    assert set(e.changed_slices) == {s for s in range(16) if not np.array_equal(e.mask[s], damaged[s])}


def test_explicit_keys_replace_the_planes_between_them():
    mask = np.zeros((10, 12, 14), np.uint8)
    mask[2:8, 3:9, 4] = 1
    mask[2:8, 3:9, 10] = 1
    mask[0, 0, 7] = 1                                           # a stray voxel between the keys
    e = MaskEditor(mask.shape, mask)
    e.interpolate_planes("sagittal", keys=[4, 10])
    expected = np.zeros_like(mask)
    expected[2:8, 3:9, 4:11] = 1
    assert np.array_equal(e.mask, expected)
    # the default keys (every non-empty sagittal slice) are 4, 7 and 10: the stray voxel is a key
    e2 = MaskEditor(mask.shape, mask)
    e2.interpolate_planes("sagittal", first=0, last=13)
    assert e2.mask[0, 0, 7] == 1


def test_nothing_to_fill_is_no_step():
    e = MaskEditor((6, 8, 8), ball((6, 8, 8), (3, 4, 4), 2))
    assert e.interpolate_planes("coronal") == []                # no empty plane between two drawn ones
    assert e.undo_steps == 0
    assert MaskEditor((6, 8, 8)).interpolate_planes("sagittal") == []


def test_axial_goes_to_interpolate_slices():
    truth = ball((20, 16, 16), (10, 8, 8), 7)
    damaged, removed = every_second_plane_removed(truth, "axial")
    e = MaskEditor(truth.shape, damaged)
    e.interpolate_planes("axial")
    assert e.interpolated_slices == removed and e.undo_label.startswith("Fill between slices")


def test_bad_arguments_say_what_is_wrong():
    e = MaskEditor((4, 5, 6))
    with pytest.raises(ValueError, match="plane must be one of"):
        e.interpolate_planes("oblique")
    with pytest.raises(IndexError, match="sagittal index 6 is out of range 0..5"):
        e.interpolate_planes("sagittal", 6)
    with pytest.raises(IndexError, match="coronal key 5"):
        e.interpolate_planes("coronal", keys=[0, 5])
    with pytest.raises(ValueError, match="before first"):
        e.interpolate_planes("coronal", 3, 1)
    with pytest.raises(ValueError, match="voxel spacing"):
        e.interpolate_planes("coronal", spacing=(0.0, 1.0, 1.0))


def test_distances_are_in_mm_with_the_spacing():
    m = np.zeros((5, 5), np.uint8)
    m[0, 2] = 1
    # two rows (axial slices 3 mm apart) below the pixel: 6 mm, less half the smallest pixel (0.35 mm)
    assert signed_distance(m, (3.0, 0.7))[2, 2] == pytest.approx(6.0 - 0.35)
    assert signed_distance(m)[2, 2] == pytest.approx(1.5)
    assert plane_sampling((3.0, 0.7, 0.8), "coronal") == (3.0, 0.8)
    assert plane_sampling((3.0, 0.7, 0.8), "sagittal") == (3.0, 0.7)
    assert plane_sampling(None, "sagittal") is None


def test_anisotropic_stack_morphs_by_mm():
    """Thick slices (4 mm) under 1 mm pixels: a shape that is a ball in mm is recovered better with the spacing
    than in pixels, which would weigh one slice like one pixel."""
    spacing = (4.0, 1.0, 1.0)
    zz, yy, xx = np.mgrid[0:15, 0:40, 0:40]
    truth = ((4 * (zz - 7)) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 26 ** 2).astype(np.uint8)
    damaged = truth.copy()
    removed = list(range(5, 36, 3)) + list(range(6, 36, 3))
    damaged[:, :, removed] = 0
    scores = {}
    for name, sp in (("mm", spacing), ("px", None)):
        e = MaskEditor(truth.shape, damaged)
        e.interpolate_planes("sagittal", spacing=sp)
        scores[name] = dice(e.mask[:, :, removed].astype(bool), truth[:, :, removed].astype(bool))
    assert scores["mm"] > 0.9
    assert scores["mm"] > scores["px"]


def test_every_second_sagittal_slice_of_the_sample():
    """The README's figure: delete the bundled sample's heart mask on every second sagittal slice of its extent,
    fill between sagittal slices, and compare the filled slices with the original mask."""
    volume = open_scan(sample_scan_path(), sample_mask_path())
    mask = volume.mask
    damaged, removed = every_second_plane_removed(mask, "sagittal")
    e = MaskEditor(mask.shape, damaged)
    e.interpolate_planes("sagittal", spacing=volume.spacing)
    score = dice(take(e.mask, "sagittal", removed).astype(bool), take(mask, "sagittal", removed).astype(bool))
    print(f"sagittal interpolation on the sample: {len(removed)} sagittal slices removed, Dice {score:.3f}")
    assert e.undo_steps == 1
    assert score > 0.95
