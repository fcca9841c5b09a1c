"""MaskEditor's plane strokes: a drag in a coronal or sagittal plane edits the same mask, is one undo step of
cropped per-slice diffs, marks the axial slices it changed "corrected" and is in the journal."""

from __future__ import annotations

import numpy as np
import pytest

from core.editing import MaskEditor


def disc_reference(shape2d, centre, radius) -> np.ndarray:
    """Pixels whose centre lies within ``radius`` of ``centre`` (row, col), drawn in numpy."""
    rr, cc = np.mgrid[0:shape2d[0], 0:shape2d[1]]
    return ((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= radius ** 2).astype(np.uint8)


@pytest.mark.parametrize("plane", ["coronal", "sagittal"])
def test_one_stamp_is_a_disc_in_the_plane(plane):
    e = MaskEditor((20, 30, 40))
    index = 7
    e.begin_plane_stroke(plane, index, erase=False, radius=3)
    regions = e.plane_stroke_to(10, 12)
    e.end_stroke()
    expected = np.zeros((20, 30, 40), np.uint8)
    if plane == "coronal":
        expected[:, index, :] = disc_reference((20, 40), (10, 12), 3)
        assert all(r.row0 == index and r.row1 == index + 1 for r in regions)
    else:
        expected[:, :, index] = disc_reference((20, 30), (10, 12), 3)
        assert all(r.col0 == index and r.col1 == index + 1 for r in regions)
    assert np.array_equal(e.mask, expected)
    assert sorted(r.slice_index for r in regions) == list(range(7, 14))
    assert e.undo_steps == 1 and e.undo_label == f"Brush stroke ({plane})"
    states = e.review_states
    assert [i for i, s in enumerate(states) if s == "corrected"] == list(range(7, 14))
    # cropped: one diff per slice, a single row (coronal) or column (sagittal) each
    undone = e.undo()
    assert sorted(r.slice_index for r in undone) == list(range(7, 14)) and e.mask.sum() == 0
    assert all((r.row1 - r.row0 if plane == "coronal" else r.col1 - r.col0) == 1 for r in undone)
    assert all(s == "not_reviewed" for s in e.review_states)


def test_drag_across_slices_undo_redo_and_journal():
    initial = np.zeros((12, 16, 16), np.uint8)
    initial[5, 4:8, 4:8] = 1
    e = MaskEditor(initial.shape, initial)
    e.set_review_state(6, "flagged")
    e.begin_plane_stroke("coronal", 5, erase=True, radius=0.5)
    e.plane_stroke_to(2, 5)
    assert e.stroke_active and e.can_undo and e.mask_modified
    assert {2} <= e.changed_slices   # an open plane stroke is unsaved work already
    e.plane_stroke_to(9, 5)          # interpolated: every slice 2..9 stamped
    payload_open = e.journal_payload()
    assert 5 in {s["index"] for s in payload_open["slices"]}
    e.end_stroke()
    assert e.mask[5, 5, 5] == 0 and e.mask.sum() == initial.sum() - 1
    assert e.review_state(5) == "corrected" and e.review_state(6) == "flagged"
    assert e.review_state(3) == "not_reviewed"   # stamped but unchanged: not corrected
    assert e.undo() and np.array_equal(e.mask, initial) and e.review_state(5) == "not_reviewed"
    e.redo()
    assert e.mask[5, 5, 5] == 0
    restored = MaskEditor.from_journal(e.journal_payload(), initial)
    assert np.array_equal(restored.mask, e.mask)


def test_cancel_and_bad_arguments():
    e = MaskEditor((5, 6, 7))
    e.begin_plane_stroke("sagittal", 3, erase=False, radius=2)
    e.plane_stroke_to(2, 2)
    e.cancel_stroke()
    assert e.mask.sum() == 0 and e.undo_steps == 0 and not e.stroke_active
    with pytest.raises(ValueError):
        e.begin_plane_stroke("oblique", 0, erase=False, radius=2)
    with pytest.raises(IndexError):
        e.begin_plane_stroke("coronal", 6, erase=False, radius=2)
    with pytest.raises(RuntimeError):
        e.plane_stroke_to(1, 1)
    # an axial stroke started while a plane stroke is open commits it first (two steps)
    e.begin_plane_stroke("coronal", 1, erase=False, radius=1)
    e.plane_stroke_to(2, 2)
    e.begin_stroke(0, erase=False, radius=1)
    e.stroke_to(4, 4)
    e.end_stroke()
    assert e.undo_steps == 2
