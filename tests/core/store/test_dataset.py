"""Dataset index, patient split, write-back with versions and sidecar, add_patient, training pairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import HeartsegError
from core.io import open_scan
from core.store.dataset import (
    CORRECTED_WEIGHT_HINT,
    add_patient,
    list_versions,
    open_dataset,
    patient_split,
    read_review,
    restore_version,
    review_states,
    sanitize_pid,
    save_masks,
)
from tests.helpers import read_mask_png

N_SLICES = 12


def _copy_patient(src: Path, dst: Path, first: int = 40) -> None:
    for sub in ("image", "mask"):
        (dst / sub).mkdir(parents=True)
        for k in range(first, first + N_SLICES):
            shutil.copy(src / sub / f"1-{k:03d}.png", dst / sub / f"1-{k - first + 1:03d}.png")


@pytest.fixture
def kaggle_root(tmp_path, kaggle_patient, abdomen_dicom):
    root = tmp_path / "ct-heart"
    for i, pid in enumerate(("100051", "100052", "100060")):
        _copy_patient(kaggle_patient, root / "data" / "train" / pid, first=30 + 5 * i)
    series = root / "data" / "test" / "100251" / "2-0OPAGELSQXD3602.5120nullnullnull-72944"
    series.mkdir(parents=True)
    for k, f in enumerate(sorted(abdomen_dicom.glob("CT.*"))[:5]):
        shutil.copy(f, series / f"1-{k + 1:03d}.dcm")
    return root


pytestmark = pytest.mark.shared


def test_open_dataset_layouts(kaggle_root):
    ds = open_dataset(kaggle_root)
    assert ds.pids == ["100051", "100052", "100060", "100251"]
    train = ds.entry("100052")
    assert (train.split, train.n_slices, train.has_masks, train.kind) == ("train", N_SLICES, True, "kaggle_patient")
    assert train.review["not_reviewed"] == N_SLICES
    test = ds.entry("100251")
    assert (test.split, test.n_slices, test.has_masks, test.kind) == ("test", 5, False, "dicom")
    assert open_dataset(kaggle_root / "data").pids == ds.pids
    only_train = open_dataset(kaggle_root / "data" / "train")
    assert only_train.pids == ["100051", "100052", "100060"] and only_train.patients[0].split == "train"
    single = open_dataset(kaggle_root / "data" / "train" / "100060")
    assert single.pids == ["100060"]
    vol = ds.load("100052")
    assert vol.kind == "kaggle_patient" and vol.voxels.shape == (N_SLICES, 102, 122) and vol.mask is not None
    assert ds.load("100251").kind == "dicom"
    with pytest.raises(HeartsegError, match="open_dataset"):
        open_scan(kaggle_root)
    with pytest.raises(HeartsegError, match="no patients"):
        open_dataset(kaggle_root / "data" / "test" / "100251" / "2-0OPAGELSQXD3602.5120nullnullnull-72944")


def test_patient_split_is_deterministic_and_stable():
    pids = [f"1000{k:02d}" for k in range(51, 70)]
    train, val = patient_split(pids, 0.2, seed=0)
    assert len(val) == 4 and len(train) == 15 and not set(train) & set(val)
    assert patient_split(list(reversed(pids)), 0.2, seed=0) == (train, val)
    assert patient_split(pids + pids[:3], 0.2, seed=0) == (train, val)  # duplicates ignored
    assert patient_split(pids, 0.2, seed=1) != (train, val)
    assert patient_split(["a", "b"], 0.2) in ((["a"], ["b"]), (["b"], ["a"]))
    assert patient_split(pids, val_patients=["100055", "100060"]) == \
        ([p for p in pids if p not in ("100055", "100060")], ["100055", "100060"])
    with pytest.raises(HeartsegError, match="nope"):
        patient_split(pids, val_patients=["nope"])


def test_save_masks_round_trip_originals_versions_sidecar(kaggle_root):
    ds = open_dataset(kaggle_root)
    pat = ds.patient_dir("100051")
    image_bytes = {p.name: p.read_bytes() for p in (pat / "image").iterdir()}
    vol = ds.load("100051")
    original = vol.mask.copy()
    names = vol.slice_names

    edited = original.copy()
    edited[3] = 0
    edited[4, 10:30, 10:30] = 1
    v1 = save_masks(ds, "100051", edited, names, review={names[3]: "corrected", 4: "accepted"}, ai_masks=original)
    assert v1 is not None and v1.n_masks == N_SLICES
    assert np.array_equal(open_scan(pat).mask, edited)
    for k in (3, 4):
        assert np.array_equal(read_mask_png(pat / ".heartseg" / "original_masks" / f"{names[k]}.png"), original[k])
    sidecar = read_review(pat)
    assert sidecar["slices"][names[3]]["state"] == "corrected"
    assert sidecar["slices"][names[4]]["state"] == "accepted"
    assert sidecar["slices"][names[0]]["state"] == "not_reviewed" and "saved_at" in sidecar["slices"][names[0]]
    assert sidecar["slices"][names[0]]["dice_ai"] == 1.0
    assert 0 <= sidecar["slices"][names[4]]["dice_ai"] < 1.0
    json.loads((pat / ".heartseg" / "review.json").read_text())

    second = edited.copy()
    second[5] = 0
    v2 = save_masks(pat, "100051", second, names, review={names[5]: "flagged"})
    assert np.array_equal(open_scan(pat).mask, second)
    # originals are the dataset's masks, not the first heartseg save
    assert np.array_equal(read_mask_png(pat / ".heartseg" / "original_masks" / f"{names[5]}.png"), original[5])
    versions = list_versions(pat)
    assert [v.version_id for v in versions] == [v1.version_id, v2.version_id]
    assert np.array_equal(open_scan(v1.path).voxels // 255, original)  # version 1 = the dataset's masks
    assert np.array_equal(open_scan(v2.path).voxels // 255, edited)

    restore_version(pat, v1.version_id)
    assert np.array_equal(open_scan(pat).mask, original)
    assert len(list_versions(pat)) == 3  # the state before the restore was kept too
    assert {p.name: p.read_bytes() for p in (pat / "image").iterdir()} == image_bytes  # image/ never touched
    states = review_states(pat, names)
    assert states[names[5]] == "flagged" and states[names[3]] == "corrected"

    ds2 = open_dataset(kaggle_root)
    assert ds2.entry("100051").review == {"not_reviewed": N_SLICES - 3, "accepted": 1, "corrected": 1,
                                          "flagged": 1}
    pairs = ds2.training_pairs(["100051", "100052"])
    assert len(pairs) == 2 * N_SLICES - 1 and names[5] not in [p.image_path.stem for p in pairs if
                                                               p.pid == "100051"]
    corrected = [p for p in pairs if p.state == "corrected"]
    assert len(corrected) == 1 and corrected[0].weight_hint == CORRECTED_WEIGHT_HINT
    assert [p.image_path.name for p in pairs[:3]] == ["1-001.png", "1-002.png", "1-003.png"]
    assert all(p.mask_path.name == p.image_path.name for p in pairs)
    assert len(ds2.training_pairs(["100051"], skip_flagged=False)) == N_SLICES


def test_save_masks_refuses_bad_input(kaggle_root):
    pat = kaggle_root / "data" / "train" / "100052"
    masks = np.zeros((1, 102, 122), np.uint8)
    with pytest.raises(HeartsegError):
        save_masks(pat, "100052", masks, ["1-999"])  # no such image
    with pytest.raises(HeartsegError, match="122 x 102"):
        save_masks(pat, "100052", np.zeros((1, 10, 10), np.uint8), ["1-001"])
    with pytest.raises(HeartsegError):
        save_masks(pat, "100052", masks, ["../../x"])
    with pytest.raises(ValueError):
        save_masks(pat, "100052", masks, ["1-001"], review={"1-001": "great"})


def test_add_patient_from_nifti(kaggle_root, chest_crop):
    vol = open_scan(chest_crop / "ct.nii.gz", chest_crop / "heart.nii.gz")
    target = add_patient(kaggle_root, "../../new patient/1", vol, vol.mask, review={0: "accepted"})
    assert target.parent == kaggle_root / "data" / "train" and target.name == "new_patient_1"
    added = open_scan(target)
    assert added.kind == "kaggle_patient" and added.voxels.shape == vol.voxels.shape
    ref = open_scan(chest_crop / "kaggle_layout" / "ts_pulm")
    assert np.abs(added.voxels.astype(int) - ref.voxels.astype(int)).max() <= 1
    assert np.array_equal(added.mask, vol.mask)
    assert review_states(target)["1-001"] == "accepted"
    source = json.loads((target / ".heartseg" / "source.json").read_text())
    assert source["source_kind"] == "nifti" and source["spacing_mm"] == [1.5, 1.5, 1.5]
    assert "new_patient_1" in open_dataset(kaggle_root).pids
    with pytest.raises(HeartsegError, match="already exists"):
        add_patient(kaggle_root, "new_patient_1", vol)
    with pytest.raises(HeartsegError, match="already exists"):
        add_patient(kaggle_root, "100051", vol)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no half-written temp folder


def test_add_patient_records_ai_dice_per_slice(kaggle_root, chest_crop):
    vol = open_scan(chest_crop / "ct.nii.gz", chest_crop / "heart.nii.gz")
    ai = vol.mask.copy()
    ai[60] = 0  # the AI missed slice 61
    target = add_patient(kaggle_root, "with_ai", vol, vol.mask, ai_masks=ai)
    slices = json.loads((target / ".heartseg" / "review.json").read_text())["slices"]
    assert slices["1-061"]["dice_ai"] == 0.0 and slices["1-060"]["dice_ai"] == 1.0
    assert slices["1-001"]["state"] == "not_reviewed" and "saved_at" in slices["1-001"]


def test_sanitize_pid():
    assert sanitize_pid("100051") == "100051"
    assert sanitize_pid("a/b\\c d") == "a_b_c_d"
    assert sanitize_pid("..hidden") == "hidden"
    for bad in ("..", "/", "", "...", "__"):
        with pytest.raises(HeartsegError):
            sanitize_pid(bad)
