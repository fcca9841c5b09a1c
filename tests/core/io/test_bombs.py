"""Decompression and size bombs (issue 12 item 5): refused before allocating, memory bounded, one line.

Every bomb is generated here, small on disk: a deflate stream of zeros is made of one 1 MiB segment compressed once
and repeated (each ends with a full flush, so the copies are identical and the stream inflates to N MiB), so a
2 GiB volume is a 2 MB file and nothing large is ever built in the test itself. Each file goes through the real
``heartseg predict`` in a subprocess that records its own peak resident memory (``VmHWM``) at exit: the command
must exit 2 with one line naming the file, write nothing, and stay well under 1 GB.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from core.errors import HeartsegError
from tests.corpus import png_folder, tree_state

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONIOENCODING": "utf-8"}
MiB = 2**20
PEAK_LIMIT_KB = 512 * 1024  # "well under 1 GB": the refusal must not get anywhere near the bomb's size


def _zero_segments(level: int = 9) -> tuple[zlib._Compress, bytes]:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    seg = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH) == seg  # every further MiB compresses the same
    return c, seg


def deflate_zeros(prefix: bytes, mib: int, *, wrap: str) -> bytes:
    """``prefix`` followed by ``mib`` MiB of zeros as one deflate stream, gzip- or zlib-wrapped (beyond 256 MiB the
    checksum is left 0: it is only checked after the last byte, which the readers must never get to)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    _, seg = _zero_segments()
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    body = head + seg * mib + tail
    size = (len(prefix) + mib * MiB) & 0xFFFFFFFF
    crc, adler = 0, 0
    if mib <= 256:
        crc, adler, zeros = zlib.crc32(prefix), zlib.adler32(prefix), bytes(MiB)
        for _ in range(mib):
            crc, adler = zlib.crc32(zeros, crc), zlib.adler32(zeros, adler)
    if wrap == "gzip":
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + struct.pack("<II", crc, size)
    return b"\x78\xda" + body + struct.pack(">I", adler)


def nifti_gz_bomb(path: Path, shape: tuple, dtype) -> Path:
    """A ``.nii.gz`` declaring ``shape`` of ``dtype`` whose stream inflates to exactly that many zero bytes."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_qform(np.eye(4), code=1)
    hdr["vox_offset"] = 352
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    assert nbytes % MiB == 0
    path.write_bytes(deflate_zeros(hdr.binaryblock + b"\0" * 4, nbytes // MiB, wrap="gzip"))
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int, height: int, inflate_mib: int, *, depth: int = 8, colour: int = 0) -> Path:
    """A PNG of ``width x height`` whose IDAT inflates to ``inflate_mib`` MiB of zeros (filter 0, black pixels)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = deflate_zeros(b"", inflate_mib, wrap="zlib")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _predict(scan: Path, out: Path, tmp_path: Path, *, address_space_gib: float | None = None):
    peak_file = tmp_path / "peak.txt"
    # VmHWM, the child's own peak: ru_maxrss carries the parent's peak across fork+exec (a pytest process that has
    # loaded TensorFlow would make every child look 1 GB large)
    prelude = ("import atexit, resource\n"
               "def _peak():\n"
               "    for line in open('/proc/self/status'):\n"
               "        if line.startswith('VmHWM:'):\n"
               "            return line.split()[1]\n"
               f"atexit.register(lambda: open({str(peak_file)!r}, 'w').write(_peak()))\n")
    if address_space_gib is not None:
        limit = int(address_space_gib * 2**30)
        prelude += f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    code = prelude + "import sys\nfrom heartseg_gui.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    r = subprocess.run([sys.executable, "-c", code, "predict", str(scan), "--out", str(out)], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, encoding="utf-8", timeout=300)
    peak_kb = int(peak_file.read_text()) if peak_file.exists() else None
    return r, peak_kb


def _assert_refused(r, peak_kb, culprit: str, *words: str) -> str:
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("heartseg predict: error: ") and culprit in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert peak_kb is not None and peak_kb < PEAK_LIMIT_KB, f"peak resident memory {peak_kb} kB"
    return lines[0]


def test_nifti_gz_declaring_8_gib_is_refused_from_its_header(tmp_path):
    """8 MB on disk, 8 GiB inflated (1024^3 float64): over the fixed 4 GiB data limit on any machine."""
    scan = nifti_gz_bomb(tmp_path / "bomb 8g.nii.gz", (1024, 1024, 1024), np.float64)
    assert scan.stat().st_size < 10 * MiB
    before = tree_state(tmp_path)
    r, peak = _predict(scan, tmp_path / "out", tmp_path)
    _assert_refused(r, peak, "bomb 8g.nii.gz", "8.0 GiB", "refused before reading")
    assert not (tmp_path / "out").exists()
    assert {k: v for k, v in tree_state(tmp_path).items() if not k.endswith("peak.txt")} == before


def test_nifti_gz_inflating_to_2_gib_is_refused_where_memory_cannot_hold_it(tmp_path):
    """2 MB on disk, 2 GiB inflated (1024^3 int16, within the voxel limit): reading needs ~4 GiB, more than a
    process limited to 3 GiB of address space can spare -- refused from the header, nothing inflated."""
    scan = nifti_gz_bomb(tmp_path / "bomb.nii.gz", (1024, 1024, 1024), np.int16)
    assert scan.stat().st_size < 3 * MiB
    r, peak = _predict(scan, tmp_path / "out", tmp_path, address_space_gib=3)
    _assert_refused(r, peak, "bomb.nii.gz", "memory", "refused before reading")
    assert not (tmp_path / "out").exists()


def test_png_whose_idat_inflates_to_gigabytes_is_refused(tmp_path):
    """A 512 x 512 grey slice needs 262 656 bytes of image data; this one's IDAT inflates to 2 GiB (2 MB file).
    The stream is inflated with that cap and discarded: refused after a few hundred kB."""
    folder = png_folder(tmp_path / "scan", 2, 512, 512)
    png_bomb(folder / "1-003 bomb.png", 512, 512, 2048)
    before = tree_state(tmp_path)
    r, peak = _predict(folder, tmp_path / "out", tmp_path)
    _assert_refused(r, peak, "1-003 bomb.png", "decompression bomb")
    assert not (tmp_path / "out").exists()
    after = {k: v for k, v in tree_state(tmp_path).items() if not k.endswith("peak.txt")}
    assert after == before


def test_png_slices_declaring_gigabytes_are_refused_where_memory_cannot_hold_them(tmp_path):
    """Eight 8192 x 8192 16-bit RGBA slices whose IDAT really inflates to their 512 MiB each (~0.5 MB files):
    the stack alone is 1 GiB and each decode 640 MiB -- refused from the headers in a 3 GiB process."""
    folder = tmp_path / "big slices"
    for i in range(8):
        png_bomb(folder / f"1-{i + 1:03d}.png", 8192, 8192, 512, depth=16, colour=6)
    r, peak = _predict(folder, tmp_path / "out", tmp_path, address_space_gib=3)
    _assert_refused(r, peak, "big slices", "memory", "refused before reading")
    assert not (tmp_path / "out").exists()


def test_memory_budget_follows_the_environment_and_limits(monkeypatch, tmp_path):
    from core.io import common

    monkeypatch.setenv(common.MEMORY_ENV, "100")
    assert common.available_memory() <= 100 * MiB
    with pytest.raises(HeartsegError) as info:
        common.check_memory(60 * MiB, 60 * MiB, "test voxels", tmp_path / "x.nii")
    assert "x.nii" in str(info.value) and "refused before reading" in str(info.value)
    common.check_memory(10 * MiB, 40 * MiB, "test voxels", tmp_path / "x.nii")
    with pytest.raises(HeartsegError):
        common.check_memory(common.MAX_VOLUME_BYTES + 1, 0, "test voxels", tmp_path / "x.nii")


def test_inflate_size_is_capped_and_exact():
    from core.io.common import inflate_size

    stream = deflate_zeros(b"abc", 64, wrap="zlib")
    assert inflate_size(stream, 2**40) == 3 + 64 * MiB
    assert inflate_size(stream, 1000) == 1001
    assert inflate_size(zlib.compress(b"x" * 10), 10) == 10


def test_ordinary_scans_still_read(tmp_path):
    """The checks cost nothing for real data: a 16-bit grey PNG folder and a NIfTI volume read as before."""
    import nibabel as nib

    from core.io import open_scan

    png_folder(tmp_path / "scan", 3, 64, 64)
    assert open_scan(tmp_path / "scan").voxels.shape == (3, 64, 64)
    data = (np.arange(32 * 32 * 10) % 900).reshape(32, 32, 10).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "ct.nii.gz"))
    assert open_scan(tmp_path / "ct.nii.gz").voxels.shape == (10, 32, 32)
