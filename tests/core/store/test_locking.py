"""Edit locks (core.store.locking): one editor per patient, read-only with a reason for the others, stale locks of dead
processes taken over, and no two winners when several openers race for a stale lock."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import HeartsegError
from core.store.layout import lock_path
from core.store.locking import LockedError, acquire_lock, is_stale, open_for_editing, pid_alive, read_lock

ROOT = Path(__file__).resolve().parents[3]


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_lock(folder: Path, **fields) -> Path:
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": "heartseg-lock", "version": 1, "pid": os.getpid(), "host": socket.gethostname(),
              "user": "someone", "created_at": "2026-01-02T03:04:05+00:00", "process_start": "", "token": "t"}
    record.update(fields)
    path.write_text(json.dumps(record))
    return path


def test_lock_file_records_pid_host_time_and_is_removed_on_release(tmp_path):
    with acquire_lock(tmp_path) as lock:
        owner = read_lock(lock_path(tmp_path))
        assert owner.pid == os.getpid() and owner.host == socket.gethostname()
        assert owner.created_at.startswith("20") and owner.token == lock.owner.token
        assert lock.still_ours() and lock.took_over is None
    assert not lock_path(tmp_path).exists()


def test_second_opener_gets_read_only_with_the_reason(tmp_path):
    first, reason = open_for_editing(tmp_path)
    assert first is not None and reason is None
    try:
        second, reason = open_for_editing(tmp_path)
        assert second is None
        assert f"process {os.getpid()}" in reason and socket.gethostname() in reason and "since" in reason
        with pytest.raises(LockedError) as info:
            acquire_lock(tmp_path)
        assert str(lock_path(tmp_path)) in str(info.value) and "read-only" in str(info.value)
        assert isinstance(info.value, HeartsegError)
    finally:
        first.release()
    again, _ = open_for_editing(tmp_path)
    assert again is not None
    again.release()


def test_lock_held_by_another_live_process_then_stale_after_sigkill(tmp_path):
    code = ("import sys, time\nfrom core.store.locking import acquire_lock\n"
            "lock = acquire_lock(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        _, reason = open_for_editing(tmp_path)
        assert reason is not None and f"process {child.pid}" in reason
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert lock_path(tmp_path).exists(), "a killed process cannot clean up: its lock stays"
    assert is_stale(read_lock(lock_path(tmp_path)))
    lock = acquire_lock(tmp_path)
    assert lock.took_over is not None and lock.took_over.pid == child.pid
    assert read_lock(lock_path(tmp_path)).pid == os.getpid()
    lock.release()


@pytest.mark.parametrize("how", ["dead pid", "pid reused", "damaged file", "empty file"])
def test_stale_locks_are_taken_over(tmp_path, how):
    if how == "dead pid":
        write_lock(tmp_path, pid=dead_pid())
    elif how == "pid reused":  # our own pid, but written by a process that started at another time
        write_lock(tmp_path, process_start="1")
    elif how == "damaged file":
        write_lock(tmp_path).write_bytes(b'{"format": "heartseg-lock", "pid": ')
    else:
        write_lock(tmp_path).write_bytes(b"")
    lock = acquire_lock(tmp_path)
    assert lock.took_over is not None
    lock.release()


def test_lock_from_another_host_is_respected_unless_forced(tmp_path):
    write_lock(tmp_path, host="other-workstation", pid=1)
    with pytest.raises(LockedError) as info:
        acquire_lock(tmp_path)
    assert "other-workstation" in info.value.reason
    lock = acquire_lock(tmp_path, force=True)
    assert lock.took_over.host == "other-workstation"
    lock.release()


def test_release_never_removes_a_lock_that_is_no_longer_ours(tmp_path):
    mine = acquire_lock(tmp_path)
    theirs = acquire_lock(tmp_path, force=True)  # e.g. a user forced it from another window
    mine.release()
    assert read_lock(lock_path(tmp_path)).token == theirs.owner.token
    theirs.release()
    assert not lock_path(tmp_path).exists()


def _race(folder: str, barrier, results) -> None:
    barrier.wait()
    try:
        lock = acquire_lock(folder)
    except LockedError:
        results.put("lost")
        return
    results.put("won")
    time.sleep(1.0)  # hold it while the others try
    lock.release()


def test_racing_openers_of_a_stale_lock_have_exactly_one_winner(tmp_path):
    write_lock(tmp_path, pid=dead_pid())
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=30) for _ in range(n)]
    for p in procs:
        p.join(10)
    assert outcomes.count("won") == 1, outcomes


def test_folder_that_cannot_be_written_gives_a_clear_reason(tmp_path, monkeypatch):
    """Read-only media (simulated: root ignores chmod) -> HeartsegError naming the folder, not an OSError."""
    import core.atomic

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(core.atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(HeartsegError) as info:
        acquire_lock(tmp_path)
    assert "read-only" in str(info.value) and str(tmp_path) in str(info.value)
    lock, reason = open_for_editing(tmp_path)
    assert lock is None and "read-only" in reason


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(0) and not pid_alive(-5)


def test_viewing_leaves_no_trace(tmp_path):
    """A patient only opened (locked, then released) keeps no lock, guard file or empty .heartseg folder."""
    patient = tmp_path / "p1"
    patient.mkdir()
    with acquire_lock(patient):
        assert (patient / ".heartseg" / "lock.json").exists()
    assert list(patient.iterdir()) == []
    (patient / ".heartseg").mkdir()
    (patient / ".heartseg" / "review.json").write_text("{}")
    with acquire_lock(patient):
        pass
    assert [p.name for p in (patient / ".heartseg").iterdir()] == ["review.json"]
