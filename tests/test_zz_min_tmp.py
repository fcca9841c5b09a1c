import pytest
from pathlib import Path
from tests.corpus import png_folder

def test_a(qtbot, tmp_path):
    from heartseg_gui.app import create_window
    w = create_window(None, None, tmp_path / "m.keras", sample_when_empty=False)
    qtbot.addWidget(w)
    pass
    good = png_folder(tmp_path / "good", 3, 64, 64)
    w.files.open_path(good, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy())
    w.controller.shutdown()
