"""Masks are written on the input's own grid (issue 13), refereed by nibabel AND SimpleITK.

For every input orientation (L-P-S as TotalSegmentator writes it, R-A-S, L-P-I, P-I-R, an oblique grid and a
qform-only header), generated from the real chest CT by reorienting with nibabel, and for the real DICOM series
written head-first and feet-first: a mask heartseg writes has the input's shape, array order, affine and
sform/qform codes, so the Dice computed on the raw arrays (what numpy, nnU-Net's labelsTr and MONAI without an
orientation transform do) equals the Dice computed in world space (what a viewer does), and both equal the Dice
heartseg computed in its own display space. The mask is deliberately imperfect (shifted), so a wrong array order
gives a different raw Dice.
"""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from core.io import open_scan
from core.io.masks import write_mask_nifti, write_scan_nifti
from core.metrics import dice

sitk = pytest.importorskip("SimpleITK")

pytestmark = pytest.mark.shared


def _dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def _world_dice_nibabel(mask_path, ref_path) -> float:
    """Dice in world space: every reference voxel looks up the mask voxel at the same RAS position (nearest)."""
    m, r = nib.load(str(mask_path)), nib.load(str(ref_path))
    md, rd = np.asarray(m.dataobj) > 0, np.asarray(r.dataobj) > 0
    ijk = np.indices(rd.shape).reshape(3, -1)
    world = r.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    mijk = np.rint(np.linalg.inv(m.affine) @ world)[:3].astype(np.int64)
    inside = np.all((mijk >= 0) & (mijk < np.array(md.shape)[:, None]), axis=0)
    looked = np.zeros(ijk.shape[1], dtype=bool)
    looked[inside] = md[tuple(mijk[:, inside])]
    return _dice(looked.reshape(rd.shape), rd)


def _world_dice_sitk(mask_path, ref_path) -> float:
    m, r = sitk.ReadImage(str(mask_path)), sitk.ReadImage(str(ref_path))
    moved = sitk.Resample(m, r, sitk.Transform(), sitk.sitkNearestNeighbor, 0, m.GetPixelID())
    return _dice(sitk.GetArrayFromImage(moved), sitk.GetArrayFromImage(r))


def _raw_dice_sitk(mask_path, ref_path) -> float:
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(ref_path)))
    assert a.shape == b.shape
    return _dice(a, b)


def _variant(img, how: str):
    """The real image reoriented / re-headered as ``how``."""
    if how == "LPS":
        return img
    if how in ("RAS", "LPI", "PIR"):
        codes = {"RAS": ("R", "A", "S"), "LPI": ("L", "P", "I"), "PIR": ("P", "I", "R")}[how]
        return img.as_reoriented(nib.orientations.ornt_transform(
            nib.orientations.io_orientation(img.affine), nib.orientations.axcodes2ornt(codes)))
    data = np.asanyarray(img.dataobj)
    if how == "oblique":  # the same voxels on a grid rotated 20 degrees about z and 10 about x
        a, b = np.radians(20), np.radians(10)
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        aff = img.affine.copy()
        aff[:3, :3] = rz @ rx @ aff[:3, :3]
        out = nib.Nifti1Image(data, aff, header=img.header.copy())
        out.set_sform(aff, code=1)
        out.set_qform(aff, code=1)
        return out
    if how == "qform_only":
        out = nib.Nifti1Image(data, img.affine, header=img.header.copy())
        out.set_qform(img.affine, code=1)
        out.set_sform(np.eye(4), code=0)
        return out
    raise ValueError(how)


@pytest.mark.parametrize("how", ["LPS", "RAS", "LPI", "PIR", "oblique", "qform_only"])
def test_nifti_masks_on_the_inputs_grid(how, chest_crop, tmp_path):
    ct, heart = nib.load(str(chest_crop / "ct.nii.gz")), nib.load(str(chest_crop / "heart.nii.gz"))
    ct_path, ref_path = tmp_path / f"ct_{how}.nii.gz", tmp_path / f"heart_{how}.nii.gz"
    nib.save(_variant(ct, how), str(ct_path))
    nib.save(_variant(heart, how), str(ref_path))

    vol = open_scan(ct_path, ref_path)
    assert vol.mask is not None and vol.mask.sum() > 1000
    predicted = np.roll(vol.mask, 4, axis=0)  # an imperfect "prediction": 4 slices off
    expected = dice(predicted, vol.mask)
    assert 0.3 < expected < 0.95
    out = tmp_path / "out" / f"ct_{how}_heart.nii.gz"
    out.parent.mkdir()
    write_mask_nifti(out, predicted, vol)

    src, got = nib.load(str(ct_path)), nib.load(str(out))
    assert got.shape == src.shape
    assert np.array_equal(got.affine, src.affine)
    for key in ("qform_code", "sform_code"):
        assert int(got.header[key]) == int(src.header[key]), key
    assert np.allclose(got.header.get_qform(), src.header.get_qform(), atol=1e-5)
    assert np.allclose(got.header.get_sform(), src.header.get_sform(), atol=1e-5)
    assert got.get_data_dtype() == np.uint8

    raw_nib = _dice(np.asarray(got.dataobj), np.asarray(nib.load(str(ref_path)).dataobj))
    assert raw_nib == pytest.approx(expected, abs=1e-9)
    assert _world_dice_nibabel(out, ref_path) == pytest.approx(expected, abs=1e-9)
    assert _raw_dice_sitk(out, ref_path) == pytest.approx(expected, abs=1e-9)
    assert _world_dice_sitk(out, ref_path) == pytest.approx(expected, abs=1e-9)
    # and heartseg reads its own output back as the mask it wrote
    assert np.array_equal(open_scan(ct_path, out).mask, predicted)


def _feet_first(src_folder, dst):
    """The real series as a feet-first scanner stores it: columns run towards patient right (row cosine -x),
    the pixels mirrored so every voxel keeps its world position."""
    import pydicom

    dst.mkdir()
    for f in sorted(src_folder.iterdir()):
        if not f.name.startswith("CT"):
            continue
        ds = pydicom.dcmread(f)
        ds.decompress()
        px = ds.pixel_array[:, ::-1].copy()
        iop = [float(v) for v in ds.ImageOrientationPatient]
        ipp = [float(v) for v in ds.ImagePositionPatient]
        dx = float(ds.PixelSpacing[1])
        ipp[0] += (int(ds.Columns) - 1) * dx * iop[0]
        ds.ImageOrientationPatient = [-iop[0], -iop[1], -iop[2]] + iop[3:]
        ds.ImagePositionPatient = ipp
        ds.PatientPosition = "FFS"
        ds.PixelData = px.tobytes()
        ds.save_as(dst / f.name)
    return dst


@pytest.mark.parametrize("position", ["head_first", "feet_first"])
def test_dicom_masks_on_the_simpleitk_grid(position, abdomen_dicom, tmp_path):
    folder = abdomen_dicom if position == "head_first" else _feet_first(abdomen_dicom, tmp_path / "ffs")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    ref_ct = reader.Execute()
    ref_arr = sitk.GetArrayFromImage(ref_ct)
    ref_mask = sitk.Cast(ref_ct > 150, sitk.sitkUInt8)  # bone and contrast: the referee's own mask
    ref_path = tmp_path / "ref_mask.nii.gz"
    sitk.WriteImage(ref_mask, str(ref_path))
    ref_ct_path = tmp_path / "ref_ct.nii.gz"
    sitk.WriteImage(ref_ct, str(ref_ct_path))

    vol = open_scan(folder)
    ours = (vol.voxels > 150).astype(np.uint8)
    predicted = np.roll(ours, 3, axis=2)  # imperfect: 3 columns off
    expected = dice(predicted, ours)
    assert 0.2 < expected < 0.98

    ct_out, mask_out = tmp_path / "ct.nii.gz", tmp_path / "ct_heart.nii.gz"
    write_scan_nifti(ct_out, vol)
    write_mask_nifti(mask_out, predicted, vol)

    got_ct = sitk.ReadImage(str(ct_out))
    assert np.array_equal(sitk.GetArrayFromImage(got_ct), ref_arr)  # the same array, HU unchanged
    assert np.allclose(got_ct.GetOrigin(), ref_ct.GetOrigin(), atol=1e-4)
    assert np.allclose(got_ct.GetDirection(), ref_ct.GetDirection(), atol=1e-6)
    assert np.allclose(got_ct.GetSpacing(), ref_ct.GetSpacing(), atol=1e-5)
    assert np.allclose(nib.load(str(ct_out)).affine, nib.load(str(ref_ct_path)).affine, atol=1e-4)

    assert _raw_dice_sitk(mask_out, ref_path) == pytest.approx(expected, abs=1e-9)
    assert _world_dice_sitk(mask_out, ref_path) == pytest.approx(expected, abs=1e-9)
    raw_nib = _dice(np.asarray(nib.load(str(mask_out)).dataobj), np.asarray(nib.load(str(ref_path)).dataobj))
    assert raw_nib == pytest.approx(expected, abs=1e-9)
    assert _world_dice_nibabel(mask_out, ref_path) == pytest.approx(expected, abs=1e-9)


def test_feet_first_reads_the_same_voxels_as_head_first(abdomen_dicom, tmp_path):
    """The display volume does not depend on how the scanner stored the series."""
    a = open_scan(abdomen_dicom)
    b = open_scan(_feet_first(abdomen_dicom, tmp_path / "ffs"))
    assert np.array_equal(a.voxels, b.voxels)
    assert np.allclose(a.affine, b.affine, atol=1e-4)
    shutil.rmtree(tmp_path / "ffs")
