"""PNG folders and Kaggle patient folders (core.io.png, core.io.kaggle, open_scan dispatch)."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.errors import HeartsegError
from core.io import MAX_SLICE_SIDE, open_scan
from core.io.png import read_png


def _write(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.shared
def test_kaggle_patient_folder(kaggle_patient):
    vol = open_scan(kaggle_patient)
    assert vol.kind == "kaggle_patient" and vol.intensity == "kaggle8bit"
    assert vol.voxels.shape == (112, 102, 122) and vol.voxels.dtype == np.uint8
    assert vol.spacing is None and vol.affine is None
    assert vol.mask.shape == vol.voxels.shape and vol.mask.dtype == np.uint8
    assert set(np.unique(vol.mask)) <= {0, 1} and vol.mask.sum() == 198176
    assert vol.mask_present.all()
    assert vol.slice_names[:3] == ["1-001", "1-002", "1-003"] and vol.slice_names[-1] == "1-112"
    assert vol.name == "ts_pulm"


@pytest.mark.shared
def test_missing_masks_give_zeros_and_flags(kaggle_patient, tmp_path):
    pat = tmp_path / "p1"
    shutil.copytree(kaggle_patient, pat)
    ref = open_scan(kaggle_patient)
    (pat / "mask" / "1-050.png").unlink()
    (pat / "mask" / "1-051.png").unlink()
    vol = open_scan(pat)
    assert not vol.mask_present[49] and not vol.mask_present[50] and vol.mask_present.sum() == 110
    assert vol.mask[49].sum() == 0 and vol.mask[50].sum() == 0
    assert np.array_equal(vol.mask[51:], ref.mask[51:])


@pytest.mark.shared
def test_mask_size_mismatch_names_mask(kaggle_patient, tmp_path):
    pat = tmp_path / "p1"
    shutil.copytree(kaggle_patient, pat)
    bad = _write(pat / "mask" / "1-007.png", np.zeros((50, 60), np.uint8))
    with pytest.raises(HeartsegError) as err:
        open_scan(pat)
    assert str(bad) in _one_line(err) and "60 x 50" in str(err.value)


@pytest.mark.shared
def test_mask_that_is_an_image_is_refused(kaggle_patient, tmp_path):
    pat = tmp_path / "p1"
    shutil.copytree(kaggle_patient, pat)
    shutil.copy(pat / "image" / "1-060.png", pat / "mask" / "1-060.png")
    with pytest.raises(HeartsegError, match="not a mask") as err:
        open_scan(pat)
    assert "1-060.png" in _one_line(err)


def test_mask_with_few_grey_levels_is_thresholded(tmp_path):
    img = np.full((20, 30), 100, np.uint8)
    _write(tmp_path / "p" / "image" / "1-1.png", img)
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 5:10] = 255
    m[5, 5:10] = 128  # edge levels from resampling
    m[9, 5:10] = 100
    _write(tmp_path / "p" / "mask" / "1-1.png", m)
    vol = open_scan(tmp_path / "p")
    assert vol.mask[0].sum() == 20 and vol.mask[0, 5, 5] == 1 and vol.mask[0, 9, 5] == 0


def test_natural_sort_png_folder(tmp_path):
    for k in (1, 2, 10, 11, 3):
        _write(tmp_path / f"1-{k}.png", np.full((8, 9), k * 10, np.uint8))
    vol = open_scan(tmp_path)
    assert vol.kind == "png_folder" and vol.intensity == "kaggle8bit"
    assert vol.slice_names == ["1-1", "1-2", "1-3", "1-10", "1-11"]
    assert list(vol.voxels[:, 0, 0]) == [10, 20, 30, 100, 110]


def test_png_16bit_kept_raw(tmp_path):
    for k in range(3):
        _write(tmp_path / f"s{k}.png", np.full((6, 7), 1000 + k * 2000, np.uint16))
    vol = open_scan(tmp_path)
    assert vol.intensity == "raw" and vol.voxels.dtype == np.uint16
    assert list(vol.voxels[:, 0, 0]) == [1000, 3000, 5000]


def test_png_rgb_equal_channels_converted(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    _write(tmp_path / "a.png", np.dstack([grey] * 3))
    _write(tmp_path / "b.png", np.dstack([grey] * 3 + [np.full_like(grey, 255)]))  # opaque RGBA
    vol = open_scan(tmp_path)
    assert vol.voxels.shape == (2, 6, 8) and np.array_equal(vol.voxels[0], grey)
    assert np.array_equal(vol.voxels[1], grey)


def test_png_colour_and_transparent_refused(tmp_path):
    grey = np.full((6, 8), 50, np.uint8)
    colour = _write(tmp_path / "c" / "x.png", np.dstack([grey, grey, grey + 1]))
    with pytest.raises(HeartsegError, match="coloured") as err:
        open_scan(tmp_path / "c")
    assert str(colour) in _one_line(err)
    alpha = _write(tmp_path / "t" / "x.png", np.dstack([grey] * 3 + [np.zeros_like(grey)]))
    with pytest.raises(HeartsegError, match="transparent") as err:
        open_scan(tmp_path / "t")
    assert str(alpha) in _one_line(err)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_png_palette_grey_converted(tmp_path):
    # hand-made 4x3 palette PNG whose palette entries are grey
    palette = b"".join(bytes([v, v, v]) for v in (0, 100, 200))
    raw = b"".join(b"\x00" + bytes([(r + c) % 3 for c in range(4)]) for r in range(3))
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 8, 3, 0, 0, 0))
           + _png_chunk(b"PLTE", palette) + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))
    (tmp_path / "p.png").write_bytes(png)
    img = read_png(tmp_path / "p.png")
    assert img.shape == (3, 4) and img.dtype == np.uint8
    assert img[0].tolist() == [0, 100, 200, 0] and img[1].tolist() == [100, 200, 0, 100]


def test_slices_of_different_size_name_first_odd_file(tmp_path):
    _write(tmp_path / "1-1.png", np.zeros((8, 9), np.uint8))
    _write(tmp_path / "1-2.png", np.zeros((8, 9), np.uint8))
    odd = _write(tmp_path / "1-3.png", np.zeros((9, 9), np.uint8))
    _write(tmp_path / "1-4.png", np.zeros((10, 9), np.uint8))
    with pytest.raises(HeartsegError, match="one size") as err:
        open_scan(tmp_path)
    assert _one_line(err).startswith(str(odd))


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"hello, this is text\n", "not a PNG"),
    ("truncated", "truncated"),
    ("header_only", "truncated"),
])
def test_broken_png_files_named(tmp_path, content, message):
    good = cv2.imencode(".png", np.full((16, 16), 7, np.uint8))[1].tobytes()
    if content == "truncated":
        content = good[: len(good) // 2]
    elif content == "header_only":
        content = good[:20]
    _write(tmp_path / "1-1.png", np.zeros((16, 16), np.uint8))
    bad = tmp_path / "1-2.png"
    bad.write_bytes(content)
    with pytest.raises(HeartsegError, match=message) as err:
        open_scan(tmp_path)
    assert _one_line(err).startswith(str(bad))


def test_huge_png_header_refused_before_allocating(tmp_path):
    # a valid signature + IHDR claiming 100000 x 100000 and nothing else
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
    huge = tmp_path / "1-1.png"
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IEND", b""))
    with pytest.raises(HeartsegError, match=f"{MAX_SLICE_SIDE}") as err:
        open_scan(tmp_path)
    assert str(huge) in _one_line(err) and "100000" in str(err.value)


def test_total_voxel_budget(tmp_path, monkeypatch):
    import core.io.common as common
    monkeypatch.setattr(common, "MAX_TOTAL_VOXELS", 100)
    for k in range(3):
        _write(tmp_path / f"{k}.png", np.zeros((6, 6), np.uint8))
    with pytest.raises(HeartsegError, match="exceeds the limit"):
        open_scan(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(HeartsegError, match="empty") as err:
        open_scan(tmp_path)
    assert _one_line(err).startswith(str(tmp_path))
    with pytest.raises(HeartsegError) as err:
        open_scan(tmp_path / "nope")
    assert str(tmp_path / "nope") in _one_line(err)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(HeartsegError, match="no scan found"):
        open_scan(tmp_path)


def test_symlink_loop_and_unreadable(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(HeartsegError) as err:
        open_scan(loop)
    assert str(loop) in _one_line(err)
    folder = tmp_path / "f"
    _write(folder / "1-1.png", np.zeros((4, 4), np.uint8))
    (folder / "1-2.png").symlink_to(folder / "1-2.png")  # a looping link is skipped, not a traceback
    assert open_scan(folder).n_slices == 1


def test_cancel_and_progress(tmp_path):
    from core.errors import Cancelled
    from core.types import CancelToken
    for k in range(40):
        _write(tmp_path / f"1-{k}.png", np.zeros((4, 4), np.uint8))
    seen = []
    open_scan(tmp_path, progress=seen.append)
    assert seen and seen[-1].done == seen[-1].total == 40
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        open_scan(tmp_path, cancel=token)


def test_png_mask_folder_by_name(tmp_path):
    for k in (1, 2, 3):
        _write(tmp_path / "scan" / f"1-{k}.png", np.full((5, 6), 9, np.uint8))
    m = np.zeros((5, 6), np.uint8)
    m[1:3, 2:4] = 255
    _write(tmp_path / "masks" / "1-2.png", m)
    vol = open_scan(tmp_path / "scan", tmp_path / "masks")
    assert vol.mask_present.tolist() == [False, True, False] and vol.mask[1].sum() == 4
