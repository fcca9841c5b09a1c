"""Multi-worker training, the failure path: a worker killed mid-run fails the whole run within 30 s, and the rerun
resumes from the chief's backup. Its own file so that pytest-xdist (``--dist loadfile``) runs it beside the other
two-worker run of :mod:`tests.core.training.test_distribute` instead of after it (76 s + 51 s on one worker)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.core.training.test_distribute import ROOT, TRAIN, _cli, _env


@pytest.mark.slow
def test_a_killed_worker_fails_the_run_within_30_s_and_the_rerun_resumes(tiny_root, tmp_path):
    out = tmp_path / "run"
    args = [str(tiny_root), "--out", str(out), "--epochs", "3", *TRAIN, "--local-workers", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", *args], cwd=ROOT, env=_env(),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines, pids = [], {}
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("local worker "):
                pids[int(line.split()[2])] = int(line.split("pid ")[1].split(",")[0])
            if "epoch 1 done" in line:
                break
        assert set(pids) == {0, 1}, "".join(lines)[-3000:]
        os.kill(pids[1], signal.SIGKILL)
        t0 = time.monotonic()
        rest = proc.stderr.read()
        proc.wait(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert elapsed < 30 and proc.returncode == 2
    last = rest.strip().splitlines()[-1]
    assert last.startswith("heartseg train: error: local worker 1 of 2") and "SIGKILL" in last, rest[-2000:]
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # the chief was stopped too
    assert json.loads((out / "backup" / "worker-0" / "training_metadata.json").read_text())["epoch"] >= 1

    rerun = _cli(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resumed after epoch" in rerun.stderr
    epochs = [row.split(",")[0] for row in (out / "history.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3"] and not (out / "backup").exists()
