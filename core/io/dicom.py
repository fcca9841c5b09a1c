"""A folder holding one DICOM CT series -> :class:`Volume` in Hounsfield units.

* Header pass with ``dcmread(stop_before_pixels=True)``: files that are not DICOM (``SOURCE.md``, thumbnails ...)
  and DICOMDIR index files are ignored; several series (SeriesInstanceUID) in one folder are refused, naming them.
* Slices are ordered by their position along the slice normal (``cross(row cosine, column cosine) .
  ImagePositionPatient``), never by file name; slice 0 is the most superior.
* Axial series whose rows/columns run opposite to the display convention (rows anterior -> posterior, columns
  patient right -> left, i.e. DICOM row cosine +x and column cosine +y in LPS) are flipped in-plane so every
  volume looks the same on screen; ``metadata["flipped"]`` says which axes were flipped.
* Pixels go through the modality LUT (RescaleSlope / RescaleIntercept) to HU: int16 when slope and intercept are
  integers and the stored range fits, else float32.
* ``spacing = (slice step from positions, PixelSpacing row, PixelSpacing col)`` mm; ``affine`` maps voxel
  ``(col, row, slice, 1)`` to RAS mm (DICOM patient coordinates are LPS: x and y change sign).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, get_decoder

from core.errors import HeartsegError
from core.io.common import check_slice_size, check_total_voxels, list_files
from core.types import CancelToken, Progress, ProgressFn, Volume, check_cancel, report

# pydicom warns (on stderr) about damaged files it still parses; heartseg reports its own one-line errors instead
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?")

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
BATCH = 16
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _read_header(path: Path):
    """Header dataset, or ``None`` for files that are not DICOM images (ignored)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for _ in ds.iterall():  # convert every raw element now: pydicom parses lazily and raises later
            pass
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
    return ds


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
                float(value)
        for key in ("BitsStored", "PixelRepresentation"):
            value = ds.get(key)
            if value not in (None, ""):
                int(value)
        for key in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
            value = ds.get(key)
            if value is not None:
                [float(v) for v in (value if isinstance(value, (list, tuple)) or hasattr(value, "__iter__")
                                    and not isinstance(value, (str, bytes)) else [value])]
        for key in ("PatientID", "SeriesDescription", "StudyInstanceUID", "Modality"):
            str(ds.get(key))
    except HeartsegError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise HeartsegError(f"damaged DICOM header ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:80] if str(exc) else 'bad value'})", path) from None


def find_dicom_headers(folder: Path) -> list[tuple[Path, object]]:
    """``(path, header dataset)`` for every DICOM file directly in ``folder`` (natural name order)."""
    files = list_files(folder)
    with ThreadPoolExecutor(max_workers=4) as pool:
        headers = list(pool.map(_read_header, files))
    return [(p, h) for p, h in zip(files, headers) if h is not None]


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


def _series_groups(items):
    groups: dict[str, list] = {}
    for path, ds in items:
        groups.setdefault(str(ds.get("SeriesInstanceUID", "") or ""), []).append((path, ds))
    return groups


def _floats(ds, keyword: str, n: int, path: Path) -> np.ndarray:
    value = ds.get(keyword)
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.size != n:
        raise HeartsegError(f"no usable {keyword}: the slice's position in the scan is unknown", path)
    return arr


def _check_decodable(ds, path: Path) -> None:
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None:
        return
    try:
        ok = get_decoder(ts).is_available
    except (NotImplementedError, ValueError, KeyError):
        ok = False
    if not ok:
        raise HeartsegError(f"compressed with {getattr(ts, 'name', ts)} ({ts}) and no decoder for it is "
                            "installed (install pylibjpeg-libjpeg / pylibjpeg-openjpeg / gdcm)", path)


def read_dicom_series(folder: Path, *, progress: Optional[ProgressFn] = None,
                      cancel: Optional[CancelToken] = None) -> Volume:
    """Read the one DICOM series in ``folder``.

    Returns a :class:`Volume`: ``voxels`` ``(n_slices, rows, cols)`` int16 or float32 HU, slice 0 most superior;
    ``spacing`` ``(slice, row, col)`` mm; ``affine`` ``(col, row, slice) -> RAS`` mm; ``kind="dicom"``,
    ``intensity="hu"``; ``metadata`` with SeriesInstanceUID, PatientID, SeriesDescription where present.
    """
    items = find_dicom_headers(folder)
    if not items:
        raise HeartsegError("no DICOM files in this folder", folder)
    for path, ds in items:
        _check_header(path, ds)
    groups = _series_groups(items)
    if len(groups) > 1:
        desc = "; ".join(f"{uid or '(no SeriesInstanceUID)'}: {len(v)} files" for uid, v in groups.items())
        raise HeartsegError(f"holds {len(groups)} DICOM series ({desc}); put each series in its own folder",
                            folder)
    check_cancel(cancel)
    first_path, first = items[0]
    for path, ds in items:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise HeartsegError("multi-frame DICOM files are not supported (one slice per file expected)", path)
        _check_decodable(ds, path)
    rows, cols = int(first.Rows), int(first.Columns)
    check_slice_size(rows, cols, first_path)
    for path, ds in items:
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise HeartsegError(f"slice is {ds.Columns} x {ds.Rows} pixels but {first_path.name} is "
                                f"{cols} x {rows}; one series must have one size", path)
    n = len(items)
    check_total_voxels(n, rows, cols, folder)

    iop = _floats(first, "ImageOrientationPatient", 6, first_path)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = []
    for path, ds in items:
        if not np.allclose(_floats(ds, "ImageOrientationPatient", 6, path), iop, atol=1e-3):
            raise HeartsegError(f"slice orientation differs from {first_path.name}; not one stack of slices", path)
        positions.append(_floats(ds, "ImagePositionPatient", 3, path))
    positions = np.array(positions)
    proj = positions @ normal
    superior_sign = np.sign(normal[2]) if abs(normal[2]) > 1e-3 else 1.0
    order = np.argsort(-proj * superior_sign, kind="stable")
    items = [items[i] for i in order]
    positions, proj = positions[order], proj[order]
    steps = np.abs(np.diff(proj))
    if n > 1 and steps.min() < 1e-4:
        k = int(np.argmin(steps))
        raise HeartsegError(f"two slices at the same position ({items[k][0].name} and {items[k + 1][0].name}); "
                            "the folder may hold two acquisitions", items[k + 1][0])

    metadata = {k: str(first.get(k)) for k in ("SeriesInstanceUID", "PatientID", "SeriesDescription",
                                                 "StudyInstanceUID", "Modality") if first.get(k)}
    if n > 1:
        slice_step = float(np.median(steps))
        if steps.max() - steps.min() > 0.01 * slice_step + 1e-3:
            metadata["irregular_spacing"] = True
        step_vec = (positions[-1] - positions[0]) / (n - 1)
    else:
        slice_step = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        step_vec = -normal * slice_step * superior_sign
    pixel_spacing = first.get("PixelSpacing")
    if pixel_spacing is not None and len(pixel_spacing) == 2:
        d_row, d_col = float(pixel_spacing[0]), float(pixel_spacing[1])
    else:
        d_row = d_col = 1.0
        metadata["pixel_spacing_missing"] = True

    voxels = _decode_all(items, rows, cols, progress=progress, cancel=cancel)

    origin = positions[0].copy()
    flipped = []
    if abs(normal[2]) > max(abs(normal[0]), abs(normal[1])):  # axial-ish: bring to display convention
        if np.argmax(np.abs(row_dir)) == 0 and row_dir[0] < 0:
            voxels = voxels[:, :, ::-1]
            origin = origin + (cols - 1) * d_col * row_dir
            row_dir = -row_dir
            flipped.append("columns")
        if np.argmax(np.abs(col_dir)) == 1 and col_dir[1] < 0:
            voxels = voxels[:, ::-1, :]
            origin = origin + (rows - 1) * d_row * col_dir
            col_dir = -col_dir
            flipped.append("rows")
    if flipped:
        metadata["flipped"] = flipped
    lps = np.eye(4)
    lps[:3, 0] = row_dir * d_col
    lps[:3, 1] = col_dir * d_row
    lps[:3, 2] = step_vec
    lps[:3, 3] = origin
    return Volume(voxels=np.ascontiguousarray(voxels), spacing=(slice_step, d_row, d_col), affine=LPS_TO_RAS @ lps,
                  source_files=[p for p, _ in items], intensity="hu", kind="dicom", name=folder.name,
                  metadata=metadata)


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


def _decode_all(items, rows: int, cols: int, *, progress, cancel) -> np.ndarray:
    n = len(items)
    dtype = _hu_dtype(items)
    out = np.empty((n, rows, cols), dtype=dtype)

    def decode(i: int) -> None:
        path = items[i][0]
        try:
            ds = pydicom.dcmread(path)
        except OSError as exc:
            raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types for damaged files
            raise HeartsegError(f"damaged DICOM file ({type(exc).__name__})", path) from exc
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise HeartsegError("DICOM file has no pixel data", path)
        try:
            raw = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - decoder errors come in many types
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown transfer syntax")
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HeartsegError(f"cannot decode pixels ({getattr(ts, 'name', ts)}): {msg}", path) from exc
        if raw.shape != (rows, cols):
            raise HeartsegError(f"pixel data has shape {raw.shape}, header says {rows} x {cols}", path)
        try:
            hu = apply_modality_lut(raw, ds)
        except Exception as exc:  # noqa: BLE001 - a damaged LUT / rescale
            raise HeartsegError(f"cannot apply the modality LUT ({type(exc).__name__})", path) from exc
        with np.errstate(all="ignore"):
            out[i] = np.clip(np.rint(hu), -32768, 32767) if dtype == np.int16 else hu

    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, n, BATCH):
            check_cancel(cancel)
            list(pool.map(decode, range(start, min(n, start + BATCH))))
            done = min(n, start + BATCH)
            report(progress, Progress("read", done, n, f"decoded {done}/{n} DICOM slices"))
    return out
