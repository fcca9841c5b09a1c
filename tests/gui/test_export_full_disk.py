"""Issue 12 item 7 in the window: Export Masks onto a disk that fills up mid-write (a real tmpfs of a few pages)
shows one message saying the disk is full, leaves no PNG behind (the folder it would have created is gone), keeps
the edits in the window and the scan untouched; with room, the same export writes every slice."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from tests.corpus import tree_state
from tests.helpers import dispose_windows, sample_patient_copy

pytestmark = pytest.mark.gui


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 KiB tmpfs: four pages, so the fifth of twelve mask PNGs finds the disk full."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_export_pngs_on_a_full_disk_leaves_nothing_and_keeps_the_edits(qtbot, tmp_path, monkeypatch, tiny_disk):
    pytest.importorskip("pytestqt")
    from heartseg_gui.app import create_window

    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("HEARTSEG_STATE_DIR", str(tmp_path / "state"))
    patient = sample_patient_copy(tmp_path / "ds", slice(50, 62))
    w = create_window(None, None, patient / "no-model.keras", sample_when_empty=False)
    qtbot.addWidget(w)
    w.controller.auto_predict = False
    w.files.open_path(patient, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy(), timeout=60_000)
    try:
        c = w.controller
        c.begin_stroke(20.0, 20.0, False, 6.0)
        c.continue_stroke(20.0, 80.0)
        c.end_stroke()
        working = c.session.editor.copy_mask()
        scan_before = tree_state(patient / "image", patient / "mask")

        target = tiny_disk / "export" / "masks"
        n = len(w.prompts.errors)
        assert not w.files.export_pngs(target)
        assert len(w.prompts.errors) == n + 1
        title, message = w.prompts.errors[-1]
        assert "disk is full" in message and "\n" not in message and str(target) in message
        assert list(tiny_disk.iterdir()) == [], "the failed export left files or folders on the full disk"
        assert c.session.editor.modified
        np.testing.assert_array_equal(c.session.editor.mask, working)
        assert tree_state(patient / "image", patient / "mask") == scan_before

        elsewhere = tmp_path / "export"
        assert w.files.export_pngs(elsewhere)
        assert sorted(p.name for p in elsewhere.iterdir()) == sorted(p.name for p in (patient / "image").iterdir())
    finally:
        dispose_windows(w)
