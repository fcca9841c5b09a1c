"""The menu, toolbar and key actions of the main window, connected to what they do (window, controller, viewer,
file flows and panels). Only connections: which actions are enabled is :class:`~heartseg_gui.actions.ActionPolicy`'s
business, what they do the controllers'. Split from :mod:`heartseg_gui.main_window`, which keeps the building of the
widgets and the controller -> window reactions."""

from __future__ import annotations

from heartseg_gui.controllers.editing import ACCEPTED, FLAGGED, NOT_REVIEWED
from heartseg_gui.views.slice_view import BRUSH, ERASER, NAVIGATE
from heartseg_gui.widgets.tool_panel import BIG_STEP


def wire_actions(w) -> None:
    """Connect every action of ``w.actions`` and the panels' requests to their slots (``w``: the
    :class:`~heartseg_gui.main_window.MainWindow` being built; not imported here, it imports this module)."""
    c, a, v, f = w.controller, w.actions, w.viewer, w.files
    # file
    a.open_scan.triggered.connect(f.open_scan_dialog)
    a.open_dataset.triggered.connect(f.open_dataset_dialog)
    a.save.triggered.connect(f.save)
    a.export.triggered.connect(f.export_dialog)
    a.export_report.triggered.connect(w.review_panels.export_report_dialog)
    a.quit.triggered.connect(w.close)
    f.recentChanged.connect(w.fill_recent)
    w.fill_recent(w.settings.recent_files)
    # edit
    a.undo.triggered.connect(c.undo)
    a.redo.triggered.connect(c.redo)
    # navigation
    a.prev_slice.triggered.connect(lambda: c.step_slice(-1))
    a.next_slice.triggered.connect(lambda: c.step_slice(+1))
    a.prev_slice_10.triggered.connect(lambda: c.step_slice(-10))
    a.next_slice_10.triggered.connect(lambda: c.step_slice(+10))
    a.first_slice.triggered.connect(lambda: c.set_slice(0))
    a.last_slice.triggered.connect(lambda: c.set_slice(10 ** 9))
    w.slider.valueChanged.connect(c.set_slice)
    w.slice_view.sliceStepRequested.connect(c.step_slice)
    w.compare_view.sliceStepRequested.connect(c.step_slice)
    # layers and display
    for key, action in (("ai", a.toggle_ai), ("working", a.toggle_working), ("dataset", a.toggle_dataset)):
        action.toggled.connect(lambda on, k=key: w.layer_panel.checks[k].setChecked(on))
        w.layer_panel.checks[key].toggled.connect(action.setChecked)
    w.layer_panel.visibilityChanged.connect(w.slice_view.set_layer_visible)
    w.layer_panel.outlineChanged.connect(w.slice_view.set_layer_outline)
    w.layer_panel.opacityChanged.connect(w.set_opacity)
    w.set_opacity(w.layer_panel.opacity_value())
    a.toggle_outline.triggered.connect(w.layer_panel.toggle_fill_outline)
    a.compare.toggled.connect(w.set_compare)
    a.reset_zoom.triggered.connect(w.slice_view.reset_zoom)
    for key, action in a.presets.items():
        action.triggered.connect(lambda _=False, k=key: v.apply_preset(k))
    w.tool_panel.presetChosen.connect(v.apply_preset)
    v.levelsChanged.connect(w.show_levels)
    v.sliceText.connect(w.status_slice.setText)
    v.pixelText.connect(w.status_pixel.setText)
    # tools and painting
    a.tool_navigate.triggered.connect(lambda: w.set_tool(NAVIGATE))
    a.tool_brush.triggered.connect(lambda: w.set_tool(BRUSH))
    a.tool_eraser.triggered.connect(lambda: w.set_tool(ERASER))
    a.radius_down.triggered.connect(lambda: w.tool_panel.step_radius(-1))
    a.radius_up.triggered.connect(lambda: w.tool_panel.step_radius(+1))
    a.radius_down_big.triggered.connect(lambda: w.tool_panel.step_radius(-BIG_STEP))
    a.radius_up_big.triggered.connect(lambda: w.tool_panel.step_radius(+BIG_STEP))
    w.tool_panel.thresholdChanged.connect(c.set_threshold_range)
    a.pick_threshold.triggered.connect(w.pick_threshold)
    w.slice_view.hovered.connect(c.hover_at)
    w.tool_panel.radiusChanged.connect(w.slice_view.set_brush_radius)
    w.slice_view.strokeStarted.connect(
        lambda r, col, erase: c.begin_stroke(r, col, erase, w.slice_view.brush_radius))
    w.slice_view.strokeMoved.connect(c.continue_stroke)
    w.slice_view.strokeFinished.connect(c.end_stroke)
    a.accept_ai_slice.triggered.connect(c.accept_ai_slice)
    a.accept_ai_all.triggered.connect(w.accept_ai_all)
    a.fill_between.triggered.connect(c.fill_between_slices)
    a.smooth_mask.triggered.connect(lambda: c.smooth_mask(w.tool_panel.cleanup_radius.value()))
    a.remove_islands.triggered.connect(lambda: c.remove_small_islands(w.tool_panel.island_voxels.value()))
    a.keep_largest_3d.triggered.connect(c.keep_largest_3d_region)
    a.clear_slice.triggered.connect(c.clear_slice)
    a.fill_holes.triggered.connect(c.fill_holes)
    a.keep_largest.triggered.connect(c.keep_largest_region)
    a.copy_previous.triggered.connect(lambda: c.copy_from_neighbour(-1))
    a.copy_next.triggered.connect(lambda: c.copy_from_neighbour(+1))
    # review
    a.review_accept.triggered.connect(lambda: c.set_review_state(ACCEPTED, advance=True))
    a.review_flag.triggered.connect(lambda: c.set_review_state(FLAGGED))
    a.review_reset.triggered.connect(lambda: c.set_review_state(NOT_REVIEWED))
    a.next_unreviewed.triggered.connect(lambda: c.next_unreviewed(+1))
    a.next_uncertain.triggered.connect(c.next_most_uncertain)
    a.toggle_confidence.toggled.connect(w.review_panels.set_confidence_visible)
    a.prev_unreviewed.triggered.connect(lambda: c.next_unreviewed(-1))
    # model and jobs
    a.load_model.triggered.connect(f.load_model_dialog)
    a.run_prediction.triggered.connect(c.start_prediction)
    a.cancel_job.triggered.connect(lambda: c.cancel_job())
    a.full_precision.toggled.connect(lambda on: c.set_precision("float32" if on else "auto"))
    w.job_bar.cancelRequested.connect(lambda: c.cancel_job())
    # help
    a.shortcuts.triggered.connect(w.show_shortcuts)
    a.about.triggered.connect(w.show_about)
