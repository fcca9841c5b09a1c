"""Issue 12 item 7, the leftovers, in process: names that sanitise alike get distinct output names, a patient folder
named ``..p`` is listed (one-dot folders stay hidden but are reported), outputs are staged and appear all at once or
not at all, and NaN / infinite voxels of a real NIfTI become the scan's lowest value instead of blank slices.

The same promises through the ``heartseg`` command line (a subprocess, a real full disk): tests/core/cli/
test_cli_leftovers_12.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import HeartsegError
from core.io.common import is_hidden_name
from core.store.dataset import open_dataset, output_name
from core.store.outputs import STAGING_PREFIX, remove_stale_staging, staged_output
from tests.corpus import kaggle_patient, tree_state


# ------------------------------------------------------------------------------------------- output names
def test_names_that_sanitise_alike_get_distinct_output_names(tmp_path):
    groups = [("p 1", "p_1", "p/1", "p\\1", "p\n1"), ("..p", "p", ".p", "p."), ("", ".", "..", "é", "\x01")]
    for group in groups:
        names = [output_name(n) for n in group]
        assert len(set(names)) == len(names), dict(zip(group, names, strict=True))
        for safe in names:
            assert safe and "/" not in safe and "\\" not in safe and safe not in (".", "..")
            assert (tmp_path / safe).resolve().parent == tmp_path.resolve()
    assert output_name("p_1") == "p_1" and output_name("100051") == "100051"  # clean names are kept as they are
    assert output_name("p 1") == output_name("p 1")                         # and the suffix is deterministic
    long = ["a" * 70 + "x", "a" * 70 + "y"]                                  # names cut at 64 characters
    assert output_name(long[0]) != output_name(long[1]) and all(len(output_name(n)) <= 64 for n in long)


# ------------------------------------------------------------------------------------------- listing patients
def test_hidden_names_are_one_dot_folders_only():
    assert is_hidden_name(".heartseg") and is_hidden_name(".git") and is_hidden_name(".p")
    assert not is_hidden_name("..p") and not is_hidden_name("...") and not is_hidden_name("p.")


def test_dot_dot_patient_is_listed_and_one_dot_patients_are_reported(tmp_path):
    train = tmp_path / "ds" / "data" / "train"
    for pid in ("..p", "p", "...", "p 1", "p_1", ".hidden_copy"):
        kaggle_patient(train / pid, n=2, rows=16, cols=16)
    kaggle_patient(train / ".p.adding-abc123", n=1, rows=16, cols=16)  # add_patient's half-built patient
    (train / ".heartseg").mkdir()
    (train / ".git" / "objects").mkdir(parents=True)
    ds = open_dataset(tmp_path / "ds")
    assert sorted(ds.pids) == sorted(["..p", "p", "...", "p 1", "p_1"])
    assert [p.name for p in ds.hidden] == [".hidden_copy"]  # heartseg's own folders and non-patients are not named
    vol = ds.load("..p")
    assert vol.n_slices == 2 and vol.mask is not None
    assert ds.patient_dir("..p") == train / "..p"
    # a folder whose only patient is hidden: the refusal names it
    only = tmp_path / "only"
    kaggle_patient(only / ".secret", n=1, rows=16, cols=16)
    with pytest.raises(HeartsegError, match=r"hidden folders skipped: \.secret"):
        open_dataset(only)


def test_nifti_folder_lists_dot_dot_scans_and_reports_hidden_ones(tmp_path):
    import nibabel as nib

    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("..p.nii.gz", "p.nii.gz", "p 1.nii.gz", ".x.nii.gz", "._p.nii.gz"):
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.int16), np.eye(4)), str(folder / name))
    ds = open_dataset(folder)
    assert sorted(ds.pids) == ["..p", "p", "p 1"]
    assert [p.name for p in ds.hidden] == [".x.nii.gz"]  # a macOS ._ resource fork is no scan
    assert len({output_name(pid) for pid in ds.pids}) == 3


# ------------------------------------------------------------------------------------------- staged outputs
def test_staged_output_appears_all_at_once_and_merges(tmp_path):
    out = tmp_path / "out"
    (out / "case" / "image").mkdir(parents=True)
    (out / "case" / "image" / "old.png").write_bytes(b"old")
    (out / "keep.txt").write_text("mine")
    (out / "qc.csv").write_text("previous")
    with staged_output(out) as stage:
        assert stage.parent == out and stage.name.startswith(STAGING_PREFIX)
        (stage / "case" / "image").mkdir(parents=True)
        (stage / "case" / "image" / "1.png").write_bytes(b"new")
        (stage / "case" / "mask").mkdir()
        (stage / "case" / "mask" / "1.png").write_bytes(b"m")
        (stage / "qc.csv").write_text("this run")
        assert not (out / "case" / "image" / "1.png").exists()  # nothing is visible before the end
    assert (out / "case" / "image" / "1.png").read_bytes() == b"new"
    assert (out / "case" / "image" / "old.png").read_bytes() == b"old"
    assert (out / "case" / "mask" / "1.png").read_bytes() == b"m"
    assert (out / "qc.csv").read_text() == "this run" and (out / "keep.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]


@pytest.mark.parametrize("failure", [OSError, KeyboardInterrupt, HeartsegError])
def test_failed_staged_output_changes_nothing(tmp_path, failure):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "a.txt").write_text("a")
    before = tree_state(existing)
    for out in (existing, tmp_path / "new" / "deeper"):
        with pytest.raises((failure, HeartsegError)):
            with staged_output(out) as stage:
                (stage / "a.txt").write_text("half")
                (stage / "b.txt").write_text("half")
                raise failure("stop") if failure is not KeyboardInterrupt else failure()
    assert tree_state(existing) == before
    assert not (tmp_path / "new").exists(), "a folder the failed command created must go again"


def test_full_disk_is_one_line_naming_the_output(tmp_path):
    import errno

    out = tmp_path / "out"
    with pytest.raises(HeartsegError) as info:
        with staged_output(out) as stage:
            (stage / "x").write_text("1")
            raise HeartsegError("cannot save: No space left on device", stage / "x") from \
                OSError(errno.ENOSPC, "No space left on device")
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{out}: ") and "disk is full" in text
    assert "nothing was written" in text and not out.exists()


def test_staged_output_never_writes_through_a_link(tmp_path):
    elsewhere = tmp_path / "patient"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "case").symlink_to(elsewhere)
    with pytest.raises(HeartsegError, match="symbolic link"):
        with staged_output(out) as stage:
            (stage / "case").mkdir()
            (stage / "case" / "1.png").write_bytes(b"x")
    assert list(elsewhere.iterdir()) == []


def test_stale_staging_of_a_killed_command_is_removed(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    out = tmp_path / "out"
    stale = out / f"{STAGING_PREFIX}{dead}-abc"
    (stale / "case").mkdir(parents=True)
    fresh = out / f"{STAGING_PREFIX}{dead}-new"
    fresh.mkdir()
    live = out / f"{STAGING_PREFIX}{os.getppid()}-xyz"
    live.mkdir()
    old = time.time() - 3600
    for p in (stale, live):
        os.utime(p, (old, old))
    assert remove_stale_staging(out) == [stale]
    assert fresh.is_dir() and live.is_dir()  # too recent / its process still runs


# ------------------------------------------------------------------------------------------- NaN voxels
def nan_ct(source: Path, target: Path) -> tuple[Path, dict]:
    """The real CT ``source`` as float32 with NaN / +inf / -inf injected; returns the file and where (NIfTI z)."""
    import nibabel as nib

    img = nib.load(str(source))
    data = np.asarray(img.dataobj).astype(np.float32)
    rng = np.random.default_rng(0)
    data[0:30, 0:30, 50] = np.nan                     # a block
    sl = data[:, :, 40]
    sl[rng.random(sl.shape) < 0.02] = np.nan          # scattered voxels
    data[0:5, 0:5, 70] = np.inf
    data[0:4, 0:4, 30] = -np.inf
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(data, img.affine, header), str(target))
    return target, {"z": (30, 40, 50, 70), "count": int((~np.isfinite(data)).sum())}


@pytest.mark.shared
def test_nan_voxels_of_a_real_ct_become_its_lowest_value(chest_crop, tmp_path):
    from core.io import geometry_warnings, open_scan
    from core.preprocess import to_kaggle_scale

    clean = open_scan(chest_crop / "ct.nii.gz")
    path, where = nan_ct(chest_crop / "ct.nii.gz", tmp_path / "nan.nii.gz")
    vol = open_scan(path)
    assert vol.voxels.dtype == np.float32 and np.isfinite(vol.voxels).all()
    assert vol.metadata["nonfinite_voxels"] == where["count"]
    lowest = float(clean.voxels.min())
    assert vol.metadata["nonfinite_fill"] == lowest
    bad = np.asarray(vol.voxels != clean.voxels)
    assert int(bad.sum()) <= where["count"] and np.all(vol.voxels[bad] == lowest)
    (line,) = geometry_warnings(vol)
    assert f"{where['count']} voxels hold no number" in line
    images, reference = to_kaggle_scale(vol), to_kaggle_scale(clean)
    for z in where["z"]:
        k = vol.n_slices - 1 - z  # display order: slice 0 most superior (NIfTI z ascending is inferior -> superior)
        assert images[k].max() > 0, f"display slice {k} exported blank"
        same = ~bad[k]
        np.testing.assert_array_equal(images[k][same], reference[k][same])


def test_a_scan_without_any_number_is_refused_naming_it(tmp_path):
    import nibabel as nib

    from core.io import open_scan

    path = tmp_path / "all nan.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), np.nan, np.float32), np.eye(4)), str(path))
    with pytest.raises(HeartsegError) as info:
        open_scan(path)
    assert str(info.value).startswith(f"{path}: ") and "NaN" in str(info.value)


def test_a_root_whose_only_patient_is_dot_dot_named_is_a_dataset_root(tmp_path):
    """``..p`` is an ordinary name wherever folders are listed, also when a dataset root is recognised."""
    from core.io import looks_like_dataset_root
    from core.io.common import list_dirs
    from tests.helpers import sample_patient_copy

    root = tmp_path / "root"
    patient = sample_patient_copy(tmp_path / "tmp", slice(50, 53))
    root.mkdir()
    patient.rename(root / "..p")
    (root / ".hidden").mkdir()
    assert [p.name for p in list_dirs(root)] == ["..p"]
    assert looks_like_dataset_root(root)
