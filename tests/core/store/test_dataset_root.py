"""The one rule for "this folder is a dataset" (core.store.listing.is_dataset_root), on real files (needs
../shared): a DICOM series folder stays a scan even with a NIfTI conversion saved beside its suffix-less slices."""

from __future__ import annotations

import shutil

import pytest

from core.io import open_scan
from core.store.listing import is_dataset_root

pytestmark = pytest.mark.shared


def test_a_dicom_folder_with_a_nifti_beside_it_is_a_scan(tmp_path, abdomen_dicom, chest_crop):
    folder = tmp_path / "series"
    shutil.copytree(abdomen_dicom, folder)
    assert not any(p.suffix.lower() == ".dcm" for p in folder.iterdir())  # slices named CT.1.2..., no .dcm
    shutil.copy(chest_crop / "ct.nii.gz", folder / "ct.nii.gz")   # e.g. dcm2niix's output saved beside them
    assert not is_dataset_root(folder)
    assert open_scan(folder).kind == "dicom"


def test_nifti_and_kaggle_datasets_are_datasets_and_a_patient_is_not(tmp_path, chest_crop):
    nifti = tmp_path / "nifti"
    (nifti / "imagesTr").mkdir(parents=True)
    shutil.copy(chest_crop / "ct.nii.gz", nifti / "imagesTr" / "c1_0000.nii.gz")
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(chest_crop / "ct.nii.gz", plain / "a.nii.gz")
    patient = chest_crop / "kaggle_layout" / "ts_pulm"
    assert is_dataset_root(nifti) and is_dataset_root(plain)
    assert is_dataset_root(chest_crop / "kaggle_layout") and not is_dataset_root(patient)
