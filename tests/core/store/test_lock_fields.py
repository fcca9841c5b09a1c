"""Every field of lock.json and of the journal is validated (issue 12 item 3, and item 2's rule in journal.py).

A malformed lock (pid 2**40, pid 1 or a non-integer pid with an empty process_start, wrong types, truncated JSON, a
folder or a FIFO in its place ...) is stale with a one-line message: the opener gets the patient editable, the
next opener read-only -- never an exception, never read-only for good, never both editable. A journal is removed
only after its content is saved or discarded: one that cannot be read or applied is kept under a dated name (never
over an earlier one) and the caller is told where.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.editing import MaskEditor
from core.store.journal import JOURNAL_FILE, Journal, JournalKeptError
from core.store.layout import lock_path
from core.store.locking import is_stale, open_for_editing, pid_alive, read_lock

ROOT = Path(__file__).resolve().parents[3]
SHAPE = (4, 20, 24)


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HEARTSEG_STATE_DIR", str(tmp_path / "user-state"))
    return tmp_path / "user-state"


def _record(**fields) -> dict:
    from core.store.locking import process_start_time

    record = {"format": "heartseg-lock", "version": 1, "pid": os.getpid(), "host": socket.gethostname(),
              "user": "anna", "created_at": "2026-01-02T03:04:05+00:00",
              "process_start": process_start_time(os.getpid()), "token": "abc123", "what": "/x"}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not KeyError}


BAD_LOCKS = {
    "pid 2**40": json.dumps(_record(pid=2**40)),
    "pid 1, empty process_start": json.dumps(_record(pid=1, process_start="")),
    "pid 1, another start time": json.dumps(_record(pid=1, process_start="1")),
    "pid as text": json.dumps(_record(pid="4242", process_start="")),
    "pid not an integer": json.dumps(_record(pid=1.5, process_start="")),
    "pid true": json.dumps(_record(pid=True)),
    "pid null": json.dumps(_record(pid=None)),
    "pid negative": json.dumps(_record(pid=-7)),
    "live pid, empty process_start": json.dumps(_record(process_start="")),
    "process_start not digits": json.dumps(_record(process_start="soon")),
    "process_start a number": json.dumps(_record(process_start=12)),
    "host a number": json.dumps(_record(host=5)),
    "host empty": json.dumps(_record(host="")),
    "user a list": json.dumps(_record(user=["a"])),
    "user with a newline": json.dumps(_record(user="anna\nEVIL")),
    "created_at not a time": json.dumps(_record(created_at="yesterday")),
    "token missing": json.dumps(_record(token=KeyError)),
    "version as text": json.dumps(_record(version="1")),
    "a JSON list": "[1, 2, 3]",
    "truncated JSON": json.dumps(_record())[:40],
    "empty": "",
    "binary junk": b"\xff\xfe\x00garbage",
    "deeply nested": "[" * 100000 + "]" * 100000,
    "huge": json.dumps(_record(what="x" * 200_000)),
}


@pytest.mark.parametrize("name", list(BAD_LOCKS))
def test_malformed_lock_is_stale_with_a_message_and_the_next_opener_is_read_only(tmp_path, name):
    patient = tmp_path / "p1"
    path = lock_path(patient)
    path.parent.mkdir(parents=True)
    content = BAD_LOCKS[name]
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    owner = read_lock(path)
    assert is_stale(owner) and (owner.problem or name == "pid 1, another start time"), owner
    lock, reason = open_for_editing(patient)
    assert lock is not None and reason is None, f"{name}: read-only ({reason})"
    try:
        assert lock.took_over is not None and "\n" not in lock.message
        assert ("damaged" if lock.took_over.problem else "Took over") in lock.message
        assert read_lock(path).token == lock.owner.token and not read_lock(path).problem
        second, reason = open_for_editing(patient)
        assert second is None and f"process {os.getpid()}" in reason, "both openers editable"
    finally:
        lock.release()
    assert not path.exists()


def test_lock_from_another_host_is_still_respected_when_valid(tmp_path):
    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_record(host="ws-12", pid=1, process_start="")))
    assert not read_lock(path).problem
    lock, reason = open_for_editing(tmp_path)
    assert lock is None and "ws-12" in reason


def test_a_fifo_or_folder_in_place_of_the_lock_neither_hangs_nor_locks_for_good(tmp_path):
    fifo_patient, dir_patient = tmp_path / "fifo", tmp_path / "dir"
    os.makedirs(fifo_patient / ".heartseg")
    os.mkfifo(lock_path(fifo_patient))
    assert read_lock(lock_path(fifo_patient)).problem  # returns at once (O_NONBLOCK), stale
    lock, reason = open_for_editing(fifo_patient)
    assert lock is not None and reason is None
    lock.release()
    os.makedirs(lock_path(dir_patient) / "stuff")
    assert read_lock(lock_path(dir_patient)).problem
    first = Journal(dir_patient, dir_patient)
    lock, reason = first.acquire_lock()  # the window's call: the lock goes to the per-user folder instead
    assert lock is not None and reason is None
    try:
        second, reason = Journal(dir_patient, dir_patient).acquire_lock()
        assert second is None and reason, "both windows editable"
    finally:
        lock.release()


def test_pid_alive_never_overflows():
    for pid in (2**40, 2**31, -1, 0, "12", 1.5, None, True):
        assert pid_alive(pid) is False
    assert pid_alive(os.getpid())


def test_two_processes_and_a_lock_with_pid_2_to_the_40(tmp_path):
    """The window's lock call in real processes: the first takes the damaged lock over (editable), a second
    while it lives is read-only, and after the first is SIGKILLed a third takes over."""
    patient = tmp_path / "p1"
    lock_path(patient).parent.mkdir(parents=True)
    lock_path(patient).write_text(json.dumps(_record(pid=2**40)))
    code = ("import sys, time\nfrom core.store.journal import Journal\n"
            "lock, reason = Journal(sys.argv[1], sys.argv[1]).acquire_lock()\n"
            "print('editable' if lock is not None and reason is None else 'read-only: ' + str(reason), "
            "lock.message if lock else '', sep='|', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n")
    env = {**os.environ, "HEARTSEG_STATE_DIR": str(tmp_path / "user-state")}

    def start(hold):
        return subprocess.Popen([sys.executable, "-c", code, str(patient), str(hold)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start(60)
    try:
        state, message = first.stdout.readline().strip().split("|")
        assert state == "editable" and "damaged" in message and "2**40" not in message
        second = start(0)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0 and "Traceback" not in err, err
        assert out.startswith("read-only: ") and f"process {first.pid}" in out
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = start(0)
    out, err = third.communicate(timeout=60)
    assert out.startswith("editable") and third.returncode == 0, err


# ------------------------------------------------------------------------------------------------- journal
def _journal_with_edits(patient: Path) -> Path:
    e = MaskEditor(SHAPE, np.zeros(SHAPE, np.uint8))
    j = Journal(patient, patient)
    j.attach(e)
    e.begin_stroke(1, erase=False, radius=3)
    e.stroke_to(10, 10)
    e.end_stroke()
    return j.write(e)


@pytest.mark.parametrize("damage", ["truncated", "not an object", "no edits", "version text", "empty"])
def test_damaged_journal_is_kept_aside_dated_and_the_caller_told_where(tmp_path, damage):
    patient = tmp_path / "p1"
    path = _journal_with_edits(patient)
    text = path.read_text()
    record = json.loads(text)
    bad = {"truncated": text[: len(text) // 2], "not an object": "[]", "empty": "",
           "no edits": json.dumps({**record, "edits": None}),
           "version text": json.dumps({**record, "version": "1"})}[damage]
    path.write_text(bad)
    with pytest.raises(JournalKeptError) as info:
        Journal(patient, patient).find_recovery()
    err = info.value
    assert err.kept is not None and err.kept.read_text() == bad and not path.exists()
    assert str(err.kept) in str(err) and str(path) in str(err) and "\n" not in str(err)
    assert err.kept.name.startswith("journal.damaged-")


@pytest.mark.parametrize("field, value", [("pid", 2**40), ("pid", "abc"), ("pid", None), ("host", 7),
                                          ("written_at", 12), ("base_sha256", "zz")])
def test_malformed_origin_fields_are_treated_as_unknown_and_the_journal_offered(tmp_path, field, value):
    patient = tmp_path / "p1"
    path = _journal_with_edits(patient)
    record = json.loads(path.read_text())
    record[field] = value
    path.write_text(json.dumps(record))
    rec = Journal(patient, patient).find_recovery(np.zeros(SHAPE, np.uint8))
    assert rec is not None and field in rec.problem and rec.n_changed_slices == 1
    assert "Recover" in rec.describe()
    target = MaskEditor(SHAPE, np.zeros(SHAPE, np.uint8))
    Journal(patient, patient).recover_into(target, rec)
    assert target.modified


def test_declining_twice_keeps_both(tmp_path):
    patient = tmp_path / "p1"
    kept = []
    for _ in range(2):
        _journal_with_edits(patient)
        rec = Journal(patient, patient).find_recovery()
        kept.append(Journal(patient, patient).decline(rec))
    assert kept[0] != kept[1] and all(p.exists() for p in kept)
    assert all(p.name.startswith("journal.declined-") for p in kept)


def test_a_journal_that_cannot_be_applied_is_kept_and_never_deleted_by_quitting(tmp_path):
    patient = tmp_path / "p1"
    path = _journal_with_edits(patient)
    original = path.read_bytes()
    j = Journal(patient, patient)
    rec = j.find_recovery()
    wrong = MaskEditor((2, 8, 8))  # a slice was removed since: the journal does not fit
    with pytest.raises(JournalKeptError) as info:
        j.recover_into(wrong, rec)
    assert info.value.kept.read_bytes() == original and str(info.value.kept) in str(info.value)
    assert info.value.kept.name.startswith("journal.unapplied-") and not wrong.modified
    j.clear()  # the window quits without edits
    assert info.value.kept.read_bytes() == original


def test_clear_and_write_never_remove_an_earlier_sessions_journal(tmp_path):
    """The window quits (clear) or starts journalling (write) before the earlier journal was offered."""
    patient = tmp_path / "p1"
    path = _journal_with_edits(patient)
    original = path.read_bytes()
    j = Journal(patient, patient)
    e = MaskEditor(SHAPE, np.zeros(SHAPE, np.uint8))
    j.attach(e)
    j.clear()
    j.saved(e)
    assert path.read_bytes() == original, "cleared a journal it never wrote nor recovered"
    e.set_review_state(0, "flagged")
    j.write(e)
    assert j.set_aside and j.set_aside[0].read_bytes() == original
    j.clear()
    assert not path.exists() and j.set_aside[0].exists()


def test_fifo_journal_does_not_hang(tmp_path):
    patient = tmp_path / "p1"
    (patient / ".heartseg").mkdir(parents=True)
    os.mkfifo(patient / ".heartseg" / JOURNAL_FILE)
    with pytest.raises(JournalKeptError) as info:
        Journal(patient, patient).find_recovery()
    assert info.value.kept is not None
