"""The fast DICOM series read (core.io.dicom): one pydicom header parse per file, pixels read (by pydicom) from
where the header stopped, HU computed in numpy, threads decoding; values identical to pydicom's own full read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from core.errors import Cancelled
from core.io import open_scan
from core.io.dicom import _scan_headers, read_dicom_series
from core.types import CancelToken

pytestmark = pytest.mark.shared


def _reference_hu(path: Path, dtype) -> np.ndarray:
    """What the reader did before (and what pydicom gives): a full dcmread, pixel_array, apply_modality_lut,
    rounded and clipped to int16 or cast to float32."""
    ds = pydicom.dcmread(path)
    hu = apply_modality_lut(ds.pixel_array, ds)
    return np.clip(np.rint(hu), -32768, 32767).astype(np.int16) if dtype == np.int16 else hu.astype(np.float32)


def _copy(src: Path, dst: Path, n: int | None = None, edit=None, syntax=None) -> Path:
    """The first ``n`` real slices copied to ``dst``, each optionally edited (``edit(ds, k)``) and re-written
    uncompressed (``syntax``: the transfer syntax to write)."""
    dst.mkdir(parents=True)
    for k, f in enumerate(sorted(p for p in src.iterdir() if p.name.startswith("CT."))[:n]):
        if edit is None and syntax is None:
            shutil.copy(f, dst / f.name)
            continue
        ds = pydicom.dcmread(f)
        ds.decompress()
        if syntax is not None:
            ds.file_meta.TransferSyntaxUID = syntax
        if edit is not None:
            edit(ds, k)
        ds.save_as(dst / f.name, enforce_file_format=True)
    return dst


def _check_exact(vol) -> None:
    for k, path in enumerate(vol.source_files):
        ref = _reference_hu(path, vol.voxels.dtype)
        assert np.array_equal(vol.voxels[k], ref), (k, path.name)


def test_threaded_read_equals_sequential_and_pydicom_hu_exact(abdomen_dicom):
    threaded = read_dicom_series(abdomen_dicom, workers=4)
    sequential = read_dicom_series(abdomen_dicom, workers=1)
    assert threaded.voxels.dtype == sequential.voxels.dtype == np.int16
    assert np.array_equal(threaded.voxels, sequential.voxels)
    assert threaded.source_files == sequential.source_files
    assert not threaded.metadata.get("flipped")  # so voxels[k] is source_files[k] as stored
    _check_exact(threaded)


def test_uncompressed_and_deflated_copies_read_the_same_hu(abdomen_dicom, tmp_path):
    ref = read_dicom_series(abdomen_dicom)
    plain = read_dicom_series(_copy(abdomen_dicom, tmp_path / "plain", syntax=ExplicitVRLittleEndian))
    # deflated files cannot be read from an offset in the file: the reader parses them whole
    deflated = read_dicom_series(_copy(abdomen_dicom, tmp_path / "deflated", 4, syntax=DeflatedExplicitVRLittleEndian))
    assert np.array_equal(plain.voxels, ref.voxels)
    assert np.array_equal(deflated.voxels, ref.voxels[:4])
    # the plain and JPEG-2000 files are read from where their header ended; deflated ones are parsed whole
    assert all(off is not None for _, _, off in _scan_headers(abdomen_dicom))
    assert all(off is not None for _, _, off in _scan_headers(tmp_path / "plain"))
    assert all(off is None for _, _, off in _scan_headers(tmp_path / "deflated"))


def test_fractional_and_integer_rescales_match_pydicom(abdomen_dicom, tmp_path):
    def fractional(ds, k):
        ds.RescaleSlope, ds.RescaleIntercept = "0.5", "-1024.25"

    def doubled(ds, k):
        ds.RescaleSlope, ds.RescaleIntercept = "2", "-2048"

    def no_rescale(ds, k):
        del ds.RescaleSlope
        del ds.RescaleIntercept

    half = read_dicom_series(_copy(abdomen_dicom, tmp_path / "half", 3, fractional), workers=2)
    assert half.voxels.dtype == np.float32
    _check_exact(half)
    double = read_dicom_series(_copy(abdomen_dicom, tmp_path / "double", 3, doubled), workers=2)
    assert double.voxels.dtype == np.int16
    _check_exact(double)
    raw = read_dicom_series(_copy(abdomen_dicom, tmp_path / "raw", 3, no_rescale), workers=2)
    assert raw.voxels.dtype == np.int16 and raw.voxels.min() >= 0
    _check_exact(raw)


def test_progress_reaches_the_end_and_cancel_stops_the_read(abdomen_dicom, tmp_path):
    seen = []
    open_scan(abdomen_dicom, progress=seen.append)
    assert seen and seen[-1].done == seen[-1].total == 20
    token = CancelToken()

    def cancel_after_first(item):
        seen.append(item)
        token.cancel()

    seen.clear()
    with pytest.raises(Cancelled):
        read_dicom_series(abdomen_dicom, progress=cancel_after_first, cancel=token)
    assert len(seen) == 1 and seen[0].done < seen[0].total  # stopped after the first batch of 16


def test_implicit_vr_copies_read_the_same_hu(abdomen_dicom, tmp_path):
    implicit = _copy(abdomen_dicom, tmp_path / "implicit", 3, syntax=ImplicitVRLittleEndian)
    assert np.array_equal(read_dicom_series(implicit).voxels, read_dicom_series(abdomen_dicom).voxels[:3])
