"""Mask files: 0/255 8-bit PNG slices (the Kaggle format) and NIfTI volumes. Every write is atomic.

Round trips are exact: ``read_mask_png(write_mask_png(m))`` and ``read_nifti_mask(write_mask_nifti(m))`` give the
same 0/1 array back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import cv2
import nibabel as nib
import numpy as np

from core.atomic import write_bytes_atomic, write_with_atomic
from core.errors import HeartsegError
from core.io.kaggle import read_mask_slice
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


def read_mask_png(path: str | Path, expected_shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Read one mask PNG -> ``(rows, cols)`` uint8 0/1 (``> 127`` is foreground; see
    :func:`core.io.common.binarize_mask`). ``expected_shape = (rows, cols)`` is checked from the header first;
    a mismatch raises :class:`HeartsegError` naming the file."""
    return read_mask_slice(as_path(path), expected_shape)


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


def write_mask_nifti(path: str | Path, mask: np.ndarray, volume: Volume) -> None:
    """Write ``mask`` ``(n_slices, rows, cols)`` 0/1 on ``volume``'s grid as a uint8 NIfTI at ``path`` (atomically).

    The data are stored as ``mask.transpose(2, 1, 0)`` with :func:`mask_affine`, so reading it back with
    :func:`core.io.nifti.read_nifti_mask` (or opening it beside the source NIfTI in any viewer) lines up.
    ``path`` should end in ``.nii`` or ``.nii.gz``.
    """
    m = _check_binary(mask, 3, "mask")
    if m.shape != volume.voxels.shape:
        raise ValueError(f"mask shape {m.shape} differs from the volume's {volume.voxels.shape}")
    img = nib.Nifti1Image(np.ascontiguousarray(m.transpose(2, 1, 0)), mask_affine(volume))
    img.header.set_data_dtype(np.uint8)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    write_with_atomic(as_path(path), lambda tmp: nib.save(img, str(tmp)))
