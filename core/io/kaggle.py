"""Kaggle patient folders (``<pid>/image/1-NNN.png`` + optional ``<pid>/mask/1-NNN.png``) and plain PNG folders.

Mask policy (the Kaggle masks are 0/255 8-bit PNGs with the same file name as their image):

* a slice without a mask file gets an all-zero mask and ``mask_present[i] = False``;
* a mask whose size differs from its image is refused, naming the mask file;
* mask values are binarised by :func:`core.io.common.binarize_mask` (``> 127``; images that are clearly not
  masks -- many grey levels -- are refused, naming the file);
* mask files without an image of the same name are ignored (listed in ``metadata["orphan_masks"]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from core.errors import HeartsegError
from core.io.common import binarize_mask, list_files
from core.io.png import read_png, read_png_header, read_png_stack
from core.types import CancelToken, ProgressFn, Volume, check_cancel

IMAGE_DIR = "image"
MASK_DIR = "mask"


def is_kaggle_patient(folder: Path) -> bool:
    """True when ``folder`` has an ``image/`` sub-folder (the Kaggle patient layout)."""
    return (folder / IMAGE_DIR).is_dir()


def list_pngs(folder: Path) -> list[Path]:
    """The ``.png`` files in ``folder``, natural order; :class:`HeartsegError` naming the folder if none."""
    files = list_files(folder, (".png",))
    if not files:
        raise HeartsegError("no PNG slices in this folder", folder)
    return files


def read_png_folder(folder: Path, *, progress: Optional[ProgressFn] = None,
                    cancel: Optional[CancelToken] = None) -> Volume:
    """A plain folder of PNG slices (natural file order = slice order, first = most superior).

    Returns a :class:`Volume` with ``voxels`` ``(n, rows, cols)``: uint8 ``"kaggle8bit"`` for 8-bit slices, uint16
    ``"raw"`` for 16-bit slices; ``spacing`` and ``affine`` are ``None``; ``kind="png_folder"``.
    """
    files = list_pngs(folder)
    voxels = read_png_stack(files, progress=progress, cancel=cancel)
    return Volume(voxels=voxels, spacing=None, affine=None, source_files=list(files),
                  intensity="kaggle8bit" if voxels.dtype == np.uint8 else "raw",
                  kind="png_folder", name=folder.name)


def read_kaggle_patient(folder: Path, *, progress: Optional[ProgressFn] = None,
                        cancel: Optional[CancelToken] = None) -> Volume:
    """A Kaggle patient folder -> :class:`Volume` (``kind="kaggle_patient"``, ``name`` = patient id).

    ``voxels``: ``(n, rows, cols)`` uint8 (``"kaggle8bit"``; 16-bit slices give uint16 ``"raw"``);
    ``mask``: ``(n, rows, cols)`` uint8 0/1 when a ``mask/`` folder exists (else ``None``);
    ``mask_present``: ``(n,)`` bool, which slices had a mask file.
    """
    files = list_pngs(folder / IMAGE_DIR)
    voxels = read_png_stack(files, progress=progress, cancel=cancel)
    vol = Volume(voxels=voxels, spacing=None, affine=None, source_files=list(files),
                 intensity="kaggle8bit" if voxels.dtype == np.uint8 else "raw",
                 kind="kaggle_patient", name=folder.name)
    mask_dir = folder / MASK_DIR
    if mask_dir.is_dir():
        mask, present, orphans = read_mask_folder(mask_dir, [p.stem for p in files], vol.slice_shape,
                                                  cancel=cancel)
        vol.mask, vol.mask_present = mask, present
        if orphans:
            vol.metadata["orphan_masks"] = orphans
    return vol


def read_mask_folder(mask_dir: Path, stems: list[str], slice_shape: tuple[int, int], *,
                     cancel: Optional[CancelToken] = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Masks matched to slices by file stem.

    ``stems``: one name per slice (``1-001`` ...); ``slice_shape``: ``(rows, cols)``. Returns ``(mask, present,
    orphans)``: ``(n, rows, cols)`` uint8 0/1, ``(n,)`` bool, and the names of mask files with no slice.
    """
    by_stem = {p.stem: p for p in list_files(mask_dir, (".png",))}
    n = len(stems)
    mask = np.zeros((n,) + tuple(slice_shape), dtype=np.uint8)
    present = np.zeros(n, dtype=bool)
    for i, stem in enumerate(stems):
        if i % 16 == 0:
            check_cancel(cancel)
        path = by_stem.pop(stem, None)
        if path is None:
            continue
        mask[i] = read_mask_slice(path, slice_shape)
        present[i] = True
    return mask, present, sorted(p.name for p in by_stem.values())


def read_mask_slice(path: Path, expected_shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """One mask PNG -> ``(rows, cols)`` uint8 0/1; its size must be ``expected_shape = (rows, cols)`` if given
    (checked from the header before decoding), else :class:`HeartsegError` naming the mask file."""
    if expected_shape is not None:
        h = read_png_header(path)
        if (h.height, h.width) != tuple(expected_shape):
            raise HeartsegError(f"mask is {h.width} x {h.height} pixels but its image is "
                                f"{expected_shape[1]} x {expected_shape[0]}", path)
    return binarize_mask(read_png(path), path)
