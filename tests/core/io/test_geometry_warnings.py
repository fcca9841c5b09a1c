"""Geometry problems are flagged and worded (issue 13): irregular slice spacing, two series merged into one folder,
a non-axial series, a NIfTI whose qform and sform disagree; a gantry-tilted series is refused (see the corpus case
``dicom_gantry_tilt``). Built from the real DICOM series and the real NIfTI crop; the CLI prints each warning as one
line on stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from core.errors import HeartsegError
from core.io import geometry_warnings, open_scan

pytestmark = pytest.mark.shared
ROOT = Path(__file__).resolve().parents[3]


def _copy(src: Path, dst: Path, n: int = 8) -> list[Path]:
    dst.mkdir(parents=True)
    files = sorted(p for p in src.iterdir() if p.name.startswith("CT"))[:n]
    for f in files:
        shutil.copy(f, dst / f.name)
    return sorted(dst.iterdir())


def _edit(path: Path, fn) -> None:
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path)


def test_regular_series_has_no_warning(abdomen_dicom):
    vol = open_scan(abdomen_dicom)
    assert vol.metadata["orientation"] == "axial"
    assert geometry_warnings(vol) == []


def test_missing_slice_is_warned(abdomen_dicom, tmp_path):
    files = _copy(abdomen_dicom, tmp_path / "s")
    files[3].unlink()
    vol = open_scan(tmp_path / "s")
    assert vol.metadata.get("irregular_spacing")
    (line,) = geometry_warnings(vol)
    assert "irregular" in line and "\n" not in line


def test_two_series_without_uids_are_warned(abdomen_dicom, tmp_path):
    """Two anonymised series (no SeriesInstanceUID) 100 mm apart in one folder: read, but warned."""
    files = _copy(abdomen_dicom, tmp_path / "s", 8)
    for i, f in enumerate(files):
        def strip(ds, i=i):
            del ds.SeriesInstanceUID
            if i >= 4:
                ds.ImagePositionPatient = [*list(ds.ImagePositionPatient)[:2],
                                           float(ds.ImagePositionPatient[2]) + 100.0]
        _edit(f, strip)
    vol = open_scan(tmp_path / "s")
    assert "gap" in vol.metadata.get("merged_series", "")
    assert any("two series" in w for w in geometry_warnings(vol))


def test_files_from_two_series_numbers_are_warned(abdomen_dicom, tmp_path):
    files = _copy(abdomen_dicom, tmp_path / "s", 6)
    for f in files[3:]:
        _edit(f, lambda ds: setattr(ds, "SeriesNumber", 99))
    vol = open_scan(tmp_path / "s")
    assert "SeriesNumber" in vol.metadata.get("merged_series", "")


def test_sagittal_series_is_warned(abdomen_dicom, tmp_path):
    """The same pixels labelled as sagittal slices (rows along y, columns along -z, stacked along x)."""
    files = _copy(abdomen_dicom, tmp_path / "s", 6)
    for i, f in enumerate(files):
        def sag(ds, i=i):
            ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
            ds.ImagePositionPatient = [-50.0 + 2.0 * i, -200.0, 100.0]
        _edit(f, sag)
    vol = open_scan(tmp_path / "s")
    assert vol.metadata["orientation"] == "sagittal"
    (line,) = geometry_warnings(vol)
    assert "sagittal" in line and "axial" in line


def test_gantry_tilt_is_refused_in_one_line(abdomen_dicom, tmp_path):
    files = _copy(abdomen_dicom, tmp_path / "s", 6)
    for f in files:
        def tilt(ds):
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y + z * np.tan(np.radians(15)), z]
        _edit(f, tilt)
    with pytest.raises(HeartsegError, match="gantry-tilted") as info:
        open_scan(tmp_path / "s")
    assert "15.0 degrees" in str(info.value) and "\n" not in str(info.value)


def test_qform_sform_disagreement_is_warned(chest_crop, tmp_path):
    img = nib.load(str(chest_crop / "ct.nii.gz"))
    mirrored = img.affine.copy()
    mirrored[0] *= -1  # the qform mirrored left-right against the sform
    out = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, header=img.header.copy())
    out.set_sform(img.affine, code=2)
    out.set_qform(mirrored, code=1)
    nib.save(out, str(tmp_path / "ct.nii.gz"))
    vol = open_scan(tmp_path / "ct.nii.gz")
    assert vol.metadata.get("qform_sform_disagree")
    assert any("qform and sform disagree" in w for w in geometry_warnings(vol))
    assert not open_scan(chest_crop / "ct.nii.gz").metadata.get("qform_sform_disagree")


@pytest.mark.slow
def test_cli_prints_the_warning_as_one_stderr_line(abdomen_dicom, tmp_path):
    files = _copy(abdomen_dicom, tmp_path / "s", 8)
    files[3].unlink()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = "import sys\nfrom heartseg_gui.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    r = subprocess.run([sys.executable, "-c", code, "predict", str(tmp_path / "s"), "--out", str(tmp_path / "o")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "irregular" in warnings[0] and warnings[0].startswith("heartseg predict: warning:")
    assert "warning:" not in r.stdout  # stdout holds only the result paths
