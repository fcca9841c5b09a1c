"""The header pass of a DICOM series read (private to :mod:`core.io.dicom`): one
``dcmread(stop_before_pixels=True)`` per file, in one thread (pydicom's parser holds the GIL; threads were slower),
after asking the kernel to read the files ahead. Files that are not DICOM are skipped, DICOMDIR index files
ignored, and every header value the reader uses is converted here, so a damaged one is reported naming its file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword

from core.errors import HeartsegError
from core.io.common import list_files

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Header values that one series shares; files that disagree on one are probably two series merged.
_SERIES_KEYS = ("SeriesNumber", "FrameOfReferenceUID", "StudyInstanceUID", "SeriesDescription", "Modality")
#: Every header value the reader (or pydicom's pixel decoding) uses: converted in the header pass, so a damaged
#: one is reported there naming its file (pydicom converts values lazily, on first use).
_USED_KEYWORDS = ("SeriesInstanceUID", "SOPInstanceUID", "Rows", "Columns", "NumberOfFrames", "RescaleSlope",
                  "RescaleIntercept", "RescaleType", "ModalityLUTSequence", "SpacingBetweenSlices", "SliceThickness",
                  "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
                  "PhotometricInterpretation", "PlanarConfiguration", "ImageOrientationPatient",
                  "ImagePositionPatient", "PixelSpacing", "PatientID", "Modality", "InstanceNumber") + _SERIES_KEYS
_USED_TAGS = frozenset(tag_for_keyword(k) for k in _USED_KEYWORDS)


def _read_header(path: Path):
    """Header dataset, or ``None`` for files that are not DICOM images (ignored)."""
    found = _read_header_at(path)
    return None if found is None else found[0]


def _read_header_at(path: Path):
    """``(header dataset, file offset of the Pixel Data element or None)``, or ``None`` for files that are not
    DICOM images. One parse of the header: the pixels are read later from the offset
    (:func:`core.io._dicom_pixels._pixel_dataset`)."""
    try:
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            offset = fh.tell()  # pydicom rewinds to the Pixel Data element's tag when it stops there
            head = fh.read(4)
        for tag in _USED_TAGS.intersection(ds.keys()):  # convert what the reader uses now: pydicom converts lazily
            ds[tag]  # (by tag: several times faster than ds.get(keyword))
        meta = getattr(ds, "file_meta", None)
        if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR_CLASS:
            return None
    except OSError as exc:
        raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types (NotImplementedError, struct.error ...)
        if path.suffix.lower() == ".dcm" or _has_dicom_magic(path):
            raise HeartsegError(f"not a readable DICOM file (damaged or truncated: {type(exc).__name__})",
                                path) from None
        return None
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        usable = ts is not None and ts.is_transfer_syntax and not ts.is_deflated \
            and head == (b"\xe0\x7f\x10\x00" if ts.is_little_endian else b"\x7f\xe0\x00\x10")
    except (AttributeError, ValueError):  # a private or unknown transfer syntax: read the whole file later
        usable = False
    return ds, (offset if usable else None)


def _has_dicom_magic(path: Path) -> bool:
    """The 128-byte preamble followed by ``DICM``: the file claims to be DICOM."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _check_header(path: Path, ds) -> None:
    """Convert every header value the reader uses, so a damaged one is reported naming its file."""
    try:
        str(ds.get("SeriesInstanceUID", "") or "")
        if "Rows" not in ds or "Columns" not in ds:
            raise HeartsegError("DICOM file has no image (no Rows/Columns, no pixel data)", path)
        int(ds.Rows), int(ds.Columns)
        int(ds.get("NumberOfFrames", 1) or 1)
        for key in ("RescaleSlope", "RescaleIntercept", "SpacingBetweenSlices", "SliceThickness"):
            value = ds.get(key)
            if value not in (None, ""):
                if not np.isfinite(float(value)):
                    raise HeartsegError(f"{key} is {value}; a finite number is expected", path)
        slope = ds.get("RescaleSlope")
        if slope not in (None, "") and float(slope) == 0:
            raise HeartsegError("RescaleSlope is 0: every pixel would have the same value", path)
        for key in ("BitsStored", "PixelRepresentation"):
            value = ds.get(key)
            if value not in (None, ""):
                int(value)
        for key in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
            value = ds.get(key)
            if value is not None:
                floats = [float(v) for v in (value if isinstance(value, (list, tuple)) or hasattr(value, "__iter__")
                                             and not isinstance(value, (str, bytes)) else [value])]
                if not all(np.isfinite(floats)):
                    raise HeartsegError(f"{key} holds a non-finite value ({', '.join(str(v) for v in floats)})",
                                        path)
                if key == "PixelSpacing" and any(v <= 0 for v in floats):
                    raise HeartsegError(f"PixelSpacing is {', '.join(str(v) for v in floats)}; pixel sizes must be "
                                        "positive", path)
        for key in ("PatientID", "SeriesDescription", "StudyInstanceUID", "Modality"):
            str(ds.get(key))
    except HeartsegError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise HeartsegError(f"damaged DICOM header ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:80] if str(exc) else 'bad value'})", path) from None


def _scan_headers(folder: Path) -> list[tuple[Path, object, Optional[int]]]:
    """``(path, header dataset, Pixel Data offset or None)`` for every DICOM file directly in ``folder``."""
    files = list_files(folder)
    _read_ahead(files)
    headers = [_read_header_at(p) for p in files]
    return [(p, *h) for p, h in zip(files, headers) if h is not None]


def _read_ahead(files: list[Path]) -> None:
    """Ask the kernel to read ``files`` into the page cache in the background (``posix_fadvise`` WILLNEED; a
    no-op where the call does not exist), so that the one-thread header pass and the decode pass do not wait on
    the disk file by file."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # the header pass reports an unreadable file, naming it
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def is_dicom_folder(folder: Path) -> bool:
    """True when at least one file in ``folder`` is DICOM (checks files until the first hit)."""
    try:
        for p in list_files(folder):
            try:
                if _read_header(p) is not None:
                    return True
            except HeartsegError:
                return True  # a .dcm file, even a damaged one, makes this a DICOM folder
    except HeartsegError:
        return False
    return False
