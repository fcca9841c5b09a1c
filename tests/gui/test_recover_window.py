"""Issue 12 item 2, the window's path: the real window is SIGKILLed mid-edit (a child process), then

1. ``heartseg open P --screenshot x.png`` (a second child, nobody to answer a question) shows the recovered work,
   says so in one stderr line, exits without a traceback, and leaves the journal where it was (the scan's masks
   untouched, the lock released);
2. the window opened again (a third child, "Recover" answered) restores exactly the mask and review states the
   killed window had.

Before the fix the screenshot run ended on ``AttributeError: 'NoneType' object has no attribute 'decline'`` (the
recovery question's nested event loop outlived the window) with the journal's lock gone and nothing recovered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.corpus import tree_state
from tests.helpers import WINDOW_CHILD_PRELUDE, sample_patient_copy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.gui

PAINT_CHILD = WINDOW_CHILD_PRELUDE + r'''
expected = Path(sys.argv[2])
rng = np.random.default_rng(7)
for k in range(8):                                    # finished strokes on several slices, some erasing
    c.set_slice(int(rng.integers(0, editor.n_slices)))
    c.begin_stroke(float(rng.uniform(10, 90)), float(rng.uniform(10, 110)), k % 3 == 2, float(rng.uniform(2, 6)))
    for _ in range(3):
        c.continue_stroke(float(rng.uniform(0, 102)), float(rng.uniform(0, 122)))
        app.processEvents()
    c.end_stroke()
c.set_review_state("corrected")
writes = journal.writes
pump_until(lambda: journal.writes > writes)          # the journal holds every stroke
np.save(expected.with_suffix(".npy"), editor.mask)
expected.with_suffix(".json").write_text(json.dumps(editor.review_states))
print("ready", flush=True)
while True:                                           # editing goes on until the kill
    app.processEvents()
    time.sleep(0.02)
'''

REOPEN_CHILD = r'''
import json, sys, time
import numpy as np
from pathlib import Path
from PySide6.QtWidgets import QApplication
from heartseg_gui.app import create_window

patient, result = Path(sys.argv[1]), Path(sys.argv[2])
w = create_window(None, None, patient / "no-model.keras", sample_when_empty=False)
w.controller.auto_predict = False
asked = []
w.safety.ask_recover = lambda text: asked.append(text) or True   # the user answers "Recover"
w.files.open_path(patient, ask=False)
app = QApplication.instance()
end = time.monotonic() + 60
while not (asked and w.controller.session is not None and w.controller.session.editor.modified
           and not w.controller.is_busy()):
    app.processEvents()
    time.sleep(0.01)
    if time.monotonic() > end:
        sys.exit("timeout: asked=%r" % asked)
editor = w.controller.session.editor
np.save(result.with_suffix(".npy"), editor.mask)
result.with_suffix(".json").write_text(json.dumps({"states": editor.review_states, "asked": asked}))
w.files.has_unsaved = lambda: False
w.controller.shutdown()
w.close()
print("done", flush=True)
'''


def test_killed_window_is_recovered_by_screenshot_and_by_the_window(tmp_path):
    pytest.importorskip("PySide6")
    patient = sample_patient_copy(tmp_path / "ds", slice(50, 60))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HEARTSEG_SETTINGS_DIR": str(tmp_path / "settings"),
           "HEARTSEG_STATE_DIR": str(tmp_path / "state"), "HEARTSEG_JOURNAL_INTERVAL_S": "0.3",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    state = patient / ".heartseg"
    expected = tmp_path / "expected"
    masks_before = tree_state(patient / "image", patient / "mask")

    painter = subprocess.Popen([sys.executable, "-c", PAINT_CHILD, str(patient), str(expected)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = painter.stdout.readline().strip()
        assert line == "ready", painter.stderr.read() if painter.poll() is not None else line
    finally:
        painter.send_signal(signal.SIGKILL)
        painter.wait(30)
    want = np.load(expected.with_suffix(".npy"))
    want_states = json.loads(expected.with_suffix(".json").read_text())
    assert (state / "journal.json").is_file() and (state / "lock.json").is_file()

    # 1. heartseg open --screenshot: nobody to ask; the work is shown, the journal stays
    shot = tmp_path / "shot.png"
    code = "import sys\nfrom heartseg_gui.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    r = subprocess.run([sys.executable, "-c", code, "open", str(patient), "--model", str(patient / "no-model.keras"),
                        "--screenshot", str(shot)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr and "Error" not in r.stderr.replace("HeartsegError", ""), r.stderr
    assert r.returncode in (0, 1), r.stderr  # 1: no model, so no finished prediction (said on stderr)
    recovered = [ln for ln in r.stderr.splitlines() if "recovered unsaved corrections" in ln]
    assert len(recovered) == 1 and str(state / "journal.json") in recovered[0], r.stderr
    assert shot.is_file() and shot.stat().st_size > 0
    assert (state / "journal.json").is_file(), "the screenshot run removed the journal"
    assert not (state / "lock.json").exists(), "the screenshot run left its lock"
    assert not list(state.glob("journal.declined*")) and not list(state.glob("journal.unapplied*"))
    assert tree_state(patient / "image", patient / "mask") == masks_before, "the scan or its masks changed"

    # 2. the window opened again: Recover restores exactly what the killed window had
    result = tmp_path / "result"
    r = subprocess.run([sys.executable, "-c", REOPEN_CHILD, str(patient), str(result)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr
    got = json.loads(result.with_suffix(".json").read_text())
    assert len(got["asked"]) == 1
    np.testing.assert_array_equal(np.load(result.with_suffix(".npy")), want)
    assert got["states"] == want_states
    assert (state / "journal.json").is_file(), "closing unsaved must keep the journal"
    assert tree_state(patient / "image", patient / "mask") == masks_before
