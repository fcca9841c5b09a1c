"""The common PACS transfer syntaxes open, HU-exact (issue 13): the real JPEG 2000 series re-encoded.

JPEG-LS Lossless is encoded by pydicom with pyjpegls, RLE Lossless by pydicom itself, JPEG Lossless process 14
(selection value 1 and another predictor) by imagecodecs' libjpeg-turbo (``jpeg8_encode(lossless=True)``), each
encapsulated by pydicom; heartseg decodes them through pylibjpeg-libjpeg / pydicom and must give the very voxels it
reads from the original series.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from core.io import open_scan

pytestmark = pytest.mark.shared

N_SLICES = 6


def _reencode(src_folder, dst, ts) -> None:
    dst.mkdir()
    files = sorted(p for p in src_folder.iterdir() if p.name.startswith("CT"))[:N_SLICES]
    for f in files:
        ds = pydicom.dcmread(f)
        ds.decompress()
        if ts in (JPEGLSLossless, RLELossless):
            ds.compress(ts)
        elif ts in (JPEGLosslessSV1, JPEGLossless):
            imagecodecs = pytest.importorskip("imagecodecs")
            frame = ds.pixel_array
            stored = frame.view(np.uint16) if frame.dtype == np.int16 else frame
            data = imagecodecs.jpeg8_encode(stored, lossless=True, predictor=1 if ts == JPEGLosslessSV1 else 6,
                                            bitspersample=int(ds.BitsStored))
            ds.PixelData = encapsulate([data])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = ts
        else:
            ds.file_meta.TransferSyntaxUID = ts
        ds.save_as(dst / f.name, enforce_file_format=True)
        assert pydicom.dcmread(dst / f.name).file_meta.TransferSyntaxUID == ts


@pytest.fixture(scope="module")
def original(abdomen_dicom, tmp_path_factory):
    folder = tmp_path_factory.mktemp("orig") / "series"
    folder.mkdir()
    for f in sorted(p for p in abdomen_dicom.iterdir() if p.name.startswith("CT"))[:N_SLICES]:
        (folder / f.name).write_bytes(f.read_bytes())
    return open_scan(folder)


@pytest.mark.parametrize("ts", [JPEGLSLossless, JPEGLosslessSV1, JPEGLossless, RLELossless, ExplicitVRLittleEndian,
                                DeflatedExplicitVRLittleEndian], ids=lambda t: t.name)
def test_transfer_syntax_opens_hu_exact(ts, abdomen_dicom, original, tmp_path):
    if ts in (JPEGLSLossless, JPEGLosslessSV1, JPEGLossless):
        assert get_decoder(ts).is_available, f"no decoder for {ts.name}: pylibjpeg-libjpeg missing"
    folder = tmp_path / "series"
    _reencode(abdomen_dicom, folder, ts)
    vol = open_scan(folder)
    assert vol.voxels.dtype == original.voxels.dtype
    assert np.array_equal(vol.voxels, original.voxels)
    assert np.allclose(vol.affine, original.affine)
