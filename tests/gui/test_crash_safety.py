"""Crash safety: a save killed at any moment never tears a file, the window killed mid-edit loses no stroke, and a
read-only folder / full disk / missing folder on save gives a clear message with nothing half-written.

* ``test_sigkill_during_save_*``: a forked process saves masks and is SIGKILLed -- (a) at the k-th executed line
  of the save code (every stage of the protocol: originals, version snapshot, staging, renames, sidecar) and
  (b) after random delays while it saves old/new/old/... in a loop. After each kill every mask file must be,
  byte for byte, one complete version (original, old or new), versions complete, the sidecar valid, and the
  dataset must still open. 40 + 30 = 70 kills.
* ``test_gui_killed_mid_edit_recovers_strokes_exactly``: the real window in a subprocess paints through the
  controller, lets the journal tick, records the expected mask and is SIGKILLed; a new window recovers it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import HeartsegError
from core.io.masks import encode_mask_png
from tests.corpus import SAMPLE_PATIENT
from tests.helpers import WINDOW_CHILD_PRELUDE, dispose_windows, kill_after, kill_at_line, read_mask_png

ROOT = Path(__file__).resolve().parents[2]
N_SLICES = 10
CORE_FILES = ("core/atomic.py", "core/store/writeback.py", "core/store/_blobs.py", "core/store/_commit.py",
              "core/store/_versions.py", "core/io/masks.py", "core/store/dataset.py")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A small Kaggle dataset: data/train/p1 with the sample's slices 50..59 (image + dataset mask)."""
    root = tmp_path_factory.mktemp("pristine") / "ds"
    names = sorted(p.name for p in (SAMPLE_PATIENT / "image").glob("*.png"))[50:50 + N_SLICES]
    for sub in ("image", "mask"):
        (root / "data" / "train" / "p1" / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(SAMPLE_PATIENT / sub / n, root / "data" / "train" / "p1" / sub / n)
    return root


def versions_of(pristine_root: Path):
    """(slice names, original mask bytes, masks A, masks B) -- A and B differ on every slice."""
    from core.store.dataset import open_dataset

    vol = open_dataset(pristine_root).load("p1")
    names = vol.slice_names
    orig = {n: (pristine_root / "data/train/p1/mask" / f"{n}.png").read_bytes() for n in names}
    a = vol.mask.copy()
    a[:, 10:30, 10:40] = 1
    b = np.zeros_like(vol.mask)
    b[:, 40:70, 50:90] = 1
    return names, orig, a, b


def fresh_copy(pristine_root: Path, where: Path) -> Path:
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(pristine_root, where)
    return where / "data" / "train" / "p1"


def check_consistent(patient: Path, names, orig, a, b) -> dict:
    """Every file complete and one of the known versions; the dataset opens. Returns which version each mask is."""
    from core.store.dataset import open_dataset
    from core.store.writeback import list_versions, read_review

    allowed = {}
    for i, n in enumerate(names):
        allowed[n] = {sha(orig[n]): "orig", sha(encode_mask_png(a[i])): "A", sha(encode_mask_png(b[i])): "B"}
    state = {}
    files = sorted(p.name for p in (patient / "mask").iterdir() if not p.name.startswith("."))
    assert files == sorted(f"{n}.png" for n in names), f"mask files missing or extra: {files}"
    for n in names:
        h = sha((patient / "mask" / f"{n}.png").read_bytes())
        assert h in allowed[n], f"mask {n}.png is torn or unknown"
        state[n] = allowed[n][h]
    originals = patient / ".heartseg" / "original_masks"
    if originals.is_dir():
        for p in originals.iterdir():
            if not p.name.startswith("."):
                assert p.read_bytes() == orig[p.stem], f"kept original {p.name} differs from the dataset's"
    for v in list_versions(patient):
        kept = sorted(p.name for p in v.path.iterdir())
        assert kept == sorted(f"{n}.png" for n in names), f"version {v.version_id} incomplete: {kept}"
        for p in v.path.iterdir():
            assert sha(p.read_bytes()) in allowed[p.stem], f"version file {p} torn"
    read_review(patient)  # valid or absent, never half a JSON file
    vol = open_dataset(patient.parents[2]).load("p1")
    assert vol.mask is not None and vol.n_slices == len(names)
    return state


def test_sigkill_during_save_at_every_stage(pristine, tmp_path):
    names, orig, a, b = versions_of(pristine)
    work = tmp_path / "work"
    # dry run: how many traced lines does one save (A over an earlier save of B) execute?
    patient = fresh_copy(pristine, work)
    from core.store.dataset import save_masks

    save_masks(patient, "p1", b, names)
    status, total = kill_at_line(CORE_FILES, 0, save_masks, patient, "p1", a, names, review={0: "accepted"})
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and total > 100
    moments = sorted(set(np.linspace(1, total, 40).astype(int).tolist()))
    outcomes = {}
    for k, kill_at in enumerate(moments):
        patient = fresh_copy(pristine, work)
        first_save = k % 2 == 1  # half the runs replace the dataset's own masks, half an earlier heartseg save
        if first_save:
            save_masks(patient, "p1", b, names)
        status, _ = kill_at_line(CORE_FILES, kill_at, save_masks, patient, "p1", a, names, review={0: "accepted"})
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"not killed at line {kill_at}"
        state = check_consistent(patient, names, orig, a, b)
        outcomes[kill_at] = "".join(sorted(set(state.values())))
    assert len(moments) >= 40
    kinds = set(outcomes.values())
    assert {"orig", "A"} & kinds or {"B", "A"} & kinds, outcomes  # kills landed before and after the renames


def _save_loop(patient: Path, names, a, b) -> None:
    from core.store.dataset import save_masks

    k = 0
    while True:
        save_masks(patient, "p1", a if k % 2 == 0 else b, names)
        k += 1


def test_sigkill_during_save_at_random_moments(pristine, tmp_path):
    names, orig, a, b = versions_of(pristine)
    work = tmp_path / "work"
    patient = fresh_copy(pristine, work)
    from core.store.dataset import save_masks

    t0 = time.perf_counter()
    for k in range(3):
        save_masks(patient, "p1", a if k % 2 == 0 else b, names)
    one_save = (time.perf_counter() - t0) / 3
    rng = random.Random(1234)
    seen = set()
    for run in range(30):
        patient = fresh_copy(pristine, work)
        status = kill_after(rng.uniform(0, 4 * one_save), _save_loop, patient, names, a, b)
        assert os.WIFSIGNALED(status)
        seen.add(tuple(sorted(set(check_consistent(patient, names, orig, a, b).values()))))
    assert len(seen) >= 2, f"the kills all landed at the same point: {seen}"


# ---------------------------------------------------------------------------------------- refused saves
def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): sha(p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def _fail_writes(monkeypatch, err: int, text: str) -> None:
    """Make every new file the save code creates fail: temp files (atomic writes) and version copies."""
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        raise OSError(err, text)

    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        raise OSError(err, text)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return real, real_mkdtemp


@pytest.mark.parametrize("failure", ["read-only folder", "full disk (patched write)", "missing folder"])
def test_failed_save_says_why_and_changes_nothing(pristine, tmp_path, monkeypatch, failure):
    from core.io import write_mask_pngs
    from core.store.dataset import save_masks

    names, orig, a, b = versions_of(pristine)
    patient = fresh_copy(pristine, tmp_path / "ds")
    save_masks(patient, "p1", b, names)  # an earlier save, so a failure must keep B everywhere
    before = _tree(patient)
    if failure == "read-only folder":
        _fail_writes(monkeypatch, errno.EROFS, "Read-only file system")
        words = "read-only"
    elif failure == "full disk (patched write)":
        real_write = os.write

        def full_write(fd, data):  # the first bytes fit, then the disk is full
            if len(data) > 64:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        import core.atomic
        import core.store._blobs

        monkeypatch.setattr(os, "write", full_write)
        real_open = open

        def open_full(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            if "w" in mode:
                fh.close()
                raise OSError(errno.ENOSPC, "No space left on device", os.fspath(file))
            return fh

        monkeypatch.setattr(core.store._blobs, "open", open_full, raising=False)
        monkeypatch.setattr(core.atomic, "open", open_full, raising=False)
        words = "no space left"
    else:
        shutil.move(str(patient), str(tmp_path / "moved"))
        words = "does not exist"
    with pytest.raises(HeartsegError) as info:
        save_masks(patient, "p1", a, names)
    msg = str(info.value)
    assert "\n" not in msg and words in msg.lower(), msg
    monkeypatch.undo()
    if failure == "missing folder":
        assert not patient.exists(), "the missing folder must not be re-created by the save"
        patient = tmp_path / "moved"
    assert _tree(patient) == before, "something changed or was half-written"
    assert not [p for p in patient.rglob(".*tmp*")], "temporary files left behind"
    # the in-memory edits (a) are still there for the user to save elsewhere
    out = tmp_path / "elsewhere é"
    write_mask_pngs(out, a, names)
    for i, n in enumerate(names):
        np.testing.assert_array_equal(read_mask_png(out / f"{n}.png"), a[i])


def _mount_tiny_tmpfs(where: Path, size_kb: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                       capture_output=True)
    return r.returncode == 0


def test_real_full_disk_on_a_tiny_tmpfs(pristine, tmp_path):
    """Where a tmpfs can be mounted (root in a container): a genuinely full file system mid-save."""
    from core.store.dataset import save_masks

    mnt = tmp_path / "tiny"
    if not _mount_tiny_tmpfs(mnt, 512):
        pytest.skip("cannot mount a tmpfs here")
    try:
        names, orig, a, b = versions_of(pristine)
        patient = fresh_copy(pristine, mnt / "ds")
        save_masks(patient, "p1", b, names)
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk to the last page, unbuffered
        try:
            while os.write(fd, b"\0" * 4096) == 4096:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        failures = 0
        for keep_free in (0, 3, 6, 12, 24):  # failing at different stages of the save
            size = filler.stat().st_size
            os.truncate(filler, max(0, size - keep_free * 4096))
            try:
                save_masks(patient, "p1", a, names)
            except HeartsegError as exc:
                assert "No space left on device" in str(exc) and "\n" not in str(exc)
                assert not [p for p in patient.rglob(".*tmp*")], "temporary files left behind"
                state = check_consistent(patient, names, orig, a, b)
                assert set(state.values()) == {"B"}, "a failed save must leave every mask as it was"
                failures += 1
                continue
            state = check_consistent(patient, names, orig, a, b)
            assert set(state.values()) == {"A"}
            break
        assert failures >= 1, "the disk was never full"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ------------------------------------------------------------------------------------ the window killed mid-edit
GUI_CHILD = WINDOW_CHILD_PRELUDE + r'''
expected_out = Path(sys.argv[2])
rng = np.random.default_rng(int(sys.argv[3]))
for k in range(12):                                  # finished strokes on several slices
    c.set_slice(int(rng.integers(0, editor.n_slices)))
    c.begin_stroke(float(rng.uniform(10, 90)), float(rng.uniform(10, 110)), k % 4 == 3, float(rng.uniform(2, 6)))
    for _ in range(int(rng.integers(1, 6))):
        c.continue_stroke(float(rng.uniform(0, 102)), float(rng.uniform(0, 122)))
        app.processEvents()
    c.end_stroke()
c.set_review_state("flagged")
c.begin_stroke(50.0, 20.0, False, 4.0)              # a drag still in progress when the kill comes
c.continue_stroke(50.0, 60.0)
writes = journal.writes
pump_until(lambda: journal.writes > writes + 1)    # let the journal timer tick (twice: the open drag included)
np.save(expected_out.with_suffix(".npy"), editor.mask)
expected_out.with_suffix(".json").write_text(json.dumps(editor.review_states))
print("ready", flush=True)
while True:
    app.processEvents()
    time.sleep(0.02)
'''


def _window_on(qtbot, patient: Path, *, ask_recover=None, wait: bool = True):
    """A real window (no model, no automatic prediction, "discard" on close) opening ``patient``; with ``wait``
    it returns once the scan is open and no job runs."""
    from heartseg_gui.app import create_window

    w = create_window(None, None, patient / "no-model.keras", sample_when_empty=False)
    qtbot.addWidget(w)
    w.controller.auto_predict = False
    w.prompts.save_discard_cancel = lambda question: "discard"
    if ask_recover is not None:
        w.safety.ask_recover = ask_recover
    w.files.open_path(patient, ask=False)
    if wait:
        qtbot.waitUntil(lambda: w.controller.session is not None and not w.controller.is_busy(), timeout=60_000)
    return w


@pytest.mark.gui
def test_gui_killed_mid_edit_recovers_strokes_exactly(pristine, tmp_path, qtbot, monkeypatch):
    pytest.importorskip("pytestqt")
    patient = fresh_copy(pristine, tmp_path / "ds")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HEARTSEG_SETTINGS_DIR": str(tmp_path / "settings"),
           "HEARTSEG_STATE_DIR": str(tmp_path / "state"), "HEARTSEG_JOURNAL_INTERVAL_S": "0.3"}
    expected = tmp_path / "expected"
    child = subprocess.Popen([sys.executable, "-c", GUI_CHILD, str(patient), str(expected), "11"], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().strip()
        assert line == "ready", child.stderr.read() if child.poll() is not None else line
        assert (patient / ".heartseg" / "lock.json").exists() and (patient / ".heartseg" / "journal.json").exists()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    want = np.load(expected.with_suffix(".npy"))
    want_states = json.loads(expected.with_suffix(".json").read_text())
    assert want.any()

    for key in ("HEARTSEG_SETTINGS_DIR", "HEARTSEG_STATE_DIR"):
        monkeypatch.setenv(key, env[key])

    asked = []
    w = _window_on(qtbot, patient, ask_recover=lambda text: asked.append(text) or True, wait=False)
    qtbot.waitUntil(lambda: bool(asked) and w.controller.session is not None
                    and w.controller.session.editor.modified, timeout=60_000)
    editor = w.controller.session.editor
    assert not w.safety.read_only_reason, "the dead window's lock must be taken over"
    assert w.safety.lock is not None and w.safety.lock.took_over.pid == child.pid
    np.testing.assert_array_equal(editor.mask, want)
    assert editor.review_states == want_states
    # the recovered work saves normally, and the journal is gone afterwards
    assert w.files.save()
    assert not (patient / ".heartseg" / "journal.json").exists()
    from core.store.dataset import open_dataset

    np.testing.assert_array_equal(open_dataset(patient.parents[2]).load("p1").mask, want)
    dispose_windows(w)


@pytest.mark.gui
def test_second_window_is_read_only_and_says_why(pristine, tmp_path, qtbot, monkeypatch):
    pytest.importorskip("pytestqt")
    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(tmp_path / "settings"))
    patient = fresh_copy(pristine, tmp_path / "ds")
    windows = [_window_on(qtbot, patient) for _ in range(2)]
    first, second = windows
    assert not first.safety.read_only_reason and first.actions.save.isEnabled()
    reason = second.safety.read_only_reason
    assert f"process {os.getpid()}" in reason and "since" in reason
    assert second.safety.banner.isVisible()
    assert "Read-only" in second.safety.banner.text()
    assert not second.actions.save.isEnabled() and not second.actions.tool_brush.isEnabled()
    before = _tree(patient)
    second.controller.begin_stroke(20.0, 20.0, False, 4.0)  # even a programmatic edit cannot be saved here
    second.controller.end_stroke()
    assert not second.files.save()
    assert "read-only" in second.prompts.errors[-1][1].lower()
    assert _tree(patient) == before
    # the first window closes: its lock goes, and the scan opens editable again
    first.close()
    third = _window_on(qtbot, patient)
    assert third.safety.read_only_reason == ""
    dispose_windows(*windows, third)


@pytest.mark.gui
@pytest.mark.parametrize("failure", ["read-only folder", "full disk", "missing folder"])
def test_window_save_failure_keeps_edits_and_allows_saving_elsewhere(pristine, tmp_path, qtbot, monkeypatch,
                                                                      failure):
    pytest.importorskip("pytestqt")
    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(tmp_path / "settings"))
    patient = fresh_copy(pristine, tmp_path / "ds")

    w = _window_on(qtbot, patient)
    c = w.controller
    c.begin_stroke(20.0, 20.0, False, 5.0)
    c.continue_stroke(20.0, 60.0)
    c.end_stroke()
    editor = c.session.editor
    working = editor.copy_mask()
    before = _tree(patient)
    if failure == "read-only folder":
        _fail_writes(monkeypatch, errno.EROFS, "Read-only file system")
        words = "read-only"
    elif failure == "full disk":
        _fail_writes(monkeypatch, errno.ENOSPC, "No space left on device")
        words = "no space left"
    else:
        shutil.move(str(patient), str(tmp_path / "moved"))
        words = "does not exist"
    n = len(w.prompts.errors)
    assert not w.files.save()
    assert len(w.prompts.errors) == n + 1
    title, message = w.prompts.errors[-1]
    assert words in message.lower() and "still here" in message, message
    assert w.prompts.open_error_boxes(), "no dialog"
    monkeypatch.undo()
    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(tmp_path / "settings"))
    assert editor.modified and np.array_equal(editor.mask, working), "in-memory edits lost"
    after_root = tmp_path / "moved" if failure == "missing folder" else patient
    after = _tree(after_root)
    assert {k: v for k, v in after.items() if "lock.json" not in k and "journal.json" not in k} == \
        {k: v for k, v in before.items() if "lock.json" not in k and "journal.json" not in k}
    assert not [p for p in after_root.rglob(".*tmp*")]
    out = tmp_path / "elsewhere"
    assert w.files.export_pngs(out)
    for i, name in enumerate(c.session.volume.slice_names):
        np.testing.assert_array_equal(read_mask_png(out / f"{name}.png"), working[i])
    for box in w.prompts.open_error_boxes():
        box.done(0)
    dispose_windows(w)


LONG_SESSION_CHILD = r'''
import sys, time
from pathlib import Path
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication
from heartseg_gui.app import create_window

w = create_window(None, None, Path(sys.argv[1]) / "no-model.keras", sample_when_empty=False)
app = QApplication.instance()

class Probe(QObject):
    ping = Signal()

probe = Probe()
for chunk in range(6):                  # 300000 emits: far more than a long painting session's worth
    for _ in range(50000):
        probe.ping.emit()
        w.controller.statusMessage.emit("x") if _ % 1000 == 0 else None
    end = time.monotonic() + 0.6
    while time.monotonic() < end:       # let the guard's timer run, like an idle moment between strokes
        app.processEvents()
        time.sleep(0.02)
print("alive", sys.getrefcount(True) > 1000, flush=True)
w.controller.shutdown()
w.close()
'''


@pytest.mark.gui
def test_long_session_of_signal_emits_does_not_abort_the_window(tmp_path):
    """PySide6 6.12.0 loses a reference to True on every Signal.emit(); without heartseg_gui.bool_guard's guard a
    window aborts ("bool_dealloc") after a few thousand emits -- minutes of painting."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HEARTSEG_SETTINGS_DIR": str(tmp_path / "settings")}
    r = subprocess.run([sys.executable, "-c", LONG_SESSION_CHILD, str(tmp_path)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "alive True" in r.stdout, r.stderr[-2000:]
