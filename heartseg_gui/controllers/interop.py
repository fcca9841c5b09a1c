"""Masks other tools read and write: File ▸ Export DICOM-SEG…, File ▸ Attach Mask… (with a label picker for label
maps), File ▸ Save for NIfTI scans, and the notice listing what the reader flagged about the open scan's geometry.

Every read and write is a call into ``core`` (:mod:`core.io.dicom_seg`, :mod:`core.io.nifti`), run on a worker
thread (:class:`~heartseg_gui.workers.Job`); results come back to the GUI thread and are dropped when another scan
was opened meanwhile. Every question goes through :class:`~heartseg_gui.dialogs.prompts.Prompts`.

An attached mask becomes the **working mask** in one undo step (Edit ▸ Undo brings the previous mask back). It is
not put in the AI layer: the AI layer is this model's prediction (Predict Again replaces it, Accept AI copies from
it, a DICOM-SEG of an untouched AI mask says AUTOMATIC), and a mask from another tool or reader is none of that.
The slices it changes go back to "not reviewed": their earlier review was of another mask, and the attached one
has not been looked at here yet. A DICOM-SEG written later says SEMIAUTOMATIC unless the working mask equals the
complete AI prediction.

Save on a NIfTI scan writes its mask NIfTI back (:func:`core.store.nifti_masks.save_nifti_mask`: on the file's own
grid, atomically, the previous file kept under ``.heartseg/versions``): the mask it was opened with (File ▸ Open
with a mask, a NIfTI dataset's ``labelsTr`` case), else the first mask attached to it (a label map gets its chosen
label written back, its other labels kept), else a file the user names (``<scan>_heart.nii.gz`` offered). The
bundled sample scan is never written over (its Save adds it to a Kaggle dataset, as before). Review states are not
stored for NIfTI scans (there is no patient folder to keep them in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np
from PySide6.QtCore import QObject, Signal

from core import resources
from core.errors import HeartsegError
from core.io import geometry_warnings
from core.io.dicom_seg import (
    check_dicom_seg_source,
    is_dicom_seg_path,
    read_dicom_seg,
    seg_output_path,
    write_dicom_seg,
)
from core.io.masks import mask_labels
from core.io.nifti import is_nifti_path, read_nifti_mask
from core.store.dataset import output_name
from core.store.nifti_masks import save_nifti_mask
from core.store.outputs import check_output_path
from core.types import Volume
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.controllers.editing import NOT_REVIEWED
from heartseg_gui.controllers.file_flows import FileFlows
from heartseg_gui.dialogs.geometry_bar import GeometryNoticeBar
from heartseg_gui.dialogs.prompts import Prompts
from heartseg_gui.state.session import ScanSession
from heartseg_gui.state.settings import Settings
from heartseg_gui.workers import Job, error_text

NIFTI_FILTER = "NIfTI (*.nii.gz *.nii)"
MASK_FILTER = "Masks (*.nii.gz *.nii *.dcm);;NIfTI (*.nii.gz *.nii);;DICOM-SEG (*.dcm);;All files (*)"
SEG_FILTER = "DICOM-SEG (*.seg.dcm *.dcm)"


def is_corrected(session: ScanSession) -> bool:
    """Whether a person shaped the working mask (DICOM-SEG algorithm type SEMIAUTOMATIC): True unless it equals
    the complete, untouched AI prediction (AUTOMATIC)."""
    return not (session.prediction_complete and np.array_equal(session.editor.mask, session.ai_mask))


def label_counts(path: Path, volume: Volume) -> dict[int, int]:
    """Label value -> voxel count of the NIfTI label map at ``path`` (non-zero labels only), read only when its
    header has as many voxels as ``volume`` (a larger file is never read here: the caller's error stands)."""
    img = nib.load(str(path))
    if int(np.prod(img.shape[:3])) != int(np.prod(volume.voxels.shape)) or len(img.shape) > 4:
        return {}
    raw = np.asanyarray(img.dataobj)
    labels = mask_labels(raw)
    if not labels or labels[0] < 0 or not all(float(v).is_integer() for v in labels):
        return {}
    values, counts = np.unique(raw, return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts) if v != 0}


def _read_attached(path: Path, volume: Volume, label: Optional[int]):
    """The job of Attach Mask: ``("mask", mask, label)`` or ``("pick", counts)`` for a label map of several
    labels that is on the scan's grid. Refusals are one-line HeartsegErrors naming ``path``."""
    if not is_nifti_path(path) and is_dicom_seg_path(path):
        return "mask", read_dicom_seg(path, volume), None
    if not is_nifti_path(path):
        raise HeartsegError("not a mask file this window can attach: a NIfTI mask / label map (.nii, .nii.gz) on "
                            "this scan's grid, or a DICOM-SEG of this series, is expected", path)
    if label is not None:
        return "mask", read_nifti_mask(path, volume, label=label), label
    try:
        return "mask", read_nifti_mask(path, volume), None
    except HeartsegError as exc:
        try:
            counts = label_counts(path, volume)
        except Exception:  # noqa: BLE001 - unreadable: the reader's own message says why
            raise exc from None
        if len(counts) < 2:
            raise
        read_nifti_mask(path, volume, label=min(counts))  # on this grid? (a grid refusal comes before the labels)
        return "pick", counts


class Interop(QObject):
    """File ▸ Export DICOM-SEG… and File ▸ Attach Mask…, and the geometry notice of the open scan."""

    segExported = Signal(str)      # the written SEG file
    maskAttached = Signal(str)     # the attached mask file
    failed = Signal(str)           # a job's one-line error (also shown in a dialog)

    def __init__(self, controller: Controller, files: FileFlows, prompts: Prompts, settings: Settings, status_bar,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.c = controller
        self.files = files
        self.prompts = prompts
        self.settings = settings
        self.status_bar = status_bar
        self.notice: Optional[GeometryNoticeBar] = None
        self.job: Optional[Job] = None   # the running export / attach job (one at a time)
        #: where Save writes the open NIfTI scan's mask: ``(session, mask file, label of a label map or None)``
        self.mask_file: Optional[tuple[ScanSession, Path, Optional[int]]] = None
        controller.sessionChanged.connect(self.show_geometry_notice)
        controller.sessionChanged.connect(self._find_mask_file)
        files.save_nifti = self.save_nifti

    @property
    def busy(self) -> bool:
        return self.job is not None

    # --- geometry notice -------------------------------------------------------------------------------------
    def show_geometry_notice(self) -> None:
        """The open scan's geometry warnings in a non-modal bar (and the status bar); the last scan's bar goes."""
        if self.notice is not None:
            self.notice.hide()
            self.notice.deleteLater()
            self.notice = None
        s = self.c.session
        warnings = geometry_warnings(s.volume) if s is not None else []
        if not warnings:
            return
        bar = self.notice = GeometryNoticeBar(s.volume.name, warnings)
        bar.destroyed.connect(lambda *_: setattr(self, "notice", None) if self.notice is bar else None)
        self.status_bar.insertPermanentWidget(0, bar, 1)  # temporary messages never hide it
        bar.show()
        self.c.show_status(f"{s.volume.name}: {len(warnings)} geometry warning{'s' if len(warnings) > 1 else ''} "
                           f"— {warnings[0]}")

    # --- Save for NIfTI scans ------------------------------------------------------------------------------------
    def _find_mask_file(self) -> None:
        """The mask file the open NIfTI scan came with (a dataset case's label, or the mask opened with it)."""
        s, self.mask_file = self.c.session, None
        if s is None or s.volume.kind != "nifti":
            return
        mask = None
        if self.c.dataset is not None and self.c.patient_id:
            try:
                entry = self.c.dataset.entry(self.c.patient_id)
            except HeartsegError:
                entry = None
            mask = getattr(entry, "mask_path", None)
        elif self.files.requested is not None and s.origin is not None \
                and Path(self.files.requested[0]) == Path(s.origin):
            mask = self.files.requested[1]
        if mask is not None and is_nifti_path(Path(mask)):
            self.mask_file = (s, Path(mask), None)

    def save_target(self) -> Optional[tuple[Path, Optional[int]]]:
        """``(mask file, label)`` Save writes the open NIfTI scan's mask to; None until one is known."""
        if self.mask_file is None or self.mask_file[0] is not self.c.session:
            return None
        return self.mask_file[1], self.mask_file[2]

    def save_nifti(self) -> Optional[bool]:
        """File ▸ Save for a NIfTI scan: its mask NIfTI written back (asks for a file when it has none yet); True
        when saved, None for the bundled sample (package data, never written: Save adds it to a dataset)."""
        s = self.c.session
        if s is None:
            return False
        if _inside(Path(s.volume.source_files[0]), resources.resources_dir()):
            return None
        target = self.save_target()
        if target is None:
            scan = Path(s.volume.source_files[0])
            default = scan.with_name(f"{output_name(s.volume.name)}_heart.nii.gz")
            chosen = self.prompts.choose_save_file("Save the mask of this NIfTI scan as", str(default), NIFTI_FILTER)
            if not chosen:
                return False
            path = Path(chosen)
            if not is_nifti_path(path):
                path = path.with_name(path.name + ".nii.gz")
            try:
                check_output_path(path, [scan], what="the mask file")
            except HeartsegError as exc:
                self.prompts.error("Could not save", str(exc))
                return False
            target = (path, None)
        path, label = target
        self.c.end_stroke()  # a stroke in progress is part of what is saved
        try:
            kept = save_nifti_mask(path, s.editor.copy_mask(), s.volume, label=label)
        except (HeartsegError, ValueError, OSError) as exc:
            self.prompts.error("Could not save", f"{exc} — your corrections are still here; try Save again or "
                                                 "Export Masks… elsewhere")
            return False
        self.mask_file = (s, path, label)
        self.c.mark_saved()
        what = f" (label {label})" if label is not None else ""
        self.c.show_status(f"Saved the mask to {path}{what}" + (f"; the previous file is kept in {kept.parent}"
                                                                  if kept is not None else ""))
        self.files.saved.emit(str(path))
        return True

    # --- jobs ----------------------------------------------------------------------------------------------------
    def _run(self, name: str, fn, returned) -> Optional[Job]:
        if self.job is not None:
            self.c.show_status(f"{self.job.name} is still running")
            return None
        session = self.c.session
        job = self.job = Job(name, lambda *, progress, cancel, yielded: fn())

        def on_returned(result):
            self.job = None  # done: what it returned may start the next job (the label picker's choice)
            if self.c.session is session:  # another scan opened meanwhile: the result is not for it
                returned(result)

        def on_errored(exc):
            self.job = None
            if self.c.session is session:
                text = error_text(name, exc)
                self.prompts.error(f"Could not {name}", text)
                self.failed.emit(text)

        def on_finished():
            if self.job is job:
                self.job = None

        self.c.runner.start(job, returned=on_returned, errored=on_errored, finished=on_finished)
        return job

    # --- export DICOM-SEG ----------------------------------------------------------------------------------------
    def export_dicom_seg_dialog(self) -> None:
        s = self.c.session
        if s is None:
            return
        try:
            check_dicom_seg_source(s.volume)  # headers only: refuse before asking where to write
        except HeartsegError as exc:
            self.prompts.error("Export DICOM-SEG", str(exc))
            return
        default = seg_output_path(self.settings.last_folder or Path.home(), output_name(s.volume.name))
        path = self.prompts.choose_save_file("Export the working mask as DICOM-SEG", str(default), SEG_FILTER)
        if path:
            self.export_dicom_seg(path)

    def export_dicom_seg(self, path: str | Path) -> Optional[Job]:
        """Write the working mask as a DICOM-SEG at ``path`` (``.dcm`` added when missing) on a worker; refused
        (error dialog, nothing written) inside or over the scan's own folder or files."""
        s = self.c.session
        if s is None:
            return None
        path = Path(path)
        if not path.name.lower().endswith(".dcm"):
            path = path.with_name(path.name + ".seg.dcm")
        patient = s.save_target.patient_dir if s.save_target is not None else None
        try:
            check_output_path(path, [s.origin, patient, *{Path(p).parent for p in s.volume.source_files}],
                              what="the DICOM-SEG file")
        except HeartsegError as exc:
            self.prompts.error("Export DICOM-SEG", str(exc))
            return None
        self.c.end_stroke()  # a stroke in progress is part of what is exported
        mask, corrected, volume = s.editor.copy_mask(), is_corrected(s), s.volume
        kind = "corrected, SEMIAUTOMATIC" if corrected else "untouched AI mask, AUTOMATIC"

        def done(written):
            self.c.show_status(f"Exported the DICOM-SEG ({int(mask.sum()):,} voxels, {kind}) to {written}")
            self.segExported.emit(str(written))

        self.c.show_status(f"Writing the DICOM-SEG to {path}…")
        return self._run("export DICOM-SEG", lambda: write_dicom_seg(volume, mask, path, corrected=corrected), done)

    # --- attach mask ---------------------------------------------------------------------------------------------
    def attach_mask_dialog(self) -> None:
        if self.c.session is None:
            return
        path = self.prompts.choose_open_file("Attach a mask (NIfTI mask or label map on this scan's grid, or a "
                                             "DICOM-SEG of this series)", str(self.settings.last_folder or ""),
                                             MASK_FILTER)
        if path:
            self.attach_mask(path)

    def attach_mask(self, path: str | Path, label: Optional[int] = None) -> Optional[Job]:
        """Read ``path`` on a worker; a label map of several labels asks which one (:meth:`Prompts.choose_label`),
        then the chosen mask becomes the working mask (one undo step)."""
        s = self.c.session
        if s is None:
            return None
        if s.read_only:
            self.prompts.error("Opened read-only", f"{s.volume.name}: opened read-only, cannot attach a mask here "
                                                   f"— {s.read_only_reason}")
            return None
        path, volume = Path(path), s.volume
        self.c.show_status(f"Reading {path.name}…")
        return self._run("attach the mask", lambda: _read_attached(path, volume, label),
                         lambda result: self._attached(path, result))

    def _attached(self, path: Path, result) -> None:
        if result[0] == "pick":
            counts = result[1]
            label = self.prompts.choose_label(path.name, counts)
            if label is None:
                self.c.show_status(f"Attach mask cancelled: {path.name} left unattached")
                return
            self.attach_mask(path, label)
            return
        _, mask, label = result
        s = self.c.session
        if s is None or s.read_only:
            return
        self.c.end_stroke()
        editor = s.editor
        changed = [i for i in range(s.n_slices) if not np.array_equal(editor.slice_mask(i), mask[i])]
        what = f"{path.name}" + (f" (label {label})" if label is not None else "")
        regions = editor.set_slices(None, mask, f"Attach mask {what}",
                                    review_state={i: NOT_REVIEWED for i in changed})
        self.c.edited_elsewhere(regions)
        if s.volume.kind == "nifti" and is_nifti_path(path) and self.save_target() is None:
            self.mask_file = (s, path, label)  # a scan without a mask of its own: Save writes this one back
        self.c.show_status(f"Attached {what} as the working mask: {int(mask.sum()):,} voxels, {len(changed)} "
                           f"slice{'s' if len(changed) != 1 else ''} changed (not reviewed); Undo brings the "
                           "previous mask back")
        self.maskAttached.emit(str(path))


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def install_interop(window) -> Interop:
    """Build the :class:`Interop` controller of ``window`` and wire File ▸ Export DICOM-SEG… / Attach Mask…."""
    interop = Interop(window.controller, window.files, window.prompts, window.settings, window.statusBar(), window)
    window.actions.export_dicom_seg.triggered.connect(interop.export_dicom_seg_dialog)
    window.actions.attach_mask.triggered.connect(interop.attach_mask_dialog)
    return interop
