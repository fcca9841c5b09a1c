"""DICOM-SEG export and import (core.io.dicom_seg) on the real abdomen series, read back with highdicom and pydicom.

The shared series is anonymised without Study / Series / SOP Instance UIDs (a SEG must refuse it); the tests give
copies of it UIDs, and make two more variants: in-plane flipped (row / column cosines -x / -y, so the reader flips
both axes to the display convention) and feet-first numbering (file order opposite to slice order). Every check
of a written SEG maps each frame's pixels to the volume's voxels through world coordinates computed from the
referenced source file's own header (not through the writer's flip logic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, generate_uid

import core
from core.errors import HeartsegError
from core.io import open_scan
from core.io.dicom_seg import is_dicom_seg_path, read_dicom_seg, write_dicom_seg

hd = pytest.importorskip("highdicom")

VARIANTS = ("plain", "flipped", "feet_first")


def make_uid_series(src: Path, dst: Path, variant: str = "plain") -> Path:
    """A copy of the DICOM series ``src`` with Study / Series / SOP Instance UIDs (pixels unchanged).

    ``flipped``: Image Orientation (Patient) -1 0 0 / 0 -1 0 (positions moved so the slab stays put);
    ``feet_first``: the slice positions reversed against the file (instance) order."""
    dst.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    files = sorted(p for p in src.iterdir() if p.name.startswith("CT"))
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        uid = str(ds.file_meta.MediaStorageSOPInstanceUID) if variant == "plain" else generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SOPClassUID = CTImageStorage
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.SeriesNumber = "HEARTSEG-TEST", 3
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        if variant == "flipped":
            rows, cols = int(ds.Rows), int(ds.Columns)
            dr, dc = (float(v) for v in ds.PixelSpacing)
            ds.ImageOrientationPatient = [-1, 0, 0, 0, -1, 0]
            ds.ImagePositionPatient = [x + (cols - 1) * dc, y + (rows - 1) * dr, z[i]]
        elif variant == "feet_first":
            ds.ImagePositionPatient = [x, y, z[len(files) - 1 - i]]
        ds.save_as(dst / f.name)
    return dst


@pytest.fixture(scope="module")
def uid_series(tmp_path_factory, abdomen_dicom):
    root = tmp_path_factory.mktemp("uid_series")
    return {v: make_uid_series(abdomen_dicom, root / v, v) for v in VARIANTS}


def test_variants_exercise_the_slice_mapping(uid_series):
    plain, flipped, feet = (open_scan(uid_series[v]) for v in VARIANTS)
    assert "flipped" not in plain.metadata and flipped.metadata["flipped"] == ["columns", "rows"]
    names = [p.name for p in plain.source_files]
    assert names == sorted(names)  # head first: file order is slice order
    assert [p.name for p in feet.source_files] == names[::-1]  # feet first: reversed
    np.testing.assert_array_equal(flipped.voxels, plain.voxels[:, ::-1, ::-1])


def heart_like_mask(shape, seed=0) -> np.ndarray:
    """An asymmetric mask (blobs off-centre, different per slice, some slices empty)."""
    rng = np.random.default_rng(seed)
    n, rows, cols = shape
    m = np.zeros(shape, np.uint8)
    rr, cc = np.mgrid[:rows, :cols]
    for k in range(2, n - 3):
        r0, c0 = 150 + 5 * k, 300 - 3 * k
        m[k][((rr - r0) / 60.0) ** 2 + ((cc - c0) / 90.0) ** 2 < 1] = 1
    m[4, 20:30, 450:500] = 1  # a patch near the top-right corner: catches any flip
    m[7][rng.random((rows, cols)) < 0.01] = 1  # scattered voxels: catches any shift
    return m


def frame_on_volume_grid(frame: np.ndarray, src: pydicom.Dataset, volume) -> tuple[np.ndarray, ...]:
    """Volume indices (slice, row, col) of every pixel of a SEG frame derived from source image ``src``,
    through world coordinates: pixel (i, j) of ``src`` lies at IPP + j * dc * row_dir + i * dr * col_dir (LPS)."""
    ipp = np.array([float(v) for v in src.ImagePositionPatient])
    iop = np.array([float(v) for v in src.ImageOrientationPatient])
    dr, dc = (float(v) for v in src.PixelSpacing)
    i, j = np.mgrid[: frame.shape[0], : frame.shape[1]]
    lps = ipp + j[..., None] * dc * iop[:3] + i[..., None] * dr * iop[3:]
    ras = lps * np.array([-1.0, -1.0, 1.0])
    homog = np.concatenate([ras, np.ones(ras.shape[:2] + (1,))], axis=-1)
    vox = np.rint(homog @ np.linalg.inv(volume.affine).T).astype(int)  # (col, row, slice, 1)
    col, row, sl = vox[..., 0], vox[..., 1], vox[..., 2]
    assert (col >= 0).all() and (col < volume.slice_shape[1]).all()
    assert (row >= 0).all() and (row < volume.slice_shape[0]).all()
    assert (sl == sl[0, 0]).all()
    return sl, row, col


def check_seg_against_mask(path: Path, volume, mask: np.ndarray, *, algorithm_type: str) -> None:
    """Everything a SEG written by heartseg must be, read with pydicom and highdicom."""
    uid_to_file = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in volume.source_files}
    src0 = pydicom.dcmread(volume.source_files[0], stop_before_pixels=True)

    # --- pydicom: the raw dataset
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.Modality == "SEG"
    assert ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == src0.StudyInstanceUID and ds.FrameOfReferenceUID == src0.FrameOfReferenceUID
    assert ds.SeriesInstanceUID != src0.SeriesInstanceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src0.SeriesInstanceUID
    (segment,) = ds.SegmentSequence
    assert segment.SegmentNumber == 1 and segment.SegmentLabel == "Heart"
    cat, typ = segment.SegmentedPropertyCategoryCodeSequence[0], segment.SegmentedPropertyTypeCodeSequence[0]
    assert (cat.CodeValue, cat.CodingSchemeDesignator, cat.CodeMeaning) == ("91723000", "SCT", "Anatomical Structure")
    assert (typ.CodeValue, typ.CodingSchemeDesignator, typ.CodeMeaning) == ("80891009", "SCT", "Heart")
    assert segment.SegmentAlgorithmType == algorithm_type
    assert segment.SegmentAlgorithmName == "heartseg"
    algo = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmName == "heartseg" and algo.AlgorithmVersion == core.__version__
    family = algo.AlgorithmFamilyCodeSequence[0]
    assert (family.CodeValue, family.CodingSchemeDesignator, family.CodeMeaning) == \
        ("123110", "DCM", "Artificial Intelligence")

    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    assert set(np.unique(pixels).tolist()) <= {0, 1}
    covered = np.zeros(volume.n_slices, dtype=int)
    rebuilt = np.zeros_like(mask)
    for frame, item in zip(pixels, ds.PerFrameFunctionalGroupsSequence):
        (source,) = item.DerivationImageSequence[0].SourceImageSequence
        assert source.ReferencedSOPClassUID == CTImageStorage
        src_path = uid_to_file[str(source.ReferencedSOPInstanceUID)]
        src = pydicom.dcmread(src_path, stop_before_pixels=True)
        ident = item if "SegmentIdentificationSequence" in item else ds.SharedFunctionalGroupsSequence[0]
        assert ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1
        np.testing.assert_allclose([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
                                   [float(v) for v in src.ImagePositionPatient], atol=1e-4)
        sl, row, col = frame_on_volume_grid(frame, src, volume)
        k = int(sl[0, 0])
        assert volume.source_files[k] == src_path  # the frame's slice is the slice read from its source file
        covered[k] += 1
        rebuilt[sl, row, col] = frame
    assert covered.max() <= 1
    has_heart = mask.reshape(volume.n_slices, -1).any(axis=1)
    assert (covered[has_heart] == 1).all()  # every slice with heart has its frame (empty ones may be omitted)
    np.testing.assert_array_equal(rebuilt, mask)  # voxel by voxel, through world coordinates

    # --- highdicom: the same SEG through its own reader, by referenced SOP Instance UID
    seg = hd.seg.segread(path)
    assert seg.segmentation_type == hd.seg.SegmentationTypeValues.BINARY
    desc = seg.get_segment_description(1)
    assert desc.segment_label == "Heart"
    assert desc.algorithm_type == hd.seg.SegmentAlgorithmTypeValues[algorithm_type]
    assert desc.algorithm_identification[0].AlgorithmName == "heartseg"
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in volume.source_files]
    by_uid = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1])[..., 0]
    assert by_uid.shape == mask.shape
    flips = volume.metadata.get("flipped", [])
    expected = mask[:, ::-1, :] if "rows" in flips else mask
    expected = expected[:, :, ::-1] if "columns" in flips else expected
    np.testing.assert_array_equal(by_uid, expected)  # frames are in the source images' own pixel orientation


@pytest.mark.shared
@pytest.mark.parametrize("variant", VARIANTS)
def test_written_seg_matches_the_mask_voxel_by_voxel(tmp_path, uid_series, variant):
    volume = open_scan(uid_series[variant])
    mask = heart_like_mask(volume.voxels.shape)
    out = write_dicom_seg(volume, mask, tmp_path / "scan_heart.seg.dcm", corrected=False)
    assert out == tmp_path / "scan_heart.seg.dcm"
    assert [p.name for p in tmp_path.iterdir()] == ["scan_heart.seg.dcm"]  # atomic: no temporary left
    check_seg_against_mask(out, volume, mask, algorithm_type="AUTOMATIC")
    assert is_dicom_seg_path(out) and not is_dicom_seg_path(volume.source_files[0])


@pytest.mark.shared
def test_corrected_mask_is_semiautomatic_and_replaces_the_file(tmp_path, uid_series):
    volume = open_scan(uid_series["flipped"])
    out = tmp_path / "s.seg.dcm"
    write_dicom_seg(volume, heart_like_mask(volume.voxels.shape), out, corrected=False)
    first_uid = pydicom.dcmread(out, stop_before_pixels=True).SOPInstanceUID
    corrected = heart_like_mask(volume.voxels.shape, seed=1)
    corrected[10, 200:260, 100:160] = 0
    write_dicom_seg(volume, corrected, out, corrected=True, content_creator_name="Reviewer^Ada")
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    assert ds.SOPInstanceUID != first_uid and ds.ContentCreatorName == "Reviewer^Ada"
    check_seg_against_mask(out, volume, corrected, algorithm_type="SEMIAUTOMATIC")
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.shared
def test_empty_mask_still_gives_a_readable_seg(tmp_path, uid_series):
    volume = open_scan(uid_series["plain"])
    empty = np.zeros(volume.voxels.shape, np.uint8)
    out = write_dicom_seg(volume, empty, tmp_path / "e.seg.dcm", corrected=False)
    check_seg_against_mask(out, volume, empty, algorithm_type="AUTOMATIC")
    assert read_dicom_seg(out, volume).sum() == 0


def _one_line_refusal(exc_info, name: str, *words: str) -> None:
    text = str(exc_info.value)
    assert "\n" not in text and name in text, text
    for w in words:
        assert w in text, text


@pytest.mark.shared
def test_series_without_uids_is_refused_naming_the_file(tmp_path, abdomen_dicom):
    volume = open_scan(abdomen_dicom)  # the shared copy has empty Study / Series / SOP Instance UIDs
    with pytest.raises(HeartsegError) as exc_info:
        write_dicom_seg(volume, np.zeros(volume.voxels.shape, np.uint8), tmp_path / "x.seg.dcm", corrected=False)
    _one_line_refusal(exc_info, volume.source_files[0].name, "SOPInstanceUID", "StudyInstanceUID")
    assert not list(tmp_path.iterdir())


@pytest.mark.shared
def test_nifti_and_png_scans_are_refused(tmp_path, chest_crop, kaggle_patient):
    for scan, name in ((chest_crop / "ct.nii.gz", "ct.nii.gz"), (kaggle_patient, kaggle_patient.name)):
        volume = open_scan(scan)
        with pytest.raises(HeartsegError) as exc_info:
            write_dicom_seg(volume, np.zeros(volume.voxels.shape, np.uint8), tmp_path / "x.seg.dcm",
                            corrected=True)
        _one_line_refusal(exc_info, name, "DICOM")
    assert not list(tmp_path.iterdir())


@pytest.mark.shared
@pytest.mark.parametrize("variant", VARIANTS)
def test_open_scan_with_its_seg_round_trips(tmp_path, uid_series, variant):
    volume = open_scan(uid_series[variant])
    mask = heart_like_mask(volume.voxels.shape, seed=2)
    seg = write_dicom_seg(volume, mask, tmp_path / "m.seg.dcm", corrected=True)
    reopened = open_scan(uid_series[variant], mask_path=seg)
    assert reopened.mask is not None and reopened.mask.dtype == np.uint8
    np.testing.assert_array_equal(reopened.mask, mask)
    assert reopened.mask_present.all()
    np.testing.assert_array_equal(read_dicom_seg(seg, volume), mask)


@pytest.mark.shared
def test_seg_of_another_series_or_a_ct_file_is_refused(tmp_path, uid_series, chest_crop):
    plain, flipped = open_scan(uid_series["plain"]), open_scan(uid_series["flipped"])
    seg = write_dicom_seg(plain, heart_like_mask(plain.voxels.shape), tmp_path / "p.seg.dcm", corrected=False)
    with pytest.raises(HeartsegError) as exc_info:
        read_dicom_seg(seg, flipped)
    _one_line_refusal(exc_info, "p.seg.dcm", "not in this series")
    with pytest.raises(HeartsegError) as exc_info:
        read_dicom_seg(plain.source_files[3], plain)
    _one_line_refusal(exc_info, plain.source_files[3].name, "not a DICOM Segmentation")
    with pytest.raises(HeartsegError) as exc_info:
        open_scan(chest_crop / "ct.nii.gz", mask_path=seg)
    _one_line_refusal(exc_info, "p.seg.dcm", "DICOM series")


@pytest.mark.shared
def test_bad_masks_are_refused_before_writing(tmp_path, uid_series):
    volume = open_scan(uid_series["plain"])
    with pytest.raises(ValueError):
        write_dicom_seg(volume, np.zeros((3, 4, 5), np.uint8), tmp_path / "x.seg.dcm", corrected=False)
    with pytest.raises(ValueError):
        write_dicom_seg(volume, np.full(volume.voxels.shape, 2, np.uint8), tmp_path / "x.seg.dcm", corrected=False)
    assert not list(tmp_path.iterdir())
