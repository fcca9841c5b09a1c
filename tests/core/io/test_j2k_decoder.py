"""The JPEG 2000 decoding plugin (core.io._j2k_imagecodecs): imagecodecs decodes the codestream, pydicom does
the rest. Its stored values must equal pydicom's own pylibjpeg-openjpeg decode, slice for slice: on the real
abdomen series, and on codestreams whose signedness agrees or disagrees with Pixel Representation (pydicom's
sign correction); a frame it cannot decode goes to pydicom's plugins."""

from __future__ import annotations

import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array
from pydicom.uid import JPEG2000Lossless

from core.io import _dicom_pixels, _j2k_imagecodecs
from core.io.dicom import read_dicom_series


def _reference(ds) -> np.ndarray:
    return pixel_array(ds, decoding_plugin="pylibjpeg")


@pytest.fixture
def decode_calls(monkeypatch):
    """How many frames the imagecodecs plugin decoded."""
    calls = []
    real = imagecodecs.jpeg2k_decode

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(imagecodecs, "jpeg2k_decode", counting)
    return calls


def test_the_plugin_is_registered_and_used_for_jpeg2000():
    assert _dicom_pixels.J2K_FAST
    from pydicom.pixels.decoders import JPEG2000Decoder, JPEG2000LosslessDecoder

    assert _j2k_imagecodecs.LABEL in JPEG2000LosslessDecoder.available_plugins
    assert _j2k_imagecodecs.LABEL in JPEG2000Decoder.available_plugins
    assert _j2k_imagecodecs.register()  # a second registration is harmless


@pytest.mark.shared
def test_real_slices_equal_pylibjpeg_and_the_series_read_uses_the_plugin(abdomen_dicom, decode_calls):
    files = sorted(p for p in abdomen_dicom.iterdir() if p.name.startswith("CT."))
    assert files
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.file_meta.TransferSyntaxUID in _j2k_imagecodecs.SYNTAXES
        ours = pixel_array(ds, decoding_plugin=_j2k_imagecodecs.LABEL)
        ref = _reference(ds)
        assert ours.dtype == ref.dtype and np.array_equal(ours, ref), f.name
    decode_calls.clear()
    vol = read_dicom_series(abdomen_dicom, workers=2)
    assert len(decode_calls) == len(files)  # every slice went through imagecodecs
    for k, path in enumerate(vol.source_files):
        ds = pydicom.dcmread(path)
        hu = _reference(ds).astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        assert np.array_equal(vol.voxels[k], hu.astype(np.int16)), path.name


def _j2k_dataset(template: Path, stored: np.ndarray, *, pixel_representation: int, bits_stored: int,
                 signed_codestream: bool):
    """A real slice's header carrying a crafted lossless J2K codestream of ``stored`` (``bits_stored``-bit
    samples; the codestream signed or not, independently of Pixel Representation)."""
    ds = pydicom.dcmread(template)
    rows, cols = stored.shape
    mask = (1 << bits_stored) - 1
    samples = stored.astype(np.int32)
    if signed_codestream:
        data = samples.astype(np.int16)
    else:
        data = (samples & mask).astype(np.uint16)  # two's complement in the low bits, as a bad encoder writes
    codestream = imagecodecs.jpeg2k_encode(data, level=0, codecformat="j2k", bitspersample=bits_stored)
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = pixel_representation
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    return ds


@pytest.mark.shared
@pytest.mark.parametrize("pixel_representation,signed_codestream", [(1, True), (1, False), (0, False), (0, True)])
def test_signedness_and_precision_handled_as_pydicom_does(abdomen_dicom, pixel_representation, signed_codestream,
                                                           decode_calls):
    template = sorted(p for p in abdomen_dicom.iterdir() if p.name.startswith("CT."))[0]
    rng = np.random.default_rng(pixel_representation * 2 + signed_codestream)
    if pixel_representation:
        stored = rng.integers(-2048, 2048, size=(48, 40))
    else:
        stored = rng.integers(0, 2048, size=(48, 40))  # fits a signed 12-bit codestream too
    ds = _j2k_dataset(template, stored, pixel_representation=pixel_representation, bits_stored=12,
                      signed_codestream=signed_codestream)
    ours = pixel_array(ds, decoding_plugin=_j2k_imagecodecs.LABEL)
    assert decode_calls
    ref = _reference(ds)
    assert ours.dtype == ref.dtype == (np.int16 if pixel_representation else np.uint16)
    assert np.array_equal(ours, ref)
    assert np.array_equal(ours.astype(np.int32), stored)  # pydicom's sign correction restored the values


@pytest.mark.shared
def test_a_frame_imagecodecs_cannot_decode_goes_to_pydicoms_plugins(abdomen_dicom, tmp_path, monkeypatch):
    folder = tmp_path / "series"
    folder.mkdir()
    for f in sorted(p for p in abdomen_dicom.iterdir() if p.name.startswith("CT."))[:4]:
        shutil.copy(f, folder / f.name)
    fast = read_dicom_series(folder, workers=2)

    def broken(*args, **kwargs):
        raise imagecodecs.Jpeg2kError("simulated decoder failure")

    monkeypatch.setattr(imagecodecs, "jpeg2k_decode", broken)
    fallback = read_dicom_series(folder, workers=2)
    monkeypatch.setattr(_dicom_pixels, "J2K_FAST", False)
    plain = read_dicom_series(folder, workers=1)
    assert np.array_equal(fast.voxels, fallback.voxels)
    assert np.array_equal(fast.voxels, plain.voxels)
