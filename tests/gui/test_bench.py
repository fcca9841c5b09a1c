"""``heartseg bench --quick`` runs end to end and reports every figure (not timings: machines are noisy)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heartseg_gui.bench.run import FIGURES

ROOT = Path(__file__).resolve().parents[2]


def _finite(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, dict):
        return value.get("n", 1) > 0 and all(math.isfinite(float(value[k])) for k in ("median", "p95"))
    return math.isfinite(float(value))


@pytest.mark.slow
def test_bench_quick_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "QT_QPA_PLATFORM": "offscreen",
           "HEARTSEG_SETTINGS_DIR": str(tmp_path / "settings")}
    env.pop("HEARTSEG_BENCH_ONLY", None)
    r = subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", "bench", "--quick", "--json", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert not [n for n in report["notes"] if "failed" in n], report["notes"]
    for key in ("cpu", "cores", "tensorflow"):
        assert report["machine"].get(key), key
    missing = [k for k in FIGURES if k not in report["figures"]]
    assert not missing, missing
    bad = [k for k in FIGURES if not _finite(report["figures"][k])]
    assert not bad, {k: report["figures"][k] for k in bad}
    # the printed table names the machine and has a row per section
    assert report["machine"]["cpu"] in r.stdout and "TensorFlow" in r.stdout
    for section in ("1 inference", "2 window", "3 start-up", "4 training", "5 memory", "6 dicom", "7 planes",
                    "8 many scans"):
        assert section in r.stdout, section
    # the DICOM open reads the same HU as SimpleITK (the speed is not checked here: machines are noisy)
    assert report["figures"]["dicom.uncompressed_hu_max_diff"] == 0
    assert report["figures"]["dicom.jpeg2000_hu_max_diff"] == 0
    # predicting a dataset root writes what predicting each patient alone writes, byte for byte
    assert report["figures"]["many.outputs_identical"] == 1
