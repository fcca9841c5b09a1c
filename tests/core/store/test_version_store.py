"""Saves that leave no mess (issue 12 item 6, issue 15): versions stored by content with a visible retention rule,
only changed slices written, restore all-or-nothing, stale temporaries cleaned on open, the dataset's permissions."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from core.atomic import sha256_bytes
from core.errors import HeartsegError
from core.io.masks import encode_mask_png
from core.store import _commit, writeback
from core.store.dataset import list_versions, open_dataset, restore_version, save_masks
from core.store.locking import acquire_lock
from tests.corpus import SAMPLE_PATIENT

ROOT = Path(__file__).resolve().parents[3]
N = 8


@pytest.fixture
def patient(tmp_path) -> Path:
    """data/train/p1 with 8 of the bundled sample's slices (image + dataset mask), folders 0755, files 0644."""
    p = tmp_path / "ds" / "data" / "train" / "p1"
    names = sorted(f.name for f in (SAMPLE_PATIENT / "image").glob("*.png"))[40:40 + N]
    for sub in ("image", "mask"):
        (p / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(SAMPLE_PATIENT / sub / n, p / sub / n)
            os.chmod(p / sub / n, 0o644)
        os.chmod(p / sub, 0o755)
    return p


def _names(patient: Path) -> list[str]:
    return [f.stem for f in sorted((patient / "image").glob("*.png"))]


def _masks(patient: Path) -> np.ndarray:
    return open_dataset(patient.parents[2]).load("p1").mask.copy()


def _mask_state(patient: Path) -> dict[str, tuple[bytes, int, int]]:
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns, f.stat().st_ino)
            for f in sorted((patient / "mask").iterdir()) if not f.name.startswith(".")}


def test_a_save_writes_only_changed_slices_and_an_unchanged_save_adds_no_version(patient):
    names = _names(patient)
    masks = _masks(patient)
    masks[2, 5:20, 5:20] = 1
    save_masks(patient, "p1", masks, names)
    before = _mask_state(patient)
    versions = list_versions(patient)
    time.sleep(0.02)
    masks[5, 30:40, 30:40] = 1 - masks[5, 30:40, 30:40]
    save_masks(patient, "p1", masks, names)
    after = _mask_state(patient)
    changed = sorted(n for n in before if before[n] != after[n])
    assert changed == [f"{names[5]}.png"], changed  # the 7 others keep bytes, mtime and inode
    assert len(list_versions(patient)) == len(versions) + 1
    for _ in range(5):  # saving the same masks again: nothing written, no version added
        assert save_masks(patient, "p1", masks, names) is None
    assert _mask_state(patient) == after
    assert len(list_versions(patient)) == len(versions) + 1


def test_versions_are_deduplicated_by_content(patient):
    names = _names(patient)
    masks = _masks(patient)
    for k in range(12):  # each save changes one slice
        masks[k % N, k:k + 10, 0:10] = 1 - masks[k % N, k:k + 10, 0:10]
        save_masks(patient, "p1", masks, names)
    versions = list_versions(patient)
    assert len(versions) == 12 and all(v.n_masks == N for v in versions)
    blobs = list((patient / ".heartseg" / "blobs").glob("*.png"))
    contents = {sha256_bytes(f.read_bytes()) for v in versions for f in v.path.iterdir()}
    assert {b.stem for b in blobs} == contents  # each content stored once, none unused
    # the dataset's own files (at most 8 contents), heartseg's re-encoding of them (the first save rewrites
    # every slice: the bytes differ), then one new content per later save
    assert len(blobs) <= 2 * N + 11, len(blobs)
    inodes = {(f.stat().st_ino) for v in versions for f in v.path.iterdir()}
    assert len(inodes) == len(blobs)  # every version file is a hard link to its blob
    stored = sum(b.stat().st_size for b in blobs)
    one_copy = sum(f.stat().st_size for f in (patient / "mask").iterdir())
    assert stored < 3 * one_copy  # 12 full copies before
    # every version still reads back exactly: restore the first, then the newest
    first = {f.name: f.read_bytes() for f in versions[0].path.iterdir()}
    restore_version(patient, versions[0].version_id)
    assert {f.name: f.read_bytes() for f in (patient / "mask").iterdir()} == first


def test_retention_keeps_the_last_n_and_one_per_day():
    now = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    ids = [f"202612{d:02d}T10{m:02d}00_000000Z" for d in range(1, 2) for m in range(30)]  # 30 today
    ids += [f"202611{d:02d}T0900{s:02d}_000000Z" for d in range(1, 31) for s in range(2)]  # 2 a day in November
    ids += ["20250101T000000_000000Z", "20250101T010000_000000Z", "my-notes"]  # old, and a foreign folder
    keep = writeback.versions_to_keep(ids, now=now)
    today = sorted(i for i in ids if i.startswith("20261201"))
    assert set(today[-writeback.KEEP_LAST:]) <= keep and not set(today[:-writeback.KEEP_LAST]) & keep
    for d in range(1, 31):
        day = sorted(i for i in ids if i.startswith(f"202611{d:02d}"))
        assert day[-1] in keep and day[0] not in keep  # the newest of each day within 90 days
    assert "my-notes" in keep and not {"20250101T000000_000000Z", "20250101T010000_000000Z"} & keep


def test_many_saves_are_pruned_by_the_rule_and_unused_blobs_removed(patient):
    names = _names(patient)
    masks = _masks(patient)
    base = patient / ".heartseg" / "versions"
    for k in range(writeback.KEEP_LAST + 10):
        masks[0, 0:5, 0:5] = k % 2
        masks[1, k:k + 3, 50:53] = 1
        save_masks(patient, "p1", masks, names)
    versions = list_versions(patient)
    assert len(versions) == writeback.KEEP_LAST  # all made today: the last 20 only
    linked = {f.stat().st_ino for v in versions for f in v.path.iterdir()}
    blobs = {b.stat().st_ino for b in (patient / ".heartseg" / "blobs").glob("*.png")}
    assert blobs == linked  # no blob without a version
    assert not [p for p in base.iterdir() if p.name.startswith(".")]


def test_version_folders_keep_the_datasets_permissions(patient):
    os.chmod(patient / "mask", 0o750)
    for f in (patient / "mask").iterdir():
        os.chmod(f, 0o640)
    old = os.umask(0o077)
    try:
        names = _names(patient)
        masks = _masks(patient)
        masks[:, 0:4, 0:4] = 1
        save_masks(patient, "p1", masks, names)
    finally:
        os.umask(old)
    (version,) = list_versions(patient)
    assert stat.S_IMODE(version.path.stat().st_mode) == 0o750
    assert stat.S_IMODE((patient / ".heartseg" / "versions").stat().st_mode) == 0o750
    assert {stat.S_IMODE(f.stat().st_mode) for f in version.path.iterdir()} == {0o640}


def _plant_temporaries(patient: Path, age_s: float) -> list[Path]:
    hs = patient / ".heartseg"
    (hs / "versions").mkdir(parents=True, exist_ok=True)
    planted = [patient / "mask" / ".1-041.k2j4_x9a.tmp.png", hs / ".review.abcd1234.tmp.json",
               hs / "versions" / ".tmp-q1w2e3r4"]
    planted[0].write_bytes(b"half a png")
    planted[1].write_text("{")
    planted[2].mkdir(exist_ok=True)
    (planted[2] / "1-041.png").write_bytes(b"x")
    t = time.time() - age_s
    for p in planted:
        os.utime(p, (t, t))
    return planted


def test_stale_temporaries_of_killed_saves_are_removed_on_open(patient):
    old = _plant_temporaries(patient, age_s=3600)
    keep = patient / ".notes.txt"  # a user's hidden file, not ours
    keep.write_text("mine")
    open_dataset(patient.parents[2])
    assert not [p for p in old if p.exists()]
    assert keep.exists()


def test_fresh_temporaries_and_those_of_a_live_editor_are_left_alone(patient):
    fresh = _plant_temporaries(patient, age_s=0)
    open_dataset(patient.parents[2])
    assert all(p.exists() for p in fresh)  # may belong to a write in progress
    old = _plant_temporaries(patient, age_s=3600)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from core.store.locking import acquire_lock\n"
                               f"lock = acquire_lock({str(patient)!r}); print('locked', flush=True); time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        open_dataset(patient.parents[2])
        assert all(p.exists() for p in old)  # another live window edits: nothing touched
    finally:
        holder.kill()
        holder.wait()
    open_dataset(patient.parents[2])
    assert not [p for p in old if p.exists()]


def test_the_lock_holder_cleans_at_once(patient):
    fresh = _plant_temporaries(patient, age_s=0)
    with acquire_lock(patient):
        done = writeback.recover_patient(patient, min_age_s=0)
    assert not [p for p in fresh if p.exists()] and "temporary" in " ".join(done)


def test_an_interrupted_restore_is_finished_on_open(patient):
    names = _names(patient)
    orig = {f.name: f.read_bytes() for f in (patient / "mask").iterdir()}
    masks = _masks(patient)
    masks[:, 10:20, 10:20] = 1
    save_masks(patient, "p1", masks, names)
    (v0,) = list_versions(patient)
    # the state right after restore_version's commit point: blobs stored, commit.json written, no file replaced
    wanted = {name: sha256_bytes(data) for name, data in orig.items()}
    (patient / ".heartseg" / "commit.json").write_text(json.dumps(
        {"format": "heartseg-commit", "op": "restore", "files": wanted, "remove": []}))
    (patient / "mask" / f"{names[0]}.png").write_bytes(orig[f"{names[0]}.png"])  # one file already renamed
    ds = open_dataset(patient.parents[2])
    assert {f.name: f.read_bytes() for f in (patient / "mask").iterdir()} == orig
    assert not (patient / ".heartseg" / "commit.json").exists()
    assert ds.load("p1").mask is not None and v0.path.is_dir()


@pytest.mark.parametrize("content", ["{", "[]", '{"files": {"../../image/1-041.png": "' + "0" * 64 + '"}, '
                                     '"remove": []}', '{"files": {}, "remove": ["/etc/hostname"]}'])
def test_a_damaged_commit_record_is_one_line_naming_it_and_touches_nothing(patient, content):
    before = {f.name: f.read_bytes() for f in (patient / "image").iterdir()}
    (patient / ".heartseg").mkdir()
    commit = patient / ".heartseg" / "commit.json"
    commit.write_text(content)
    ds = open_dataset(patient.parents[2])  # indexing never fails on it
    with pytest.raises(HeartsegError) as info:
        ds.load("p1")
    assert "\n" not in str(info.value) and "commit.json" in str(info.value)
    assert {f.name: f.read_bytes() for f in (patient / "image").iterdir()} == before
    assert commit.exists()


def test_a_failed_restore_changes_nothing(patient, monkeypatch):
    names = _names(patient)
    masks = _masks(patient)
    masks[:, 0:30, 0:30] = 1
    save_masks(patient, "p1", masks, names)
    (v0,) = list_versions(patient)
    current = {f.name: f.read_bytes() for f in (patient / "mask").iterdir()}
    real = _commit.write_many_atomic

    def full(items):
        raise HeartsegError("cannot save: No space left on device", patient / "mask")

    monkeypatch.setattr(_commit, "write_many_atomic", full)
    with pytest.raises(HeartsegError, match="No space"):
        restore_version(patient, v0.version_id)
    monkeypatch.setattr(_commit, "write_many_atomic", real)
    assert {f.name: f.read_bytes() for f in (patient / "mask").iterdir()} == current
    assert not (patient / ".heartseg" / "commit.json").exists()
    open_dataset(patient.parents[2]).load("p1")
    assert {f.name: f.read_bytes() for f in (patient / "mask").iterdir()} == current


def test_restore_removes_masks_the_version_did_not_have(patient):
    names = _names(patient)
    (patient / "mask" / f"{names[3]}.png").unlink()
    masks = _masks(patient)
    masks[:, 0:9, 0:9] = 1
    save_masks(patient, "p1", masks, names)
    assert (patient / "mask" / f"{names[3]}.png").exists()
    (v0,) = list_versions(patient)
    kept = restore_version(patient, v0.version_id)
    assert not (patient / "mask" / f"{names[3]}.png").exists()
    assert {f.name for f in kept.path.iterdir()} == {f"{n}.png" for n in names}
    assert (kept.path / f"{names[3]}.png").read_bytes() == encode_mask_png(masks[3])


@pytest.mark.parametrize("bad", ["", ".tmp-x", "../versions", "a/b", ".."])
def test_restore_refuses_names_that_are_not_versions(patient, bad):
    with pytest.raises(HeartsegError, match="no saved mask version"):
        restore_version(patient, bad)
