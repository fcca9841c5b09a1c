"""NIfTI reading in the display convention, checked against the Kaggle-layout PNGs made from the same CT."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from core.errors import HeartsegError
from core.io import open_scan
from core.preprocess import to_kaggle_scale

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def chest(chest_crop):
    return open_scan(chest_crop / "ct.nii.gz", chest_crop / "heart.nii.gz")


@pytest.fixture(scope="module")
def kaggle_ref(kaggle_patient):
    return open_scan(kaggle_patient)


def test_geometry(chest, chest_crop):
    assert chest.kind == "nifti" and chest.intensity == "hu"
    assert chest.voxels.shape == (112, 102, 122) and chest.voxels.dtype == np.int16
    assert chest.voxels.min() == -1064 and chest.voxels.max() == 3343
    assert chest.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert nib.aff2axcodes(chest.affine) == ("L", "P", "I")
    assert chest.slice_names[0] == "1-001" and chest.source_files[0] == chest_crop / "ct.nii.gz"
    # the affine maps (col, row, slice) to the same world point as the original file's voxel
    src = nib.load(str(chest_crop / "ct.nii.gz"))
    data = np.asanyarray(src.dataobj)
    s, r, c = 5, 40, 70
    world = chest.affine @ [c, r, s, 1]
    ijk = np.rint(np.linalg.inv(src.affine) @ world).astype(int)[:3]
    assert data[tuple(ijk)] == chest.voxels[s, r, c]


def test_matches_kaggle_layout_pngs(chest, kaggle_ref):
    """ts_pulm PNGs were made from ct.nii.gz: (HU+1024)/max*255 per slice, anterior up, patient right on the
    left, 1-001 most superior."""
    scaled = to_kaggle_scale(chest)
    assert scaled.shape == kaggle_ref.voxels.shape
    assert np.abs(scaled.astype(int) - kaggle_ref.voxels.astype(int)).max() <= 1
    assert np.array_equal(chest.mask, kaggle_ref.mask)
    assert chest.mask.sum() == 198176 and int((chest.mask.sum(axis=(1, 2)) > 0).sum()) == 86
    assert chest.mask_present.all()


def test_any_storage_orientation_gives_the_same_volume(chest, chest_crop, tmp_path):
    src = nib.load(str(chest_crop / "ct.nii.gz"))
    for codes in (("R", "A", "S"), ("S", "L", "A")):
        ornt = nib.orientations.ornt_transform(nib.orientations.io_orientation(src.affine),
                                               nib.orientations.axcodes2ornt(codes))
        path = tmp_path / f"{''.join(codes)}.nii.gz"
        nib.save(src.as_reoriented(ornt), str(path))
        v = open_scan(path)
        assert np.array_equal(v.voxels, chest.voxels)
        assert np.allclose(v.affine, chest.affine)
        assert v.spacing == pytest.approx(chest.spacing)


def test_4d_refused_unless_singleton(tmp_path):
    data = np.zeros((8, 9, 5, 2), np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "four.nii.gz"))
    with pytest.raises(HeartsegError, match="4-D") as err:
        open_scan(tmp_path / "four.nii.gz")
    assert str(err.value).startswith(str(tmp_path / "four.nii.gz"))
    nib.save(nib.Nifti1Image(data[..., :1], np.eye(4)), str(tmp_path / "one.nii"))
    assert open_scan(tmp_path / "one.nii").voxels.shape == (5, 9, 8)


def test_mask_on_other_grid_refused(chest_crop, tmp_path):
    bad = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4)), str(bad))
    with pytest.raises(HeartsegError, match="same grid") as err:
        open_scan(chest_crop / "ct.nii.gz", bad)
    assert str(err.value).startswith(str(bad))


def test_broken_nifti_named(tmp_path):
    bad = tmp_path / "x.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    with pytest.raises(HeartsegError) as err:
        open_scan(bad)
    assert str(err.value).startswith(str(bad)) and "\n" not in str(err.value)
    with pytest.raises(HeartsegError, match="not found|cannot"):
        open_scan(tmp_path / "missing.nii.gz")


def test_huge_nifti_header_refused(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.header.set_data_shape((20000, 20000, 3))
    path = tmp_path / "huge.nii"
    hdr_bytes = img.header.binaryblock + b"\x00" * 4 + np.zeros(8, np.int16).tobytes()
    path.write_bytes(hdr_bytes)
    with pytest.raises(HeartsegError, match="limit") as err:
        open_scan(path)
    assert str(err.value).startswith(str(path))
