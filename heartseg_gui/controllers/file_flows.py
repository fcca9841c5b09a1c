"""File commands: open (scan, dataset, recent, dropped path), save back into the dataset, export, load a model,
and the Save / Discard / Cancel question before unsaved edits would be lost.

Every question goes through :class:`~heartseg_gui.dialogs.prompts.Prompts` so tests can answer it; every
computation and write is a call into ``core``. It changes the controller only through its public methods.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication

from core.errors import HeartsegError
from core.io import write_mask_nifti, write_mask_pngs
from core.io.common import kaggle_slice_names
from core.store.dataset import add_patient, is_dataset_root, sanitize_pid, save_masks
from core.store.outputs import check_output_path, staged_output
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.dialogs.prompts import DISCARD, SAVE, Prompts
from heartseg_gui.state.session import SaveTarget
from heartseg_gui.state.settings import Settings

SCAN_FILTER = "Scans (*.nii *.nii.gz *.png *.dcm);;All files (*)"
MODEL_FILTER = "Keras models (*.keras)"


class FileFlows(QObject):
    recentChanged = Signal(list)
    saved = Signal(str)  # where
    discarded = Signal()  # the user chose Discard for the open scan's unsaved edits (its journal may go)

    def __init__(self, controller: Controller, prompts: Prompts, settings: Settings, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.c = controller
        self.prompts = prompts
        self.settings = settings
        #: the last scan path and mask file asked for (the mask a NIfTI scan's Save writes back to)
        self.requested: tuple[Path, Optional[Path]] | None = None
        #: Save for a scan without a Kaggle patient folder that the interop controller saves (NIfTI): returns
        #: True when saved (set by :func:`heartseg_gui.controllers.interop.install_interop`)
        self.save_nifti = None
        controller.labelNeeded.connect(self._ask_label)
        controller.seriesNeeded.connect(self._ask_series)

    # --- unsaved edits ---------------------------------------------------------------------------------------
    def has_unsaved(self) -> bool:
        s = self.c.session
        return s is not None and s.editor.modified

    def maybe_keep_changes(self, why: str = "Open another scan") -> bool:
        """True when it is fine to drop the open scan (no unsaved edits, saved, or discarded)."""
        if not self.has_unsaved():
            return True
        name = self.c.session.volume.name
        answer = self.prompts.save_discard_cancel(f"{name} has unsaved corrections. Save them before you "
                                                  f"{why.lower()}?")
        if answer == SAVE:
            return self.save()
        if answer == DISCARD:
            self.discarded.emit()
        return answer == DISCARD

    # --- opening -----------------------------------------------------------------------------------------------
    def open_path(self, path: str | Path, mask_path: str | Path | None = None, *, ask: bool = True) -> bool:
        """Open a scan or a dataset (a dataset shows its patient list and opens the first patient)."""
        path = Path(path)
        if ask and not self.maybe_keep_changes():
            return False
        if not os.path.lexists(path):  # a symlink loop exists: let the reader say what is wrong with it
            self.prompts.error("Could not open", f"{path}: no such file or folder")
            return False
        try:
            if is_dataset_root(path):
                self.c.open_dataset(path)
                pids = self.c.dataset.pids
                if pids:
                    self.c.open_patient(pids[0])
            else:  # a folder of several DICOM series: the job asks which one (seriesNeeded -> _ask_series)
                # the dataset closes only once the scan has opened
                self.requested = (path, None if mask_path is None else Path(mask_path))
                self.c.open_scan(path, mask_path)
        except HeartsegError as exc:
            self.prompts.error("Could not open", str(exc))
            return False
        self.settings.set_last_folder(path)
        self.recentChanged.emit(self.settings.add_recent_file(path))
        return True

    def _ask_label(self, path: Path, mask_path: Path, counts: dict) -> None:
        """The mask opened with ``path`` is a label map of several labels: the user picks the heart's label (the
        picker lists each label's voxel count) and the scan opens again with it; cancelled, nothing opens."""
        label = self.prompts.choose_label(mask_path.name, counts)
        if label is None:
            self.c.statusMessage.emit(f"Not opened: no label of {mask_path.name} chosen")
            return
        self.requested = (path, mask_path)
        self.c.open_scan(path, mask_path, label=label)

    def _ask_series(self, folder: Path, mask_path: Optional[Path], series: list) -> None:
        """The folder opened holds several DICOM series (found by the open job's header pass): the user picks one
        and it opens; cancelled, nothing changes (the scan that was open stays open)."""
        labels = [f"{label or '(no description)'} — {n} files — {uid or '(no SeriesInstanceUID)'}"
                  for uid, label, n in series]
        k = self.prompts.choose_series(str(folder), labels)
        if k is None:
            self.c.statusMessage.emit(f"Not opened: no series of {Path(folder).name} chosen")
            return
        self.requested = (folder, mask_path)
        self.c.open_scan(folder, mask_path, series_uid=series[k][0])

    def open_scan_dialog(self) -> None:
        # a scan is a file (NIfTI, or one DICOM / PNG slice of a series) or a folder (Kaggle patient, DICOM series,
        # PNG slices, a dataset): one dialog takes either
        path = self.prompts.choose_scan(self.settings.last_folder)
        if path:
            self.open_path(path)

    def open_dataset_dialog(self) -> None:
        path = self.prompts.choose_directory("Open dataset folder", self.settings.last_folder)
        if not path:
            return
        if not self.maybe_keep_changes():
            return
        try:
            self.c.open_dataset(path)
        except HeartsegError as exc:
            self.prompts.error("Could not open the dataset", str(exc))
            return
        self.settings.set_last_folder(path)
        self.recentChanged.emit(self.settings.add_recent_file(path))
        if self.c.dataset.pids:
            self.c.open_patient(self.c.dataset.pids[0])

    def open_patient(self, pid: str) -> None:
        if pid == self.c.patient_id and self.c.session is not None:
            return
        if self.maybe_keep_changes("Open another patient"):
            self.c.open_patient(pid)

    # --- model -------------------------------------------------------------------------------------------------
    def load_model_dialog(self) -> None:
        path = self.prompts.choose_open_file("Load model", self.settings.last_model_folder, MODEL_FILTER)
        if path:
            self.settings.last_model_folder = Path(path).parent
            self.c.set_model(path)

    # --- saving ------------------------------------------------------------------------------------------------
    def _review_by_name(self, names: list[str]) -> dict:
        states = self.c.session.editor.review_states
        return {name: state for name, state in zip(names, states)}

    def save(self) -> bool:
        """Write the working masks back into the dataset; True when saved."""
        s = self.c.session
        if s is None:
            return False
        if s.read_only:
            self.prompts.error("Opened read-only", f"{s.volume.name}: opened read-only, cannot save here — "
                                                   f"{s.read_only_reason} Use Export Masks… to keep these masks "
                                                   "elsewhere.")
            return False
        if s.save_target is None and s.volume.kind == "nifti" and self.save_nifti is not None:
            saved = self.save_nifti()  # its mask NIfTI, on its own grid (not PNGs into a Kaggle dataset)
            if saved is not None:  # None: not for it (the bundled sample is added to a dataset, as before)
                return saved
        self.c.end_stroke()  # a stroke in progress is part of what is saved
        masks = s.editor.copy_mask()
        ai = s.ai_mask.copy() if s.prediction_complete else None
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            if s.save_target is None:
                QApplication.restoreOverrideCursor()
                target = self._add_to_dataset(masks, ai)
                QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
                if target is None:
                    return False
                s.save_target = target
                where = target.patient_dir
            else:
                t = s.save_target
                self.c.flush_slice_time()
                save_masks(t.patient_dir, t.patient_id, masks, t.slice_names,
                           review=self._review_by_name(t.slice_names), ai_masks=ai, seconds=s.seconds.copy())
                s.seconds[:] = 0.0  # recorded: the next save adds only the time spent after this one
                where = t.patient_dir / "mask"
        except (HeartsegError, ValueError, OSError) as exc:
            self.prompts.error("Could not save", f"{exc} — your corrections are still here; try Save again "
                                                 f"or Export Masks… elsewhere")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.c.mark_saved()
        self.c.show_status(f"Saved to {where}")
        self.saved.emit(str(where))
        return True

    def _add_to_dataset(self, masks, ai_masks=None) -> Optional[SaveTarget]:
        """A scan without a dataset of its own: add it to a dataset the user picks, as a new patient."""
        s = self.c.session
        root = self.prompts.choose_directory("Save: choose the dataset folder to add this scan to (Kaggle layout)",
                                             self.settings.last_folder)
        if not root:
            return None
        try:
            default = sanitize_pid(s.volume.name)
        except HeartsegError:
            default = "patient"
        pid = self.prompts.ask_text("Patient id", "Id of the new patient in this dataset:", default)
        if not pid:
            return None
        names = kaggle_slice_names(s.n_slices)
        folder = add_patient(root, pid, s.volume, masks, review=self._review_by_name(names), ai_masks=ai_masks)
        self.settings.set_last_folder(root)
        return SaveTarget(Path(folder), names)

    # --- export ------------------------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        if self.c.session is None:
            return
        kind = self.prompts.choose_export()
        if kind == "png":
            folder = self.prompts.choose_directory("Export masks into folder", self.settings.last_folder)
            if folder:
                self.export_pngs(folder)
        elif kind == "nifti":
            path = self.prompts.choose_save_file("Export masks as NIfTI", self.settings.last_folder,
                                                 "NIfTI (*.nii.gz *.nii)")
            if path:
                self.export_nifti(path)

    def _export_refused(self, target: Path, what: str) -> bool:
        """True (after an error dialog) when ``target`` is, lies inside or contains the open scan or its patient
        folder (:func:`core.store.outputs.check_output_path`): only Save writes there."""
        s = self.c.session
        patient = s.save_target.patient_dir if s.save_target is not None else None
        try:
            check_output_path(target, [s.origin, patient], what=what)
        except HeartsegError as exc:
            self.prompts.error("Export", str(exc))
            return True
        return False

    def export_pngs(self, folder: str | Path) -> bool:
        s = self.c.session
        folder = Path(folder)
        if self._export_refused(folder, "the export folder"):
            return False
        image_dirs = {Path(p).parent.resolve() for p in s.volume.source_files}
        if folder.exists() and folder.resolve() in image_dirs:
            self.prompts.error("Export", f"{folder}: this is the scan's own image folder; choose another")
            return False
        try:
            with staged_output(folder, what="export folder") as stage:  # all the PNGs, or none (a full disk)
                write_mask_pngs(stage, s.editor.copy_mask(), s.volume.slice_names)
        except (HeartsegError, ValueError) as exc:
            self.prompts.error("Could not export", str(exc))
            return False
        self.c.show_status(f"Exported {s.n_slices} mask PNGs to {folder}")
        return True

    def export_nifti(self, path: str | Path) -> bool:
        s = self.c.session
        path = Path(path)
        if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
            path = path.with_name(path.name + ".nii.gz")
        if self._export_refused(path, "the export file"):
            return False
        try:
            write_mask_nifti(path, s.editor.copy_mask(), s.volume)
        except (HeartsegError, ValueError) as exc:
            self.prompts.error("Could not export", str(exc))
            return False
        self.c.show_status(f"Exported the mask to {path}")
        return True

