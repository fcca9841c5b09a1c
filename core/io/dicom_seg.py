"""DICOM Segmentation (SEG) objects for scans read from a DICOM series: write a heart mask, read one back.

Written with highdicom: one BINARY segment "Heart" (SNOMED CT category 91723000 "Anatomical Structure", type
80891009 "Heart"), algorithm identification ``heartseg`` / :data:`core.__version__` / family "Artificial
Intelligence" (DCM 123110), algorithm type AUTOMATIC for an untouched AI mask and SEMIAUTOMATIC once a person
corrected it. Every frame references its source CT instance (Derivation Image / Source Image Sequence with the
instance's SOP Instance UID) and carries its plane position, so PACS viewers, 3D Slicer and OHIF overlay it.

Slice order: ``Volume.voxels[k]`` is the slice read from ``Volume.source_files[k]`` (slice 0 most superior, not
file order); the DICOM reader may have flipped it in-plane to the display convention (``metadata["flipped"]``).
The writer undoes those flips per slice, so each SEG frame is pixel for pixel on its source instance, and it
checks that the source file's Image Position (Patient) is where ``Volume.affine`` puts that slice's first pixel.

Refused with a one-line :class:`~core.errors.HeartsegError` naming the file: scans that did not come from DICOM
(NIfTI, PNG), source series without Study / Series / SOP Instance UIDs (anonymised copies that dropped them: a
SEG cannot reference such images), a mask not on the volume's grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pydicom

from core import __version__
from core.atomic import write_with_atomic
from core.errors import HeartsegError
from core.types import Volume, as_path

#: SNOMED CT codes of the one segment heartseg writes.
HEART_CATEGORY = ("91723000", "SCT", "Anatomical Structure")
HEART_TYPE = ("80891009", "SCT", "Heart")
SEGMENT_LABEL = "Heart"
ALGORITHM_NAME = "heartseg"
#: Series Number of a written SEG (the source series keeps its own).
SEG_SERIES_NUMBER = 900
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: How far (mm) a source file's Image Position may be from where the volume's affine puts its slice.
POSITION_TOLERANCE_MM = 0.05

_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def seg_output_path(out_dir: str | Path, scan_name: str) -> Path:
    """``out_dir/<scan>_heart.seg.dcm``: where ``heartseg predict --dicom-seg`` puts the SEG."""
    return as_path(out_dir) / f"{scan_name}_heart.seg.dcm"


def is_dicom_seg_path(path: str | Path) -> bool:
    """True when ``path`` is a file holding a DICOM Segmentation (checked from its header, not its name)."""
    path = as_path(path)
    if not path.is_file():
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except Exception:  # noqa: BLE001 - not DICOM at all
        return False
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS or str(ds.get("Modality", "")) == "SEG"


# ------------------------------------------------------------------------------------------------- sources
def _refuse_non_dicom(volume: Volume) -> None:
    if volume.kind == "dicom":
        return
    where = volume.source_files[0] if volume.kind == "nifti" or not volume.source_files \
        else Path(volume.source_files[0]).parent
    what = {"nifti": "a NIfTI file", "png_folder": "PNG slices", "kaggle_patient": "PNG slices (Kaggle layout)"}
    raise HeartsegError(f"DICOM-SEG export needs a scan read from a DICOM series; this scan is "
                        f"{what.get(volume.kind, volume.kind)} (export the mask as NIfTI or PNG instead)", where)


def _source_headers(volume: Volume) -> list:
    """The header of every source instance, in volume slice order (``source_files[k]`` is slice ``k``)."""
    headers = []
    for path in volume.source_files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except OSError as exc:
            raise HeartsegError(f"cannot read the source DICOM file: {exc.strerror or exc}", path) from exc
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types for damaged files
            raise HeartsegError(f"cannot read the source DICOM file ({type(exc).__name__})", path) from exc
        headers.append(ds)
    return headers


def _check_uids(volume: Volume, headers: list) -> None:
    for path, ds in zip(volume.source_files, headers):
        missing = [k for k in _REQUIRED_UIDS if not str(ds.get(k, "") or "").strip()]
        if missing:
            raise HeartsegError(f"the source series has no {', '.join(missing)} (anonymised without UIDs?); a "
                                "DICOM-SEG must reference its images by UID, so it cannot be written (export the "
                                "mask as NIfTI instead)", path)
    seen: dict[str, Path] = {}
    for path, ds in zip(volume.source_files, headers):
        uid = str(ds.SOPInstanceUID)
        if uid in seen:
            raise HeartsegError(f"has the same SOPInstanceUID as {Path(seen[uid]).name}; a DICOM-SEG cannot tell "
                                "the two images apart", path)
        seen[uid] = path
    for key in ("StudyInstanceUID", "SeriesInstanceUID"):
        values = {str(ds.get(key)) for ds in headers}
        if len(values) > 1:
            raise HeartsegError(f"the source files have {len(values)} different {key}s; one series expected",
                                volume.source_files[0])


def _flips(volume: Volume) -> tuple[bool, bool]:
    """``(rows_flipped, columns_flipped)``: the in-plane flips the DICOM reader applied to reach the display."""
    flipped = volume.metadata.get("flipped") or ()
    return "rows" in flipped, "columns" in flipped


def _to_source(slice_: np.ndarray, flips: tuple[bool, bool]) -> np.ndarray:
    """A ``(rows, cols)`` slice in volume orientation -> the source instance's pixel orientation (and back:
    a flip is its own inverse)."""
    rows_flipped, cols_flipped = flips
    out = slice_
    if rows_flipped:
        out = out[::-1, :]
    if cols_flipped:
        out = out[:, ::-1]
    return out


def _check_positions(volume: Volume, headers: list) -> None:
    """Each source file's first pixel must lie where the volume's affine puts it (guards the slice mapping)."""
    if volume.affine is None:
        return
    rows, cols = volume.slice_shape
    rows_flipped, cols_flipped = _flips(volume)
    ras_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    for k, (path, ds) in enumerate(zip(volume.source_files, headers)):
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise HeartsegError(f"source image is {ds.Columns} x {ds.Rows} pixels but the scan's slices are "
                                f"{cols} x {rows}", path)
        ipp = ds.get("ImagePositionPatient")
        if ipp is None:
            continue
        index = np.array([cols - 1 if cols_flipped else 0, rows - 1 if rows_flipped else 0, k, 1.0])
        lps = (ras_to_lps @ np.asarray(volume.affine, dtype=np.float64) @ index)[:3]
        if not np.allclose(lps, [float(v) for v in ipp], atol=POSITION_TOLERANCE_MM):
            raise HeartsegError(f"source image position {[round(float(v), 2) for v in ipp]} is not slice {k} of "
                                "the scan as read (the series changed on disk?); reopen the scan", path)


def _binary(mask: np.ndarray, volume: Volume) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != volume.voxels.shape:
        raise ValueError(f"mask shape {m.shape} differs from the volume's {volume.voxels.shape}")
    if m.dtype != bool and m.size and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"mask must hold 0/1 values, got {m.min()}..{m.max()}")
    return m.astype(np.uint8, copy=False)


# --------------------------------------------------------------------------------------------------- write
def check_dicom_seg_source(volume: Volume) -> list:
    """Refuse (one-line :class:`HeartsegError` naming the file) a scan a DICOM-SEG cannot be written for: not
    from DICOM, source files without UIDs or no longer matching the volume. Returns the source headers in
    slice order. Cheap (headers only): call it before running a model so nothing is computed in vain."""
    _refuse_non_dicom(volume)
    headers = _source_headers(volume)
    _check_uids(volume, headers)
    _check_positions(volume, headers)
    return headers


def build_dicom_seg(volume: Volume, mask: np.ndarray, *, corrected: bool,
                    content_creator_name: Optional[str] = None, series_number: int = SEG_SERIES_NUMBER,
                    series_description: Optional[str] = None):
    """The :class:`highdicom.seg.Segmentation` dataset for ``mask`` on ``volume`` (see :func:`write_dicom_seg`)."""
    import highdicom as hd  # lazy: highdicom loads only to write a SEG
    from pydicom.sr.coding import Code

    headers = check_dicom_seg_source(volume)
    m = _binary(mask, volume)
    flips = _flips(volume)
    frames = np.ascontiguousarray(np.stack([_to_source(m[k], flips) for k in range(volume.n_slices)]))

    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME, version=__version__, family=Code("123110", "DCM", "Artificial Intelligence"))
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=SEGMENT_LABEL,
        segmented_property_category=Code(*HEART_CATEGORY), segmented_property_type=Code(*HEART_TYPE),
        algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if corrected
                        else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC),
        algorithm_identification=algorithm)
    state = "AI mask corrected by a reviewer" if corrected else "AI mask, not reviewed"
    try:
        seg = hd.seg.Segmentation(
            source_images=headers, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment], series_instance_uid=hd.UID(), series_number=int(series_number),
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="heartseg",
            manufacturer_model_name="heartseg", software_versions=__version__, device_serial_number="1",
            content_label="HEART", content_description=f"heartseg heart segmentation ({state})"[:64],
            content_creator_name=content_creator_name,
            # a scan without heart still gets a SEG: keep empty frames then (highdicom needs one frame at least)
            omit_empty_frames=bool(m.any()))
    except (ValueError, TypeError, AttributeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HeartsegError(f"cannot build a DICOM-SEG for this series: {msg}", volume.source_files[0]) from exc
    seg.SeriesDescription = (series_description or f"heartseg Heart{' (corrected)' if corrected else ''}")[:64]
    return seg


def write_dicom_seg(volume: Volume, mask: np.ndarray, out_path: str | Path, *, corrected: bool,
                    content_creator_name: Optional[str] = None, series_number: int = SEG_SERIES_NUMBER,
                    series_description: Optional[str] = None) -> Path:
    """Write ``mask`` ``(n_slices, rows, cols)`` 0/1 on ``volume`` (read from a DICOM series) as a DICOM-SEG.

    ``corrected``: ``False`` for the untouched AI mask (Segment Algorithm Type AUTOMATIC), ``True`` once a person
    edited it (SEMIAUTOMATIC). ``content_creator_name``: the reviewer (DICOM person name ``Family^Given``),
    optional. The file is written atomically (a temporary beside ``out_path``, then renamed); the SEG gets a new
    Series and SOP Instance UID in the source's study. Returns ``out_path``.

    Raises :class:`HeartsegError` (one line, naming the file) for a NIfTI / PNG scan, a source series without
    UIDs, or source files that no longer match the volume; ``ValueError`` for a mask of the wrong shape / values.
    """
    out_path = as_path(out_path)
    seg = build_dicom_seg(volume, mask, corrected=corrected, content_creator_name=content_creator_name,
                          series_number=series_number, series_description=series_description)
    write_with_atomic(out_path, lambda tmp: seg.save_as(tmp, enforce_file_format=True))
    return out_path


# ---------------------------------------------------------------------------------------------------- read
def _heart_segment(seg, path: Path, segment: Optional[int]) -> int:
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    if segment is not None:
        if int(segment) not in numbers:
            raise HeartsegError(f"the SEG has no segment {segment} (segments: {_describe_segments(seg)})", path)
        return int(segment)
    if len(numbers) == 1:
        return numbers[0]
    hearts = [int(item.SegmentNumber) for item in seg.SegmentSequence
              if any(str(c.CodeValue) == HEART_TYPE[0] for c in item.get("SegmentedPropertyTypeCodeSequence", []))]
    if len(hearts) == 1:
        return hearts[0]
    raise HeartsegError(f"the SEG holds {len(numbers)} segments ({_describe_segments(seg)}) and not exactly one "
                        "is the heart (SNOMED 80891009); choose one by its number", path)


def _describe_segments(seg) -> str:
    return ", ".join(f"{int(s.SegmentNumber)} {s.get('SegmentLabel', '')!s}".strip() for s in seg.SegmentSequence)


def _read_seg(path: Path):
    import highdicom as hd

    try:
        return hd.seg.segread(path)
    except FileNotFoundError as exc:
        raise HeartsegError("file not found", path) from exc
    except OSError as exc:
        raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc
    except Exception as exc:  # noqa: BLE001 - pydicom / highdicom raise many types
        if not is_dicom_seg_path(path):
            raise HeartsegError("not a DICOM Segmentation (SEG) file", path) from exc
        msg = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else type(exc).__name__
        raise HeartsegError(f"not a readable DICOM-SEG ({type(exc).__name__}: {msg})", path) from exc


def read_dicom_seg(path: str | Path, volume: Volume, *, segment: Optional[int] = None) -> np.ndarray:
    """A DICOM-SEG of ``volume``'s series -> ``(n_slices, rows, cols)`` uint8 0/1 on the volume's grid.

    Frames are matched to slices by the Referenced SOP Instance UID of their source image (slices without a
    frame are empty), then brought to the display orientation like the CT. ``segment``: which segment to read
    when the SEG holds several (default: the only one, or the only one coded as heart). FRACTIONAL SEGs are
    thresholded at 0.5. Raises :class:`HeartsegError` naming the file when it is not a SEG, belongs to another
    series, or references images this series does not have.
    """
    path = as_path(path)
    if volume.kind != "dicom":
        raise HeartsegError("a DICOM-SEG can only be attached to a scan read from a DICOM series", path)
    seg = _read_seg(path)
    number = _heart_segment(seg, path, segment)
    headers = _source_headers(volume)
    uids = [str(ds.get("SOPInstanceUID", "") or "") for ds in headers]
    if not all(uids) or len(set(uids)) != len(uids):
        raise HeartsegError("the scan's DICOM files lack unique SOPInstanceUIDs, so the SEG's frames cannot be "
                            "matched to its slices", volume.source_files[0])
    referenced = _referenced_instances(seg)
    if not referenced:
        raise HeartsegError("the SEG's frames reference no source image (no Source Image Sequence); it cannot be "
                            "matched to the slices", path)
    unknown = sorted(referenced - set(uids))
    if unknown:
        raise HeartsegError(f"the SEG references {len(unknown)} image(s) not in this series (e.g. {unknown[0]}); "
                            "it belongs to another scan", path)
    series = {str(item.get("SeriesInstanceUID", "")) for item in seg.get("ReferencedSeriesSequence", [])}
    own = {str(ds.get("SeriesInstanceUID", "") or "") for ds in headers} - {""}
    if series and own and not series & own:
        raise HeartsegError(f"the SEG was made for series {sorted(series)[0]}, not this scan's series "
                            f"{sorted(own)[0]}", path)
    try:
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[number],
                                                   combine_segments=False)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else type(exc).__name__
        raise HeartsegError(f"cannot read the SEG's frames ({msg})", path) from exc
    pixels = np.asarray(pixels)[..., 0]  # (n_slices, rows, cols)
    if pixels.shape != volume.voxels.shape:
        raise HeartsegError(f"SEG frames are {pixels.shape[2]} x {pixels.shape[1]} pixels but the scan's slices "
                            f"are {volume.slice_shape[1]} x {volume.slice_shape[0]}", path)
    binary = (pixels > 0.5) if pixels.dtype.kind == "f" else (pixels > 0)
    flips = _flips(volume)
    out = np.empty(volume.voxels.shape, dtype=np.uint8)
    for k in range(volume.n_slices):
        out[k] = _to_source(binary[k], flips)
    return out


def _referenced_instances(seg) -> set[str]:
    """SOP Instance UIDs the SEG's frames were derived from."""
    out: set[str] = set()
    for frame in getattr(seg, "PerFrameFunctionalGroupsSequence", []):
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                uid = source.get("ReferencedSOPInstanceUID")
                if uid:
                    out.add(str(uid))
    return out
