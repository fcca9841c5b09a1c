"""NIfTI CT (``.nii`` / ``.nii.gz``) and NIfTI masks, reoriented to the display convention.

The image is reoriented with nibabel so its data axes ``(x, y, z)`` point to ``('L', 'P', 'I')``; then
``voxels = data.transpose(2, 1, 0)`` is ``(slice, row, col)`` with slice 0 most superior, rows anterior ->
posterior, columns patient right -> left. The reoriented affine maps ``(col, row, slice)`` -> RAS mm and becomes
``Volume.affine``. Header shape is checked against the size limits before any data is read.

The file's own grid (data shape, array order, affine, and a copy of its header with the sform / qform and their
codes) is kept as ``Volume.source_grid`` (:class:`core.io.common.SourceGrid`), so
:func:`core.io.masks.write_mask_nifti` writes masks back on exactly that grid: same shape, same array order, same
header geometry. ``metadata["qform_sform_disagree"]`` is set when both transforms are coded but differ (nibabel
and heartseg use the sform; ITK readers may use the qform).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np

from core.errors import HeartsegError
from core.io.common import SourceGrid, check_memory, check_slice_size, check_total_voxels, fill_nonfinite
from core.io.masks import binary_from_labels
from core.types import CancelToken, Volume, check_cancel

DISPLAY_AXCODES = ("L", "P", "I")


def is_nifti_path(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _load(path: Path):
    try:
        img = nib.load(str(path))
    except FileNotFoundError as exc:
        raise HeartsegError("file not found", path) from exc
    except OSError as exc:
        raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc
    except Exception as exc:  # noqa: BLE001 - nibabel raises ImageFileError, HeaderDataError, ValueError ...
        raise HeartsegError(f"not a readable NIfTI file ({type(exc).__name__})", path) from exc
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
        shape = shape[:3]
    if len(shape) == 2:
        img = img.slicer[:, :, None]
        shape = shape + (1,)
    if len(shape) != 3:
        raise HeartsegError(f"NIfTI image has shape {shape}; a 3-D CT volume is expected (4-D series are not "
                            "supported)", path)
    x, y, z = shape
    if min(shape) <= 0:
        raise HeartsegError(f"NIfTI image has no voxels (shape {' x '.join(str(v) for v in shape)})", path)
    try:
        stored = np.dtype(img.get_data_dtype())
    except Exception as exc:  # noqa: BLE001 - an unknown datatype code
        raise HeartsegError(f"NIfTI data type is not supported ({exc})", path) from exc
    if stored.fields is not None or stored.kind not in "uif":
        raise HeartsegError(f"NIfTI holds {'RGB colour' if stored.fields else stored.name} voxels; a CT volume "
                            "has one number (grey value) per voxel", path)
    check_slice_size(y, x, path)
    check_total_voxels(z, y, x, path)
    _check_memory(img, shape, path)
    return img


def _scale(img) -> tuple[float, float]:
    slope = getattr(img.dataobj, "slope", 1.0)
    inter = getattr(img.dataobj, "inter", 0.0)
    slope = 1.0 if slope is None or not np.isfinite(slope) else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope, inter


def _check_memory(img, shape: tuple, path: Path) -> None:
    """Refuse, from the header alone, data larger than the limits or than this computer can spare.

    Reading holds the stored array (declared size) plus, for integral data, the int16 result (2 bytes a voxel);
    for scaled or float data nibabel's float64 copy and the float32 result (12 bytes a voxel). nibabel then reads
    exactly the declared bytes from the (gzip) stream, so a stream that inflates beyond them is never inflated.
    """
    try:
        dtype = np.dtype(img.get_data_dtype())
    except Exception as exc:  # noqa: BLE001 - an unknown datatype code
        raise HeartsegError(f"NIfTI data type is not supported ({exc})", path) from exc
    n = int(np.prod(shape, dtype=np.int64))
    slope, inter = _scale(img)
    integral = np.issubdtype(dtype, np.integer) and slope == round(slope) and inter == round(inter)
    data = n * dtype.itemsize
    what = f"{' x '.join(str(s) for s in shape)} {dtype.name} voxels"
    check_memory(data, data + n * (2 if integral else 12), what, path)


def _reorientation(img, path: Path):
    """The orientation transform to the display axes and the reoriented affine, without reading any data."""
    try:
        if not np.isfinite(img.affine).all() or abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
            raise ValueError("the voxel-to-world matrix is degenerate or not finite")
        current = nib.orientations.io_orientation(img.affine)
        target = nib.orientations.axcodes2ornt(DISPLAY_AXCODES)
        transform = nib.orientations.ornt_transform(current, target)
        affine = img.affine @ nib.orientations.inv_ornt_aff(transform, img.shape[:3])
    except Exception as exc:  # noqa: BLE001
        raise HeartsegError(f"cannot reorient NIfTI image ({str(exc).splitlines()[0] if str(exc) else exc!r})",
                            path) from exc
    return transform, np.asarray(affine, dtype=np.float64)


def source_grid(img, transform) -> SourceGrid:
    """The file's own grid: the inverse of ``transform`` (display -> file order), shape, affine, header copy."""
    target = nib.orientations.axcodes2ornt(DISPLAY_AXCODES)
    current = nib.orientations.io_orientation(img.affine)
    return SourceGrid(to_native=nib.orientations.ornt_transform(target, current),
                      shape=tuple(int(v) for v in img.shape[:3]), affine=np.asarray(img.affine, dtype=np.float64),
                      header=img.header.copy(), convention="nifti")


def qform_sform_disagree(img) -> bool:
    """True when both the qform and the sform are coded (code > 0) and map voxels more than 0.01 mm apart."""
    hdr = img.header
    if not isinstance(hdr, nib.Nifti1Header) or int(hdr["qform_code"]) <= 0 or int(hdr["sform_code"]) <= 0:
        return False
    try:
        q, s_ = hdr.get_qform(), hdr.get_sform()
    except Exception:  # noqa: BLE001
        return False
    corners = np.array([[i, j, k, 1.0] for i in (0, img.shape[0] - 1) for j in (0, img.shape[1] - 1)
                        for k in (0, img.shape[2] - 1)]).T
    return bool(np.abs((q - s_) @ corners).max() > 0.01)


def _display_view(img, path: Path, transform, *, scaled: bool) -> np.ndarray:
    """The data as a ``(slice, row, col)`` view in the display convention (flips and transposes are views).

    ``scaled=False`` reads the stored values as they are (no float64 copy of the whole volume: for a 512^3 int16
    scan that copy alone would be 1 GiB); ``scaled=True`` applies the header's slope / intercept (nibabel).
    """
    try:
        raw = img.dataobj.get_unscaled() if not scaled and hasattr(img.dataobj, "get_unscaled") \
            else np.asanyarray(img.dataobj)
        raw = np.asarray(raw)
    except Exception as exc:  # noqa: BLE001 - truncated gzip (EOFError), zlib errors ...
        raise HeartsegError(f"damaged or truncated NIfTI data ({type(exc).__name__})", path) from exc
    return nib.orientations.apply_orientation(raw, transform).transpose(2, 1, 0)


def _hu_voxels(img, path: Path, transform) -> np.ndarray:
    """Reoriented data as ``(slice, row, col)`` int16 when the stored values are integral and fit, else float32.

    Integral data is scaled slice by slice in int32, so memory stays at the stored array plus the int16 result.
    """
    raw_dtype = img.get_data_dtype()
    slope, inter = _scale(img)
    if np.issubdtype(raw_dtype, np.integer) and slope == round(slope) and inter == round(inter):
        view = _display_view(img, path, transform, scaled=False)
        lo, hi = (view.min(), view.max()) if view.size else (0, 0)
        ends = sorted((int(lo) * int(slope) + int(inter), int(hi) * int(slope) + int(inter)))
        if -32768 <= ends[0] and ends[1] <= 32767:
            out = np.empty(view.shape, dtype=np.int16)
            for k in range(view.shape[0]):
                out[k] = view[k].astype(np.int32) * int(slope) + int(inter)
            return out
    view = _display_view(img, path, transform, scaled=True)
    return np.ascontiguousarray(view, dtype=np.float32)


def read_nifti(path: Path, mask_path: Optional[Path] = None, *,
               cancel: Optional[CancelToken] = None, label: Optional[int] = None) -> Volume:
    """A NIfTI CT -> :class:`Volume` (``kind="nifti"``, ``intensity="hu"``).

    ``voxels``: ``(n_slices, rows, cols)`` int16 (or float32 for scaled / float data) Hounsfield units in the
    display convention; ``spacing``: ``(slice, row, col)`` mm from the zooms; ``affine``: reoriented affine,
    ``(col, row, slice) -> RAS`` mm. ``mask_path``: optional NIfTI mask on the same grid (same shape and affine
    within 1e-3 mm after reorientation, else :class:`HeartsegError`), stored as ``mask`` 0/1 uint8 with every
    slice ``mask_present``.
    """
    img = _load(path)
    transform, affine = _reorientation(img, path)
    check_cancel(cancel)
    voxels = _hu_voxels(img, path, transform)
    if np.issubdtype(voxels.dtype, np.floating) and not voxels.flags.writeable:
        voxels = voxels.copy()
    filled, fill_value = fill_nonfinite(voxels, path)  # NaN / inf voxels -> the scan's lowest value
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))  # (x, y, z) = (col, row, slice) voxel sizes in mm
    vol = Volume(voxels=voxels, spacing=(float(zooms[2]), float(zooms[1]), float(zooms[0])),
                 affine=affine, source_files=[path] * voxels.shape[0],
                 intensity="hu", kind="nifti", name=nifti_stem(path), source_grid=source_grid(img, transform))
    if qform_sform_disagree(img):
        vol.metadata["qform_sform_disagree"] = True
    if filled:
        vol.metadata["nonfinite_voxels"] = filled
        vol.metadata["nonfinite_fill"] = fill_value
    if mask_path is not None:
        check_cancel(cancel)
        vol.mask = read_nifti_mask(mask_path, vol, label=label)
        vol.mask_present = np.ones(vol.n_slices, dtype=bool)
    return vol


def read_nifti_mask(mask_path: Path, volume: Volume, label: Optional[int] = None) -> np.ndarray:
    """A NIfTI mask on ``volume``'s grid -> ``(n_slices, rows, cols)`` uint8 0/1 in the display convention.

    The mask is reoriented like the image; its shape must equal ``volume.voxels.shape`` and, when ``volume`` has
    an affine, its affine must match within 1e-3 mm. Values go through :func:`core.io.masks.binary_from_labels`:
    0/1 and 0/255 masks, a label map with one label, or ``label=N`` of a multi-label map (several labels without
    ``label`` are refused naming them).
    """
    img = _load(mask_path)
    transform, affine = _reorientation(img, mask_path)
    data = _display_view(img, mask_path, transform, scaled=True)
    if data.shape != volume.voxels.shape:
        raise HeartsegError(f"mask has shape {data.shape} (slice, row, col) but the scan has "
                            f"{volume.voxels.shape}; it must be on the same grid", mask_path)
    if volume.affine is not None and not np.allclose(affine, volume.affine, atol=1e-3):
        raise HeartsegError("mask is not on the scan's grid (its affine differs from the scan's)", mask_path)
    return np.ascontiguousarray(binary_from_labels(data, mask_path, label))


def nifti_slice_count(path: Path) -> int:
    """How many axial (display) slices the NIfTI at ``path`` has, from its header alone (0 if unreadable)."""
    try:
        img = nib.load(str(path))
        axis = int(nib.orientations.io_orientation(img.affine)[:, 0].tolist().index(2))
        return int(img.shape[axis])
    except Exception:  # noqa: BLE001 - an index entry, not a read: opening the case reports the problem
        return 0


def nifti_stem(path: Path) -> str:
    """The file name without ``.nii.gz`` / ``.nii`` (any case); another name loses its last suffix."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
