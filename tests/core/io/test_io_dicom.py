"""DICOM series reading (core.io.dicom) on the real TotalSegmentator abdomen series."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGLSLossless, generate_uid

from core.errors import HeartsegError
from core.io import open_scan

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def abdomen(abdomen_dicom):
    return open_scan(abdomen_dicom)


def _dcm_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("CT."))


def _shuffled_copy(src: Path, dst: Path, files=None) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    files = files or _dcm_files(src)
    names = [f"{k}.dcm" for k in range(len(files))]
    random.Random(3).shuffle(names)
    out = []
    for f, name in zip(files, names):
        shutil.copy(f, dst / name)
        out.append(dst / name)
    return out


def test_series_geometry_and_hu(abdomen, abdomen_dicom):
    v = abdomen
    assert v.kind == "dicom" and v.intensity == "hu"
    assert v.voxels.shape == (20, 512, 512) and v.voxels.dtype in (np.int16, np.float32)
    assert v.voxels.min() <= -1000 + 30 and v.voxels.max() > 200  # air and bone in HU
    assert v.spacing == pytest.approx((2.0, 0.9765625, 0.9765625))
    # slice 0 is the most superior (z = -766.5 mm), the last -804.5 mm (SOURCE.md: -766 .. -805)
    z = [(v.affine @ [0, 0, k, 1])[2] for k in (0, 19)]
    assert z == pytest.approx([-766.5, -804.5])
    # LPS (-249.5, -437.5) -> RAS (249.5, 437.5); columns go to patient left (-x in RAS), rows posterior (-y)
    assert v.affine[:3, 3] == pytest.approx([249.51171875, 437.51171875, -766.5])
    assert np.diag(v.affine)[:3] == pytest.approx([-0.9765625, -0.9765625, -2.0])
    assert v.metadata["SeriesDescription"] == "CT Body 3.0"
    assert v.source_files[0].name.endswith("16573")  # SOURCE.md ignored, files ordered by position
    # UID-style file names keep their whole name as slice name (no collisions when masks are written per slice)
    assert len(set(v.slice_names)) == 20 and v.slice_names[0] == v.source_files[0].name


def test_order_by_position_not_file_name(abdomen, abdomen_dicom, tmp_path):
    _shuffled_copy(abdomen_dicom, tmp_path / "s")
    (tmp_path / "s" / "SOURCE.md").write_text("not dicom")
    v = open_scan(tmp_path / "s")
    assert np.array_equal(v.voxels, abdomen.voxels)
    z = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in v.source_files]
    assert z == sorted(z, reverse=True)


def test_two_series_refused_naming_both(abdomen_dicom, tmp_path):
    files = _shuffled_copy(abdomen_dicom, tmp_path / "s")
    uid_a, uid_b = generate_uid(), generate_uid()
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid_b if k < 3 else uid_a
        ds.save_as(f)
    with pytest.raises(HeartsegError, match="2 DICOM series") as err:
        open_scan(tmp_path / "s")
    text = str(err.value)
    assert "\n" not in text and uid_a in text and uid_b in text
    assert "3 files" in text and "17 files" in text


def test_missing_position_named(abdomen_dicom, tmp_path):
    files = _shuffled_copy(abdomen_dicom, tmp_path / "s", _dcm_files(abdomen_dicom)[:4])
    ds = pydicom.dcmread(files[2])
    del ds.ImagePositionPatient
    ds.save_as(files[2])
    with pytest.raises(HeartsegError, match="ImagePositionPatient") as err:
        open_scan(tmp_path / "s")
    assert str(err.value).startswith(str(files[2]))


def test_missing_pixel_data_named(abdomen_dicom, tmp_path):
    files = _shuffled_copy(abdomen_dicom, tmp_path / "s", _dcm_files(abdomen_dicom)[:4])
    ds = pydicom.dcmread(files[1])
    del ds.PixelData
    ds.save_as(files[1])
    with pytest.raises(HeartsegError, match="no pixel data") as err:
        open_scan(tmp_path / "s")
    assert str(err.value).startswith(str(files[1]))


def test_undecodable_transfer_syntax_named(abdomen_dicom, tmp_path):
    files = _shuffled_copy(abdomen_dicom, tmp_path / "s", _dcm_files(abdomen_dicom)[:3])
    ds = pydicom.dcmread(files[0])
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless  # no JPEG-LS decoder installed
    ds.save_as(files[0])
    with pytest.raises(HeartsegError, match="JPEG-LS") as err:
        open_scan(tmp_path / "s")
    assert str(err.value).startswith(str(files[0])) and "\n" not in str(err.value)


def test_damaged_dcm_and_huge_rows(abdomen_dicom, tmp_path):
    files = _shuffled_copy(abdomen_dicom, tmp_path / "s", _dcm_files(abdomen_dicom)[:3])
    (tmp_path / "s" / "zero.dcm").write_bytes(b"")
    with pytest.raises(HeartsegError, match="not a readable DICOM") as err:
        open_scan(tmp_path / "s")
    assert str(err.value).startswith(str(tmp_path / "s" / "zero.dcm"))
    (tmp_path / "s" / "zero.dcm").unlink()
    for f in files:
        ds = pydicom.dcmread(f)
        ds.Rows = 60000
        ds.save_as(f)
    with pytest.raises(HeartsegError, match="limit"):
        open_scan(tmp_path / "s")


def test_kaggle_test_patient_layout_descends_into_series(abdomen, abdomen_dicom, tmp_path):
    _shuffled_copy(abdomen_dicom, tmp_path / "100251" / "2-0OPAGELSQXD3602.5120nullnullnull-72944")
    v = open_scan(tmp_path / "100251")
    assert v.kind == "dicom" and v.n_slices == 20 and np.array_equal(v.voxels, abdomen.voxels)
