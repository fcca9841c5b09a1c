"""Progressive loading in the real window (issue 17, offscreen): a DICOM series opened while no scan is open shows
its middle slice as soon as that slice is decoded, before the scan is open; a scan already open stays on screen
until the new one has been read; a preview of an open that then fails is taken down. Real abdomen series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

pytest.importorskip("pytestqt")

from heartseg_gui.display import as_display_image  # noqa: E402
from tests.helpers import dispose_windows, model_less_window  # noqa: E402

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


@pytest.fixture
def window(qapp, tmp_path_factory):
    """A window as at launch with a scan to open: no scan open yet."""
    mp = pytest.MonkeyPatch()
    w = model_less_window(tmp_path_factory.mktemp("gui-preview"), mp)
    yield w
    for box in w.prompts.open_error_boxes():
        box.done(0)
    dispose_windows(w)
    mp.undo()


def _record(w):
    """The order in which previews and the session arrive."""
    seen = []

    def on_preview(p):
        seen.append(("preview", p))

    w.controller.previewReady.connect(on_preview)
    w.controller.sessionChanged.connect(lambda: seen.append(("session", None)))
    return seen, on_preview


def _copy(abdomen_dicom, folder):
    folder.mkdir()
    for f in sorted(p for p in abdomen_dicom.iterdir() if p.name.startswith("CT")):
        (folder / f.name).write_bytes(f.read_bytes())
    return folder


def test_the_middle_slice_is_on_screen_before_the_scan_is_open(qtbot, window, abdomen_dicom, tmp_path):
    w = window
    seen, slot = _record(w)
    try:
        folder = _copy(abdomen_dicom, tmp_path / "series")
        assert w.files.open_path(folder, ask=False)
        qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy(), timeout=WAIT_MS)
    finally:
        w.controller.previewReady.disconnect(slot)
    kinds = [k for k, *_ in seen]
    assert kinds == ["preview", "session"], kinds
    p = seen[0][1]
    vol = w.controller.session.volume
    assert p.index == vol.n_slices // 2 == w.controller.current_slice
    np.testing.assert_array_equal(p.image, vol.voxels[p.index])
    # the slice shown now is the one the preview showed: no jump when the scan opens
    np.testing.assert_array_equal(w.slice_view.image_item.image, as_display_image(p.image))


def test_the_preview_is_drawn_in_the_opening_levels_with_its_status(qtbot, window, abdomen_dicom, tmp_path):
    w = window
    shown = []
    w.controller.previewReady.connect(lambda p: shown.append(
        (p, np.array(w.slice_view.image_item.image, copy=True), tuple(w.slice_view.image_item.levels),
         w.status_slice.text())))
    folder = _copy(abdomen_dicom, tmp_path / "series2")
    assert w.files.open_path(folder, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy(), timeout=WAIT_MS)
    p, image, levels, text = shown[0]  # recorded by a slot connected after the viewer's: the preview is drawn
    np.testing.assert_array_equal(image, as_display_image(p.image))
    assert levels == (-135.0, 215.0)  # mediastinum, as the scan opens
    assert f"Slice {p.index + 1} / {p.n_slices}" in text and "preview" in text


def test_an_open_scan_stays_on_screen_until_the_new_one_is_read(qtbot, window, abdomen_dicom, tmp_path):
    w = window
    first = _copy(abdomen_dicom, tmp_path / "first")
    assert w.files.open_path(first, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy()
                    and w.controller.session.volume.name == "first", timeout=WAIT_MS)
    previews = []
    w.controller.previewReady.connect(previews.append)
    second = _copy(abdomen_dicom, tmp_path / "second")
    assert w.files.open_path(second, ask=False)
    qtbot.waitUntil(lambda: w.controller.session.volume.name == "second" and not w.controller.is_busy(),
                    timeout=WAIT_MS)
    assert previews == []


def test_a_preview_of_an_open_that_fails_is_taken_down(qtbot, window, abdomen_dicom, tmp_path):
    w = window
    folder = _copy(abdomen_dicom, tmp_path / "damaged")
    victim = sorted(folder.iterdir())[0]  # the most superior slice (head-first numbering), not the middle one
    ds = pydicom.dcmread(victim)
    del ds.PixelData
    ds.save_as(victim)
    previews = []
    w.controller.previewReady.connect(previews.append)
    n_errors = len(w.prompts.errors)
    assert w.files.open_path(folder, ask=False)
    qtbot.waitUntil(lambda: len(w.prompts.errors) > n_errors and not w.controller.is_busy(), timeout=WAIT_MS)
    assert len(previews) == 1
    assert victim.name in w.prompts.errors[-1][1]
    assert w.controller.session is None
    assert w.slice_view.image_item.image is None  # nothing of the failed scan left on screen
    assert "preview" not in w.status_slice.text()
    for box in w.prompts.open_error_boxes():
        box.done(0)
