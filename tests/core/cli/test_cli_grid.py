"""``heartseg predict`` / ``evaluate`` on NIfTI input, end to end in a subprocess (issue 13).

* predict on a P-I-R NIfTI writes the mask on the input's grid (shape, affine, codes), so nibabel's and
  SimpleITK's raw-array Dice against the reference equals the world-space Dice;
* predict on a DICOM series also writes the CT as SimpleITK writes it, the mask on that grid;
* an ``imagesTr/labelsTr/imagesTs`` dataset (nnU-Net / MSD layout): predict predicts each case, evaluate scores
  the labelled ones, a multi-label ``labelsTr`` needs ``--label`` (refused in one line without it);
* result paths on stdout, messages on stderr, ``--quiet``, and ``--batch-size 0`` / ``--image-size 0`` refused in
  one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONIOENCODING": "utf-8"}

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def heartseg(*args) -> subprocess.CompletedProcess:
    code = "import sys\nfrom heartseg_gui.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, encoding="utf-8", timeout=600)


def _dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _reoriented(img, codes):
    return img.as_reoriented(nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine),
                                                             nib.orientations.axcodes2ornt(codes)))


def test_predict_pir_nifti_writes_the_mask_on_the_inputs_grid(chest_crop, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    ct = _reoriented(nib.load(str(chest_crop / "ct.nii.gz")), ("P", "I", "R"))
    ref = _reoriented(nib.load(str(chest_crop / "heart.nii.gz")), ("P", "I", "R"))
    scan, ref_path = tmp_path / "pir.nii.gz", tmp_path / "pir_ref.nii.gz"
    nib.save(ct, str(scan))
    nib.save(ref, str(ref_path))
    r = heartseg("predict", scan, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    mask_path = tmp_path / "out" / "pir_heart.nii.gz"
    assert str(mask_path) in r.stdout.splitlines()  # result paths on stdout
    assert "model " in r.stderr  # messages on stderr

    got = nib.load(str(mask_path))
    assert got.shape == ct.shape == (102, 112, 122)  # P, I, R of the 122 x 102 x 112 L-P-S crop
    assert np.array_equal(got.affine, nib.load(str(scan)).affine)
    for key in ("qform_code", "sform_code"):
        assert int(got.header[key]) == int(nib.load(str(scan)).header[key])
    raw = _dice(np.asarray(got.dataobj), np.asarray(ref.dataobj))
    assert raw > 0.8  # the model finds the heart, and the array order is the input's

    m, rf = sitk.ReadImage(str(mask_path)), sitk.ReadImage(str(ref_path))
    raw_sitk = _dice(sitk.GetArrayFromImage(m), sitk.GetArrayFromImage(rf))
    world_sitk = _dice(sitk.GetArrayFromImage(sitk.Resample(m, rf, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                            m.GetPixelID())), sitk.GetArrayFromImage(rf))
    assert raw_sitk == pytest.approx(raw, abs=1e-9)
    assert world_sitk == pytest.approx(raw, abs=1e-9)


def test_predict_dicom_writes_the_simpleitk_nifti_and_the_mask_on_it(abdomen_dicom, tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    r = heartseg("predict", abdomen_dicom, "--out", tmp_path / "out", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == ""  # --quiet: no progress, no messages
    ct_path = tmp_path / "out" / f"{abdomen_dicom.name}_ct.nii.gz"
    mask_path = tmp_path / "out" / f"{abdomen_dicom.name}_heart.nii.gz"
    assert {str(ct_path), str(mask_path)} <= set(r.stdout.splitlines())
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(abdomen_dicom)))
    ref = reader.Execute()
    got = sitk.ReadImage(str(ct_path))
    assert np.array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(ref))
    assert np.allclose(got.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    assert np.allclose(got.GetDirection(), ref.GetDirection(), atol=1e-6)
    mask = sitk.ReadImage(str(mask_path))
    assert mask.GetSize() == ref.GetSize()
    assert np.allclose(mask.GetOrigin(), ref.GetOrigin(), atol=1e-4)


def _nnunet_dataset(chest_crop, root: Path, labels=None) -> Path:
    """imagesTr/case_0000 (+ labelsTr/case) from the real crop, imagesTs/other_0000 without label."""
    ct = nib.load(str(chest_crop / "ct.nii.gz"))
    heart = nib.load(str(chest_crop / "heart.nii.gz"))
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "imagesTs").mkdir()
    nib.save(ct, str(root / "imagesTr" / "chest_0000.nii.gz"))
    lab = (np.asarray(heart.dataobj) > 0).astype(np.uint8)
    if labels is not None:
        lab = lab * np.uint8(labels[0])
        lab[:5] = labels[1]  # a second structure
    nib.save(nib.Nifti1Image(lab, heart.affine, heart.header), str(root / "labelsTr" / "chest.nii.gz"))
    nib.save(_reoriented(ct, ("R", "A", "S")), str(root / "imagesTs" / "other_0000.nii.gz"))
    return root


def test_nifti_dataset_predict_and_evaluate(chest_crop, tmp_path):
    root = _nnunet_dataset(chest_crop, tmp_path / "Task01", labels=(2, 5))
    r = heartseg("predict", root, "--out", tmp_path / "pred")
    assert r.returncode == 0, r.stderr
    for case, src in (("chest", root / "imagesTr" / "chest_0000.nii.gz"),
                      ("other", root / "imagesTs" / "other_0000.nii.gz")):
        out = nib.load(str(tmp_path / "pred" / f"{case}_heart.nii.gz"))
        assert out.shape == nib.load(str(src)).shape
        assert np.array_equal(out.affine, nib.load(str(src)).affine)

    r = heartseg("evaluate", root, "--out", tmp_path / "ev")
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "chest.nii.gz" in lines[0] and "2, 5" in lines[0] and "--label" in lines[0], r.stderr

    r = heartseg("evaluate", root, "--out", tmp_path / "ev", "--label", "2", "--panels", "1")
    assert r.returncode == 0, r.stderr
    assert "chest" in r.stdout and "pooled_dice" in r.stdout


@pytest.mark.parametrize("option", ["--batch-size", "--image-size"])
def test_zero_sizes_refused_in_one_line(option, tmp_path):
    command = "predict" if option == "--batch-size" else "train"
    args = [command, tmp_path, "--out", tmp_path / "out", option, "0"]
    r = heartseg(*args)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and option in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
