"""Manifest paths stay inside the dataset; a non-UTF-8 manifest and a FIFO given as the manifest give one line
(issue 12 items 4 and 7): in-process and through ``heartseg verify-dataset`` in a subprocess (exit 2, one line
naming the manifest, no traceback, never a hang)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import HeartsegError
from core.store.manifest import read_manifest, verify_dataset
from tests.helpers import strict_ok

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}


@pytest.fixture
def root(tmp_path) -> Path:
    r = tmp_path / "kaggle"
    (r / "data" / "train" / "1" / "image").mkdir(parents=True)
    (r / "data" / "train" / "1" / "image" / "1-001.png").write_bytes(b"image one")
    return r


def _line(path: str, data: bytes) -> str:
    return f"{path}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", *map(str, args)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)


HOSTNAME = Path("/etc/hostname")


@pytest.mark.parametrize("bad", [str(HOSTNAME), "data/../../etc/hostname", "data/train/../../../etc/hostname",
                                 "/data/train/1/image/1-001.png", "data//train/x.png", "data/./train/x.png",
                                 "data\\..\\..\\etc\\hostname", "data/train/a\nb", "etc/hostname"])
def test_a_manifest_line_leading_outside_is_refused(root, tmp_path, bad):
    data = HOSTNAME.read_bytes() if HOSTNAME.is_file() else b"x"
    manifest = tmp_path / "m.tsv"
    # (a raw newline in a path splits its line: the first half has no size / sha256)
    manifest.write_text("path\tsize_bytes\tsha256\n" + _line(bad, data) + "\n")
    with pytest.raises(HeartsegError) as info:
        read_manifest(manifest)
    assert str(manifest) in str(info.value) and "\n" not in str(info.value)
    r = _cli("verify-dataset", root, "--manifest", manifest)
    assert r.returncode == 2 and "OK" not in r.stdout, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(manifest) in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_a_link_in_the_dataset_leading_outside_is_not_ok(root, tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    (root / "data" / "train" / "1" / "image" / "1-002.png").symlink_to(outside)
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\tsize_bytes\tsha256\n" + _line("data/train/1/image/1-002.png", b"secret") + "\n")
    report = verify_dataset(root, manifest)
    assert not report.ok and report.altered[0][1] == "a link leading outside the dataset"


def test_a_non_utf8_manifest_is_one_line(root, tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_bytes(b"path\tsize_bytes\tsha256\n\xff\xfe data/x\t1\t" + b"0" * 64 + b"\n")
    with pytest.raises(HeartsegError, match="not UTF-8"):
        read_manifest(manifest)
    r = _cli("verify-dataset", root, "--manifest", manifest)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "UTF-8" in r.stderr, r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_manifest_does_not_hang(root, tmp_path):
    fifo = tmp_path / "m.tsv"
    os.mkfifo(fifo)
    with pytest.raises(HeartsegError, match="not a regular file"):
        read_manifest(fifo)
    r = _cli("verify-dataset", root, "--manifest", fifo)  # timeout=120 would fail a hang
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and str(fifo) in r.stderr, r.stderr


def test_a_folder_as_manifest_is_one_line(root, tmp_path):
    with pytest.raises(HeartsegError, match="not a regular file"):
        read_manifest(tmp_path)


def test_a_valid_manifest_still_verifies(root, tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\tsize_bytes\tsha256\n" + _line("data/train/1/image/1-001.png", b"image one") + "\n")
    assert strict_ok(verify_dataset(root, manifest))
