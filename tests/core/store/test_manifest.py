"""verify_dataset against a small custom manifest (and parsing of the bundled Kaggle manifest)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.errors import Cancelled, HeartsegError
from core.resources import kaggle_manifest_path
from core.store.manifest import read_manifest, verify_dataset
from core.types import CancelToken
from tests.helpers import strict_ok

FILES = {
    "data/train/1/image/1-001.png": b"image one",
    "data/train/1/mask/1-001.png": b"mask one",
    "data/test/2/series/1-001.dcm": b"dicom" * 100,
    "data/test/2/series/1-002.dcm": b"dicom two",
}


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "kaggle"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    manifest = tmp_path / "manifest.tsv"
    lines = ["path\tsize_bytes\tsha256"] + [f"{rel}\t{len(d)}\t{hashlib.sha256(d).hexdigest()}"
                                             for rel, d in FILES.items()]
    manifest.write_text("\n".join(lines) + "\n")
    return root, manifest


def test_intact_tree_is_ok(tree):
    root, manifest = tree
    seen = []
    for where in (root, root / "data"):
        report = verify_dataset(where, manifest, progress=seen.append)
        assert report.ok and strict_ok(report) and report.n_matching == 4 == report.n_expected
        assert "OK" in report.summary().splitlines()[0]
    assert seen[-1].done == seen[-1].total == 4


def test_missing_altered_extra(tree):
    root, manifest = tree
    (root / "data/train/1/mask/1-001.png").unlink()
    (root / "data/test/2/series/1-002.dcm").write_bytes(b"dicom TWO")  # same size, other hash
    (root / "data/train/1/image/1-001.png").write_bytes(b"longer image one")
    (root / "data/train/1/notes.txt").write_text("mine")
    (root / "data/train/1/.heartseg").mkdir()
    (root / "data/train/1/.heartseg/review.json").write_text("{}")  # heartseg's own files are not extras
    report = verify_dataset(root, manifest)
    assert not report.ok
    assert report.missing == ["data/train/1/mask/1-001.png"]
    assert dict(report.altered) == {"data/test/2/series/1-002.dcm": "sha256 differs",
                                    "data/train/1/image/1-001.png": "size 16 != 9 bytes"}
    assert report.extra == ["data/train/1/notes.txt"]
    assert report.n_matching == 1
    text = report.summary()
    assert "1 missing, 2 altered, 1 extra" in text and "NOT OK" in text


def test_errors_and_cancel(tree, tmp_path):
    root, manifest = tree
    bad = tmp_path / "bad.tsv"
    bad.write_text("path\tsize_bytes\tsha256\ndata/x\tnot-a-number\tabc\n")
    with pytest.raises(HeartsegError, match="line 2") as err:
        verify_dataset(root, bad)
    assert str(err.value).startswith(str(bad))
    with pytest.raises(HeartsegError):
        verify_dataset(tmp_path / "nowhere", manifest)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        verify_dataset(root, manifest, cancel=token)


def test_bundled_manifest_parses():
    entries = read_manifest(kaggle_manifest_path())
    assert len(entries) == 5896
    assert sum(e.path.startswith("data/train/") for e in entries) > 5000
