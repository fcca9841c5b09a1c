"""Every command of the window as a ``QAction`` with its shortcut, the menus built from them, and
:class:`ActionPolicy`: the one place that decides which of them are enabled.

Help ▸ Shortcuts lists these same actions, so the list can never drift from what the keys do. The policy is pure
logic: it maps a declared :class:`WindowState` (a scan open? read-only and why? a retraining running? anything to
undo?) to a :class:`Verdict` for every action; :meth:`Actions.apply` shows the verdicts. Nothing else in the
window enables or disables an action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from heartseg_gui.display import PRESETS

#: why the model actions are disabled while a retraining runs or waits (also the status-bar message)
RETRAINING_BUSY = "A retraining is running (one model job at a time): predictions wait until it has finished."
#: why File ▸ Export DICOM-SEG… is disabled for a scan not read from DICOM (a SEG references its source images)
DICOM_SEG_NEEDS_DICOM = ("DICOM-SEG export needs a scan opened from a DICOM series (a SEG references its source "
                         "images); use Export Masks… for NIfTI or PNG")


@dataclass(frozen=True)
class WindowState:
    """What enabling depends on, declared in one place (the window fills it from its controller and safety)."""

    session_open: bool = False
    read_only_reason: str = ""   # the open scan cannot be edited or saved here ("" when it can)
    retraining: bool = False     # a retraining runs or waits for a prediction (one model job at a time)
    can_undo: bool = False
    can_redo: bool = False
    scan_kind: str = ""          # the open scan's Volume.kind ("dicom", "nifti", "kaggle_patient", ...; "" when none)


@dataclass(frozen=True)
class Verdict:
    enabled: bool
    reason: str = ""  # while disabled, shown as the action's tooltip and status tip ("" keeps its own tip)


class ActionPolicy:
    """Which actions are enabled in a :class:`WindowState` (pure logic, no Qt)."""

    #: need an open scan
    NEEDS_SESSION = frozenset({
        "save", "export", "export_report", "next_uncertain", "accept_ai_slice", "accept_ai_all", "clear_slice",
        "fill_holes", "keep_largest", "copy_previous", "copy_next", "review_accept", "review_flag", "review_reset",
        "next_unreviewed", "prev_unreviewed", "run_prediction", "fill_between", "smooth_mask", "remove_islands",
        "keep_largest_3d", "pick_threshold", "attach_mask"})
    #: change the mask, the review states or the files: disabled while the scan is read-only
    EDITS = frozenset({
        "tool_brush", "tool_eraser", "accept_ai_slice", "accept_ai_all", "clear_slice", "fill_holes", "keep_largest",
        "copy_previous", "copy_next", "review_accept", "review_flag", "review_reset", "undo", "redo", "save",
        "fill_between", "smooth_mask", "remove_islands", "keep_largest_3d", "attach_mask"})
    #: start or switch a model job: disabled while a retraining runs (one model job at a time)
    MODEL_JOBS = frozenset({"run_prediction", "load_model", "retrain"})
    #: need an open scan read from a DICOM series
    NEEDS_DICOM = frozenset({"export_dicom_seg"})

    def verdict(self, name: str, state: WindowState) -> Verdict:
        if name in self.MODEL_JOBS and state.retraining:
            return Verdict(False, RETRAINING_BUSY)
        if name in self.NEEDS_SESSION and not state.session_open:
            return Verdict(False)
        if name in self.NEEDS_DICOM:
            return Verdict(state.session_open and state.scan_kind == "dicom",
                           DICOM_SEG_NEEDS_DICOM if state.session_open else "")
        if name in self.EDITS and state.read_only_reason:
            return Verdict(False)
        if name == "undo":
            return Verdict(state.can_undo)
        if name == "redo":
            return Verdict(state.can_redo)
        return Verdict(True)

    def decide(self, state: WindowState, names: Iterable[str]) -> dict[str, Verdict]:
        """A verdict for every action in ``names``."""
        return {name: self.verdict(name, state) for name in names}


def _keys(*specs) -> list[QKeySequence]:
    out = []
    for s in specs:
        out.append(QKeySequence(s) if isinstance(s, (str, QKeySequence.StandardKey)) else QKeySequence(s))
    return out


class Actions:
    """Creates the actions on ``window`` (added to it, so their shortcuts work anywhere in the window)."""

    def __init__(self, window: QMainWindow):
        self._window = window
        self.all: list[tuple[str, QAction]] = []   # (group, action) in menu order, for Help ▸ Shortcuts
        self._tips: dict[QAction, tuple[str, str]] = {}  # each action's own (tooltip, status tip)
        a = self._add
        # File
        self.open_scan = a("File", "&Open Scan…", "Ctrl+O", tip="Open a Kaggle patient folder, DICOM series "
                                                              "folder, PNG folder or NIfTI file")
        self.open_dataset = a("File", "Open &Dataset…", "Ctrl+Shift+O", tip="Open a dataset folder with a patient "
                                                                         "list")
        self.save = a("File", "&Save", QKeySequence.StandardKey.Save, tip="Write the working masks back into the "
                                                                           "dataset")
        self.export = a("File", "&Export Masks…", "Ctrl+E", tip="Export the working masks as PNGs or NIfTI")
        self.export_dicom_seg = a("File", "Export DICO&M-SEG…", tip="Write the working mask as a DICOM "
                                                                    "Segmentation of the open DICOM series")
        self.attach_mask = a("File", "&Attach Mask…", tip="Make a NIfTI mask or label map on this scan's grid (or a "
                                                          "DICOM-SEG of this series) the working mask")
        self.export_report = a("File", "Export &Report…", "Ctrl+Shift+E",
                               tip="The correction record of this scan: CSV, Markdown summary and area plot")
        self.quit = a("File", "&Quit", "Ctrl+Q")
        # Edit
        self.undo = a("Edit", "&Undo", ["Ctrl+Z"])
        self.redo = a("Edit", "&Redo", ["Ctrl+Shift+Z", "Ctrl+Y"])
        # View
        self.prev_slice = a("View", "Previous slice", ["Up", "Left"])
        self.next_slice = a("View", "Next slice", ["Down", "Right"])
        self.prev_slice_10 = a("View", "Back 10 slices", "PgUp")
        self.next_slice_10 = a("View", "Forward 10 slices", "PgDown")
        self.first_slice = a("View", "First slice", "Home")
        self.last_slice = a("View", "Last slice", "End")
        self.toggle_ai = a("View", "Show AI prediction", "P", checkable=True)
        self.toggle_working = a("View", "Show working mask", "M", checkable=True)
        self.toggle_dataset = a("View", "Show dataset mask", "O", checkable=True)
        self.toggle_outline = a("View", "Fill / outline", "F")
        self.compare = a("View", "Compare mode (image | dataset | AI)", "C", checkable=True)
        self.toggle_confidence = a("View", "Show AI confidence (heat map where the AI is unsure)", "K",
                                   checkable=True, text_short="Confidence")
        self.reset_zoom = a("View", "Reset zoom", "Ctrl+0")
        self.link_zoom = a("View", "Link zoom (zoom / pan in one plane zooms the others to the same mm scale)",
                           "Ctrl+Shift+L", checkable=True, text_short="Link zoom")
        layouts = QActionGroup(window)
        self.layout_axial = a("Layout", "Axial only", "Ctrl+1", checkable=True, exclusive=layouts)
        self.layout_three = a("Layout", "Three planes (axial | coronal | sagittal)", "Ctrl+2", checkable=True,
                              exclusive=layouts)
        self.layout_grid = a("Layout", "2 x 2 grid (three planes + area per slice)", "Ctrl+3", checkable=True,
                             exclusive=layouts)
        self.toggle_crosshair = a("Layout", "Crosshair (click or drag in a plane moves the point)", "Shift+C",
                                  checkable=True)
        self.presets: dict[str, QAction] = {}
        for i, preset in enumerate(PRESETS, start=1):
            self.presets[preset.key] = a("View", f"Window: {preset.label}", str(i))
        # Tools
        group = QActionGroup(window)
        self.tool_navigate = a("Tools", "Navigate (pan)", "V", checkable=True, exclusive=group, text_short="Pan")
        self.tool_brush = a("Tools", "Brush", "B", checkable=True, exclusive=group)
        self.tool_eraser = a("Tools", "Eraser (or hold Shift with the brush)", "E", checkable=True, exclusive=group,
                             text_short="Eraser")
        self.tool_navigate.setChecked(True)
        self.radius_down = a("Tools", "Smaller brush", "[")
        self.radius_up = a("Tools", "Larger brush", "]")
        self.radius_down_big = a("Tools", "Much smaller brush", ["Shift+[", "{"])
        self.radius_up_big = a("Tools", "Much larger brush", ["Shift+]", "}"])
        self.threshold_brush = a("Tools", "Threshold-limited brush", "T", checkable=True, text_short="Limit to range",
                                 tip="Brush and eraser change only pixels whose intensity lies in the range")
        self.pick_threshold = a("Tools", "Pick range under cursor", "Shift+T", text_short="Pick",
                                tip="Set the range to the pixel under the cursor ± the tolerance")
        # Slice tools
        self.accept_ai_slice = a("Slice", "Accept AI mask for this slice", "I", text_short="AI → slice")
        self.accept_ai_all = a("Slice", "Accept AI mask for all slices", "Shift+I", text_short="AI → all")
        self.clear_slice = a("Slice", "Clear slice", ["Delete", "Backspace"], text_short="Clear")
        self.fill_holes = a("Slice", "Fill holes", "H")
        self.keep_largest = a("Slice", "Keep largest region", "L", text_short="Largest only")
        self.copy_previous = a("Slice", "Copy mask from previous slice", "Alt+Up", text_short="Copy prev")
        self.copy_next = a("Slice", "Copy mask from next slice", "Alt+Down", text_short="Copy next")
        self.fill_between = a("Slice", "Fill between slices (interpolate)", "Ctrl+I", text_short="Fill between",
                              tip="Fill the empty slices between slices with a mask by shape interpolation")
        self.smooth_mask = a("Slice", "Smooth mask (3-D)", text_short="Smooth 3-D",
                             tip="Closing then opening of the whole mask with a ball of the clean-up radius")
        self.remove_islands = a("Slice", "Remove small islands (3-D)", text_short="Remove islands",
                                tip="Delete 3-D pieces smaller than the minimum size")
        self.keep_largest_3d = a("Slice", "Keep largest 3-D region", text_short="Largest 3-D")
        # Review
        self.review_accept = a("Review", "Mark accepted, go to next not reviewed", "A", text_short="Accept")
        self.review_flag = a("Review", "Flag slice", "X", text_short="Flag")
        self.review_reset = a("Review", "Mark not reviewed", "U", text_short="Not reviewed")
        self.next_unreviewed = a("Review", "Next slice not reviewed", "N", text_short="Next ▸")
        self.prev_unreviewed = a("Review", "Previous slice not reviewed", "Shift+N")
        self.next_uncertain = a("Review", "Next most uncertain (not reviewed)", "Q", text_short="Most uncertain ▸",
                                tip="Walk the slices not reviewed yet, the ones the AI is least sure of first")
        # Model
        self.load_model = a("Model", "&Load Model…", "Ctrl+M")
        self.run_prediction = a("Model", "&Predict Again", "Ctrl+R")
        self.cancel_job = a("Model", "&Cancel Running Job")  # no Esc: a habitual Esc must not throw a job away
        self.full_precision = a("Model", "Full float32 Precision (slower)", checkable=True,
                                tip="Off: bfloat16 where the CPU has AMX units and the model passed its check "
                                    "(Dice on the bundled sample within 0.005 of float32), about 3x faster")
        self.retrain = a("Model", "&Retrain…", status="Fine-tune the model on the corrected masks of a dataset "
                                                      "(in the background)", name="retrainAction")
        self.versions = a("Model", "&Versions…", status="List the dataset's model versions; activate one or roll "
                                                        "back", name="versionsAction")
        # Help
        self.shortcuts = a("Help", "&Shortcuts", "F1")
        self.about = a("Help", "&About heartseg")
        for act in (self.toggle_ai, self.toggle_working, self.toggle_dataset):
            act.setChecked(True)
        #: every action by its attribute name (the names :class:`ActionPolicy` speaks of)
        self.by_name: dict[str, QAction] = {k: v for k, v in vars(self).items() if isinstance(v, QAction)}

    def _add(self, menu: str, text: str, keys=None, *, tip: str = "", status: str = "", checkable: bool = False,
             exclusive: QActionGroup | None = None, text_short: str | None = None, name: str = "") -> QAction:
        action = QAction(text, self._window)
        action.setIconText(text_short or text.replace("&", "").rstrip("…"))
        if name:
            action.setObjectName(name)
        if keys is not None:
            keys = keys if isinstance(keys, list) else [keys]
            action.setShortcuts(_keys(*keys))
        self._tips[action] = (tip, status or tip)
        action.setToolTip(tip)
        action.setStatusTip(status or tip)
        action.setCheckable(checkable)
        if exclusive is not None:
            exclusive.addAction(action)
        self._window.addAction(action)
        self.all.append((menu, action))
        return action

    def build_menus(self, window: QMainWindow, recent_menu: QMenu) -> dict[str, QMenu]:
        bar = window.menuBar()
        menus: dict[str, QMenu] = {}
        for title in ("File", "Edit", "View", "Tools", "Slice", "Review", "Model", "Help"):
            menus[title] = bar.addMenu(f"&{title}")
        for group, action in self.all:
            if group == "Layout" and group not in menus:
                menus["View"].addSeparator()
                menus[group] = menus["View"].addMenu("&Layout")
            menu = menus[group]
            if action is self.save:
                menu.addMenu(recent_menu)
                menu.addSeparator()
            if action is self.quit:
                menu.addSeparator()
            if action in (self.toggle_ai, self.reset_zoom, self.radius_down, self.review_accept,
                          self.full_precision, self.retrain):
                menu.addSeparator()
            menu.addAction(action)
        return menus

    def apply(self, verdicts: dict[str, Verdict]) -> None:
        """Enable or disable each named action; a disabled one with a reason shows it as its tips."""
        for name, verdict in verdicts.items():
            action = self.by_name[name]
            action.setEnabled(verdict.enabled)
            tip, status = self._tips[action]
            if not verdict.enabled and verdict.reason:
                tip = status = verdict.reason
            action.setToolTip(tip)
            action.setStatusTip(status)

    def show_history(self, undo_label: str, redo_label: str) -> None:
        """Edit ▸ Undo / Redo name the step they would undo or redo ("" for none)."""
        self.undo.setText(f"&Undo {undo_label}" if undo_label else "&Undo")
        self.redo.setText(f"&Redo {redo_label}" if redo_label else "&Redo")

    def shortcut_rows(self) -> list[tuple[str, str, str]]:
        """``(group, command, keys)`` for Help ▸ Shortcuts."""
        rows = []
        for group, action in self.all:
            keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())
            if keys:
                rows.append((group, action.text().replace("&", ""), keys))
        return rows
