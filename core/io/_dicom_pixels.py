"""Pixels of a DICOM CT series: decode every slice (a thread pool: numpy's copies and the JPEG 2000 decoder,
imagecodecs through :mod:`core.io._j2k_imagecodecs`, release the GIL) and put it through the modality LUT into
one int16 or float32 Hounsfield volume. Private to :mod:`core.io.dicom`, which reads
the headers, orders and checks the slices and calls :func:`_decode_all`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
from pydicom.filereader import read_dataset
from pydicom.pixels import apply_modality_lut, pixel_array

from core.errors import HeartsegError
from core.io import _j2k_imagecodecs
from core.types import Progress, check_cancel, report

#: slices decoded between two progress reports / cancellation checks
BATCH = 16

#: whether JPEG 2000 slices are decoded by imagecodecs (releases the GIL) before pydicom's own plugins
J2K_FAST = _j2k_imagecodecs.register()


def _decode(ds) -> np.ndarray:
    """``ds``'s stored values: imagecodecs for JPEG 2000 when it is installed (pydicom's own plugins if it fails
    on a frame), else pydicom's decoders."""
    if J2K_FAST and getattr(ds, "file_meta", {}).get("TransferSyntaxUID") in _j2k_imagecodecs.SYNTAXES:
        try:
            return pixel_array(ds, decoding_plugin=_j2k_imagecodecs.LABEL)
        except Exception:  # noqa: BLE001 - an unusual codestream: pydicom's plugins decide, and report
            pass
    return pixel_array(ds)  # what ds.pixel_array gives, without caching the array on the header


def _hu_dtype(items) -> type:
    for _, ds in items:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        if slope != int(slope) or intercept != int(intercept):
            return np.float32
        bits = int(ds.get("BitsStored", 16) or 16)
        if int(ds.get("PixelRepresentation", 0) or 0):
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        else:
            lo, hi = 0, 2**bits - 1
        ends = sorted((lo * slope + intercept, hi * slope + intercept))
        if ends[0] < -32768 or ends[1] > 32767:
            return np.float32
    return np.int16


def _pixel_dataset(path: Path, ds, offset: Optional[int]):
    """A dataset to decode ``path``'s pixels from: the header ``ds`` with the Pixel Data element read from
    ``offset`` (where the header pass stopped: the header is not parsed twice), or the whole file re-read
    when the offset is unknown (deflated or unusual files). The caller removes Pixel Data again."""
    try:
        if offset is None:
            return pydicom.dcmread(path)
        ts = ds.file_meta.TransferSyntaxUID
        with open(path, "rb") as fh:
            fh.seek(offset)
            tail = read_dataset(fh, ts.is_implicit_VR, ts.is_little_endian)
        ds.update(tail)  # the raw elements: pydicom converts them as it would in a full read
        return ds
    except OSError as exc:
        raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for damaged files
        raise HeartsegError(f"damaged DICOM file ({type(exc).__name__})", path) from exc


def _to_hu(raw: np.ndarray, ds, out: np.ndarray) -> None:
    """Write ``raw`` stored values through the modality LUT into ``out`` (one slice of the volume, int16 or
    float32), with the values pydicom's ``apply_modality_lut`` gives (float64 ``raw * slope + intercept``),
    rounded and clipped for int16. Integer rescales (the int16 case) are computed exactly in integers."""
    lut = bool(ds.get("ModalityLUTSequence"))
    rescale = "RescaleSlope" in ds and "RescaleIntercept" in ds
    if not lut and raw.dtype.kind in "iu" and raw.itemsize <= 2 and out.dtype == np.int16:
        slope = int(float(ds.RescaleSlope)) if rescale else 1
        intercept = int(float(ds.RescaleIntercept)) if rescale else 0
        wide = np.int32 if slope == 1 and abs(intercept) < 2**30 else np.int64
        hu = raw.astype(wide)
        if slope != 1:
            hu *= slope
        if intercept:
            hu += intercept
        np.clip(hu, -32768, 32767, out=hu)
        out[...] = hu
        return
    if not lut and rescale and out.dtype == np.float32:
        hu = raw.astype(np.float64) * float(ds.RescaleSlope)
        hu += float(ds.RescaleIntercept)
        out[...] = hu
        return
    hu = apply_modality_lut(raw, ds)
    with np.errstate(all="ignore"):
        out[...] = np.clip(np.rint(hu), -32768, 32767) if out.dtype == np.int16 else hu


def _decode_all(items, offsets, rows: int, cols: int, *, progress, cancel, workers: int,
                first: Optional[int] = None, on_first=None) -> np.ndarray:
    """Every slice's HU values, ``(n, rows, cols)``. ``first``: the slice decoded before the others, in this
    thread, and handed to ``on_first(slice)`` at once (the slice in view, shown while the rest decodes)."""
    n = len(items)
    dtype = _hu_dtype(items)
    out = np.empty((n, rows, cols), dtype=dtype)

    def decode(i: int) -> None:
        path, header = items[i]
        ds = _pixel_dataset(path, header, offsets.get(path))
        try:
            if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
                raise HeartsegError("DICOM file has no pixel data", path)
            try:
                raw = _decode(ds)
            except Exception as exc:  # noqa: BLE001 - decoder errors come in many types
                ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown transfer syntax")
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise HeartsegError(f"cannot decode pixels ({getattr(ts, 'name', ts)}): {msg}", path) from exc
            if raw.shape != (rows, cols):
                raise HeartsegError(f"pixel data has shape {raw.shape}, header says {rows} x {cols}", path)
            try:
                _to_hu(raw, ds, out[i])
            except Exception as exc:  # noqa: BLE001 - a damaged LUT / rescale
                raise HeartsegError(f"cannot apply the modality LUT ({type(exc).__name__})", path) from exc
        finally:
            if ds is header:  # the header dataset lives on (items): drop its pixel data again
                for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData", "DataSetTrailingPadding"):
                    if keyword in ds:
                        del ds[keyword]

    rest = range(n)
    if first is not None:
        decode(first)
        if on_first is not None:
            on_first(out[first])
        rest = [i for i in range(n) if i != first]
    if workers <= 1:
        for start in range(0, n, BATCH):
            check_cancel(cancel)
            for i in rest[start:start + BATCH]:
                decode(i)
            done = min(n, start + BATCH)
            report(progress, Progress("read", done, n, f"decoded {done}/{n} DICOM slices"))
        return out
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, BATCH):
            check_cancel(cancel)
            list(pool.map(decode, rest[start:start + BATCH]))
            done = min(n, start + BATCH)
            report(progress, Progress("read", done, n, f"decoded {done}/{n} DICOM slices"))
    return out
