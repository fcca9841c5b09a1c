"""The CLI end to end, in subprocesses, on the bundled sample and real data."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.resources import bundled_model_path, sample_mask_path, sample_scan_path
from tests.helpers import sample_kaggle_patient

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def heartseg(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=600)


def assert_clean_error(r, name):
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert name in lines[0] and "Traceback" not in r.stderr


@pytest.mark.slow
def test_predict_nifti_writes_kaggle_layout_and_nifti_with_geometry(tmp_path):
    import nibabel as nib

    r = heartseg("predict", sample_scan_path(), "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    masks = sorted((tmp_path / "ct" / "mask").glob("*.png"))
    images = sorted((tmp_path / "ct" / "image").glob("*.png"))
    assert len(masks) == len(images) == 112
    m = cv2.imread(str(masks[60]), cv2.IMREAD_UNCHANGED)
    assert m.shape == (102, 122) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
    out = nib.load(tmp_path / "ct_heart.nii.gz")
    ref = nib.load(sample_mask_path())
    assert out.shape == ref.shape[:3] or sorted(out.shape) == sorted(ref.shape)
    np.testing.assert_allclose(np.abs(np.diag(out.affine))[:3], [1.5, 1.5, 1.5])
    # the predicted mask overlaps the reference heart in world space (same geometry)
    from nibabel.processing import resample_from_to

    aligned = resample_from_to(out, ref, order=0).get_fdata() > 0
    truth = ref.get_fdata() > 0
    dice = 2 * (aligned & truth).sum() / (aligned.sum() + truth.sum())
    assert dice > 0.8


@pytest.mark.slow
def test_predict_bfloat16_agrees_with_float32(tmp_path):
    for precision in ("float32", "bfloat16"):
        r = heartseg("predict", sample_kaggle_patient(), "--out", tmp_path / precision, "--precision", precision)
        assert r.returncode == 0, r.stderr
    a = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((tmp_path / "float32").glob("*.png"))])
    b = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((tmp_path / "bfloat16").glob("*.png"))])
    dice = 2 * ((a > 0) & (b > 0)).sum() / ((a > 0).sum() + (b > 0).sum())
    assert dice > 0.99


@pytest.mark.slow
def test_predict_png_patient_keeps_names_and_sizes(tmp_path):
    r = heartseg("predict", sample_kaggle_patient(), "--out", tmp_path, "--model", bundled_model_path())
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == sorted(p.name for p in (sample_kaggle_patient() / "image").glob("*.png"))
    assert cv2.imread(str(tmp_path / "1-060.png"), cv2.IMREAD_UNCHANGED).shape == (102, 122)


@pytest.mark.slow
def test_evaluate_sample_reports_table_and_panels(tmp_path):
    r = heartseg("evaluate", sample_kaggle_patient(), "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "pooled_dice" in r.stdout and "ALL (pooled)" in r.stdout
    import csv

    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert rows[-1]["patient"] == "ALL (pooled)"
    assert float(rows[-1]["pooled_dice"]) > 0.85  # the bundled model on its own sample (mostly training slices)
    panels = list((tmp_path / "panels").glob("*.png"))
    assert len(panels) == 6
    p = cv2.imread(str(panels[0]), cv2.IMREAD_GRAYSCALE)
    assert p.shape[1] == 3 * 122 + 8


@pytest.mark.shared
def test_predict_dicom_series(tmp_path, abdomen_dicom):
    r = heartseg("predict", abdomen_dicom, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / abdomen_dicom.name / "mask").glob("*.png"))) == 20
    assert (tmp_path / f"{abdomen_dicom.name}_heart.nii.gz").is_file()
    assert "heart found on 0 of 20 slices" in r.stderr  # abdomen: no heart


@pytest.mark.parametrize("make_bad", ["zero", "text", "truncated"])
def test_bad_png_gives_one_line_error_and_writes_nothing(tmp_path, make_bad):
    folder = tmp_path / "scan"
    folder.mkdir()
    good = (sample_kaggle_patient() / "image" / "1-050.png").read_bytes()
    (folder / "1-001.png").write_bytes(good)
    bad = folder / "1-002 bad é.png"
    bad.write_bytes({"zero": b"", "text": b"hello, not a png", "truncated": good[: len(good) // 2]}[make_bad])
    out = tmp_path / "out"
    r = heartseg("predict", folder, "--out", out)
    assert_clean_error(r, "1-002 bad é.png")
    assert not out.exists()


def test_missing_scan_and_corrupt_model(tmp_path):
    assert_clean_error(heartseg("predict", tmp_path / "nope", "--out", tmp_path / "o"), "nope")
    bad_model = tmp_path / "broken.keras"
    bad_model.write_bytes(b"PK\x03\x04garbage")
    r = heartseg("predict", sample_kaggle_patient(), "--out", tmp_path / "o", "--model", bad_model)
    assert_clean_error(r, "broken.keras")
    assert not (tmp_path / "o").exists()


def test_verify_dataset_reports_missing_and_altered(tmp_path):
    manifest = tmp_path / "manifest.tsv"
    root = tmp_path / "copy"
    (root / "data" / "train" / "p1" / "image").mkdir(parents=True)
    f = root / "data" / "train" / "p1" / "image" / "1-001.png"
    f.write_bytes(b"abc")
    import hashlib

    manifest.write_text("path\tsize_bytes\tsha256\n"
                        f"data/train/p1/image/1-001.png\t3\t{hashlib.sha256(b'abd').hexdigest()}\n"
                        f"data/train/p1/image/1-002.png\t3\t{hashlib.sha256(b'xyz').hexdigest()}\n")
    r = heartseg("verify-dataset", root, "--manifest", manifest)
    assert r.returncode == 1
    assert "1-002.png" in r.stdout and "1-001.png" in r.stdout


@pytest.mark.shared
@pytest.mark.slow
def test_train_cli_ctrl_c_keeps_the_best_model(tmp_path, kaggle_patient):
    import signal
    import time

    from tests.helpers import kaggle_root_from_patient

    root = kaggle_root_from_patient(kaggle_patient, tmp_path / "ds", {"p1": slice(30, 50), "p2": slice(60, 68)})
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "heartseg_gui.launcher", "train", root, "--out", out,
                             "--image-size", "64", "--epochs", "200", "--batch-size", "4",
                             "--val-patients", "p2"], cwd=ROOT, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "history.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert (out / "history.csv").exists(), proc.stderr.read() if proc.poll() is not None else "no epoch finished"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "training cancelled" in err and "Traceback" not in err
    from core.model.unet import load_model

    assert load_model(out / "best_model.keras").input_shape == (None, 64, 64, 3)
    assert (out / "history.png").is_file() and (out / "split.json").is_file()


@pytest.mark.slow
def test_predict_over_a_kaggle_dataset_root_writes_each_patient_as_predicting_it_alone(tmp_path):
    """A Kaggle-layout root (data/train/<patient>/image): OUT/<patient>/ holds exactly what ``heartseg predict
    <patient> --out OUT/<patient>`` writes (masks named as the slices, the QC table), the patients read ahead."""
    import filecmp
    import shutil

    root = tmp_path / "kaggle"
    for pid in ("p1", "p2"):
        shutil.copytree(sample_kaggle_patient(), root / "data" / "train" / pid)
    several = heartseg("predict", root, "--out", tmp_path / "all", "-q")
    assert several.returncode == 0, several.stderr
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["p1", "p2"]
    alone = heartseg("predict", root / "data" / "train" / "p2", "--out", tmp_path / "alone" / "p2", "-q")
    assert alone.returncode == 0, alone.stderr
    cmp = filecmp.dircmp(tmp_path / "all" / "p2", tmp_path / "alone" / "p2")
    assert not cmp.left_only and not cmp.right_only and cmp.common_files
    assert filecmp.cmpfiles(tmp_path / "all" / "p2", tmp_path / "alone" / "p2", cmp.common_files,
                            shallow=False)[0] == sorted(cmp.common_files)
    names = sorted(p.name for p in (tmp_path / "all" / "p1").glob("*.png"))
    assert names == sorted(p.name for p in (sample_kaggle_patient() / "image").glob("*.png"))
    refused = heartseg("predict", root, "--out", tmp_path / "seg", "--dicom-seg")
    assert refused.returncode != 0 and "--dicom-seg needs DICOM series" in refused.stderr
    assert not (tmp_path / "seg").exists()
