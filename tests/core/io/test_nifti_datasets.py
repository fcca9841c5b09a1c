"""NIfTI datasets and label maps (issue 13): the nnU-Net / MSD layouts index as patients, a label map's label is
threaded through ``open_scan(..., label=N)`` and ``Dataset.load(..., label=N)``. Built from the real chest crop."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from core.errors import HeartsegError
from core.io import open_scan
from core.store.dataset import is_nifti_dataset, open_dataset

pytestmark = pytest.mark.shared


def _label_map(chest_crop, path, heart=2, other=5):
    heart_img = nib.load(str(chest_crop / "heart.nii.gz"))
    lab = (np.asarray(heart_img.dataobj) > 0).astype(np.int16) * heart
    lab[:4] = other
    nib.save(nib.Nifti1Image(lab, heart_img.affine, heart_img.header), str(path))
    return path


def test_open_scan_label_map_needs_and_takes_a_label(chest_crop, tmp_path):
    labels = _label_map(chest_crop, tmp_path / "labels.nii.gz")
    with pytest.raises(HeartsegError, match=r"2 labels \(2, 5\).*--label") as info:
        open_scan(chest_crop / "ct.nii.gz", labels)
    assert "labels.nii.gz" in str(info.value)
    vol = open_scan(chest_crop / "ct.nii.gz", labels, label=2)
    heart_img = nib.load(str(chest_crop / "heart.nii.gz"))
    expected = (np.asarray(heart_img.dataobj) > 0).astype(np.uint8)
    expected[:4] = 0  # the voxels that became label 5
    nib.save(nib.Nifti1Image(expected, heart_img.affine, heart_img.header), str(tmp_path / "expected.nii.gz"))
    assert np.array_equal(vol.mask, open_scan(chest_crop / "ct.nii.gz", tmp_path / "expected.nii.gz").mask)
    assert vol.mask.sum() > 1000
    with pytest.raises(HeartsegError, match="label 7 is not in the mask"):
        open_scan(chest_crop / "ct.nii.gz", labels, label=7)


def test_nnunet_and_msd_layouts(chest_crop, tmp_path):
    root = tmp_path / "Dataset001_Heart"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    shutil.copy(chest_crop / "ct.nii.gz", root / "imagesTr" / "p1_0000.nii.gz")
    shutil.copy(chest_crop / "ct.nii.gz", root / "imagesTr" / "p1_0001.nii.gz")  # a second channel: skipped
    shutil.copy(chest_crop / "ct.nii.gz", root / "imagesTr" / "p2.nii.gz")  # MSD naming, no channel suffix
    _label_map(chest_crop, root / "labelsTr" / "p1.nii.gz")
    shutil.copy(chest_crop / "heart.nii.gz", root / "labelsTr" / "p2.nii.gz")
    shutil.copy(chest_crop / "ct.nii.gz", root / "imagesTs" / "t1_0000.nii.gz")
    assert is_nifti_dataset(root)
    ds = open_dataset(root)
    assert [(p.pid, p.split, p.has_masks, p.kind, p.n_slices) for p in ds.patients] == [
        ("p1", "train", True, "nifti", 112), ("p2", "train", True, "nifti", 112), ("t1", "test", False, "nifti", 112)]
    assert ds.load("p2").mask.sum() > 1000
    assert ds.load("t1").mask is None
    with pytest.raises(HeartsegError, match="--label"):
        ds.load("p1")
    assert ds.load("p1", label=2).mask.sum() > 1000


def test_plain_folder_of_niftis(chest_crop, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a.nii.gz", "b.nii"):
        nib.save(nib.load(str(chest_crop / "ct.nii.gz")), str(folder / name))
    assert is_nifti_dataset(folder)
    assert [p.pid for p in open_dataset(folder).patients] == ["a", "b"]
    (folder / "notes").mkdir()
    assert not is_nifti_dataset(folder)  # a folder with sub-folders is not a plain NIfTI folder
