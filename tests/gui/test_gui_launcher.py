"""The ``heartseg`` entry point: the window's ``--screenshot`` mode in a subprocess, command-line sub-commands
without Qt, and the window appearing before TensorFlow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path) -> dict:
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", TF_CPP_MIN_LOG_LEVEL="2", HEARTSEG_SETTINGS_DIR=str(tmp_path / "s"),
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny_unet.keras"
    code = ("from core.model.unet import build_unet, save_model; "
            f"save_model(build_unet(image_size=64, filters=(4, 8, 8, 8, 8), bottleneck=8), r'{path}')")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=_env(tmp_path_factory.mktemp("e")),
                   timeout=300)
    return path


def test_screenshot_after_prediction(tmp_path, tiny_model):
    shot = tmp_path / "window.png"
    proc = subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", "open", "--model", str(tiny_model),
                           "--screenshot", str(shot)], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] >= 600 and img.shape[1] >= 900
    assert img.std() > 10  # a real rendering, not a blank frame


def test_screenshot_of_a_kaggle_patient(tmp_path, tiny_model):
    from tests.helpers import sample_kaggle_patient

    shot = tmp_path / "patient.png"
    proc = subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", "open",
                           str(sample_kaggle_patient()), "--model", str(tiny_model),
                           "--screenshot", str(shot)], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.stat().st_size > 10_000


def test_cli_subcommands_do_not_import_qt(tmp_path):
    code = textwrap.dedent("""
        import sys
        from heartseg_gui.launcher import main
        try:
            rc = main(["verify-dataset", "--help"])
        except SystemExit as exc:
            rc = exc.code
        qt = sorted(m for m in sys.modules if m.startswith(("PySide6", "pyqtgraph")))
        print("QT:", qt)
        sys.exit(0 if not qt else 3)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "QT: []" in proc.stdout


def test_window_appears_before_tensorflow(tmp_path):
    code = textwrap.dedent("""
        import sys
        from heartseg_gui.app import create_window
        w = create_window(model_path="/nonexistent/model.keras")
        from PySide6.QtWidgets import QApplication
        import time
        t = time.time()
        while w.controller.session is None and time.time() - t < 60:
            QApplication.processEvents()
        assert w.isVisible() and w.controller.session is not None
        print("TF:", any(m == "tensorflow" or m.startswith(("tensorflow.", "keras")) for m in sys.modules))
        w.controller.shutdown()
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TF: False" in proc.stdout
