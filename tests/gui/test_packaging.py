"""The wheel carries the bundled model and sample: build it, install it into a fresh venv, predict."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_and_predicts_on_bundled_sample(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist,
                    str(ROOT)], check=True, timeout=600)
    wheel = next(dist.glob("heartseg-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True, timeout=600)
    # the dependencies come from the test environment (no network needed); the project itself from the wheel
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["HEARTSEG_CACHE_DIR"] = str(tmp_path / "cache")
    where = subprocess.check_output([py, "-c", "import core.resources as r; print(r.bundled_model_path())"],
                                    cwd=work, env=env, text=True).strip()
    assert where.startswith(str(venv)) and Path(where).is_file()
    sample = subprocess.check_output([py, "-c", "import core.resources as r; "
                                      "print(r.sample_dir() / 'kaggle_layout' / 'ts_pulm')"],
                                     cwd=work, env=env, text=True).strip()
    r = subprocess.run([venv / "bin" / "heartseg", "predict", sample, "--out", work / "out"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert len(list((work / "out").glob("*.png"))) == 112
    # the OpenVINO IR shipped in the wheel was used: nothing was converted into the cache
    assert "on OpenVINO" in r.stderr, r.stderr
    assert not (tmp_path / "cache").exists()
