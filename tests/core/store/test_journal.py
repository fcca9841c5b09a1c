"""The autosave journal (core.store.journal): where it lives, when it writes, exact recovery, clearing, damage."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.editing import MaskEditor
from core.errors import HeartsegError
from core.store.journal import JOURNAL_FILE, Journal, read_journal, scan_key, user_state_dir

SHAPE = (6, 40, 48)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    folder = tmp_path / "user-state"
    monkeypatch.setenv("HEARTSEG_STATE_DIR", str(folder))
    return folder


def saved_mask(seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros(SHAPE, np.uint8)
    for i in range(SHAPE[0]):
        r, c = rng.integers(8, 30, 2)
        m[i, r:r + 8, c:c + 10] = 1
    return m


def paint(editor, rng, n_strokes, *, leave_open=False):
    for k in range(n_strokes):
        i = int(rng.integers(0, SHAPE[0]))
        editor.begin_stroke(i, erase=k % 3 == 2, radius=float(rng.uniform(1, 5)))
        editor.stroke_to(float(rng.uniform(0, SHAPE[1])), float(rng.uniform(0, SHAPE[2])))
        for _ in range(int(rng.integers(0, 7))):
            editor.stroke_to(float(rng.uniform(-3, SHAPE[1] + 3)), float(rng.uniform(-3, SHAPE[2] + 3)))
        if not (leave_open and k == n_strokes - 1):
            editor.end_stroke()


def test_journal_locations(tmp_path, state_dir):
    patient = tmp_path / "data" / "train" / "p1"
    j = Journal(patient, patient)
    e = MaskEditor(SHAPE, saved_mask())
    j.attach(e)
    e.set_review_state(0, "flagged")
    assert j.tick(e, force=True)
    assert j.path == patient / ".heartseg" / JOURNAL_FILE
    scan = tmp_path / "ct scan é.nii.gz"
    k = Journal(scan)
    k.attach(e)
    k.tick(e, force=True)
    assert k.path == state_dir / "journals" / f"scan-{scan_key(scan)}" / JOURNAL_FILE
    assert scan_key(scan) == scan_key(str(scan)) != scan_key(tmp_path / "other.nii.gz")
    assert user_state_dir() == state_dir


def test_writes_every_few_seconds_and_every_n_edits(tmp_path):
    clock = Clock()
    j = Journal(tmp_path / "scan", interval_s=3.0, every_n_edits=4, clock=clock)
    e = MaskEditor(SHAPE, saved_mask())
    j.attach(e)
    assert not j.tick(e), "nothing to journal before the first edit"
    rng = np.random.default_rng(1)
    paint(e, rng, 1)
    j.note_edit()
    assert not j.tick(e), "one edit, no time passed: not yet"
    clock.t += 3.1
    assert j.tick(e) and j.writes == 1
    clock.t += 10
    assert not j.tick(e), "nothing new since the last write"
    for _ in range(4):
        paint(e, rng, 1)
        j.note_edit()
    assert j.tick(e) and j.writes == 2, "N edits write at once, before the interval"
    e.begin_stroke(2, erase=False, radius=3)
    e.stroke_to(10, 10)
    clock.t += 3.1
    assert j.tick(e) and j.writes == 3, "an open drag is journalled on time too"
    e.end_stroke()


def test_recovery_restores_edits_exactly(tmp_path):
    patient = tmp_path / "p1"
    base = saved_mask(3)
    e = MaskEditor(SHAPE, base)
    j = Journal(patient, patient)
    j.attach(e)
    rng = np.random.default_rng(7)
    paint(e, rng, 25, leave_open=True)  # the last drag is still open when the "crash" comes
    e.set_review_state(1, "flagged")
    e.set_review_state(4, "accepted")
    assert j.tick(e, force=True)
    expected, states = e.mask.copy(), e.review_states
    del e, j  # crash

    fresh = MaskEditor(SHAPE, base)
    j2 = Journal(patient, patient)
    rec = j2.find_recovery(fresh.mask)
    assert rec is not None and rec.base_matches is True and rec.n_changed_slices >= 1
    assert "Recover" in rec.describe()
    j2.recover_into(fresh, rec)
    np.testing.assert_array_equal(fresh.mask, expected)
    assert fresh.review_states == states
    assert fresh.modified and fresh.undo_label == "Recover unsaved edits"


def test_journal_cleared_on_save_and_when_edits_are_undone(tmp_path):
    patient = tmp_path / "p1"
    e = MaskEditor(SHAPE, saved_mask())
    j = Journal(patient, patient)
    j.attach(e)
    paint(e, np.random.default_rng(0), 3)
    j.tick(e, force=True)
    assert (patient / ".heartseg" / JOURNAL_FILE).exists()
    e.mark_saved()
    j.saved(e)
    assert not (patient / ".heartseg" / JOURNAL_FILE).exists() and j.find_recovery() is None
    e.begin_stroke(0, erase=False, radius=3)
    e.stroke_to(1, 1)  # a corner the saved mask leaves empty
    e.end_stroke()
    j.tick(e, force=True)
    assert j.find_recovery() is not None
    e.undo()  # back to the saved state
    assert not e.modified
    j.tick(e)
    assert j.find_recovery() is None, "back at the saved state: no journal"


def test_unwritable_patient_folder_falls_back_to_the_user_folder(tmp_path, monkeypatch, state_dir):
    import core.store.journal as journal_mod

    patient = tmp_path / "p1"
    real = journal_mod.write_text_atomic

    def refuse_patient(target, text):
        if str(target).startswith(str(patient)):
            raise HeartsegError("cannot save: Read-only file system", target)
        return real(target, text)

    monkeypatch.setattr(journal_mod, "write_text_atomic", refuse_patient)
    e = MaskEditor(SHAPE, saved_mask())
    j = Journal(patient, patient)
    j.attach(e)
    paint(e, np.random.default_rng(2), 2)
    assert j.tick(e, force=True)
    assert str(j.path).startswith(str(state_dir))
    rec = Journal(patient, patient).find_recovery()
    assert rec is not None and rec.path == j.path


def test_full_disk_while_journalling_keeps_the_previous_journal(tmp_path, monkeypatch):
    import core.atomic

    e = MaskEditor(SHAPE, saved_mask())
    j = Journal(tmp_path / "p1", tmp_path / "p1")
    j.attach(e)
    paint(e, np.random.default_rng(3), 2)
    assert j.tick(e, force=True)
    before = j.path.read_bytes()
    paint(e, np.random.default_rng(4), 2)
    real_open = open

    def full_disk(file, mode="r", *a, **k):
        if "w" in mode and ".tmp" in os.fspath(file):
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(core.atomic, "open", full_disk, raising=False)
    assert not j.tick(e, force=True)
    assert "No space left" in j.last_error
    assert (tmp_path / "p1" / ".heartseg" / JOURNAL_FILE).read_bytes() == before
    assert not [p for p in (tmp_path / "p1" / ".heartseg").iterdir() if ".tmp" in p.name]


def test_damaged_or_mismatched_journal_is_reported_not_applied(tmp_path):
    patient = tmp_path / "p1"
    (patient / ".heartseg").mkdir(parents=True)
    path = patient / ".heartseg" / JOURNAL_FILE
    path.write_text('{"format": "heartseg-journal", "vers')
    with pytest.raises(HeartsegError) as info:
        Journal(patient, patient).find_recovery()
    assert str(path) in str(info.value) and "damaged" in str(info.value)
    # a journal of a scan with another size
    other = MaskEditor((3, 10, 10))
    other.begin_stroke(0, erase=False, radius=2)
    other.stroke_to(5, 5)
    j = Journal(patient, patient)
    j.attach(MaskEditor((3, 10, 10)))
    j.write(other)
    rec = Journal(patient, patient).find_recovery()
    target = MaskEditor(SHAPE, saved_mask())
    with pytest.raises(HeartsegError) as info:
        Journal(patient, patient).recover_into(target, rec)
    assert str(path) in str(info.value)
    assert not target.modified


def test_journal_of_a_live_other_process_is_not_offered(tmp_path):
    patient = tmp_path / "p1"
    e = MaskEditor(SHAPE, saved_mask())
    j = Journal(patient, patient)
    j.attach(e)
    paint(e, np.random.default_rng(5), 1)
    j.write(e)
    record = read_journal(j.path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        record["pid"] = child.pid
        j.path.write_text(json.dumps(record))
        assert Journal(patient, patient).find_recovery() is None
    finally:
        child.kill()
        child.wait()
    assert Journal(patient, patient).find_recovery() is not None


def test_declined_recovery_is_kept_aside_and_base_change_is_mentioned(tmp_path):
    patient = tmp_path / "p1"
    e = MaskEditor(SHAPE, saved_mask())
    j = Journal(patient, patient)
    j.attach(e)
    paint(e, np.random.default_rng(6), 2)
    j.write(e)
    rec = Journal(patient, patient).find_recovery(saved_mask(99))
    assert rec.base_matches is False and "changed since" in rec.describe()
    kept = Journal(patient, patient).decline(rec)
    assert kept.exists() and not j.path.exists()
    assert Journal(patient, patient).find_recovery() is None
