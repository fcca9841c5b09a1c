"""Start the annotator: the QApplication, the main window, the first scan and model, and ``--screenshot``.

TensorFlow is not imported here: the window appears first and the model loads in a worker thread.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from core import resources
from heartseg_gui.main_window import MainWindow
from heartseg_gui.state.settings import Settings

SCREENSHOT_TIMEOUT_S = 600


def _application() -> QApplication:
    app = QApplication.instance()
    if app is None:
        # worker threads (prediction post-processing) hold the GIL for at most 1 ms at a time instead of 5 ms,
        # so a paint never waits long for it
        sys.setswitchinterval(0.001)
        app = QApplication(sys.argv[:1])
        app.setOrganizationName("heartseg")
        app.setApplicationName("heartseg")
        app.setApplicationDisplayName("heartseg")
    return app


def create_window(path: Optional[str | Path] = None, mask_path: Optional[str | Path] = None,
                  model_path: Optional[str | Path] = None, *, sample_when_empty: bool = True,
                  settings: Optional[Settings] = None) -> MainWindow:
    """Build and show the main window, set the model and start opening ``path`` (the bundled sample scan with its
    heart mask when ``path`` is None and ``sample_when_empty``). Returns the window; the caller runs the loop."""
    _application()
    window = MainWindow(settings=settings)
    window.controller.set_model(Path(model_path) if model_path else resources.bundled_model_path())
    window.show()
    if path is None and sample_when_empty:
        path, mask_path = resources.sample_scan_path(), resources.sample_mask_path()
    if path is not None:
        window.files.open_path(path, mask_path, ask=False)
    return window


def _take_screenshot(window: MainWindow, target: Path) -> bool:
    QApplication.processEvents()
    window.viewer.update_measurements()
    QApplication.processEvents()
    image = window.grab()
    target.parent.mkdir(parents=True, exist_ok=True)
    return bool(image.save(str(target), "PNG"))


def run(path: Optional[str] = None, mask_path: Optional[str] = None, model_path: Optional[str] = None,
        screenshot: Optional[str] = None, *, confidence: bool = False, most_uncertain: bool = False,
        layout: Optional[str] = None) -> int:
    """Run the window until it closes. With ``screenshot``: wait until the scan is open and its prediction has
    finished (or failed), save the window as a PNG there and exit (0 when the prediction finished). ``layout``:
    ``"axial"``, ``"three"`` or ``"grid"`` (View ▸ Layout; None: the one remembered)."""
    if screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = _application()
    window = create_window(path, mask_path, model_path)
    if layout:
        window.plane_viewer.set_layout(layout)
    if confidence:
        window.actions.toggle_confidence.setChecked(True)
    if most_uncertain:
        def once(outcome: str) -> None:
            window.predictionFinished.disconnect(once)
            if outcome == "returned":
                window.controller.next_most_uncertain()

        window.predictionFinished.connect(once)
    if not screenshot:
        return int(app.exec())

    window.prompts.quiet = True
    target = Path(screenshot)
    started = time.monotonic()
    state = {"outcome": None, "rc": None}
    window.predictionFinished.connect(lambda outcome: state.__setitem__("outcome", outcome))

    def poll() -> None:
        c = window.controller
        waited = time.monotonic() - started
        idle = not c.is_busy() and not window.safety.recovery_pending
        if state["rc"] is not None:
            return
        if idle and (c.session is not None or state["outcome"] is not None) or waited > SCREENSHOT_TIMEOUT_S:
            ok = _take_screenshot(window, target)
            predicted = c.session is not None and c.session.prediction_complete
            state["rc"] = 0 if ok and predicted else 1
            if not ok:
                print(f"heartseg: {target}: could not write the screenshot", file=sys.stderr)
            elif not predicted:
                print("heartseg: screenshot taken without a finished prediction", file=sys.stderr)
            c.shutdown()
            window.files.has_unsaved = lambda: False
            window.close()
            app.exit(state["rc"])
            return
        QTimer.singleShot(150, poll)

    QTimer.singleShot(300, poll)
    rc = app.exec()
    return int(state["rc"] if state["rc"] is not None else rc)
