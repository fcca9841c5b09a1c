"""Shared helpers of the scan readers: size limits, safe file access, natural file listing, mask checks.

Size limits (checked from file headers BEFORE any pixel buffer is allocated):

* :data:`MAX_SLICE_SIDE` -- no slice may be wider or taller than 8192 pixels (CT slices are 512 x 512; 8192 leaves
  room for micro-CT and upsampled exports while refusing corrupt headers claiming 100000 x 100000).
* :data:`MAX_TOTAL_VOXELS` -- a whole volume may hold at most 2**30 voxels (about 1.07 billion: 2 GiB as int16,
  4 GiB as float32), e.g. 4096 slices of 512 x 512.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from natsort import natsorted, ns

from core.errors import HeartsegError

#: Largest accepted slice width or height, pixels.
MAX_SLICE_SIDE = 8192
#: Largest accepted number of voxels in one volume.
MAX_TOTAL_VOXELS = 2**30

#: A mask PNG whose pixels are more than this fraction "in between" (not 0, 1 or 255) is not a mask.
MASK_MAX_INTERMEDIATE_FRACTION = 0.02
#: ... provided it also has more than this many distinct grey levels.
MASK_MAX_LEVELS = 8


def check_slice_size(rows: int, cols: int, path: Path) -> None:
    """Refuse slices of zero size or beyond :data:`MAX_SLICE_SIDE` (called from header values)."""
    if rows <= 0 or cols <= 0:
        raise HeartsegError(f"image has no pixels ({cols} x {rows})", path)
    if rows > MAX_SLICE_SIDE or cols > MAX_SLICE_SIDE:
        raise HeartsegError(f"image is {cols} x {rows} pixels, larger than the {MAX_SLICE_SIDE} x {MAX_SLICE_SIDE} "
                            "limit (refused before reading)", path)


def check_total_voxels(n_slices: int, rows: int, cols: int, path: Path) -> None:
    """Refuse volumes beyond :data:`MAX_TOTAL_VOXELS` (called before allocating the stack)."""
    total = int(n_slices) * int(rows) * int(cols)
    if total > MAX_TOTAL_VOXELS:
        raise HeartsegError(f"volume of {n_slices} x {rows} x {cols} voxels exceeds the limit of "
                            f"{MAX_TOTAL_VOXELS} voxels (refused before reading)", path)


def read_bytes(path: Path) -> bytes:
    """The whole file, or :class:`HeartsegError` naming it (missing, unreadable, symlink loop, a folder ...)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except IsADirectoryError as exc:
        raise HeartsegError("is a folder, not a file", path) from exc
    except OSError as exc:
        raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc


def require_dir(path: Path) -> Path:
    """``path`` if it is a readable folder, else :class:`HeartsegError` naming it."""
    try:
        os.stat(path)
    except OSError as exc:
        raise HeartsegError(f"cannot open: {exc.strerror or exc}", path) from exc
    if not path.is_dir():
        raise HeartsegError("is not a folder", path)
    return path


def list_files(folder: Path, suffixes: Optional[Iterable[str]] = None) -> list[Path]:
    """Regular files directly inside ``folder`` (hidden files skipped), in natural order (``1-2`` before ``1-10``).

    ``suffixes``: keep only names ending in one of these (lower-case, e.g. ``(".png",)``); ``None`` keeps all.
    Broken links and symlink loops are skipped; an unreadable folder raises :class:`HeartsegError`.
    """
    require_dir(folder)
    wanted = None if suffixes is None else tuple(s.lower() for s in suffixes)
    out = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    if not entry.is_file():
                        continue
                except OSError:
                    continue
                if wanted is not None and not entry.name.lower().endswith(wanted):
                    continue
                out.append(Path(entry.path))
    except OSError as exc:
        raise HeartsegError(f"cannot list folder: {exc.strerror or exc}", folder) from exc
    return natsort_paths(out)


def list_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` (hidden ones skipped), natural order."""
    require_dir(folder)
    out = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                try:
                    if not entry.name.startswith(".") and entry.is_dir():
                        out.append(Path(entry.path))
                except OSError:
                    continue
    except OSError as exc:
        raise HeartsegError(f"cannot list folder: {exc.strerror or exc}", folder) from exc
    return natsort_paths(out)


def natsort_paths(paths: Sequence[Path]) -> list[Path]:
    """Paths sorted naturally by name (``1-2`` before ``1-10``), case-insensitively."""
    return natsorted(paths, key=lambda p: p.name, alg=ns.IGNORECASE)


def binarize_mask(pixels: np.ndarray, path: Path) -> np.ndarray:
    """A mask image -> ``(rows, cols)`` uint8 0/1.

    Accepted: 0/255 masks (the Kaggle format), 0/1 masks, and masks with a few in-between grey levels (resampled or
    anti-aliased edges): foreground is ``> 127`` like the seed notebook (``> 0`` when the maximum is 1; 16-bit masks
    are compared at half their range). Refused, naming the file: images that are clearly not masks -- more than
    :data:`MASK_MAX_LEVELS` distinct grey levels AND more than 2 % of pixels in between.
    """
    px = np.asarray(pixels)
    if px.dtype == np.uint16:
        if px.max(initial=0) > 255:
            px = (px >> 8).astype(np.uint8)
        else:
            px = px.astype(np.uint8)
    peak = int(px.max(initial=0))
    if peak <= 1:
        return (px > 0).astype(np.uint8)
    between = (px != 0) & (px != 1) & (px != 255)
    frac = float(between.mean()) if px.size else 0.0
    if frac > MASK_MAX_INTERMEDIATE_FRACTION:
        levels = int(np.unique(px).size)
        if levels > MASK_MAX_LEVELS:
            raise HeartsegError(f"not a mask: {levels} distinct grey levels and {frac:.0%} of pixels neither "
                                "0 nor 255 (a mask has values 0/255)", path)
    return (px > 127).astype(np.uint8)


def kaggle_slice_names(n_slices: int) -> list[str]:
    """Kaggle-style slice stems ``1-001`` ... ``1-NNN`` (at least 3 digits)."""
    width = max(3, len(str(n_slices)))
    return [f"1-{i + 1:0{width}d}" for i in range(n_slices)]
