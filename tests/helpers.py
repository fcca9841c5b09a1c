"""Small shared builders for tests (a tiny U-Net, a tiny Kaggle-layout dataset), a mask outline reference, window
clean-up, a child process killed at a chosen line (the crash-safety tests), and test-only helpers that used to live
in the product (issue 10: test-only API leaves the product)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from core import resources
from core.editing._brush import BBox, check_radius, disc_footprint
from core.io.kaggle import read_mask_slice
from core.preprocess import resize_image8, resize_mask
from core.training.data import SliceSet
from core.types import as_path

TINY = dict(image_size=64, filters=(4, 8, 8, 8, 8), bottleneck=8)


def tiny_model(path: Path | None = None, seed: int = 0):
    """A 64x64 U-Net small enough to train in seconds; saved to ``path`` when given."""
    import keras

    from core.model.unet import build_unet, save_model

    keras.utils.set_random_seed(seed)
    model = build_unet(**TINY)
    if path is not None:
        save_model(model, path)
    return model


def kaggle_root_from_patient(patient: Path, root: Path, splits: dict[str, slice]) -> Path:
    """Copy slices of one Kaggle patient folder into ``root/data/train/<pid>`` for each ``pid: slice``."""
    from natsort import natsorted

    images = natsorted((patient / "image").glob("*.png"), key=lambda p: p.name)
    for pid, sl in splits.items():
        for sub in ("image", "mask"):
            (root / "data" / "train" / pid / sub).mkdir(parents=True, exist_ok=True)
        for img in images[sl]:
            shutil.copy(img, root / "data" / "train" / pid / "image" / img.name)
            shutil.copy(patient / "mask" / img.name, root / "data" / "train" / pid / "mask" / img.name)
    return root


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a ``(rows, cols)`` 0/1 mask (foreground pixels with a 4-neighbour in the background or
    on the image edge), uint8 0/1 same shape: what the window's outline mode must draw."""
    m = np.asarray(mask).astype(bool)
    if m.size == 0:
        return m.astype(np.uint8)
    p = np.pad(m, 1, mode="constant", constant_values=False)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return (m & ~interior).astype(np.uint8)


def slice_set_from_arrays(images8: np.ndarray, masks01: np.ndarray, ids: Sequence[str],
                          image_size: int = 256, weights=None) -> SliceSet:
    """Build a :class:`SliceSet` from in-memory Kaggle-scale slices ``(n, rows, cols)`` uint8 and 0/1 masks."""
    n = images8.shape[0]
    imgs = np.stack([resize_image8(im, image_size) for im in images8])
    msks = np.stack([resize_mask((m > 0).astype(np.uint8), image_size) for m in masks01])
    w = np.ones((n,), np.float32) if weights is None else np.asarray(weights, np.float32)
    return SliceSet(imgs, msks, w, list(ids))


# --- reading the window's widgets (what a user sees), for GUI tests ------------------------------------------------
def image_to_widget(view, row: float, col: float):
    """Viewport coordinates of image position ``(row, col)`` of a SliceView (pixel centres at integers)."""
    from PySide6.QtCore import QPointF

    scene = view.viewbox.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    return QPointF(view.mapFromScene(scene))


def _user_data(table, row: int, col: int = 0):
    from PySide6.QtCore import Qt

    return table.item(row, col).data(Qt.ItemDataRole.UserRole)


def patient_ids(patient_list) -> list[str]:
    """The Patients dock's patient ids, in row order."""
    return [_user_data(patient_list, r) for r in range(patient_list.rowCount())]


def review_text(patient_list, pid: str) -> str:
    """The Review column of patient ``pid`` in the Patients dock ("" when absent)."""
    for r in range(patient_list.rowCount()):
        if _user_data(patient_list, r) == pid:
            return patient_list.item(r, 3).text()
    return ""


def row_slices(queue) -> list[int]:
    """Slice indices of the review queue's rows, in the table's current order."""
    return [int(_user_data(queue.table, r)) for r in range(queue.table.rowCount())]


def curve_data(area_plot) -> tuple:
    """(AI, working) y values of the area plot as drawn."""
    return area_plot.ai_curve.getData()[1], area_plot.work_curve.getData()[1]


def select_version(dialog, version: int) -> None:
    """Select ``version``'s row in Model ▸ Versions…."""
    for row, entry in enumerate(dialog.versions):
        if entry.version == version:
            dialog.table.selectRow(row)


def model_less_window(base: Path, monkeypatch):
    """The real window on nothing, as at launch with a path to open: settings and state under ``base``
    (``monkeypatch`` sets the environment), no model (nothing predicts), "discard" for unsaved edits and no journal
    recovery; close it with :func:`dispose_windows`."""
    from heartseg_gui.app import create_window

    monkeypatch.setenv("HEARTSEG_SETTINGS_DIR", str(base / "settings"))
    monkeypatch.setenv("HEARTSEG_STATE_DIR", str(base / "state"))
    w = create_window(None, None, base / "no-model.keras", sample_when_empty=False)
    w.controller.auto_predict = False
    w.prompts.save_discard_cancel = lambda question: "discard"
    if hasattr(w.prompts, "ask_recover"):
        w.prompts.ask_recover = lambda text: False
    return w


def dispose_windows(*windows) -> None:
    """Close and delete windows now, while the QApplication runs (PySide6 can crash at interpreter exit on
    windows whose deferred deletion never ran); unsaved edits are dropped, not asked about."""
    import gc

    from PySide6.QtCore import QCoreApplication

    for w in windows:
        w.files.has_unsaved = lambda: False
        w.controller.shutdown()
        w.close()
        w.deleteLater()
    QCoreApplication.sendPostedEvents()
    QCoreApplication.processEvents()
    gc.collect()


# --- killing a child process at a chosen moment (the crash-safety tests) -----------------------------------------
def fork_call(fn) -> int:
    """Run ``fn()`` in a forked child that exits with status 0 when it returns and 3 when it raises; returns the
    child's pid (the caller waits for it)."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            fn()
        except BaseException:  # noqa: BLE001
            os._exit(3)
        os._exit(0)
    return pid


def kill_at_line(files: Sequence[str], kill_at: int, fn, *args, **kwargs) -> tuple[int, int]:
    """Run ``fn(*args, **kwargs)`` in a forked child that counts the lines it executes in ``files`` (paths relative
    to the repository root) and SIGKILLs itself when the count reaches ``kill_at`` (never when ``kill_at`` < 1).

    Returns ``(status, lines)``: the child's wait status (``os.waitpid``) and the number of counted lines, which
    the child reports only when ``fn`` returned (0 when it was killed or raised)."""
    root = Path(__file__).resolve().parents[1]
    watched = tuple(str(root / f) for f in files)
    r, w = os.pipe()

    def traced():
        counter = [0]

        def tracer(frame, event, arg):
            if frame.f_code.co_filename not in watched:
                return None

            def local(frame, event, arg):
                if event == "line":
                    counter[0] += 1
                    if counter[0] == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                return local

            return local

        sys.settrace(tracer)
        fn(*args, **kwargs)
        sys.settrace(None)
        os.write(w, str(counter[0]).encode())

    pid = fork_call(traced)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    lines = int(os.read(r, 64) or b"0")
    os.close(r)
    return status, lines


def kill_after(delay_s: float, fn, *args) -> int:
    """Run ``fn(*args)`` (typically a loop that never returns) in a forked child and SIGKILL it ``delay_s`` seconds
    after it started; returns the child's wait status."""
    r, w = os.pipe()

    def started():
        os.write(w, b"r")
        fn(*args)

    pid = fork_call(started)
    os.close(w)
    os.read(r, 1)
    os.close(r)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


def sample_patient_copy(where: Path, slices: slice) -> Path:
    """``where/data/train/p1``: a one-patient Kaggle dataset holding the sample patient's ``slices`` (image +
    mask PNGs)."""
    from tests.corpus import SAMPLE_PATIENT

    return kaggle_root_from_patient(SAMPLE_PATIENT, where, {"p1": slices}) / "data" / "train" / "p1"


#: The start of a child script (``python -c``) that opens the real window on the patient folder ``sys.argv[1]``
#: (no model, no automatic prediction) and waits until it is open; it defines ``app``, ``w``, ``pump_until(cond)``
#: (exits with "timeout" after 60 s) and ``c, editor, journal`` (the controller, the editor, the journal).
WINDOW_CHILD_PRELUDE = r'''
import json, os, sys, time
import numpy as np
from pathlib import Path
from PySide6.QtWidgets import QApplication
from heartseg_gui.app import create_window

patient = Path(sys.argv[1])
w = create_window(None, None, patient / "no-model.keras", sample_when_empty=False)
w.controller.auto_predict = False
w.files.open_path(patient, ask=False)
app = QApplication.instance()

def pump_until(cond, timeout=60):
    end = time.monotonic() + timeout
    while not cond():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() > end:
            sys.exit("timeout")

pump_until(lambda: w.controller.session is not None and not w.controller.is_busy())
c, editor, journal = w.controller, w.controller.session.editor, w.safety.journal
'''


# --- test-only helpers that used to live in the product (issue 10) ------------------------------------------------
def stamp_disc(mask2d: np.ndarray, row: float, col: float, radius: float, value: int) -> Optional[BBox]:
    """Set a disc of ``mask2d`` to ``value`` (1 paints, 0 erases), in place (was ``core.editing.stamp_disc``).

    ``mask2d`` is a ``(rows, cols)`` uint8 array of 0/1; ``(row, col)`` is the disc centre in pixels (sub-pixel
    allowed, may lie outside the slice), ``radius`` in pixels (``>= 0.5``). Only the disc's bounding box is
    touched. Returns the clipped half-open bounding box ``(r0, r1, c0, c1)`` that was stamped, or ``None`` when
    the disc missed the slice entirely.
    """
    if mask2d.ndim != 2 or mask2d.dtype != np.uint8:
        raise ValueError(f"stamp_disc needs a 2-D uint8 mask, got {mask2d.dtype} {mask2d.shape}")
    radius = check_radius(radius)
    hit = disc_footprint(mask2d.shape, row, col, radius)
    if hit is None:
        return None
    (r0, r1, c0, c1), paint, keep = hit
    sub = mask2d[r0:r1, c0:c1]
    if value:
        np.bitwise_or(sub, paint, out=sub)
    else:
        np.bitwise_and(sub, keep, out=sub)
    return r0, r1, c0, c1


def model_card_path() -> Path:
    """The bundled model's card (was ``core.resources.model_card_path``)."""
    return resources.resources_dir() / "model" / "MODEL_CARD.md"


def sample_kaggle_patient() -> Path:
    """The bundled sample in the Kaggle dataset layout (``image/`` and ``mask/`` PNGs): a one-patient dataset (was
    ``core.resources.sample_kaggle_patient``)."""
    return resources.sample_dir() / "kaggle_layout" / "ts_pulm"


def predictor_from_engine(engine, *, name: str = "model"):
    """A :class:`core.inference.predictor.Predictor` around an already built engine (see
    :mod:`core.inference.engines`; was ``Predictor.from_engine``)."""
    from core.inference.predictor import Predictor
    from core.inference.runner import EngineRunner

    predictor = Predictor.__new__(Predictor)
    EngineRunner.__init__(predictor, engine, name=name)
    predictor.model, predictor.ir, predictor._model_path = None, None, None
    predictor.threads = getattr(engine, "threads", None)
    return predictor


def strict_ok(report) -> bool:
    """A :class:`core.store.manifest.VerifyReport` is ``ok`` and lists no extra files either (was
    ``VerifyReport.strict_ok``)."""
    return report.ok and not report.extra


def read_mask_png(path: str | Path, expected_shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Read one mask PNG -> ``(rows, cols)`` uint8 0/1 (``> 127`` is foreground; see
    :func:`core.io.common.binarize_mask`). ``expected_shape = (rows, cols)`` is checked from the header first;
    a mismatch raises :class:`HeartsegError` naming the file (was ``core.io.masks.read_mask_png``)."""
    return read_mask_slice(as_path(path), expected_shape)


def drawn_pixels(item) -> np.ndarray:
    """What a :class:`heartseg_gui.views.mask_layer.MaskLayerItem` draws, ``(rows, cols)`` uint8 0/1 (the mask, or
    its outline; was ``MaskLayerItem.drawn_pixels``)."""
    rect = item.boundingRect()
    rows, cols = int(rect.height()), int(rect.width())
    return item._buffer[:rows, :cols].copy()


def select_label(dialog, label: int) -> None:
    """Select ``label``'s row in the label picker of File ▸ Attach mask… (was ``LabelPickerDialog.select_label``;
    ``ValueError`` when the dialog does not list it)."""
    from PySide6.QtCore import Qt

    labels = [dialog.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dialog.list.count())]
    dialog.list.setCurrentRow(labels.index(int(label)))
