"""PNG slices: header check, decoding to one grey channel, stacking a list of slices.

Every PNG is checked from its first 33 bytes (signature + IHDR: width, height, bit depth, colour type) before cv2
decodes it, so a corrupt or hostile header claiming 100000 x 100000 pixels is refused without allocating anything.
Before decoding, the memory the decoded pixels need is checked against :func:`core.io.common.check_memory`, a file
much larger than its pixels could need is refused unread, and the IDAT stream is inflated with a byte cap (and
discarded): data inflating beyond what the header's size needs -- a decompression bomb -- is refused after at most
that many bytes, in about 1 MiB of memory.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from core.errors import HeartsegError
from core.io.common import check_memory, check_slice_size, check_total_voxels, inflate_size, read_bytes
from core.types import CancelToken, Progress, ProgressFn, check_cancel, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
#: Slices decoded per batch (cancel is checked and progress reported once per batch).
BATCH = 16
#: Decoding threads of :func:`read_png_stack`.
WORKERS = 4
#: Channels stored in the file per colour type, and the channels cv2 decodes it to (IMREAD_UNCHANGED).
_FILE_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DECODED_CHANNELS = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}
#: Room for ancillary chunks (ICC profiles, text) beyond the largest possible pixel data, bytes.
FILE_SLACK = 16 * 2**20


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


def raw_size(header: PngHeader, interlaced: bool = False) -> int:
    """Bytes the IDAT stream of such a PNG inflates to (filter bytes included; an upper bound when interlaced)."""
    row = math.ceil(header.width * _FILE_CHANNELS[header.colour_type] * header.bit_depth / 8)
    size = header.height * (1 + row)
    return size + (2 * header.height + 16) * 9 if interlaced else size  # Adam7: more rows, rounded widths


def decode_working_bytes(header: PngHeader) -> int:
    """Memory one decode needs: cv2's decoded channels plus the grey copy and a comparison mask."""
    px = header.width * header.height * (2 if header.bit_depth > 8 else 1)
    return px * _DECODED_CHANNELS[header.colour_type] + 2 * px


def _describe(header: PngHeader) -> str:
    return f"{header.width} x {header.height} {_COLOUR_TYPES[header.colour_type]} {header.bit_depth}-bit pixels"


def _check_idat(data: bytes, header: PngHeader, path: Path) -> None:
    """Refuse a PNG whose IDAT data inflates beyond what its header's size needs (stream-inflated with that cap,
    the output discarded). Damaged chunk structure or zlib data is left to the decoder to report."""
    interlaced = len(data) > 28 and data[28] == 1
    cap = raw_size(header, interlaced)
    pieces, pos, view = [], 8, memoryview(data)
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        if pos + 12 + length > len(data):
            break
        if kind == b"IDAT":
            pieces.append(view[pos + 8:pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    if not pieces:
        return
    try:
        inflated = inflate_size(b"".join(pieces), cap)
    except zlib.error:
        return
    if inflated > cap:
        raise HeartsegError(f"PNG image data inflates to more than the {cap} bytes its {header.width} x "
                            f"{header.height} header needs (a decompression bomb; refused before decoding)", path)


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
    header = read_png_header(path)
    check_slice_size(header.height, header.width, path)
    check_memory(header.width * header.height * (2 if header.bit_depth > 8 else 1), decode_working_bytes(header),
                 _describe(header), path)
    limit = raw_size(header, True) + FILE_SLACK
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0  # read_bytes names the problem
    if size > limit:
        raise HeartsegError(f"PNG file is {size} bytes, far more than its {header.width} x {header.height} pixels "
                            "could need (refused before reading)", path)
    data = read_bytes(path)
    header = parse_png_header(data, path)
    check_slice_size(header.height, header.width, path)
    _check_idat(data, header, path)
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
    stack = n * first.height * first.width * np.dtype(dtype).itemsize
    per_slice = max(decode_working_bytes(h) + raw_size(h, True) for h in headers)
    check_memory(stack, stack + min(WORKERS, n) * per_slice, f"{n} slices of {_describe(first)}",
                 files[0].parent)
    out = np.empty((n, first.height, first.width), dtype=dtype)

    def load(i: int) -> None:
        out[i] = read_png(files[i])

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for start in range(0, n, BATCH):
            check_cancel(cancel)
            list(pool.map(load, range(start, min(n, start + BATCH))))
            done = min(n, start + BATCH)
            report(progress, Progress(stage, done, n, f"read {done}/{n} slices"))
    return out
