"""``heartseg --version`` and ``heartseg predict --dicom-seg``, in subprocesses like tests/core/cli/test_cli.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

import core

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def heartseg(*args):
    return subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)


def one_line_error(r, *words):
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_version():
    r = heartseg("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"heartseg {core.__version__}"


@pytest.mark.slow
@pytest.mark.shared
def test_predict_dicom_seg_writes_a_seg_of_the_predicted_mask(tmp_path, abdomen_dicom):
    from tests.core.io.test_dicom_seg import check_seg_against_mask, make_uid_series

    from core.io import open_scan

    series = make_uid_series(abdomen_dicom, tmp_path / "series" / "abdomen", "feet_first")
    out = tmp_path / "out"
    r = heartseg("predict", series, "--out", out, "--dicom-seg")
    assert r.returncode == 0, r.stderr
    seg = out / "abdomen_heart.seg.dcm"
    assert seg.is_file() and str(seg) in r.stderr
    assert (out / "abdomen_heart.nii.gz").is_file()  # the usual outputs too
    pngs = sorted((out / "abdomen" / "mask").glob("*.png"))
    assert len(pngs) == 20
    predicted = (np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in pngs]) > 127).astype(np.uint8)
    volume = open_scan(series)
    check_seg_against_mask(seg, volume, predicted, algorithm_type="AUTOMATIC")
    assert pydicom.dcmread(seg, stop_before_pixels=True).SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    np.testing.assert_array_equal(open_scan(series, mask_path=seg).mask, predicted)


@pytest.mark.shared
def test_predict_dicom_seg_is_refused_for_nifti_and_uid_less_dicom(tmp_path, chest_crop, abdomen_dicom):
    r = heartseg("predict", chest_crop / "ct.nii.gz", "--out", tmp_path / "a", "--dicom-seg")
    one_line_error(r, "ct.nii.gz", "DICOM-SEG")
    r = heartseg("predict", abdomen_dicom, "--out", tmp_path / "b", "--dicom-seg")
    one_line_error(r, abdomen_dicom.name, "UID")
    # refused before the model ran: nothing written
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
