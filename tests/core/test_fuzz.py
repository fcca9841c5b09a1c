"""Property-based fuzzing (hypothesis) of the scan readers and the mask writers.

* Random bytes and mutated real files fed to the PNG, DICOM and NIfTI readers either read or raise
  :class:`core.errors.HeartsegError` -- never any other exception.
* Writing a mask then reading it back returns it exactly (PNG slices and NIfTI volumes).

The ``heartseg-fuzz`` settings profile keeps the whole module well under a minute on two cores; set
``HEARTSEG_FUZZ_EXAMPLES`` to fuzz longer (e.g. 5000 overnight).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.errors import HeartsegError
from tests.corpus import ABDOMEN_DICOM, ct_like, huge_png_header, png_bytes

N = int(os.environ.get("HEARTSEG_FUZZ_EXAMPLES", "60"))
settings.register_profile("heartseg-fuzz", max_examples=N, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ = settings.get_profile("heartseg-fuzz")


class Scratch:
    """A fresh folder per example (hypothesis examples cannot use the function-scoped tmp_path)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="heartseg-fuzz-"))
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def only_heartseg_errors(fn, *args):
    try:
        return fn(*args)
    except HeartsegError as exc:
        assert "\n" not in str(exc)
        return None


@st.composite
def mutated(draw, seed: bytes, focus: int | None = None):
    """``seed`` with a few random edits: byte flips, overwritten runs, a truncation, an insertion, a deletion.
    ``focus``: edits land in the first ``focus`` bytes (the header) three times out of four."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "run", "truncate", "insert", "delete", "int"]))
        limit = len(data) if not focus or draw(st.integers(0, 3)) == 0 else min(len(data), focus)
        if limit == 0:
            break
        pos = draw(st.integers(0, limit - 1))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "run":
            run = draw(st.binary(min_size=1, max_size=16))
            data[pos:pos + len(run)] = run
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        else:  # a plausible-but-wrong integer (sizes, lengths, dims)
            value = draw(st.sampled_from([0, 1, 2**15 - 1, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1]))
            data[pos:pos + 4] = value.to_bytes(4, draw(st.sampled_from(["little", "big"])))
    return bytes(data)


# ------------------------------------------------------------------------------------------------------ PNG
PNG_SEED = png_bytes(ct_like(24, 20))
PNG16_SEED = png_bytes(ct_like(16, 12).astype(np.uint16) * 250)
RGBA_SEED = png_bytes(np.dstack([ct_like(16, 12)] * 3 + [np.full((16, 12), 255, np.uint8)]))


def _read_png_folder(data: bytes, name: str = "1-001 é.png"):
    from core.io import open_scan
    from core.io.png import parse_png_header

    with Scratch() as tmp:
        only_heartseg_errors(parse_png_header, data, tmp / name)
        folder = tmp / "scan"
        folder.mkdir()
        (folder / name).write_bytes(data)
        (folder / "1-002.png").write_bytes(PNG_SEED)
        vol = only_heartseg_errors(open_scan, folder)
        if vol is not None:
            assert vol.voxels.ndim == 3


@FUZZ
@given(st.binary(max_size=600))
def test_png_random_bytes(data):
    _read_png_folder(data)
    _read_png_folder(b"\x89PNG\r\n\x1a\n" + data)


@FUZZ
@given(st.one_of(mutated(PNG_SEED, focus=40), mutated(PNG16_SEED, focus=40), mutated(RGBA_SEED, focus=40),
                 mutated(huge_png_header(), focus=40)))
def test_png_mutated_real_files(data):
    _read_png_folder(data)


@FUZZ
@given(mutated(PNG_SEED, focus=40))
def test_png_mutated_masks(data):
    from tests.helpers import read_mask_png

    with Scratch() as tmp:
        (tmp / "m.png").write_bytes(data)
        only_heartseg_errors(read_mask_png, tmp / "m.png", (24, 20))
        only_heartseg_errors(read_mask_png, tmp / "m.png")


# ---------------------------------------------------------------------------------------------------- DICOM
def _dicom_seed() -> bytes:
    """A real slice from the shared series, re-encoded uncompressed (so mutations hit pixels too, fast)."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    files = sorted(p for p in ABDOMEN_DICOM.iterdir() if p.name.startswith("CT"))
    ds = pydicom.dcmread(files[0])
    ds.decompress()
    arr = ds.pixel_array[::16, ::16].copy()  # 32 x 32 keeps each example fast
    ds.Rows, ds.Columns = arr.shape
    ds.PixelData = arr.tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def dicom_seed():
    if not ABDOMEN_DICOM.is_dir():
        pytest.skip(f"needs {ABDOMEN_DICOM}")
    return _dicom_seed()


def _read_dicom(data: bytes, name: str = "slice.dcm"):
    from core.io import open_scan
    from core.io.dicom import read_dicom_series

    with Scratch() as tmp:
        folder = tmp / "series"
        folder.mkdir()
        (folder / name).write_bytes(data)
        only_heartseg_errors(read_dicom_series, folder)
        only_heartseg_errors(open_scan, folder)


@settings(FUZZ, max_examples=max(10, N // 2))
@given(data=st.data())
def test_dicom_mutated_real_file(dicom_seed, data):
    blob = data.draw(mutated(dicom_seed, focus=1600))
    _read_dicom(blob)
    _read_dicom(blob, name="CT.1.2.3")  # no .dcm suffix: non-DICOM files are skipped, DICOM ones read


@settings(FUZZ, max_examples=max(10, N // 2))
@given(st.binary(max_size=400))
def test_dicom_random_bytes(data):
    _read_dicom(b"\0" * 128 + b"DICM" + data)
    _read_dicom(data)


# ---------------------------------------------------------------------------------------------------- NIfTI
def _nifti_seed(gz: bool) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image((np.arange(12 * 10 * 6) % 300 - 100).reshape(12, 10, 6).astype(np.int16),
                          np.diag([0.8, 0.8, 2.5, 1.0]))
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


NII_SEED, NIIGZ_SEED = _nifti_seed(False), _nifti_seed(True)


def _read_nifti(data: bytes, name: str):
    from core.io import open_scan

    with Scratch() as tmp:
        (tmp / name).write_bytes(data)
        vol = only_heartseg_errors(open_scan, tmp / name)
        if vol is not None:
            assert vol.voxels.ndim == 3


@FUZZ
@given(st.one_of(mutated(NII_SEED, focus=352), mutated(NIIGZ_SEED)))
def test_nifti_mutated_real_files(data):
    _read_nifti(data, "ct.nii.gz" if data[:2] == b"\x1f\x8b" else "ct.nii")


@FUZZ
@given(st.binary(max_size=800))
def test_nifti_random_bytes(data):
    _read_nifti(data, "scan.nii")
    _read_nifti(data, "scan.nii.gz")


# ------------------------------------------------------------------------------------------ mask round trips
binary_slices = arrays(np.uint8, st.tuples(st.integers(1, 48), st.integers(1, 48)), elements=st.integers(0, 1))


@FUZZ
@given(binary_slices)
def test_mask_png_write_then_read_is_exact(mask):
    from core.io.masks import write_mask_png
    from tests.helpers import read_mask_png

    with Scratch() as tmp:
        write_mask_png(tmp / "m é.png", mask)
        back = read_mask_png(tmp / "m é.png", mask.shape)
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, mask)
        assert not [p for p in tmp.iterdir() if p.name != "m é.png"], "temporary files left behind"


@FUZZ
@given(arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 24), st.integers(1, 24)),
              elements=st.integers(0, 1)),
       st.sampled_from([None, (2.5, 0.7, 0.9)]))
def test_mask_nifti_and_png_folder_write_then_read_is_exact(masks, spacing):
    from core.io import write_mask_nifti, write_mask_pngs
    from core.io.kaggle import read_mask_folder
    from core.io.nifti import read_nifti_mask
    from core.types import Volume

    n = masks.shape[0]
    vol = Volume(voxels=np.zeros(masks.shape, np.int16), spacing=spacing, affine=None,
                 source_files=[Path(f"s{i}.png") for i in range(n)], intensity="raw", kind="png_folder",
                 name="x")
    with Scratch() as tmp:
        write_mask_nifti(tmp / "m.nii.gz", masks, vol)
        np.testing.assert_array_equal(read_nifti_mask(tmp / "m.nii.gz", vol), masks)
        names = [f"1-{i + 1:03d}" for i in range(n)]
        write_mask_pngs(tmp / "pngs", masks, names)
        back, present, orphans = read_mask_folder(tmp / "pngs", names, masks.shape[1:])
        np.testing.assert_array_equal(back, masks)
        assert present.all() and not orphans
