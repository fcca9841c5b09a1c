"""PNG slices: header check, decoding to one grey channel, stacking a list of slices.

Every PNG is checked from its first 33 bytes (signature + IHDR: width, height, bit depth, colour type) before cv2
decodes it, so a corrupt or hostile header claiming 100000 x 100000 pixels is refused without allocating anything.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from core.errors import HeartsegError
from core.io.common import check_slice_size, check_total_voxels, read_bytes
from core.types import CancelToken, Progress, ProgressFn, check_cancel, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
#: Slices decoded per batch (cancel is checked and progress reported once per batch).
BATCH = 16


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's IHDR chunk says: size in pixels, bits per channel, colour type (0 grey, 2 RGB, 3 palette,
    4 grey+alpha, 6 RGBA)."""

    width: int
    height: int
    bit_depth: int
    colour_type: int


def parse_png_header(data: bytes, path: Path) -> PngHeader:
    """The IHDR fields of the PNG bytes ``data``; :class:`HeartsegError` naming ``path`` if it is not a PNG."""
    if len(data) == 0:
        raise HeartsegError("not a PNG image: the file is empty (0 bytes)", path)
    if not data.startswith(PNG_SIGNATURE):
        raise HeartsegError("not a PNG image (no PNG signature)", path)
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise HeartsegError("truncated PNG image (no complete IHDR header)", path)
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if colour not in _COLOUR_TYPES:
        raise HeartsegError(f"not a valid PNG image (colour type {colour})", path)
    return PngHeader(width, height, depth, colour)


def read_png_header(path: Path) -> PngHeader:
    """Read only the first 33 bytes of ``path`` and parse its header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(33)
    except IsADirectoryError as exc:
        raise HeartsegError("is a folder, not a file", path) from exc
    except OSError as exc:
        raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc
    return parse_png_header(head, path)


def read_png(path: Path) -> np.ndarray:
    """Decode one PNG to a single grey channel.

    Returns ``(rows, cols)`` uint8 for 8-bit files (and 1/2/4-bit, expanded), uint16 for 16-bit files.
    RGB / RGBA / palette / grey+alpha files are accepted when every pixel is grey (equal channels) and fully
    opaque; otherwise :class:`HeartsegError` names the file and the reason. Size limits are checked from the
    header before decoding.
    """
    data = read_bytes(path)
    header = parse_png_header(data, path)
    check_slice_size(header.height, header.width, path)
    if data.rfind(b"IEND", max(0, len(data) - 1024)) < 0:
        raise HeartsegError("truncated PNG image (the file ends before its IEND chunk)", path)
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise HeartsegError(f"corrupt PNG image ({str(exc).strip().splitlines()[-1]})", path) from exc
    if img is None:
        raise HeartsegError("corrupt or truncated PNG image (could not be decoded)", path)
    return _to_grey(img, header, path)


def _to_grey(img: np.ndarray, header: PngHeader, path: Path) -> np.ndarray:
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    kind = _COLOUR_TYPES[header.colour_type]
    channels = img.shape[2]
    if channels in (2, 4):  # alpha last
        alpha = img[:, :, -1]
        if int(alpha.min()) != int(np.iinfo(img.dtype).max):
            raise HeartsegError(f"{kind} PNG with transparent pixels is not a CT slice "
                                "(save it as 8-bit greyscale)", path)
        img = img[:, :, :-1]
    if img.shape[2] == 1:
        return np.ascontiguousarray(img[:, :, 0])
    first = img[:, :, 0]
    if not all(np.array_equal(first, img[:, :, c]) for c in range(1, img.shape[2])):
        raise HeartsegError(f"{kind} PNG with coloured pixels is not a CT slice "
                            "(channels differ; save it as 8-bit greyscale)", path)
    return np.ascontiguousarray(first)


def read_png_stack(files: Sequence[Path], *, progress: Optional[ProgressFn] = None,
                   cancel: Optional[CancelToken] = None, stage: str = "read") -> np.ndarray:
    """Decode ``files`` (one slice each, already in slice order) into ``(n, rows, cols)`` uint8 or uint16.

    All headers are read first: every slice must have the size and bit depth of the first, else
    :class:`HeartsegError` names the first odd file; the total size is checked before the stack is allocated.
    Decoding runs in a small thread pool (cv2 releases the GIL); cancel is checked per batch of :data:`BATCH`.
    """
    if not files:
        raise HeartsegError("no PNG slices to read")
    headers = [read_png_header(p) for p in files]
    first = headers[0]
    check_slice_size(first.height, first.width, files[0])
    for p, h in zip(files, headers):
        if (h.width, h.height) != (first.width, first.height):
            raise HeartsegError(f"slice is {h.width} x {h.height} pixels but {files[0].name} is "
                                f"{first.width} x {first.height}; all slices must have one size", p)
        if (h.bit_depth > 8) != (first.bit_depth > 8):
            raise HeartsegError(f"slice is {h.bit_depth}-bit but {files[0].name} is {first.bit_depth}-bit; "
                                "all slices must have one bit depth", p)
    n = len(files)
    check_total_voxels(n, first.height, first.width, files[0].parent)
    dtype = np.uint16 if first.bit_depth > 8 else np.uint8
    out = np.empty((n, first.height, first.width), dtype=dtype)

    def load(i: int) -> None:
        out[i] = read_png(files[i])

    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, n, BATCH):
            check_cancel(cancel)
            list(pool.map(load, range(start, min(n, start + BATCH))))
            done = min(n, start + BATCH)
            report(progress, Progress(stage, done, n, f"read {done}/{n} slices"))
    return out
