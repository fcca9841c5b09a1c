"""Shared value types: :class:`Volume`, :class:`Progress`, :class:`CancelToken`.

Axis convention used everywhere in heartseg (the Kaggle PNG convention): a volume is indexed
``[slice, row, col]``; slice 0 is the most superior slice, rows run anterior -> posterior (anterior up on screen),
columns run patient right -> patient left (patient right on the image's left: radiological display).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np

from core.errors import Cancelled

#: What the numbers in ``Volume.voxels`` mean.
#: ``"hu"``: Hounsfield units (DICOM after rescale, NIfTI CT); ``"kaggle8bit"``: 0..255 uint8 slices already
#: scaled like the Kaggle PNGs (``stored / max * 255`` per slice); ``"raw"``: other 8/16-bit pixel values.
Intensity = Literal["hu", "kaggle8bit", "raw"]

#: File suffixes :attr:`Volume.slice_names` strips (anything else is part of the slice's name).
_IMAGE_SUFFIXES = (".png", ".dcm", ".dicom", ".ima", ".tif", ".tiff", ".jpg", ".jpeg")

#: Where a volume came from.
SourceKind = Literal["kaggle_patient", "png_folder", "dicom", "nifti"]


#: The review state of a slice, as the window, the sidecar (``review.json``) and retraining name it.
REVIEW_STATES = ("not_reviewed", "accepted", "corrected", "flagged")

@dataclass
class Volume:
    """One CT scan as a stack of axial slices.

    Attributes
    ----------
    voxels:
        ``(n_slices, rows, cols)`` array, C-contiguous. dtype ``uint8`` for PNG sources (``intensity`` is
        ``"kaggle8bit"``; 16-bit PNGs stay ``uint16`` with ``"raw"``), ``int16``/``float32`` Hounsfield units for DICOM and NIfTI (``"hu"``).
    spacing:
        ``(slice, row, col)`` voxel size in millimetres, or ``None`` where the files do not say (PNG).
    affine:
        4x4 float64 matrix mapping a voxel index ``(col, row, slice, 1)`` to RAS+ world millimetres (the NIfTI
        convention: ``nibabel.Nifti1Image(mask.transpose(2, 1, 0), affine)`` puts a mask at the scan's world position,
        in the display array order; :func:`core.io.masks.write_mask_nifti` writes it on the input's own grid), or
        ``None`` where unknown.
    source_files:
        One path per slice (the PNG or DICOM file it came from); for NIfTI every entry is the ``.nii(.gz)`` file.
    source_grid:
        How the file stores the voxels (see :class:`core.io.common.SourceGrid`), ``None`` for PNG sources.
    mask:
        The mask the dataset already had, ``(n_slices, rows, cols)`` uint8 with values 0/1, or ``None``.
        ``mask_present`` says which slices actually had a mask file (Kaggle folders may miss some).
    """

    voxels: np.ndarray
    spacing: Optional[tuple[float, float, float]]
    affine: Optional[np.ndarray]
    source_files: list[Path]
    intensity: Intensity
    kind: SourceKind
    name: str
    mask: Optional[np.ndarray] = None
    mask_present: Optional[np.ndarray] = None
    metadata: dict = field(default_factory=dict)
    #: The input's own voxel grid (:class:`core.io.common.SourceGrid`: its array order, affine and, for NIfTI,
    #: header with sform/qform codes), so masks are written back on it; ``None`` for PNG sources.
    source_grid: Optional[object] = None

    def __post_init__(self) -> None:
        if self.voxels.ndim != 3:
            raise ValueError(f"Volume.voxels must be 3-D (slice, row, col), got shape {self.voxels.shape}")
        if len(self.source_files) != self.voxels.shape[0]:
            raise ValueError("Volume.source_files must have one entry per slice")
        if self.mask is not None and self.mask.shape != self.voxels.shape:
            raise ValueError(f"Volume.mask shape {self.mask.shape} differs from voxels {self.voxels.shape}")

    @property
    def n_slices(self) -> int:
        return int(self.voxels.shape[0])

    @property
    def slice_shape(self) -> tuple[int, int]:
        return int(self.voxels.shape[1]), int(self.voxels.shape[2])

    @property
    def slice_names(self) -> list[str]:
        """File stem per slice (``1-001`` ...); for NIfTI the Kaggle-style ``1-NNN`` numbering.

        Only image suffixes (``.png``, ``.dcm`` ...) are stripped, so DICOM files named by UID
        (``CT.1.3.12.2...16573``) keep their whole name; if names would still repeat, ``1-NNN`` is used.

        Computed once per list of source files (the window asks for a slice's name on every slice change and
        brush stamp; building 512 names from paths took about 0.8 ms); a fresh list is returned each time."""
        key = (self.kind, id(self.source_files), len(self.source_files))
        cached = self.__dict__.get("_slice_names")
        if cached is None or cached[0] != key:
            cached = (key, tuple(self._make_slice_names()))
            self.__dict__["_slice_names"] = cached
        return list(cached[1])

    def _make_slice_names(self) -> list[str]:
        if self.kind == "nifti":
            return [f"1-{i + 1:03d}" for i in range(self.n_slices)]
        names = [Path(p).stem if Path(p).suffix.lower() in _IMAGE_SUFFIXES else Path(p).name
                 for p in self.source_files]
        if len(set(names)) != len(names):
            return [f"1-{i + 1:03d}" for i in range(self.n_slices)]
        return names

    def voxel_volume_ml(self) -> Optional[float]:
        """Volume of one voxel in millilitres, or ``None`` without spacing."""
        if self.spacing is None:
            return None
        return float(np.prod(self.spacing)) / 1000.0


@dataclass(frozen=True)
class Progress:
    """One progress report from a core job.

    ``done`` of ``total`` units (slices, batches, epochs ...) are finished; ``stage`` names the phase
    (``"predict"``, ``"train"``, ``"read"`` ...); ``message`` is a short human-readable line; ``metrics`` carries
    numbers such as loss / dice for training.
    """

    stage: str
    done: int
    total: int
    message: str = ""
    metrics: Optional[dict] = None
    eta_s: Optional[float] = None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class SlicePreview:
    """One slice of a scan still being read, to show at once (progressive loading of a DICOM series).

    ``image`` is slice ``index`` of ``n_slices`` exactly as :attr:`Volume.voxels` will hold it (same values,
    dtype and in-plane orientation; only voxels that hold no number, NaN or infinite float data, show as this
    slice's lowest value where the volume will use the whole scan's); ``pixel_aspect`` is the display width /
    height of one pixel (column spacing / row spacing). A preview is display only: the scan is not open until the
    whole :class:`Volume` is returned.
    """

    name: str
    index: int
    n_slices: int
    image: np.ndarray
    intensity: str
    pixel_aspect: float = 1.0


PreviewFn = Callable[[SlicePreview], None]


class CancelToken:
    """Thread-safe cancellation flag checked by core jobs once per slice batch / training batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


def check_cancel(cancel: Optional[CancelToken]) -> None:
    """Raise :class:`~core.errors.Cancelled` if ``cancel`` is set (``None`` means never cancelled)."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def report(progress: Optional[ProgressFn], item: Progress) -> None:
    """Send ``item`` to ``progress`` when a callback was given."""
    if progress is not None:
        progress(item)


def as_path(path: str | Path) -> Path:
    return path if isinstance(path, Path) else Path(path)


def format_duration(s: float) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` from an hour): the ETA of the CLI bar and the retraining dock."""
    s = int(max(0, s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
