"""Shared helpers of the scan readers: size limits, safe file access, natural file listing, mask checks.

Size limits (checked from file headers BEFORE any pixel buffer is allocated):

* :data:`MAX_SLICE_SIDE` -- no slice may be wider or taller than 8192 pixels (CT slices are 512 x 512; 8192 leaves
  room for micro-CT and upsampled exports while refusing corrupt headers claiming 100000 x 100000).
* :data:`MAX_TOTAL_VOXELS` -- a whole volume may hold at most 2**30 voxels (about 1.07 billion: 2 GiB as int16,
  4 GiB as float32), e.g. 4096 slices of 512 x 512.
* :data:`MAX_VOLUME_BYTES` -- the decoded data of one volume may hold at most 4 GiB whatever its type (a float64
  volume of 2**30 voxels, 8 GiB, is refused).
* :func:`check_memory` -- what reading needs (the decoded data plus the reader's working copies, estimated from the
  header) must fit in :func:`memory_budget`: :data:`MEMORY_FRACTION` of the memory this process can still get
  (:func:`available_memory`: the smallest of the system's available memory, the cgroup's remaining limit and the
  address-space / data rlimits, or ``$HEARTSEG_MAX_MEMORY_MB``). A 2 MB ``.nii.gz`` declaring 2 GiB of zeros is
  refused on a machine that cannot spare that, before any of it is inflated.
* :func:`inflate_size` -- compressed data (PNG IDAT) is stream-inflated with a byte cap and discarded, so data
  that inflates beyond what its header declares is refused after at most the cap, never held in memory.
"""

from __future__ import annotations

import os
import resource
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
from natsort import natsorted, ns

from core.errors import HeartsegError

#: Largest accepted slice width or height, pixels.
MAX_SLICE_SIDE = 8192
#: Largest accepted number of voxels in one volume.
MAX_TOTAL_VOXELS = 2**30
#: Largest accepted decoded size of one volume, bytes (whatever the voxel type).
MAX_VOLUME_BYTES = 2**32
#: Share of the memory still available that one read may plan to use.
MEMORY_FRACTION = 0.5
#: Environment variable capping the memory budget (megabytes), e.g. on a shared server.
MEMORY_ENV = "HEARTSEG_MAX_MEMORY_MB"

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


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{max(1, round(n / 2**20))} MiB"


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> Optional[int]:
    """What the cgroup (v2, else v1) still allows this process, or ``None`` without a limit."""
    pairs = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))
    for limit_file, usage_file in pairs:
        try:
            with open(limit_file) as fh:
                limit = fh.read().strip()
            if limit == "max":
                return None
            with open(usage_file) as fh:
                usage = int(fh.read().strip())
            limit_n = int(limit)
            if limit_n >= 2**60:  # v1's "unlimited"
                return None
            return max(0, limit_n - usage)
        except (OSError, ValueError):
            continue
    return None


def _rlimit_available() -> Optional[int]:
    """Room left under RLIMIT_AS / RLIMIT_DATA (``ulimit -v`` / ``-d``), from /proc/self/status sizes."""
    best = None
    for limit_id, field in ((resource.RLIMIT_AS, b"VmSize:"), (getattr(resource, "RLIMIT_DATA", None), b"VmData:")):
        if limit_id is None:
            continue
        try:
            soft = resource.getrlimit(limit_id)[0]
        except (OSError, ValueError):
            continue
        if soft == resource.RLIM_INFINITY or soft < 0:
            continue
        used = 0
        try:
            with open("/proc/self/status", "rb") as fh:
                for line in fh:
                    if line.startswith(field):
                        used = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        room = max(0, soft - used)
        best = room if best is None else min(best, room)
    return best


def available_memory() -> int:
    """Bytes this process can still allocate: the smallest of MemAvailable, the cgroup's remaining limit, the
    room under the address-space / data rlimits and ``$HEARTSEG_MAX_MEMORY_MB`` (8 GiB where none is known)."""
    known = [v for v in (_meminfo_available(), _cgroup_available(), _rlimit_available()) if v is not None]
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        try:
            known.append(max(0, int(float(env) * 2**20)))
        except ValueError:
            pass
    return min(known) if known else 8 * 2**30


def memory_budget() -> int:
    """Bytes one read may plan to use: :data:`MEMORY_FRACTION` of :func:`available_memory`."""
    return int(available_memory() * MEMORY_FRACTION)


def check_memory(data_bytes: int, working_bytes: int, what: str, path: Path) -> None:
    """Refuse, before allocating, a read whose decoded data is ``data_bytes`` (checked against
    :data:`MAX_VOLUME_BYTES`) and which needs ``working_bytes`` in all (checked against :func:`memory_budget`).
    ``what`` describes the data for the message, e.g. ``"512 x 512 x 300 int16 voxels"``."""
    if data_bytes > MAX_VOLUME_BYTES:
        raise HeartsegError(f"{what} are {_gib(data_bytes)} of data, more than the {_gib(MAX_VOLUME_BYTES)} limit "
                            "(refused before reading)", path)
    budget = memory_budget()
    if working_bytes > budget:
        raise HeartsegError(f"{what} need about {_gib(working_bytes)} of memory to read, more than the "
                            f"{_gib(budget)} this computer can spare now (refused before reading)", path)


def inflate_size(data: bytes | memoryview, cap: int, *, wbits: int = zlib.MAX_WBITS) -> int:
    """How many bytes the zlib / gzip / deflate stream ``data`` inflates to, stream-decompressed and discarded in
    1 MiB pieces; stops (returning ``cap + 1``) as soon as more than ``cap`` came out. Raises ``zlib.error`` for
    a corrupt stream. Memory: about 1 MiB whatever the stream claims."""
    d = zlib.decompressobj(wbits)
    total = 0
    buf = d.decompress(data, 1 << 20)
    while buf:
        total += len(buf)
        if total > cap:
            return cap + 1
        if d.eof:
            break
        buf = d.decompress(d.unconsumed_tail, 1 << 20)
    return total


def read_bytes(path: Path) -> bytes:
    """The whole file, or :class:`HeartsegError` naming it (missing, unreadable, symlink loop, a folder ...)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except IsADirectoryError as exc:
        raise HeartsegError("is a folder, not a file", path) from exc
    except OSError as exc:
        raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc


def fill_nonfinite(voxels: np.ndarray, path: Path) -> tuple[int, float]:
    """Replace NaN and infinite voxels of a float ``(n_slices, rows, cols)`` array, in place, by the smallest finite
    value of the scan (air or the scanner's padding: what "no measurement" looks like on CT), slice by slice.

    A scan that holds NaN (resampled or masked exports pad with it) would otherwise export blank slices and give
    the model NaN input (an empty prediction, silently). Returns ``(how many were replaced, the value used)``;
    ``(0, nan)`` for integer data or a scan without any. :class:`HeartsegError` naming ``path`` when no voxel at
    all holds a number.
    """
    if not np.issubdtype(voxels.dtype, np.floating) or voxels.size == 0:
        return 0, float("nan")
    bad_slices, low = [], np.inf
    for k in range(voxels.shape[0]):
        finite = np.isfinite(voxels[k])
        if not finite.all():
            bad_slices.append(k)
        if finite.any():
            low = min(low, float(voxels[k][finite].min()))
    if not bad_slices:
        return 0, float("nan")
    if not np.isfinite(low):
        raise HeartsegError("no voxel holds a number (every value is NaN or infinite); not a usable CT scan", path)
    count = 0
    for k in bad_slices:
        bad = ~np.isfinite(voxels[k])
        count += int(bad.sum())
        voxels[k][bad] = low
    return count, low


def require_dir(path: Path) -> Path:
    """``path`` if it is a readable folder, else :class:`HeartsegError` naming it."""
    try:
        os.stat(path)
    except OSError as exc:
        raise HeartsegError(f"cannot open: {exc.strerror or exc}", path) from exc
    if not path.is_dir():
        raise HeartsegError("is not a folder", path)
    return path


def scan_folder(folder: Path, *, dirs: bool = False, name_ok: Optional[Callable[[str], bool]] = None) -> list[Path]:
    """The regular files (with ``dirs``: the sub-folders) directly inside ``folder`` whose name passes ``name_ok``
    (tested first, before any ``stat``), in the system's listing order; links are followed, broken ones and
    symlink loops skipped. An unreadable folder raises :class:`HeartsegError`."""
    require_dir(folder)
    out = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if name_ok is not None and not name_ok(entry.name):
                    continue
                try:
                    if not (entry.is_dir() if dirs else entry.is_file()):
                        continue
                except OSError:
                    continue
                out.append(Path(entry.path))
    except OSError as exc:
        raise HeartsegError(f"cannot list folder: {exc.strerror or exc}", folder) from exc
    return out


def is_hidden_name(name: str) -> bool:
    """True for a dot-folder in the Unix sense: one leading ``.`` then another character (``.heartseg``, ``.git``,
    ``.Trash-1000``, ``.ipynb_checkpoints``, heartseg's temporaries), which ``ls``, file managers and heartseg
    skip. A name that begins with two or more dots (``..p``) is no tool's hidden folder but an ordinary (odd)
    name: its patient is listed. (``.`` and ``..`` themselves are never listed by the system.)"""
    return name.startswith(".") and not name.startswith("..")


def list_files(folder: Path, suffixes: Optional[Iterable[str]] = None) -> list[Path]:
    """Regular files directly inside ``folder`` (hidden files skipped), in natural order (``1-2`` before ``1-10``).

    ``suffixes``: keep only names ending in one of these (lower-case, e.g. ``(".png",)``); ``None`` keeps all.
    Broken links and symlink loops are skipped; an unreadable folder raises :class:`HeartsegError`.
    """
    wanted = None if suffixes is None else tuple(s.lower() for s in suffixes)
    return natsort_paths(scan_folder(folder, name_ok=lambda name: not name.startswith(".") and (
        wanted is None or name.lower().endswith(wanted))))


def list_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` (hidden ones, :func:`is_hidden_name`, skipped: ``..p`` is listed), natural order."""
    return natsort_paths(scan_folder(folder, dirs=True, name_ok=lambda name: not is_hidden_name(name)))


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


@dataclass(frozen=True)
class SourceGrid:
    """How the input file stores its voxels, so masks can be written back on the input's own grid.

    ``to_native``: a nibabel orientation transform (``(3, 2)`` array of axis, flip) taking the display array
    ``volume.voxels.transpose(2, 1, 0)`` (axes ``col, row, slice``) to the file's own data array; ``shape``: that
    array's shape; ``affine``: its voxel -> RAS mm matrix. ``header``: for NIfTI input a copy of the source header
    (sform / qform and their codes, zooms, units), else ``None``. ``convention``: ``"nifti"`` (the input file's
    own grid) or ``"itk"`` (DICOM: the grid SimpleITK / GDCM builds for the series -- file rows and columns as
    stored, slices ascending along the slice normal).
    """

    to_native: np.ndarray
    shape: tuple
    affine: np.ndarray
    header: Optional[object] = None
    convention: str = "nifti"


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line (newlines and other control characters shown escaped), cut to ``limit`` characters:
    file names and values read from files can never inject a second line into an error message."""
    s = str(text)
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        s = "".join(c if ord(c) >= 32 and ord(c) != 127 else repr(c)[1:-1] for c in s)
    return s if len(s) <= limit else s[: limit - 3] + "..."
