"""Mask PNG / NIfTI writers and readers round-trip exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.errors import HeartsegError
from core.io import open_scan, write_mask_nifti, write_mask_png, write_mask_pngs
from core.io.nifti import read_nifti_mask
from core.types import Volume
from tests.helpers import read_mask_png


def _random_mask(shape, seed=0):
    return (np.random.default_rng(seed).random(shape) > 0.6).astype(np.uint8)


def test_png_round_trip_and_format(tmp_path):
    m = _random_mask((33, 47))
    write_mask_png(tmp_path / "m.png", m)
    raw = cv2.imread(str(tmp_path / "m.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint8 and raw.ndim == 2 and set(np.unique(raw)) == {0, 255}
    assert np.array_equal(read_mask_png(tmp_path / "m.png", (33, 47)), m)
    with pytest.raises(HeartsegError, match="47 x 33") as err:
        read_mask_png(tmp_path / "m.png", (30, 30))
    assert str(err.value).startswith(str(tmp_path / "m.png"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    with pytest.raises(ValueError):
        write_mask_png(tmp_path / "bad.png", np.full((3, 3), 255, np.uint8))


def test_png_stack_round_trip(tmp_path):
    masks = _random_mask((4, 10, 12), seed=1)
    names = ["1-1", "1-2", "1-10", "1-3.png"]
    paths = write_mask_pngs(tmp_path / "mask", masks, names)
    assert [p.name for p in paths] == ["1-1.png", "1-2.png", "1-10.png", "1-3.png"]
    for p, m in zip(paths, masks):
        assert np.array_equal(read_mask_png(p), m)
    with pytest.raises(HeartsegError):
        write_mask_pngs(tmp_path / "mask", masks[:1], ["../evil"])


@pytest.mark.shared
def test_nifti_round_trip_on_scan_grid(chest_crop, tmp_path):
    vol = open_scan(chest_crop / "ct.nii.gz", chest_crop / "heart.nii.gz")
    out = tmp_path / "heart_out.nii.gz"
    write_mask_nifti(out, vol.mask, vol)
    assert np.array_equal(read_nifti_mask(out, vol), vol.mask)
    # and it lines up with the source when read as the scan's mask
    again = open_scan(chest_crop / "ct.nii.gz", out)
    assert np.array_equal(again.mask, vol.mask)


def test_nifti_without_affine_uses_spacing(tmp_path):
    vox = np.zeros((3, 4, 5), np.uint8)
    vol = Volume(vox, (2.0, 0.5, 0.7), None, ["a", "b", "c"], "kaggle8bit", "png_folder", "x")
    m = _random_mask(vox.shape, seed=2)
    write_mask_nifti(tmp_path / "m.nii.gz", m, vol)
    import nibabel as nib
    img = nib.load(str(tmp_path / "m.nii.gz"))
    assert img.shape == (5, 4, 3)
    assert np.allclose(np.diag(img.affine), [-0.7, -0.5, -2.0, 1.0])
    assert np.array_equal(np.asanyarray(img.dataobj).transpose(2, 1, 0), m)
