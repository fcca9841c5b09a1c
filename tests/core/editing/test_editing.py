"""MaskEditor: brush stamps and interpolation, one-drag-one-step undo, cropped byte-bounded history, slice
tools, saved/unsaved tracking, review states and the crash-recovery journal. Pure numpy, no display."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy import ndimage

from core.editing import REVIEW_STATES, MaskEditor, Region, line_points
from core.errors import HeartsegError
from tests.helpers import stamp_disc


def _stroke(editor: MaskEditor, i: int, points, *, erase=False, radius=3.0):
    editor.begin_stroke(i, erase=erase, radius=radius)
    regions = [editor.stroke_to(r, c) for r, c in points]
    return regions, editor.end_stroke()


def _disc(shape, row, col, radius):
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    return ((rr - row) ** 2 + (cc - col) ** 2 <= radius ** 2).astype(np.uint8)


# ------------------------------------------------------------------------------------------------- stamps
def test_stamp_disc_matches_the_disc_and_clips_at_edges():
    m = np.zeros((40, 50), np.uint8)
    box = stamp_disc(m, 20, 25, 5, 1)
    np.testing.assert_array_equal(m, _disc(m.shape, 20, 25, 5))
    assert box == (15, 26, 20, 31)
    # off the corner: clipped, no wrap-around, box within the slice
    box = stamp_disc(m, -2, 49.5, 4, 1)
    assert box is not None and box[0] == 0 and box[3] == 50
    assert m[39, :].sum() == 0 and m[:, 0].sum() == 0
    assert stamp_disc(m, -100, -100, 4, 1) is None
    # erase
    stamp_disc(m, 20, 25, 3, 0)
    assert m[20, 25] == 0 and m[20, 29] == 1


def test_stamp_small_radius_and_subpixel_centres():
    m = np.zeros((10, 10), np.uint8)
    assert stamp_disc(m, 4.5, 4.5, 0.5, 1) is not None  # between pixel centres: the nearest pixel still gets it
    assert m.sum() >= 1
    m[:] = 0
    stamp_disc(m, 3.25, 6.0, 1.0, 1)
    # pixel centres within 1 px of (3.25, 6): (3, 6) and (4, 6); (2, 6) is 1.25 away, (3, 5) 1.03
    np.testing.assert_array_equal(np.argwhere(m), [[3, 6], [4, 6]])
    with pytest.raises(ValueError):
        stamp_disc(m, 3, 3, 0.2, 1)


def test_line_points_spacing_and_endpoints():
    pts = line_points((0, 0), (30, 40), 2.0)
    assert tuple(pts[0]) == (0, 0) and tuple(pts[-1]) == (30, 40)
    assert np.max(np.hypot(*np.diff(pts, axis=0).T)) <= 2.0 + 1e-9
    assert line_points((5, 5), (5, 5), 1.0).shape == (1, 2)


def test_stamp_is_fast_on_512_slice():
    m = np.zeros((512, 512), np.uint8)
    stamp_disc(m, 256, 256, 15, 1)  # warm the kernel cache
    n = 2000
    t0 = time.perf_counter()
    for k in range(n):
        stamp_disc(m, 100 + (k % 300), 200.25, 15, k % 2)
    per = (time.perf_counter() - t0) / n
    assert per < 1e-3 / 4, f"{per * 1e6:.0f} us per stamp"


# ------------------------------------------------------------------------------------------------ strokes
def test_fast_diagonal_stroke_leaves_no_gaps():
    ed = MaskEditor((2, 200, 200))
    _stroke(ed, 1, [(10, 10), (150, 190)], radius=2.0)  # two mouse events 220 px apart
    sl = ed.slice_mask(1)
    # every pixel within (radius - 0.5) of the segment is painted, none much beyond the radius (centres are
    # quantised to 1/4 px), and the stroke is one piece
    rr, cc = np.mgrid[:200, :200]
    a, b = np.array([10.0, 10.0]), np.array([150.0, 190.0])
    d = b - a
    t = np.clip(((rr - a[0]) * d[0] + (cc - a[1]) * d[1]) / (d @ d), 0, 1)
    dist = np.hypot(rr - (a[0] + t * d[0]), cc - (a[1] + t * d[1]))
    assert np.all(sl[dist <= 1.5] == 1)
    assert np.all(sl[dist > 2.0 + 0.18] == 0)
    assert ndimage.label(sl)[1] == 1
    assert ed.slice_mask(0).sum() == 0


def test_thin_brush_fast_stroke_is_connected():
    ed = MaskEditor((1, 100, 100))
    _stroke(ed, 0, [(3.3, 2.7), (90.1, 71.4), (5, 95)], radius=0.5)
    assert ndimage.label(ed.slice_mask(0), structure=np.ones((3, 3)))[1] == 1


def test_stroke_regions_and_erase():
    initial = np.zeros((3, 64, 64), np.uint8)
    initial[1, 10:50, 10:50] = 1
    ed = MaskEditor(initial.shape, initial)
    regions, final = _stroke(ed, 1, [(30, 5), (30, 60)], erase=True, radius=3)
    assert regions[0] == Region(1, 27, 34, 2, 9)
    assert all(r.slice_index == 1 for r in regions)
    assert final == Region(1, 27, 34, 10, 50)  # only where pixels actually changed
    assert ed.slice_mask(1)[30, 10:50].sum() == 0 and ed.slice_mask(1)[20, 20] == 1
    assert ed.undo_label == "Eraser stroke"
    # erasing empty space changes nothing: no undo entry
    steps = ed.undo_steps
    assert _stroke(ed, 0, [(5, 5), (20, 20)], erase=True)[1] is None
    assert ed.undo_steps == steps


def test_one_drag_is_one_undo_step():
    ed = MaskEditor((4, 64, 64))
    _stroke(ed, 2, [(10 + k, 10 + 2 * k) for k in range(30)])
    assert ed.undo_steps == 1 and ed.undo_label == "Brush stroke"
    assert ed.area_px(2) > 0
    regions = ed.undo()
    assert ed.mask.sum() == 0 and not ed.can_undo and ed.can_redo
    assert len(regions) == 1 and regions[0].slice_index == 2
    with pytest.raises(RuntimeError):
        ed.stroke_to(1, 1)


def test_undo_during_a_drag_commits_it_first():
    ed = MaskEditor((2, 32, 32))
    ed.begin_stroke(1, erase=False, radius=2)
    region = ed.stroke_to(10, 10)
    assert ed.slice_mask(1)[region.index].any()
    assert ed.can_undo and ed.undo_label == "Brush stroke" and ed.changed_slices == {1}
    ed.undo()
    assert not ed.stroke_active and ed.mask.sum() == 0 and ed.redo_label == "Brush stroke"


def test_cancel_stroke_restores_without_entry():
    ed = MaskEditor((1, 32, 32))
    ed.begin_stroke(0, erase=False, radius=2)
    ed.stroke_to(5, 5)
    ed.stroke_to(20, 20)
    assert ed.mask.sum() > 0 and ed.modified
    ed.cancel_stroke()
    assert ed.mask.sum() == 0 and not ed.can_undo and not ed.modified


# ------------------------------------------------------------------------------------------------ history
def test_undo_redo_round_trip_is_exact():
    rng = np.random.default_rng(0)
    initial = (rng.random((5, 48, 48)) > 0.7).astype(np.uint8)
    ed = MaskEditor(initial.shape, initial)
    states = [ed.copy_mask()]
    for k in range(12):
        i = int(rng.integers(5))
        pts = rng.random((4, 2)) * 60 - 6
        _stroke(ed, i, pts, erase=bool(k % 3 == 0), radius=float(rng.uniform(0.5, 6)))
        states.append(ed.copy_mask())
    ed.fill_holes(2); states.append(ed.copy_mask())
    ed.keep_largest_region(3); states.append(ed.copy_mask())
    ed.copy_slice(0, 4); states.append(ed.copy_mask())
    ed.clear_slice(1); states.append(ed.copy_mask())
    n = ed.undo_steps
    for k in range(n):
        ed.undo()
        np.testing.assert_array_equal(ed.mask, states[len(states) - 2 - k])
    np.testing.assert_array_equal(ed.mask, initial)
    for k in range(n):
        ed.redo()
        np.testing.assert_array_equal(ed.mask, states[len(states) - n + k])
    assert ed.undo() and ed.redo()
    np.testing.assert_array_equal(ed.mask, states[-1])
    ed.undo()   # areas_px recounts the slices the undo changed, after area_px cached every slice
    np.testing.assert_array_equal(ed.areas_px(), states[-2].reshape(states[-2].shape[0], -1).sum(axis=1))
    ed.redo()
    for i in range(5):
        assert ed.area_px(i) == int(states[-1][i].sum())
    assert ed.total_voxels() == int(states[-1].sum())
    np.testing.assert_array_equal(ed.areas_px(), states[-1].reshape(states[-1].shape[0], -1).sum(axis=1))


def test_new_edit_clears_redo():
    ed = MaskEditor((2, 32, 32))
    _stroke(ed, 0, [(5, 5)])
    _stroke(ed, 0, [(20, 20)])
    ed.undo()
    assert ed.can_redo and ed.redo_label == "Brush stroke"
    _stroke(ed, 1, [(10, 10)])
    assert not ed.can_redo and ed.redo_label is None and ed.redo() == []
    assert ed.undo_steps == 2


def test_keeps_150_undo_steps():
    ed = MaskEditor((3, 128, 128), min_undo_steps=100)
    for k in range(150):  # every stroke changes pixels: erase strokes erase part of the previous one
        row = 2 + 2 * (k // 3)
        erase = k % 5 == 4
        _stroke(ed, k % 3, [(row - (6 if erase else 0), 5), (row, 100)], erase=erase,
                radius=2)
    assert ed.undo_steps == 150
    while ed.can_undo:
        ed.undo()
    assert ed.mask.sum() == 0


def test_history_is_bounded_by_bytes_but_keeps_min_steps():
    ed = MaskEditor((1, 256, 256), max_undo_bytes=20_000, min_undo_steps=3, hard_max_undo_bytes=60_000)
    rng = np.random.default_rng(1)
    for k in range(20):  # each step rewrites a noisy slice: ~2*8 KB per entry
        ed.set_slices([0], (rng.random((1, 256, 256)) > 0.5), f"noise {k}")
        assert ed.undo_bytes <= 60_000
    assert ed.undo_steps == 3  # over the soft bound: only the newest min_undo_steps survive
    assert ed.undo_label == "noise 19"
    # the oldest kept step still undoes exactly; beyond it nothing
    while ed.can_undo:
        ed.undo()
    assert not ed.can_undo


def test_small_stroke_in_big_volume_costs_a_few_kb():
    ed = MaskEditor((64, 512, 512))
    _stroke(ed, 30, [(200, 200), (230, 260)], radius=8)
    assert ed.undo_bytes < 4096, ed.undo_bytes
    for k in range(100):
        _stroke(ed, k % 64, [(100, 100 + k), (140, 160 + k)], radius=10)
    assert ed.undo_bytes < 100 * 4096, ed.undo_bytes


def test_set_slices_accept_ai_is_undoable():
    initial = np.zeros((6, 40, 40), np.uint8)
    initial[2, 5:10, 5:10] = 1
    ed = MaskEditor(initial.shape, initial)
    ai = np.zeros((6, 40, 40), np.float32)
    ai[2, 20:30, 20:30] = 1.0
    ai[3, 1:4, 1:4] = 1.0
    regions = ed.set_slices([2], ai[2:3], "Accept AI mask (slice 3)", review_state="accepted")
    assert regions == [Region(2, 5, 30, 5, 30)]
    np.testing.assert_array_equal(ed.slice_mask(2), ai[2])
    assert ed.review_state(2) == "accepted" and ed.undo_label == "Accept AI mask (slice 3)"
    ed.undo()
    np.testing.assert_array_equal(ed.mask, initial)
    assert ed.review_state(2) == "not_reviewed"
    ed.redo()
    assert ed.review_state(2) == "accepted"
    regions = ed.set_slices(None, ai > 0.5, "Accept AI mask (all slices)")
    assert {r.slice_index for r in regions} == {3}  # slice 2 already matches
    np.testing.assert_array_equal(ed.mask, ai.astype(np.uint8))
    assert ed.undo_steps == 2
    ed.undo(); ed.undo()
    np.testing.assert_array_equal(ed.mask, initial)
    assert ed.set_slices(4, np.zeros((40, 40)), "noop") == []
    assert ed.can_redo  # an edit that changes nothing records nothing and keeps redo
    with pytest.raises(ValueError):
        ed.set_slices([1, 2], ai[:1], "bad")


# --------------------------------------------------------------------------------------------- slice tools
def test_fill_holes():
    m = np.zeros((2, 30, 30), np.uint8)
    m[1, 5:25, 5:25] = 1
    m[1, 10:15, 10:15] = 0  # a hole
    m[1, 0:3, 20:23] = 0
    ed = MaskEditor(m.shape, m)
    regions = ed.fill_holes(1)
    assert regions == [Region(1, 10, 15, 10, 15)]
    assert ed.slice_mask(1)[5:25, 5:25].all()
    assert ed.undo_label == "Fill holes (slice 2)" and ed.review_state(1) == "corrected"
    assert ed.fill_holes(1) == []  # nothing left to fill: no new step
    assert ed.undo_steps == 1


def test_keep_largest_region():
    m = np.zeros((1, 40, 40), np.uint8)
    m[0, 2:12, 2:12] = 1       # 100 px
    m[0, 20:24, 20:24] = 1     # 16 px
    m[0, 30, 30] = 1
    m[0, 12, 12] = 1           # touches the big square diagonally: 8-connected, so it stays
    ed = MaskEditor(m.shape, m)
    ed.keep_largest_region(0)
    expected = np.zeros_like(m[0])
    expected[2:12, 2:12] = 1
    expected[12, 12] = 1
    np.testing.assert_array_equal(ed.slice_mask(0), expected)
    assert ed.keep_largest_region(0) == []
    ed.undo()
    np.testing.assert_array_equal(ed.mask, m)


def test_copy_and_clear_slice():
    m = np.zeros((3, 20, 20), np.uint8)
    m[0, 3:9, 4:7] = 1
    m[2, 10:12, 10:12] = 1
    ed = MaskEditor(m.shape, m)
    ed.copy_slice(0, 2)
    np.testing.assert_array_equal(ed.slice_mask(2), m[0])
    assert ed.undo_label == "Copy slice 1 to slice 3"
    ed.clear_slice(0)
    assert ed.area_px(0) == 0 and ed.undo_label == "Clear slice 1"
    assert ed.changed_slices == {0, 2}
    ed.undo(); ed.undo()
    np.testing.assert_array_equal(ed.mask, m)
    with pytest.raises(IndexError):
        ed.clear_slice(3)


# ------------------------------------------------------------------------------------------- saved state
def test_modified_tracks_revisions_and_changed_slices():
    ed = MaskEditor((4, 32, 32))
    assert not ed.modified and ed.changed_slices == set()
    _stroke(ed, 1, [(5, 5)])
    assert ed.modified and ed.changed_slices == {1}
    ed.mark_saved()
    assert not ed.modified and ed.changed_slices == set()
    _stroke(ed, 2, [(5, 5)])
    _stroke(ed, 3, [(5, 5)])
    assert ed.changed_slices == {2, 3}
    ed.undo(); ed.undo()
    assert not ed.modified and ed.changed_slices == set()
    ed.undo()  # before the saved state
    assert ed.modified and ed.changed_slices == {1}
    ed.redo()
    assert not ed.modified
    ed.redo()
    assert ed.modified
    ed.undo()
    _stroke(ed, 0, [(9, 9)])  # branch off: the saved state is no longer reachable by redo
    assert ed.modified and ed.changed_slices == {0}
    ed.undo()
    assert not ed.modified  # back at the saved state itself
    ed.set_review_state(0, "flagged")
    assert ed.modified and not ed.mask_modified
    ed.set_review_state(0, "not_reviewed")
    assert not ed.modified


# ------------------------------------------------------------------------------------------ review states
def test_review_states_and_next_unreviewed():
    ed = MaskEditor((6, 16, 16))
    assert ed.review_states == ["not_reviewed"] * 6
    ed.set_review_state(0, "accepted")
    ed.set_review_state(1, "flagged")
    ed.set_review_state(3, "accepted")
    assert ed.next_unreviewed(0) == 2
    assert ed.next_unreviewed(2) == 4
    assert ed.next_unreviewed(4, -1) == 2
    assert ed.next_unreviewed(1, -1) is None
    assert ed.next_unreviewed(-1) == 2
    for i in (2, 4, 5):
        ed.set_review_state(i, "accepted")
    assert ed.next_unreviewed(0) is None
    ed.set_review_state(0, "not_reviewed")
    assert ed.next_unreviewed(3) is None and ed.next_unreviewed(3, wrap=True) == 0
    with pytest.raises(ValueError):
        ed.set_review_state(0, "done")
    assert set(REVIEW_STATES) == {"not_reviewed", "accepted", "corrected", "flagged"}


def test_painting_marks_corrected_unless_flagged():
    ed = MaskEditor((3, 16, 16))
    ed.set_review_state(1, "flagged")
    ed.set_review_state(2, "accepted")
    for i in range(3):
        _stroke(ed, i, [(8, 8)])
    assert ed.review_states == ["corrected", "flagged", "corrected"]
    ed.undo()
    assert ed.review_state(2) == "accepted"  # the automatic change is part of the stroke's step
    ed.set_review_state(0, "accepted")
    ed.undo(); ed.undo()
    assert ed.review_state(0) == "accepted"  # a later manual choice is not overridden


# ------------------------------------------------------------------------------------------------ journal
def test_journal_round_trip_is_exact():
    rng = np.random.default_rng(3)
    saved = (rng.random((8, 64, 48)) > 0.6).astype(np.uint8)
    ed = MaskEditor(saved.shape, saved)
    _stroke(ed, 2, [(10, 10), (50, 40)], radius=4)
    _stroke(ed, 5, [(30, 0), (30, 47)], erase=True, radius=6)
    ed.clear_slice(7)
    ed.set_review_state(0, "flagged")
    ed.begin_stroke(4, erase=False, radius=2)  # an open stroke is journaled too
    ed.stroke_to(3, 3)
    payload = json.loads(json.dumps(ed.journal_payload()))  # JSON-safe
    assert {s["index"] for s in payload["slices"]} == {2, 4, 5, 7}
    restored = MaskEditor.from_journal(payload, saved)
    np.testing.assert_array_equal(restored.mask, ed.mask)
    assert restored.review_states == ed.review_states
    assert restored.modified and restored.undo_label == "Recover unsaved edits"
    restored.undo()
    np.testing.assert_array_equal(restored.mask, saved)
    other = MaskEditor((8, 64, 64))
    with pytest.raises(HeartsegError):
        other.apply_journal(payload)
    with pytest.raises(HeartsegError):
        MaskEditor(saved.shape).apply_journal({"format": "something else"})


# -------------------------------------------------------------------------------------------------- views
def test_views_are_read_only_and_mask_is_owned():
    initial = np.zeros((2, 8, 8), np.uint8)
    ed = MaskEditor(initial.shape, initial)
    initial[0, 0, 0] = 1  # the editor copied it
    assert ed.mask.sum() == 0
    assert ed.mask.flags.c_contiguous and ed.mask.dtype == np.uint8
    with pytest.raises(ValueError):
        ed.mask[0, 0, 0] = 1
    with pytest.raises(ValueError):
        ed.slice_mask(1)[0, 0] = 1
    copy = ed.copy_mask()
    copy[0] = 1
    assert ed.mask.sum() == 0


def test_journal_reuses_encodings_and_stays_exact():
    """The journal re-encodes only slices whose content changed; its text always equals a fresh encoding."""
    from core.editing._journal import build_payload

    ed = MaskEditor((6, 40, 40))
    ai = np.zeros((6, 40, 40), np.uint8)
    ai[:, 10:30, 10:30] = 1
    ed.set_slices(None, ai, "Accept AI mask (all slices)")
    first = ed.journal_payload()

    def fresh():
        return build_payload(ed.mask, ed.changed_slices, ed.review_states, ed.revision)

    assert first == fresh()
    ed.begin_stroke(2, erase=True, radius=3)
    ed.stroke_to(20, 20)
    assert ed.journal_payload() == fresh()  # open stroke included
    ed.end_stroke()
    assert ed.journal_payload() == fresh()
    ed.undo()
    assert ed.journal_payload() == fresh()
    ed.redo()
    assert ed.journal_payload() == fresh()
    restored = MaskEditor.from_journal(ed.journal_payload(), None)
    np.testing.assert_array_equal(restored.mask, ed.mask)
