"""The fast sagittal reads of the three-plane layout (issue 14: crosshair move p95): per-slice mask boxes
(:class:`MaskBounds`) and the columns-first copy of the scan (:class:`ColumnMajorCopy`) must show exactly what a
plain ``volume[:, :, c]`` read shows, through edits, undo and prediction batches, on the real window offscreen."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from heartseg_gui.display import as_display_image  # noqa: E402
from heartseg_gui.views.planes import ColumnMajorCopy, MaskBounds  # noqa: E402
from tests.gui.test_gui_window import make_window, settings_dir, tiny_model, wait_idle  # noqa: E402,F401
from tests.gui.test_three_planes import three_planes  # noqa: E402

pytestmark = pytest.mark.gui


def test_mask_bounds_read_what_a_plain_read_reads():
    rng = np.random.default_rng(3)
    mask = np.zeros((30, 24, 40), np.uint8)
    mask[4, 3:9, 10:20] = 1
    mask[29, 0, 0] = mask[7, 23, 39] = 1
    bounds = MaskBounds(mask)
    for step in range(60):
        s, r0, c0 = int(rng.integers(0, 30)), int(rng.integers(0, 20)), int(rng.integers(0, 36))
        r1, c1 = r0 + int(rng.integers(1, 5)), c0 + int(rng.integers(1, 5))
        mask[s, r0:r1, c0:c1] = step % 3 != 0   # paints and erases
        if step % 7 == 0:
            bounds.recompute(mask, [s])         # measured again
        else:
            bounds.grow(s, r0, r1, c0, c1)      # widened by the changed rectangle
        for c in range(40):
            np.testing.assert_array_equal(bounds.sagittal(mask, c), mask[:, :, c])
    mask[:] = 0
    bounds.recompute(mask)
    assert not bounds.sagittal(mask, 5).any() and (bounds.r1 == 0).all()


def test_column_major_copy_is_the_scan_columns_first():
    vox = np.random.default_rng(0).integers(-1000, 1000, (17, 23, 70)).astype(np.int16)
    copy = ColumnMajorCopy(vox)
    assert copy.wait(30) and copy.data.shape == (70, 17, 23) and copy.data.flags.c_contiguous
    for c in range(70):
        np.testing.assert_array_equal(copy.sagittal(c), vox[:, :, c])


def test_sagittal_plane_follows_strokes_undo_and_predictions(qtbot, make_window, monkeypatch):
    monkeypatch.setattr(ColumnMajorCopy, "MIN_VOXELS", 0)   # the sample is small: use the copy anyway
    w = make_window()
    wait_idle(qtbot, w)
    c, s = w.controller, w.controller.session
    views = three_planes(qtbot, w)
    pv = w.plane_viewer
    assert pv.column_copy is not None and pv.column_copy.wait(30)
    sag = views["sagittal"]
    _, rows, cols = s.volume.voxels.shape

    def check(col: int) -> None:
        pv.move_to((c.current_slice, rows // 2, col))
        np.testing.assert_array_equal(np.asarray(sag.image_item.image), as_display_image(s.volume.voxels[:, :, col]))
        np.testing.assert_array_equal(sag.layers["working"].mask, s.editor.mask[:, :, col] != 0)
        if s.has_prediction:
            np.testing.assert_array_equal(sag.layers["ai"].mask, s.ai_mask[:, :, col] != 0)

    # paint in the axial view far from the heart, then look at that column in the sagittal view
    col = cols - 8
    c.begin_stroke(6.0, float(col), False, 3.0)
    c.continue_stroke(rows - 8.0, float(col))
    c.end_stroke()
    assert s.editor.mask[c.current_slice, :, col].any()
    for k in (col - 4, col, col + 2, cols // 2):
        check(k)
    c.undo()
    check(col)
    assert not s.editor.mask[c.current_slice, :, col].any()   # undone: the sagittal plane shows it gone (check)
    c.redo()
    check(col)
    # the AI layer after the prediction, in columns with and without heart
    for k in range(0, cols, max(1, cols // 9)):
        check(k)


def test_prediction_batches_wait_for_the_end_of_a_stroke(qtbot, make_window):
    """Batches arriving while a drag is open are applied when it ends, in one update, and none is lost; the
    finished prediction applies held batches before its final masks (issue 14: the sagittal stamp's p95)."""
    w = make_window()
    wait_idle(qtbot, w)
    c, s = w.controller, w.controller.session
    changes, flushed = [], []
    c.predictionChanged.connect(lambda idx: changes.append(list(idx)))
    flush = c.flush_held_batches

    def spy():
        flushed.append(len(c._held_batches))
        flush()

    c.flush_held_batches = spy
    s.reset_prediction()
    c.begin_stroke(10.0, 10.0, False, 2.0)
    c.start_prediction()
    qtbot.waitUntil(lambda: len(c._held_batches) >= 2 or not c.is_busy(), timeout=60_000)
    if c.is_busy():   # the stroke is still open: nothing applied or announced yet
        held = [i for _job, batch in c._held_batches for i in batch[0]]
        assert not s.ai_done[held].any() and changes == []
        c.end_stroke()
        assert s.ai_done[held].all() and set(held) <= set(changes[0])   # one announcement for all of them
    else:             # every batch came in one turn: the finished job applied the held ones first
        assert max(flushed) >= 2
        c.end_stroke()
    wait_idle(qtbot, w)
    assert s.prediction_complete and s.ai_done.all() and max(flushed) >= 2
