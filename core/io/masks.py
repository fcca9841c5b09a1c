"""Mask files: 0/255 8-bit PNG slices (the Kaggle format) and NIfTI volumes. Every write is atomic.

Round trips are exact: :func:`core.io.kaggle.read_mask_slice` of a :func:`write_mask_png` file and
``read_nifti_mask(write_mask_nifti(m))`` give the same 0/1 array back.

Label maps (:func:`binary_from_labels`): a mask volume whose non-zero values are not just 1 / 255 (TotalSegmentator,
nnU-Net and MONAI write one integer per structure) is read as heart where its only non-zero label is; with several
labels the caller must say which one (``label=N``), else a one-line refusal names the labels.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import cv2
import nibabel as nib
import numpy as np

from core.atomic import write_bytes_atomic, write_with_atomic
from core.errors import HeartsegError, LabelChoiceNeeded
from core.types import Volume, as_path


def _check_binary(mask: np.ndarray, ndim: int, what: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D, got shape {m.shape}")
    if m.dtype == bool:
        return m.astype(np.uint8)
    if m.size and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"{what} must hold 0/1 values, got {m.min()}..{m.max()}")
    return m.astype(np.uint8, copy=False)


def encode_mask_png(mask01: np.ndarray) -> bytes:
    """``(rows, cols)`` 0/1 (uint8 or bool) -> bytes of an 8-bit greyscale PNG with values 0/255."""
    m = _check_binary(mask01, 2, "mask slice")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(m * np.uint8(255)))
    if not ok:
        raise ValueError("cv2 could not encode the mask as PNG")
    return buf.tobytes()


def write_mask_png(path: str | Path, mask01: np.ndarray) -> None:
    """Write one mask slice ``(rows, cols)`` 0/1 as a 0/255 8-bit greyscale PNG at ``path`` (atomically)."""
    write_bytes_atomic(as_path(path), encode_mask_png(mask01))


def encode_grey_png(image8: np.ndarray) -> bytes:
    """``(rows, cols)`` uint8 -> bytes of an 8-bit greyscale PNG holding exactly those values."""
    img = np.asarray(image8)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"expected a (rows, cols) uint8 slice, got {img.shape} {img.dtype}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise ValueError("cv2 could not encode the slice as PNG")
    return buf.tobytes()


def _write_png_slices(folder: str | Path, n: int, names: Sequence[str], encode) -> list[Path]:
    """Write ``encode(i)`` (PNG bytes) for ``i < n`` as ``folder/<names[i]>.png``, each atomically."""
    folder = as_path(folder)
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} slices")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HeartsegError(f"cannot create folder: {exc.strerror or exc}", folder) from exc
    paths = []
    for name in names:
        stem = name[:-4] if name.lower().endswith(".png") else name
        if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
            raise HeartsegError(f"invalid slice name {name!r}", folder)
        paths.append(folder / f"{stem}.png")
    # PNG encoding (cv2, releases the GIL) and the atomic writes run in a small thread pool; every name is
    # validated above, before anything is written.
    with ThreadPoolExecutor(max_workers=min(4, max(1, len(paths)))) as pool:
        list(pool.map(lambda i: write_bytes_atomic(paths[i], encode(i)), range(len(paths))))
    return paths


def write_mask_pngs(folder: str | Path, masks: np.ndarray, names: Sequence[str]) -> list[Path]:
    """Write ``masks`` ``(n, rows, cols)`` 0/1 as ``folder/<names[i]>.png`` (0/255, atomically each).

    ``names``: one file stem per slice (``1-001`` ...; a ``.png`` suffix is accepted and not doubled). The folder is
    created if needed. Returns the written paths in slice order.
    """
    m = _check_binary(masks, 3, "masks")
    return _write_png_slices(folder, m.shape[0], names, lambda i: encode_mask_png(m[i]))


def write_image_pngs(folder: str | Path, images8: np.ndarray, names: Sequence[str]) -> list[Path]:
    """Write ``images8`` ``(n, rows, cols)`` uint8 (e.g. the Kaggle scale) as 8-bit greyscale PNGs
    ``folder/<names[i]>.png``, atomically each; names as in :func:`write_mask_pngs`."""
    images = np.asarray(images8)
    if images.ndim != 3:
        raise ValueError(f"expected (n, rows, cols) images, got shape {images.shape}")
    return _write_png_slices(folder, images.shape[0], names, lambda i: encode_grey_png(images[i]))


def mask_affine(volume: Volume) -> np.ndarray:
    """The 4x4 ``(col, row, slice) -> RAS`` affine a mask of ``volume`` is written with.

    ``volume.affine`` when known. Otherwise (PNG sources) a diagonal affine in the display convention: columns
    towards patient left (-x), rows towards posterior (-y), slices towards inferior (-z), scaled by
    ``volume.spacing`` when known, else 1 mm; origin 0.
    """
    if volume.affine is not None:
        return np.asarray(volume.affine, dtype=np.float64)
    d_slice, d_row, d_col = volume.spacing if volume.spacing is not None else (1.0, 1.0, 1.0)
    return np.diag([-float(d_col), -float(d_row), -float(d_slice), 1.0])


def to_source_grid(array: np.ndarray, volume: Volume) -> np.ndarray:
    """A ``(n_slices, rows, cols)`` array in the display convention -> the input file's own data array (``x, y, z``
    as the file stores them: :attr:`Volume.source_grid`); without a source grid, ``array.transpose(2, 1, 0)``."""
    a = np.asarray(array)
    if a.shape != volume.voxels.shape:
        raise ValueError(f"array shape {a.shape} differs from the volume's {volume.voxels.shape}")
    xyz = a.transpose(2, 1, 0)
    grid = volume.source_grid
    if grid is None:
        return np.ascontiguousarray(xyz)
    native = nib.orientations.apply_orientation(xyz, np.asarray(grid.to_native))
    if tuple(native.shape) != tuple(grid.shape):
        raise ValueError(f"source grid shape {grid.shape} does not match the volume ({native.shape})")
    return np.ascontiguousarray(native)


def _nifti_on_grid(data: np.ndarray, volume: Volume, dtype) -> "nib.Nifti1Image":
    """A NIfTI image of ``data`` (display convention) on ``volume``'s own grid: for NIfTI input the source header's
    geometry (sform and qform with their codes, zooms, units) unchanged; for DICOM the ITK (SimpleITK / GDCM) grid
    of the series with qform = sform (code 1, scanner); for PNG sources the display grid (:func:`mask_affine`)."""
    grid = volume.source_grid
    native = to_source_grid(data, volume).astype(dtype, copy=False)
    src = getattr(grid, "header", None)
    if isinstance(src, nib.Nifti1Header):
        hdr = nib.Nifti1Header()
        hdr.set_data_shape(native.shape)
        hdr.set_data_dtype(dtype)
        hdr.set_zooms(tuple(src.get_zooms()[:3]))
        hdr.set_xyzt_units(*src.get_xyzt_units())
        for key in ("dim_info", "slice_code", "slice_start", "slice_end", "slice_duration"):
            hdr[key] = src[key]
        qcode, scode = int(src["qform_code"]), int(src["sform_code"])
        hdr.set_qform(src.get_qform(), code=qcode)
        hdr.set_sform(src.get_sform(), code=scode)
        for key in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z", "srow_x",
                    "srow_y", "srow_z"):
            hdr[key] = src[key]  # bit-exact copies (set_qform re-derives the quaternion)
        hdr["pixdim"][0] = src["pixdim"][0]  # qfac: the sign of the third axis in the qform
        hdr["pixdim"][1:4] = src["pixdim"][1:4]
        img = nib.Nifti1Image(native, None, header=hdr)
        # nibabel may rewrite the header from img.affine on save: keep the codes and transforms exactly
        img.header["qform_code"], img.header["sform_code"] = qcode, scode
        return img
    affine = np.asarray(grid.affine, dtype=np.float64) if grid is not None else mask_affine(volume)
    img = nib.Nifti1Image(native, affine)
    img.header.set_data_dtype(dtype)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    return img


def write_mask_nifti(path: str | Path, mask: np.ndarray, volume: Volume) -> None:
    """Write ``mask`` ``(n_slices, rows, cols)`` 0/1 as a uint8 NIfTI on the input's own grid (atomically).

    NIfTI input: same data shape, array order and header geometry (sform / qform and their codes) as the input
    file, so ``mask_array[i, j, k]`` is voxel ``input_array[i, j, k]`` for numpy, nnU-Net, MONAI and every viewer.
    DICOM input: the grid SimpleITK / GDCM give the series (:func:`write_scan_nifti` writes the CT on it).
    PNG sources: ``mask.transpose(2, 1, 0)`` with :func:`mask_affine`. Reading it back with
    :func:`core.io.nifti.read_nifti_mask` gives ``mask`` again. ``path`` should end in ``.nii`` or ``.nii.gz``.
    """
    m = _check_binary(mask, 3, "mask")
    if m.shape != volume.voxels.shape:
        raise ValueError(f"mask shape {m.shape} differs from the volume's {volume.voxels.shape}")
    img = _nifti_on_grid(m, volume, np.uint8)
    write_with_atomic(as_path(path), lambda tmp: nib.save(img, str(tmp)))


def write_scan_nifti(path: str | Path, volume: Volume) -> None:
    """Write the scan's voxels (HU: int16 or float32, unchanged) as a NIfTI on its own grid (atomically): for a
    DICOM series the NIfTI SimpleITK writes for it (same array, origin, spacing and direction)."""
    voxels = np.asarray(volume.voxels)
    dtype = np.int16 if voxels.dtype == np.int16 else (np.uint8 if voxels.dtype == np.uint8 else np.float32)
    img = _nifti_on_grid(voxels, volume, dtype)
    write_with_atomic(as_path(path), lambda tmp: nib.save(img, str(tmp)))


# ------------------------------------------------------------------------------------------------ label maps
#: Non-zero values that mean "foreground" in a plain binary mask.
BINARY_VALUES = frozenset({1, 255})
#: How many labels a refusal lists before "...".
_LABELS_SHOWN = 12


def mask_labels(array: np.ndarray) -> list:
    """The distinct non-zero values of a mask volume, ascending (ints for integral data).

    Counted slice by slice along axis 0 (``np.bincount`` for small non-negative integers), so a 512^3 volume
    needs no whole-volume temporary."""
    a = np.asarray(array)
    if a.dtype == bool:
        return [1] if a.any() else []
    if a.ndim == 0:
        a = a.reshape(1)
    found: set = set()
    small_int = a.dtype.kind in "ub" and a.dtype.itemsize <= 2
    for part in (a if a.ndim > 1 else a[None]):
        if small_int:
            counts = np.bincount(np.asarray(part, dtype=np.int32).ravel())
            found.update(int(v) for v in np.flatnonzero(counts))
        else:
            found.update(np.unique(part).tolist())
    found.discard(0)
    out = sorted(found)
    if a.dtype.kind == "f" and all(float(v).is_integer() for v in out):
        out = [int(v) for v in out]
    return out


def label_counts(array: np.ndarray, labels: Sequence) -> dict:
    """Voxel count of each of ``labels`` in a label-map volume (slice by slice for small unsigned integers, as
    :func:`mask_labels`)."""
    a = np.asarray(array)
    if a.dtype.kind in "ub" and a.dtype.itemsize <= 2 and a.size:
        total = np.zeros(int(a.max()) + 1, np.int64)
        for part in (a if a.ndim > 1 else a[None]):
            total += np.bincount(part.ravel(), minlength=total.size)
        return {int(v): int(total[int(v)]) for v in labels}
    values, counts = np.unique(a, return_counts=True)
    found = dict(zip(values.tolist(), counts.tolist()))
    return {v: int(found.get(v, 0)) for v in labels}


def describe_labels(labels: Sequence) -> str:
    """``1, 3, 7`` (at most 12 shown)."""
    shown = ", ".join(str(v) for v in labels[:_LABELS_SHOWN])
    return shown + (f", ... ({len(labels)} labels)" if len(labels) > _LABELS_SHOWN else "")


def binary_from_labels(array: np.ndarray, source: str | Path | None, label: Optional[int] = None) -> np.ndarray:
    """A mask or label-map volume -> uint8 0/1 heart mask of the same shape.

    * ``label=N``: voxels equal to ``N`` are heart (``N`` must occur in the mask, else a refusal naming the labels
      present).
    * no ``label``: non-zero values within {1, 255} are a plain binary mask (``> 0``); exactly one other non-zero
      value (heart = 2, heart = 51 ...) is that label; a 0/255 mask with a few in-between grey levels (resampled
      edges, values below 255 besides 255 itself) is thresholded at ``> 127``; several labels are refused with one
      line naming them (pass ``label``).
    * non-integral floats (probability maps, linearly resampled masks) are thresholded at ``> 0.5``.

    Negative values, NaN and a non-positive ``label`` are refused. Errors are :class:`HeartsegError` naming
    ``source`` (the mask file).
    """
    a = np.asarray(array)
    if a.dtype == bool:
        if label is not None and int(label) != 1:
            raise HeartsegError(f"label {label} is not in the mask (it is a 0/1 mask)", source)
        return a.astype(np.uint8)
    if a.dtype.kind not in "uifb":
        raise HeartsegError(f"mask has {a.dtype} values; a number per voxel is expected", source)
    if label is not None and (int(label) != label or int(label) <= 0):
        raise HeartsegError(f"label must be a positive whole number, got {label}", source)
    if a.dtype.kind == "f":
        if a.size and not np.isfinite(a).all():
            raise HeartsegError("mask holds NaN or infinite values", source)
        if a.size and not np.array_equal(a, np.round(a)):
            if label is not None:
                raise HeartsegError(f"label {label} asked for, but the mask holds fractional values (a probability "
                                    "map?), not labels", source)
            return (a > 0.5).astype(np.uint8)
    if a.size and a.min() < 0:
        raise HeartsegError(f"mask holds negative values (down to {a.min()}); 0 is background, labels are "
                            "positive", source)
    labels = mask_labels(a)
    if label is not None:
        if int(label) not in labels:
            raise HeartsegError(f"label {int(label)} is not in the mask (labels present: "
                                f"{describe_labels(labels) or 'none, the mask is empty'})", source)
        return (a == int(label)).astype(np.uint8)
    if set(labels) <= BINARY_VALUES:
        return (a > 0).astype(np.uint8)
    if len(labels) == 1:
        return (a == labels[0]).astype(np.uint8)
    if labels[-1] == 255 and 1 not in labels:  # a 0/255 mask with anti-aliased / resampled edges
        return (a > 127).astype(np.uint8)
    raise LabelChoiceNeeded(f"mask is a label map with {len(labels)} labels ({describe_labels(labels)}); say which "
                            "one is the heart (--label N)", source, label_counts(a, labels))
