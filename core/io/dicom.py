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
* ``source_grid`` (:class:`core.io.common.SourceGrid`, ``convention="itk"``): the grid SimpleITK / GDCM build for
  the series (rows and columns as stored, slices ascending along the normal), so masks and the CT can be written
  as the NIfTI SimpleITK would write (:func:`core.io.masks.write_scan_nifti`).
* Geometry checks: a gantry-tilted series (slices offset sideways, a sheared grid) is refused with one line rather
  than resampled (resampling would change HU values; a sheared NIfTI is read 66 mm off by ITK); non-finite or zero
  RescaleSlope / PixelSpacing / positions are refused naming the file. ``metadata`` flags what the CLI and the
  window warn about: ``irregular_spacing`` (a missing slice ...), ``merged_series`` (files that disagree on
  SeriesNumber, FrameOfReferenceUID ... or a gap of more than 3 slice steps: two series in one folder) and
  ``orientation`` (``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"oblique"``; sagittal and coronal series are
  resliced to axial for the model and the mask put back, :mod:`core.inference.reslice`; an oblique one has
  ``oblique_tilt_deg``, how far the model's nearest-axial slices are tilted from true axial).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np
from pydicom.pixels import get_decoder

from core.errors import HeartsegError, SeriesChoiceNeeded
from core.io._dicom_headers import (
    _SERIES_KEYS,
    _check_header,
    _scan_headers,
    is_dicom_folder,  # noqa: F401 - re-exported: callers import it from here
)
from core.io._dicom_pixels import _decode_all
from core.io.common import SourceGrid, check_slice_size, check_total_voxels, fill_nonfinite
from core.types import CancelToken, PreviewFn, ProgressFn, SlicePreview, Volume, check_cancel

# pydicom warns (on stderr) about damaged files it still parses; heartseg reports its own one-line errors instead
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?")

#: Threads for pixel decoding (numpy and the JPEG-2000 decoder release the GIL). The header pass runs in one
#: thread: pydicom's parser holds the GIL, and 2 or 4 threads parsed 300 headers 1.5-2x slower than one on two
#: cores, warm or cold page cache; the kernel reads the files ahead instead
#: (:func:`core.io._dicom_headers._read_ahead`). See docs/BENCHMARKS.md, "Opening a DICOM series".
DECODE_WORKERS = max(1, min(8, os.cpu_count() or 1))
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: A series whose slice step leaves the slice normal by more than this (degrees) is gantry-tilted.
MAX_TILT_DEG = 0.5


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


def _series_list(groups: dict) -> list[tuple[str, str, int]]:
    """``(SeriesInstanceUID, "SeriesNumber SeriesDescription", file count)`` of each series, in the order their
    first file is met ("" for a missing UID)."""
    out = []
    for uid, members in groups.items():
        ds = members[0][1]
        label = " ".join(str(v) for v in (ds.get("SeriesNumber", ""), ds.get("SeriesDescription", "")) if v != "")
        out.append((uid, label.strip(), len(members)))
    return out


def read_dicom_series(folder: Path, *, progress: Optional[ProgressFn] = None,
                      cancel: Optional[CancelToken] = None, series_uid: Optional[str] = None,
                      workers: Optional[int] = None, preview: Optional[PreviewFn] = None) -> Volume:
    """Read the one DICOM series in ``folder`` (or, with ``series_uid``, that one of several; see
    several series and no ``series_uid``: :class:`~core.errors.SeriesChoiceNeeded`, which lists them).

    Returns a :class:`Volume`: ``voxels`` ``(n_slices, rows, cols)`` int16 or float32 HU, slice 0 most superior;
    ``spacing`` ``(slice, row, col)`` mm; ``affine`` ``(col, row, slice) -> RAS`` mm; ``kind="dicom"``,
    ``intensity="hu"``; ``metadata`` with SeriesInstanceUID, PatientID, SeriesDescription where present.
    ``workers``: threads decoding pixel data (default :data:`DECODE_WORKERS`; 1 decodes in this thread).
    ``preview``: called once, from this thread, with the middle slice (the one the window shows first) as a
    :class:`~core.types.SlicePreview`, as soon as the headers are checked and that one slice is decoded, before the
    others are.
    """
    scanned = _scan_headers(folder)
    pixel_offsets = {p: off for p, _, off in scanned}
    items = [(p, ds) for p, ds, _ in scanned]
    if not items:
        raise HeartsegError("no DICOM files in this folder", folder)
    for path, ds in items:
        _check_header(path, ds)
    groups = _series_groups(items)
    if series_uid is not None:
        if series_uid not in groups:
            raise HeartsegError(f"holds no DICOM series {series_uid!r}", folder)
        items = groups[series_uid]
        groups = {series_uid: items}
    if len(groups) > 1:
        desc = "; ".join(f"{uid or '(no SeriesInstanceUID)'}: {len(v)} files" for uid, v in groups.items())
        raise SeriesChoiceNeeded(f"holds {len(groups)} DICOM series ({desc}); put each series in its own folder",
                                 folder, _series_list(groups))
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
    if abs(np.linalg.norm(row_dir) - 1) > 0.01 or abs(np.linalg.norm(col_dir) - 1) > 0.01 \
            or abs(float(row_dir @ col_dir)) > 0.01:
        raise HeartsegError("ImageOrientationPatient is not two perpendicular unit vectors", first_path)
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
    metadata["orientation"] = slice_orientation(normal)
    if metadata["orientation"] == "oblique":  # the grid axis nearest to superior-inferior: the model's slice normal
        metadata["oblique_tilt_deg"] = float(np.degrees(np.arccos(min(1.0, max(abs(row_dir[2]), abs(col_dir[2]),
                                                                                abs(normal[2]))))))
    if n > 1:
        slice_step = float(np.median(steps))
        if steps.max() - steps.min() > 0.01 * slice_step + 1e-3:
            metadata["irregular_spacing"] = True
        step_vec = (positions[-1] - positions[0]) / (n - 1)
        offsets = positions - positions[0] - np.outer(proj - proj[0], normal)  # sideways drift of each slice
        drift = float(np.linalg.norm(offsets, axis=1).max())
        extent = float(abs(proj[-1] - proj[0]))
        if extent > 0 and np.degrees(np.arctan2(drift, extent)) > MAX_TILT_DEG:
            raise HeartsegError(f"gantry-tilted series (slices shifted sideways by {drift:.1f} mm over "
                                f"{extent:.1f} mm, {np.degrees(np.arctan2(drift, extent)):.1f} degrees): heartseg "
                                "does not resample tilted series; reconstruct it without tilt or resample it to an "
                                "orthogonal grid first", folder)
        merged = _merged_series(items, steps, slice_step)
        if merged:
            metadata["merged_series"] = merged
    else:
        slice_step = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        step_vec = -normal * slice_step * superior_sign
    pixel_spacing = first.get("PixelSpacing")
    if pixel_spacing is not None and len(pixel_spacing) == 2:
        d_row, d_col = float(pixel_spacing[0]), float(pixel_spacing[1])
    else:
        d_row = d_col = 1.0
        metadata["pixel_spacing_missing"] = True

    axial_ish = abs(normal[2]) > max(abs(normal[0]), abs(normal[1]))
    flip_cols = axial_ish and np.argmax(np.abs(row_dir)) == 0 and row_dir[0] < 0
    flip_rows = axial_ish and np.argmax(np.abs(col_dir)) == 1 and col_dir[1] < 0

    def show_first(image: np.ndarray) -> None:
        image = image[::-1 if flip_rows else 1, ::-1 if flip_cols else 1]
        if image.dtype.kind == "f" and not np.isfinite(image).all():  # as fill_nonfinite will (the lowest value)
            finite = image[np.isfinite(image)]
            image = np.where(np.isfinite(image), image, finite.min() if finite.size else 0.0).astype(image.dtype)
        preview(SlicePreview(folder.name, n // 2, n, np.ascontiguousarray(image), "hu", d_col / d_row))

    voxels = _decode_all(items, pixel_offsets, rows, cols, progress=progress, cancel=cancel,
                         workers=DECODE_WORKERS if workers is None else workers,
                         first=n // 2 if preview is not None else None, on_first=show_first)
    filled, fill_value = fill_nonfinite(voxels, folder)  # float pixel data: NaN / inf -> the lowest value
    if filled:
        metadata["nonfinite_voxels"], metadata["nonfinite_fill"] = filled, fill_value

    origin = positions[0].copy()
    flipped = []
    if flip_cols:  # axial-ish: bring to display convention
        voxels = voxels[:, :, ::-1]
        origin = origin + (cols - 1) * d_col * row_dir
        row_dir = -row_dir
        flipped.append("columns")
    if flip_rows:
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
    affine = LPS_TO_RAS @ lps
    # the ITK grid: undo the in-plane flips, slices ascending along the normal (display order is superior first)
    to_native = np.array([[0, -1.0 if "columns" in flipped else 1.0], [1, -1.0 if "rows" in flipped else 1.0],
                          [2, -1.0 if superior_sign > 0 and n > 1 else 1.0]])
    xyz_shape = (cols, rows, n)
    native_affine = affine @ nib.orientations.inv_ornt_aff(to_native, xyz_shape)
    grid = SourceGrid(to_native=to_native, shape=tuple(int(v) for v in nib.orientations.apply_orientation(
        np.empty(xyz_shape, dtype=np.uint8), to_native).shape), affine=native_affine, convention="itk")
    return Volume(voxels=np.ascontiguousarray(voxels), spacing=(slice_step, d_row, d_col), affine=affine,
                  source_files=[p for p, _ in items], intensity="hu", kind="dicom", name=folder.name,
                  metadata=metadata, source_grid=grid)


def slice_orientation(normal: np.ndarray) -> str:
    """``"axial"``, ``"coronal"`` or ``"sagittal"`` when the slice normal is within 30 degrees of z, y or x
    (LPS), else ``"oblique"``."""
    n = np.abs(np.asarray(normal, dtype=np.float64))
    n = n / (np.linalg.norm(n) or 1.0)
    axis = int(np.argmax(n))
    if n[axis] < np.cos(np.radians(30)):
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _merged_series(items, steps: np.ndarray, slice_step: float) -> str:
    """Why the files look like two series merged (``""`` when they do not): header values that differ between
    files, or a gap of more than 3 slice steps."""
    differing = [key for key in _SERIES_KEYS
                 if len({str(ds.get(key, "") or "") for _, ds in items}) > 1]
    if differing:
        return f"files differ in {', '.join(differing)}"
    if steps.size and slice_step > 0 and steps.max() > 3 * slice_step:
        k = int(np.argmax(steps))
        return f"a gap of {steps.max():.1f} mm between {items[k][0].name} and {items[k + 1][0].name}"
    return ""
