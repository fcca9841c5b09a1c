"""Non-axial series are resliced to axial before inference and the mask resliced back (issue 13).

The real chest crop (``ts_chest_crop``, axial, 1.5 mm) is written as an axial, a sagittal and a coronal DICOM series
(the same voxels, pixel rows and columns laid out as scanners store those planes, correct ImageOrientationPatient
and ImagePositionPatient). The bundled model predicts each; the mask stays on the series' own grid and its Dice
against the reference heart mask (looked up in world space) matches the axial series'. Before reslicing, the
sagittal and coronal series were segmented slice-wise in their own plane: Dice 0.214 and 0.364 against 0.864
(bundled model, default post-processing; 0.299 and 0.595 against 0.850 without post-processing).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from core.inference.predictor import Predictor
from core.inference.reslice import axial_orientation, axial_view, to_stored
from core.inference.runner import EngineRunner
from core.io import geometry_warnings, open_scan
from core.metrics import dice
from core.postprocess import DEFAULT_POSTPROCESS
from core.resources import bundled_model_path
from core.review.uncertainty import UncertaintyCollector
from core.types import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: how each plane's stored slice ``s`` (row ``r``, column ``c``) takes its voxel from the NIfTI array ``(i, j, k)``
#: (i: +x left, j: +y posterior, k: +z superior); ImageOrientationPatient (row cosine, column cosine) in LPS
PLANES = {
    "axial": ("k", [1, 0, 0, 0, 1, 0]),      # columns along +x, rows along +y, slices along z
    "sagittal": ("i", [0, 1, 0, 0, 0, -1]),  # columns along +y, rows along -z, slices along x
    "coronal": ("j", [1, 0, 0, 0, 0, -1]),   # columns along +x, rows along -z, slices along y
}


def _stored_slices(data: np.ndarray, plane: str) -> np.ndarray:
    """``(n, rows, cols)`` pixel arrays of the plane's slices from the NIfTI ``(i, j, k)`` array."""
    if plane == "axial":
        return data.transpose(2, 1, 0)           # [k][j, i]
    if plane == "sagittal":
        return data[:, :, ::-1].transpose(0, 2, 1)  # [i][K-1-k, j]
    return data[:, :, ::-1].transpose(1, 2, 0)      # coronal: [j][K-1-k, i]


def _position(affine_lps: np.ndarray, shape, plane: str, s: int) -> list[float]:
    """ImagePositionPatient (LPS) of the first pixel of stored slice ``s``."""
    kmax = shape[2] - 1
    ijk = {"axial": (0, 0, s), "sagittal": (s, 0, kmax), "coronal": (0, s, kmax)}[plane]
    return [float(v) for v in (affine_lps @ np.array([*ijk, 1.0]))[:3]]


def write_series(ct: Path, plane: str, folder: Path) -> Path:
    """Write the NIfTI CT ``ct`` (axis-aligned, any orientation) as one uncompressed DICOM series in ``plane``."""
    img = nib.as_closest_canonical(nib.load(str(ct)))  # i, j, k along R, A, S
    img = img.as_reoriented(nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"),
                                                            nib.orientations.axcodes2ornt("LPS")))
    data = np.asarray(img.dataobj).astype(np.int16)
    affine_lps = LPS_TO_RAS @ img.affine  # the same matrix maps back (its own inverse)
    zooms = img.header.get_zooms()[:3]
    _, iop = PLANES[plane]
    slices = _stored_slices(data, plane)
    in_plane = {"axial": (zooms[1], zooms[0]), "sagittal": (zooms[2], zooms[1]),
                "coronal": (zooms[2], zooms[0])}[plane]  # (row spacing, column spacing)
    positions = [_position(affine_lps, data.shape, plane, s) for s in range(len(slices))]
    return _write_dicom(folder, slices, iop, positions, in_plane, plane)


def _write_dicom(folder: Path, slices: np.ndarray, iop, positions, in_plane, plane: str) -> Path:
    """``slices`` ``(n, rows, cols)`` int16 HU as one uncompressed CT series in ``folder``."""
    folder.mkdir(parents=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    for s, pixels in enumerate(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{s:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.SeriesNumber, ds.InstanceNumber = "CT", "reslice", 1, s + 1
        ds.SeriesDescription = f"chest crop {plane}"
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in positions[s]]
        ds.PixelSpacing = [float(in_plane[0]), float(in_plane[1])]
        ds.SliceThickness = 1.5
        ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
        pydicom.dcmwrite(folder / f"{s:04d}.dcm", ds, enforce_file_format=True)
    return folder


def reference_on_grid(mask_path: Path, volume: Volume) -> np.ndarray:
    """The reference mask at ``volume``'s voxels ``(slice, row, col)``, looked up by world position."""
    img = nib.load(str(mask_path))
    data = np.asarray(img.dataobj) > 0
    to_ref = np.linalg.inv(img.affine) @ volume.affine  # volume (col, row, slice) -> reference (i, j, k)
    s, r, c = np.indices(volume.voxels.shape)
    ijk = np.rint(to_ref[:3, :3] @ np.stack([c.ravel(), r.ravel(), s.ravel()]) + to_ref[:3, 3:]).astype(int)
    assert np.all(ijk >= 0) and np.all(ijk < np.array(data.shape)[:, None])  # the same voxels, another order
    return data[tuple(ijk)].reshape(volume.voxels.shape).astype(np.uint8)


class FakeEngine:
    """A deterministic stand-in for the network (no TensorFlow, no OpenVINO): heart where the input is bright."""

    batch_size, runtime, image_size, precision = 4, "openvino", 32, "float32"

    def __init__(self):
        self.batches = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.batches += 1
        return np.clip((batch[..., 0] - 0.3) * 4.0, 0.0, 1.0).astype(np.float32)


def _series_volume(plane: str, shape=(9, 10, 11), iop=None, seed: int = 0) -> Volume:
    """A small synthetic series (no files) with the affine :mod:`core.io.dicom` gives that plane."""
    rng = np.random.default_rng(seed)
    vox = rng.integers(-1000, 1500, shape).astype(np.int16)
    row_dir, col_dir = (np.array(iop[:3], float), np.array(iop[3:], float)) if iop else \
        (np.array(PLANES[plane][1][:3], float), np.array(PLANES[plane][1][3:], float))
    normal = np.cross(row_dir, col_dir)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row_dir * 0.8, col_dir * 0.9, normal * 2.0, (10.0, -20.0, 30.0)
    return Volume(vox, (2.0, 0.9, 0.8), LPS_TO_RAS @ lps, [Path(f"s{i}") for i in range(shape[0])], "hu", "dicom",
                  plane, metadata={"orientation": plane})


def test_axial_and_unknown_geometry_are_not_resliced():
    assert axial_orientation(_series_volume("axial")) is None
    vol = _series_volume("axial")
    vol.affine = None  # PNG slices: no geometry, taken as axial
    assert axial_orientation(vol) is None


@pytest.mark.parametrize("plane", ["sagittal", "coronal"])
def test_axial_view_is_a_pure_permutation_and_goes_back_exactly(plane):
    vol = _series_volume(plane)
    ornt = axial_orientation(vol)
    assert ornt is not None
    view = axial_view(vol, ornt)
    assert view.metadata["orientation"] == "axial" and view.metadata["resliced_from"] == plane
    assert axial_orientation(view) is None
    assert sorted(view.voxels.ravel().tolist()) == sorted(vol.voxels.ravel().tolist())  # no HU value changes
    np.testing.assert_array_equal(to_stored(view.voxels, ornt), vol.voxels)
    # every voxel keeps its world position: the view's affine maps each view index where the stored one was
    s, r, c = 3, 4, 5
    world = vol.affine @ np.array([c, r, s, 1.0])
    back = np.rint(np.linalg.inv(view.affine) @ world).astype(int)
    assert view.voxels[back[2], back[1], back[0]] == vol.voxels[s, r, c]
    codes = nib.orientations.aff2axcodes(view.affine)
    assert codes == ("L", "P", "I")  # columns right -> left, rows anterior -> posterior, slice 0 most superior
    assert sorted(view.spacing) == sorted(vol.spacing)


def test_every_axis_order_and_flip_goes_to_display_axes_and_back():
    """All 48 ways a grid's axes can lie along the body's: the slice axis off superior-inferior is resliced."""
    rng = np.random.default_rng(1)
    vox = rng.integers(-1000, 1500, (5, 6, 7)).astype(np.int16)
    resliced = 0
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1.0, -1.0), repeat=3):
            affine = np.eye(4)
            affine[:3, :3] = 0.0
            for axis, (world, flip) in enumerate(zip(perm, flips)):
                affine[world, axis] = flip * (1.0 + axis)
            vol = Volume(vox, (3.0, 2.0, 1.0), affine, [Path("f")] * 5, "hu", "dicom", "x")
            ornt = axial_orientation(vol)
            if perm[2] == 2:
                assert ornt is None
                continue
            resliced += 1
            view = axial_view(vol, ornt)
            assert nib.orientations.aff2axcodes(view.affine) == ("L", "P", "I")
            np.testing.assert_array_equal(to_stored(view.voxels, ornt), vol.voxels)
            zooms = np.sqrt((view.affine[:3, :3] ** 2).sum(axis=0))  # (col, row, slice) voxel sizes
            assert view.spacing == (zooms[2], zooms[1], zooms[0])
    assert resliced == 32


def test_resliced_masks_and_callbacks_are_on_the_stored_grid():
    vol = _series_volume("sagittal", shape=(9, 10, 11))
    ornt = axial_orientation(vol)
    runner = EngineRunner(FakeEngine())
    expected = to_stored(runner.predict_masks(axial_view(vol, ornt), postprocess=DEFAULT_POSTPROCESS), ornt)
    collector = UncertaintyCollector(vol.n_slices, DEFAULT_POSTPROCESS.threshold)
    batches = []
    masks = runner.predict_masks(vol, first=4, postprocess=DEFAULT_POSTPROCESS, on_probabilities=collector.add,
                                 on_batch=lambda idx, m: batches.append((list(idx), m.copy())))
    assert masks.shape == vol.voxels.shape and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks, expected)
    assert batches[0][0][0] == 4  # the slice on screen comes first
    assert sorted(i for idx, _ in batches for i in idx) == list(range(vol.n_slices))
    for idx, m in batches:  # the final (post-processed) masks: the window has nothing to re-apply
        np.testing.assert_array_equal(m, masks[idx])
    assert np.isfinite(collector.scores).all() and collector.maps.shape == (vol.n_slices, 32, 32)
    probs = runner.predict_volume(vol, indices=[2, 3])
    assert probs.shape == vol.voxels.shape
    full = to_stored(runner.predict_volume(axial_view(vol, ornt)), ornt)
    np.testing.assert_array_equal(probs[[2, 3]], full[[2, 3]])
    assert not probs[[0, 1, 4, 5, 6, 7, 8]].any() and probs[[2, 3]].any()


def test_oblique_series_are_permuted_to_the_nearest_axial_axis_and_warned():
    tilt = np.radians(40)  # slice normal 40 degrees from superior-inferior: nearest to axial, not resliced
    near_axial = _series_volume("oblique", iop=[1, 0, 0, 0, np.cos(tilt), -np.sin(tilt)])
    assert axial_orientation(near_axial) is None
    tilt = np.radians(55)  # 55 degrees: nearest to coronal, resliced along its most axial grid axis
    near_coronal = _series_volume("oblique", iop=[1, 0, 0, 0, np.cos(tilt), -np.sin(tilt)])
    ornt = axial_orientation(near_coronal)
    assert ornt is not None and int(ornt[1, 0]) == 2  # the stored rows become the model's slices
    near_coronal.metadata["oblique_tilt_deg"] = 35.0
    (line,) = geometry_warnings(near_coronal)
    assert "oblique" in line and "35 degrees" in line and "not resampled" in line


@pytest.mark.parametrize("degrees, tilt, resliced", [(40, 40, False), (55, 35, True)])
def test_reader_gives_the_model_slices_tilt_of_an_oblique_series(tmp_path, degrees, tilt, resliced):
    a = np.radians(degrees)
    iop = [1.0, 0.0, 0.0, 0.0, float(np.cos(a)), float(-np.sin(a))]
    normal = np.cross(iop[:3], iop[3:])
    slices = np.random.default_rng(0).integers(-1000, 1000, (4, 16, 16)).astype(np.int16)
    positions = [np.array([10.0, -20.0, 30.0]) + 2.0 * s * normal for s in range(4)]
    vol = open_scan(_write_dicom(tmp_path / "s", slices, iop, positions, (1.0, 1.0), "oblique"))
    assert vol.metadata["orientation"] == "oblique"
    assert vol.metadata["oblique_tilt_deg"] == pytest.approx(tilt, abs=0.01)
    assert (axial_orientation(vol) is not None) == resliced
    (line,) = geometry_warnings(vol)
    assert f"tilted {tilt} degrees" in line



@pytest.fixture(scope="module")
def series(tmp_path_factory, chest_crop):
    """The real chest crop as an axial, a sagittal and a coronal DICOM series."""
    root = tmp_path_factory.mktemp("reslice")
    return {plane: write_series(chest_crop / "ct.nii.gz", plane, root / plane) for plane in PLANES}


@pytest.mark.shared
def test_sagittal_and_coronal_series_segment_as_well_as_axial(series, chest_crop):
    """Bundled model, default post-processing (what ``heartseg predict`` and the window run). Dice on the stored
    grid against the reference looked up by world position: 0.864 for all three (sagittal 0.214 and coronal 0.364
    before reslicing)."""
    predictor = Predictor(bundled_model_path())
    scores, world_masks = {}, {}
    for plane, folder in series.items():
        vol = open_scan(folder)
        assert vol.metadata["orientation"] == plane
        ref = reference_on_grid(chest_crop / "heart.nii.gz", vol)
        masks = predictor.predict_masks(vol, postprocess=DEFAULT_POSTPROCESS)
        assert masks.shape == vol.voxels.shape  # on the series' own grid
        scores[plane] = float(dice(ref, masks))
        ornt = axial_orientation(vol)
        world_masks[plane] = masks if ornt is None else axial_view(
            Volume(masks, vol.spacing, vol.affine, vol.source_files, "hu", "dicom", plane), ornt).voxels
        if plane != "axial":
            (line,) = geometry_warnings(vol)
            assert f"{plane} series: resliced to axial" in line
            np.testing.assert_array_equal(axial_view(vol, ornt).voxels, open_scan(series["axial"]).voxels)
    assert scores["axial"] > 0.80, scores
    for plane in ("sagittal", "coronal"):
        assert abs(scores[plane] - scores["axial"]) <= 0.02, scores
        np.testing.assert_array_equal(world_masks[plane], world_masks["axial"])  # the same voxels, the same mask
