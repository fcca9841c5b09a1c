"""The window's side of issue 12: the export dialogs refuse an output that is, lies in or contains the open scan or
its patient folder (core.store.outputs.check_output_path) with a dialog and nothing written; a damaged or stale
lock that was taken over is said in the status bar (EditLock.message); and the window, holding the lock, cleans
temporaries of killed saves. The real window, offscreen."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.corpus import SAMPLE_PATIENT
from tests.helpers import dispose_windows

pytestmark = pytest.mark.gui
N_SLICES = 6


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): sha(p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "lock.json"}


@pytest.fixture
def patient(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(tmp_path / "settings"))
    p = tmp_path / "ds" / "data" / "train" / "p1"
    names = sorted(f.name for f in (SAMPLE_PATIENT / "image").glob("*.png"))[50:50 + N_SLICES]
    for sub in ("image", "mask"):
        (p / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(SAMPLE_PATIENT / sub / n, p / sub / n)
    return p


def _window_on(qtbot, path: Path):
    from heartseg_gui.app import create_window

    w = create_window(None, None, path.parent / "no-model.keras", sample_when_empty=False)
    qtbot.addWidget(w)
    w.controller.auto_predict = False
    w.prompts.save_discard_cancel = lambda question: "discard"
    w.prompts.quiet = True  # error dialogs are recorded in w.prompts.errors (and printed), not shown
    w.files.open_path(path, ask=False)
    qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy(), timeout=60_000)
    return w


def test_export_dialogs_refuse_the_scans_own_folders(qtbot, patient, tmp_path):
    w = _window_on(qtbot, patient)
    try:
        w.controller.begin_stroke(20.0, 20.0, False, 4.0)
        w.controller.end_stroke()
        before = _tree(patient.parents[2])
        refused_pngs = [patient / "mask", patient / "image", patient, patient / ".heartseg" / "out",
                        patient.parent, patient / "image" / "sub", tmp_path / "ds"]
        for target in refused_pngs:
            n = len(w.prompts.errors)
            assert w.files.export_pngs(target) is False, target
            assert len(w.prompts.errors) == n + 1 and w.prompts.errors[-1][0] == "Export"
            message = w.prompts.errors[-1][1]
            assert "\n" not in message and str(target) in message, message
        for target in (patient / "mask" / "m.nii.gz", patient / "image" / "1-051.png", patient / "x.nii.gz",
                       patient / ".heartseg" / "m.nii.gz"):
            assert w.files.export_nifti(target) is False, target
            assert w.prompts.errors[-1][0] == "Export"
        assert _tree(patient.parents[2]) == before  # nothing written anywhere in the dataset
        # the window stays usable: the edit is still there and an export elsewhere works
        assert w.controller.session is not None and w.controller.session.editor.modified
        assert w.files.export_pngs(tmp_path / "elsewhere") is True
        assert len(list((tmp_path / "elsewhere").glob("*.png"))) == N_SLICES
        assert w.files.export_nifti(tmp_path / "elsewhere.nii.gz") is True
    finally:
        dispose_windows(w)


def test_nifti_export_onto_the_open_nifti_is_refused(qtbot, tmp_path, monkeypatch):
    import nibabel as nib

    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(tmp_path / "settings"))
    scan = tmp_path / "scan" / "ct.nii.gz"
    scan.parent.mkdir()
    data = (np.random.default_rng(0).random((64, 64, 4)) * 800 - 400).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1.0])), scan)
    before = scan.read_bytes()
    w = _window_on(qtbot, scan)
    try:
        assert w.files.export_nifti(scan) is False
        assert w.prompts.errors[-1][0] == "Export" and str(scan) in w.prompts.errors[-1][1]
        assert w.files.export_pngs(tmp_path) is False  # contains the scan
        assert scan.read_bytes() == before
        assert w.files.export_nifti(scan.parent / "ct_heart.nii.gz") is True  # a sibling file is fine
    finally:
        dispose_windows(w)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("lock", ["damaged", "pid 2**40", "dead process"])
def test_a_taken_over_lock_is_said_in_the_status_bar(qtbot, patient, lock):
    from core.store.locking import LOCK_FORMAT, process_start_time

    hs = patient / ".heartseg"
    hs.mkdir()
    if lock == "damaged":
        (hs / "lock.json").write_text('{"format": "heartseg-lock", "pid": ')
    else:
        pid = 2 ** 40 if lock == "pid 2**40" else _dead_pid()
        import socket

        (hs / "lock.json").write_text(json.dumps({
            "format": LOCK_FORMAT, "version": 1, "pid": pid, "host": socket.gethostname(), "user": "anna",
            "created_at": "2026-11-30T10:00:00+00:00", "process_start": process_start_time(os.getpid()),
            "token": "0123456789abcdef", "what": str(patient)}))
    w = _window_on(qtbot, patient)
    try:
        assert w.safety.read_only_reason == "" and w.actions.save.isEnabled()
        notice = w.safety.notice
        assert notice == w.safety.lock.message and notice, notice
        assert ("damaged lock" in notice) if lock != "dead process" else ("Took over the lock of anna" in notice)
        assert "\n" not in notice
        assert notice in w.statusBar().currentMessage()
    finally:
        dispose_windows(w)


def test_no_notice_for_a_clean_open(qtbot, patient):
    w = _window_on(qtbot, patient)
    try:
        assert w.safety.notice == "" and w.safety.lock is not None and w.safety.lock.message == ""
    finally:
        dispose_windows(w)


def test_the_editing_window_cleans_temporaries_of_killed_saves(qtbot, patient):
    stale = [patient / "mask" / ".1-051.ab12cd34.tmp.png", patient / ".heartseg" / "versions" / ".tmp-zz9"]
    stale[1].mkdir(parents=True)
    stale[0].write_bytes(b"half")
    (stale[1] / "1-051.png").write_bytes(b"half")
    w = _window_on(qtbot, patient)
    try:
        assert not [p for p in stale if p.exists()]
        assert "temporary" in w.safety.notice
    finally:
        dispose_windows(w)
