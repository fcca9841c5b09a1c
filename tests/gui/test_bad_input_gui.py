"""Every malformed input of the corpus through the real window (offscreen): an error dialog with the one-line
message naming the file, the window still usable (the scan that was open stays open and editable, a good scan
opens next), and nothing changed on disk. Unusual-but-valid inputs open without a dialog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from tests.corpus import ABDOMEN_DICOM, BAD, DICOM_NO_DECODER, GOOD, by_name, deny_reading, png_folder, tree_state  # noqa: E402
from tests.helpers import dispose_windows, model_less_window  # noqa: E402

pytestmark = pytest.mark.gui
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """One window for the whole module: it must survive every bad input in turn."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("gui-bad-input")
    w = model_less_window(base, mp)
    w.good_scan = png_folder(base / "good scan", 3, 64, 64)
    yield w
    _close_boxes(w)
    dispose_windows(w)  # while the QApplication lives (else a crash at interpreter exit)
    mp.undo()


def _open_good(qtbot, w):
    assert w.files.open_path(w.good_scan, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy()
                    and w.controller.session.volume.name == "good scan", timeout=WAIT_MS)


def _still_usable(qtbot, w):
    """The open scan answers edits (a stroke + undo) and another scan opens."""
    c = w.controller
    assert c.session is not None
    editor = c.session.editor
    before = editor.copy_mask()
    c.begin_stroke(5.0, 5.0, False, 3.0)
    c.continue_stroke(5.0, 12.0)
    c.end_stroke()
    assert editor.modified
    c.undo()
    np.testing.assert_array_equal(editor.mask, before)
    _open_good(qtbot, w)


def _close_boxes(w):
    for box in w.prompts.open_error_boxes():
        box.done(0)


def _expect_error(qtbot, w, n_before: int, built) -> str:
    qtbot.waitUntil(lambda: len(w.prompts.errors) > n_before and not w.controller.is_busy(), timeout=WAIT_MS)
    title, message = w.prompts.errors[-1]
    assert "\n" not in message and "Traceback" not in message
    if built.culprit:
        assert built.culprit in message, message
    for word in built.words:
        assert word in message.lower(), message
    assert w.prompts.open_error_boxes(), "no dialog was shown"
    box = w.prompts.open_error_boxes()[-1]
    assert built.culprit in box.text()
    _close_boxes(w)
    return message


def _open_bad_scan(qtbot, w, built):
    n = len(w.prompts.errors)
    w.files.open_path(built.path, ask=False)
    return _expect_error(qtbot, w, n, built)


@pytest.mark.parametrize("case", [c for c in BAD if "model" not in c.tags and not c.in_process_only],
                         ids=lambda c: c.name)
def test_bad_scan_shows_a_dialog_and_changes_nothing(qtbot, window, case, tmp_path):
    if case.needs_dicom and not ABDOMEN_DICOM.is_dir():
        pytest.skip("needs the shared DICOM series")
    _open_good(qtbot, window)
    built = case.build(tmp_path)
    before = tree_state(tmp_path)
    if case.name == "dicom_two_series":  # the window offers a series picker (issue 15); cancelling changes nothing
        asked = []
        window.prompts.choose_series = lambda folder, series: asked.append(series)  # returns None: cancelled
        n = len(window.prompts.errors)
        assert window.files.open_path(built.path, ask=False)  # the open job asks (after its header pass)
        qtbot.waitUntil(lambda: bool(asked) and not window.controller.is_busy(), timeout=WAIT_MS)
        assert len(asked) == 1 and len(asked[0]) == 2 and len(window.prompts.errors) == n
    else:
        _open_bad_scan(qtbot, window, built)
    assert window.controller.session.volume.name == "good scan", "the open scan was lost"
    assert tree_state(tmp_path) == before
    _still_usable(qtbot, window)


def test_unreadable_file_shows_a_dialog(qtbot, window, tmp_path, monkeypatch):
    _open_good(qtbot, window)
    built = by_name("unreadable_png").build(tmp_path)
    deny_reading(monkeypatch)
    before = tree_state(tmp_path)
    _open_bad_scan(qtbot, window, built)
    monkeypatch.undo()
    assert tree_state(tmp_path) == before
    _still_usable(qtbot, window)


def test_compressed_dicom_without_decoder_shows_a_dialog(qtbot, window, tmp_path, monkeypatch):
    """Decoders hidden in-process: every transfer-syntax lookup reports no available plugin."""
    if not ABDOMEN_DICOM.is_dir():
        pytest.skip("needs the shared DICOM series")
    import core.io.dicom as dicom

    class Unavailable:
        is_available = False

    monkeypatch.setattr(dicom, "get_decoder", lambda uid: Unavailable())
    _open_good(qtbot, window)
    built = DICOM_NO_DECODER.build(tmp_path)
    before = tree_state(tmp_path)
    message = _open_bad_scan(qtbot, window, built)
    assert "JPEG 2000" in message
    assert tree_state(tmp_path) == before
    _still_usable(qtbot, window)


@pytest.mark.parametrize("case", [c for c in BAD if "model" in c.tags and not c.needs_tf], ids=lambda c: c.name)
def test_bad_model_shows_a_dialog_and_keeps_the_scan(qtbot, window, case, tmp_path):
    _open_good(qtbot, window)
    built = case.build(tmp_path)
    before = tree_state(tmp_path)
    n = len(window.prompts.errors)
    window.controller.set_model(built.model)
    _expect_error(qtbot, window, n, built)
    assert window.controller.session is not None and window.controller.session.volume.name == "good scan"
    assert tree_state(tmp_path) == before
    _still_usable(qtbot, window)
    window.controller.model_path = None


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.name)
def test_unusual_but_valid_scan_opens_without_a_dialog(qtbot, window, case, tmp_path):
    built = case.build(tmp_path)
    n = len(window.prompts.errors)
    assert window.files.open_path(built.path, ask=False)
    qtbot.waitUntil(lambda: not window.controller.is_busy() and window.controller.session is not None
                    and Path(window.controller.session.origin or "") == Path(built.path), timeout=WAIT_MS)
    assert len(window.prompts.errors) == n, window.prompts.errors[n:]
    assert window.controller.session.n_slices >= 2
