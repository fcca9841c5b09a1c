"""The window's half of ``heartseg bench`` (run by :mod:`heartseg_gui.bench.run` in subprocesses, offscreen).

``python -m heartseg_gui.bench.gui MODE --out FILE [--quick]`` writes one JSON object to FILE:

* ``interactive``: the main window on a synthetic 512 x 512 HU scan with the bundled model predicting in the
  background (the real prediction job; restarted whenever it finishes so every sample is taken while inference
  runs). Slice change = ``Controller.set_slice`` (image + the three overlays) and a synchronous repaint of the view;
  brush stamp = one ``strokeMoved`` intent (as the view emits it on a mouse move) through the controller,
  ``MaskEditor`` and the overlay's region update, then the pending (region-only) repaint. Idle baselines (no job)
  are taken in the same process first.
* ``startup``: what ``heartseg`` does (:func:`heartseg_gui.app.create_window` on the bundled sample with the bundled
  model); records the wall-clock time when the window has been shown and painted (and whether TensorFlow was
  loaded by then) and when the AI overlay of the current slice has arrived (and whether TensorFlow was loaded for
  it: with the OpenVINO runtime it is not). The parent subtracts its launch time.
* ``planes``: the three-plane layout on a synthetic 512 x 512 x 512 HU scan (``--quick``: 128 slices) with an AI
  mask on every slice: a crosshair move (a new slice, row and column: all three planes redrawn with image, working,
  AI and dataset layers, then a synchronous repaint of the three views), and a brush stamp in the sagittal view
  (one ``strokeMoved`` through ``MaskEditor.plane_stroke_to`` and the region-only repaint of every plane), idle and
  then with the bundled model predicting in the background; prints the p95s.
* ``firstimage``: a fresh window opens the DICOM series ``--scan`` (progressive loading, issue 17): when its
  middle slice is painted, when the whole series is open, when the AI overlay of that slice is (:func:`first_image`).
* ``memory``: opens ``--scan`` through the window's own open-scan job, delivers an AI prediction batch by batch as
  the prediction job does (no TensorFlow: this measures the window's data, not the model's), accepts it
  (one undo step) and paints 99 brush strokes (99 more), then reports the peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from core import resources
from core.review.uncertainty import confidence_map, slice_uncertainty
from core.types import Volume
from heartseg_gui.app import _application, create_window
from heartseg_gui.bench.inference import synthetic_slice_hu
from heartseg_gui.jobs import LOAD, PREDICT
from heartseg_gui.views.slice_view import BRUSH, NAVIGATE

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _stat(samples) -> dict:
    import numpy as np

    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        return {"median": float("nan"), "p95": float("nan"), "n": 0}
    return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}


def _wait(app, predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.002)
    return False


def _synthetic_volume(n: int, side: int = 512):
    import numpy as np


    vox = np.stack([synthetic_slice_hu(side, k, n) for k in range(n)])
    return Volume(vox, (1.0, 0.8, 0.8), None, [Path(f"synthetic-{k}") for k in range(n)], "hu", "nifti",
                  "synthetic")


def _sample_while_predicting(app, c, n_samples: int, first, second) -> tuple[list, list, int]:
    """``n_samples`` timings each of ``first(k, i)`` and ``second(k, i)`` (alternating; ``k`` counts loop turns,
    ``i`` the samples taken so far of that kind), all taken while the bundled model predicts in the background:
    the real prediction job, restarted whenever it finishes. Returns both lists and how many samples saw the
    job running."""
    c.set_model(resources.bundled_model_path())
    c.start_prediction()
    # wait for the runtime and the model to be up and the first batch to arrive: inference is now running
    _wait(app, lambda: c.session.ai_done.any() or not c.is_busy(PREDICT), 180)
    a, b, busy, k = [], [], 0, 0
    while len(a) < n_samples or len(b) < n_samples:
        if not c.is_busy(PREDICT):
            c.start_prediction()
            _wait(app, lambda: c.is_busy(PREDICT), 5)
            time.sleep(0.2)  # let the job get into the model
        if k % 2 == 0 and len(a) < n_samples:
            a.append(first(k, len(a)))
        elif len(b) < n_samples:
            b.append(second(k, len(b)))
        busy += int(c.is_busy(PREDICT))
        app.processEvents()
        time.sleep(0.004)  # the user's mouse / key rate; the event loop keeps delivering job results
        k += 1
    return a, b, busy


# --------------------------------------------------------------------------------------------- interactive
def interactive(quick: bool) -> dict:


    app = _application()  # as the heartseg command makes it (a 1 ms GIL switch interval)
    window = create_window(None, sample_when_empty=False)
    window.resize(1400, 900)
    if "--no-fixes" in sys.argv:  # what the window did before the bench's fixes (for comparison by hand)
        sys.setswitchinterval(0.005)
        import heartseg_gui.jobs as jobs_module

        jobs_module.lower_thread_priority = lambda *a, **k: None
    window.files.has_unsaved = lambda: False
    window.prompts.quiet = True
    c, view = window.controller, window.slice_view
    c.auto_predict = False
    n = 32 if quick else 64
    c.set_volume(_synthetic_volume(n))
    window.set_tool(BRUSH)
    app.processEvents()
    rows, cols = c.session.volume.slice_shape
    n_samples = 40 if quick else 200

    def slice_change(k: int) -> float:
        t0 = time.perf_counter()
        c.set_slice((c.current_slice + 7) % n if k % 2 else (c.current_slice + 1) % n)
        view.viewport().repaint()
        return 1000 * (time.perf_counter() - t0)

    def stamp(k: int) -> float:
        if k % 20 == 0:  # a new stroke every 20 stamps, on the slice on screen
            view.strokeFinished.emit()
            view.strokeStarted.emit(rows * 0.3, cols * 0.3, False)
            app.processEvents()
        # a stamp per mouse move, 3 pixels apart (interpolated by the editor), brush radius 5
        r = rows * 0.3 + 40 * ((k // 20) % 5) + (k % 20) * 3.0
        t0 = time.perf_counter()
        view.strokeMoved.emit(r, cols * 0.3 + (k % 20) * 3.0)
        app.sendPostedEvents()
        app.processEvents()
        return 1000 * (time.perf_counter() - t0)

    # idle baselines (no job running)
    idle_sc = [slice_change(k) for k in range(n_samples // 2)]
    idle_st = [stamp(k) for k in range(n_samples // 2)]
    view.strokeFinished.emit()

    # with the real prediction job running in the background
    sc, st, busy = _sample_while_predicting(app, c, n_samples, lambda k, _i: slice_change(k),
                                            lambda k, _i: stamp(k))
    view.strokeFinished.emit()
    c.shutdown()
    return {"slice_change_ms": _stat(sc), "stamp_ms": _stat(st), "slice_change_idle_ms": _stat(idle_sc),
            "stamp_idle_ms": _stat(idle_st), "samples_with_inference": busy, "samples": len(sc) + len(st),
            "slice_shape": [rows, cols]}


# --------------------------------------------------------------------------------------------- three planes
def planes(quick: bool) -> dict:
    import numpy as np

    app = _application()  # as the heartseg command makes it (a 1 ms GIL switch interval)
    window = create_window(None, sample_when_empty=False)
    window.resize(1500, 900)
    window.files.has_unsaved = lambda: False
    window.prompts.quiet = True
    c, pv = window.controller, window.plane_viewer
    c.auto_predict = False
    n = 128 if quick else 512
    c.set_volume(_synthetic_volume(n))
    s = c.session
    for start in range(0, n, 32):  # an AI mask on every slice (the synthetic heart), so every layer is drawn
        v = s.volume.voxels[start:start + 32]
        s.set_prediction(range(start, start + v.shape[0]), ((v > 0) & (v < 120)).astype(np.uint8))
    c.predictionChanged.emit(list(range(n)))
    pv.set_layout("three")
    app.processEvents()
    views = list(window.planes.views.values())
    sagittal = window.planes.views["sagittal"]
    _, rows, cols = s.volume.voxels.shape
    rng = np.random.default_rng(0)
    n_samples = 40 if quick else 200

    def move(_k: int) -> float:
        point = (int(rng.integers(0, n)), int(rng.integers(0, rows)), int(rng.integers(0, cols)))
        t0 = time.perf_counter()
        pv.move_to(point)
        for view in views:
            view.viewport().repaint()
        return 1000 * (time.perf_counter() - t0)

    def stamp(k: int) -> float:
        if k % 20 == 0:  # a new stroke every 20 stamps, down the sagittal plane on screen
            sagittal.strokeFinished.emit()
            sagittal.strokeStarted.emit(n * 0.3, rows * 0.4, False)
            app.processEvents()
        r = n * 0.3 + (k % 20) * 3.0
        t0 = time.perf_counter()
        sagittal.strokeMoved.emit(r, rows * 0.4 + 20 * ((k // 20) % 5))
        app.sendPostedEvents()
        app.processEvents()
        return 1000 * (time.perf_counter() - t0)

    idle_mv = [move(k) for k in range(n_samples // 2)]
    window.set_tool(BRUSH)
    pv.move_to((n // 2, rows // 2, cols // 2))
    idle_st = [stamp(k) for k in range(n_samples // 2)]
    sagittal.strokeFinished.emit()
    window.set_tool(NAVIGATE)

    def busy_move(k: int, _i: int) -> float:
        window.set_tool(NAVIGATE)
        return move(k)

    def busy_stamp(k: int, i: int) -> float:
        if k % 40 == 1:
            window.set_tool(BRUSH)
            pv.move_to((n // 2, rows // 2, cols // 2))
        return stamp(i)

    mv, st, busy = _sample_while_predicting(app, c, n_samples, busy_move, busy_stamp)
    sagittal.strokeFinished.emit()
    c.shutdown()
    result = {"crosshair_move_ms": _stat(mv), "sagittal_stamp_ms": _stat(st), "crosshair_move_idle_ms": _stat(idle_mv),
              "sagittal_stamp_idle_ms": _stat(idle_st), "samples_with_inference": busy, "samples": len(mv) + len(st),
              "shape": [n, rows, cols], "peak_rss_bytes": peak_rss_bytes()}
    for key in ("crosshair_move_idle_ms", "crosshair_move_ms", "sagittal_stamp_idle_ms", "sagittal_stamp_ms"):
        print(f"{key}: p95 {result[key]['p95']:.1f} ms, median {result[key]['median']:.1f} ms "
              f"(n={result[key]['n']})")
    print(f"scan {n} x {rows} x {cols}; {busy} of {len(mv) + len(st)} samples with inference running; "
          f"peak RSS {result['peak_rss_bytes'] / 2**30:.2f} GiB")
    return result


# --------------------------------------------------------------------------------------------- start-up
def startup(quick: bool) -> dict:
    from PySide6.QtWidgets import QApplication


    app = _application()
    window = create_window()
    window.files.has_unsaved = lambda: False
    window.prompts.quiet = True
    app.processEvents()
    window.repaint()
    t_shown = time.time()
    tf_loaded = "tensorflow" in sys.modules
    c = window.controller
    ok = _wait(app, lambda: c.session is not None and bool(c.session.ai_done[c.current_slice])
               and window.slice_view.layers["ai"].mask is not None, 240)
    window.slice_view.viewport().repaint()
    t_overlay = time.time()
    c.shutdown()
    QApplication.processEvents()
    return {"t_shown": t_shown, "t_overlay": t_overlay if ok else float("nan"), "tf_loaded_at_shown": tf_loaded,
            "tf_loaded_at_overlay": "tensorflow" in sys.modules}


# --------------------------------------------------------------------------------------------- first image
def first_image(scan: Path) -> dict:
    """A fresh window (no scan open, the bundled model) opens the DICOM series ``scan``: wall-clock times when the
    window is shown, when the open starts, when the preview of the slice in view has been painted, when the whole
    series is open and painted, and when the AI overlay of that slice has arrived and been painted."""
    app = _application()
    window = create_window(None, sample_when_empty=False)
    window.files.has_unsaved = lambda: False
    window.prompts.quiet = True
    app.processEvents()
    window.repaint()
    t_shown = time.time()
    c = window.controller
    marks: dict = {}

    def on_preview(_preview) -> None:  # connected after the viewer's slot: the preview is in the view
        window.slice_view.viewport().repaint()
        marks.setdefault("t_first_image", time.time())

    c.previewReady.connect(on_preview)
    t_open = time.time()
    if not window.files.open_path(scan, ask=False):
        raise RuntimeError(f"the window refused to open {scan}")
    if not _wait(app, lambda: c.session is not None, 600):
        raise RuntimeError("the scan did not open")
    window.slice_view.viewport().repaint()
    t_open_done = time.time()
    ok = _wait(app, lambda: bool(c.session.ai_done[c.current_slice])
               and window.slice_view.layers["ai"].mask is not None, 600)
    window.slice_view.viewport().repaint()
    t_overlay = time.time()
    c.shutdown()
    return {"t_shown": t_shown, "t_open": t_open, "t_first_image": marks.get("t_first_image", float("nan")),
            "t_open_done": t_open_done, "t_overlay": t_overlay if ok else float("nan"),
            "n_slices": int(c.session.n_slices)}


# --------------------------------------------------------------------------------------------- memory
def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started: ``VmHWM`` from /proc (Linux).

    Not ``ru_maxrss``: Linux carries that high-water mark across fork + exec, so a child started by a large parent
    (the bench after its training section) would report the parent's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def memory(quick: bool, scan: Path) -> dict:
    import cv2
    import numpy as np


    app = _application()  # as the heartseg command makes it (a 1 ms GIL switch interval)
    window = create_window(None, sample_when_empty=False)
    window.files.has_unsaved = lambda: False
    window.prompts.quiet = True
    c = window.controller
    c.auto_predict = False
    c.open_scan(scan)
    if not _wait(app, lambda: c.session is not None and not c.is_busy(LOAD), 600):
        raise RuntimeError("the scan did not open")
    s = c.session
    n, rows, cols = s.volume.voxels.shape
    # an AI prediction arriving batch by batch, as the prediction job delivers it (thresholded masks)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for start in range(0, n, 8):
        idx = list(range(start, min(n, start + 8)))
        probs = np.empty((len(idx), rows, cols), np.float32)
        for j, i in enumerate(idx):
            r = 20 + 60 * np.sin(np.pi * (i + 0.5) / n)
            probs[j] = np.clip(1.0 - (((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2) / r ** 2) / 2, 0, 1)
        s.set_prediction(idx, (probs >= 0.5).astype(np.uint8))
        # the review data that arrives with each batch: uncertainty and the uint8 confidence maps (model grid)
        grid = np.stack([cv2.resize(p, (128, 128), interpolation=cv2.INTER_AREA) for p in probs])
        s.set_uncertainty(idx, slice_uncertainty(grid), confidence_map(grid))
        c.predictionChanged.emit(idx)
        app.processEvents()
    c.accept_ai_all()
    # 99 brush strokes on different slices (each one undo step)
    for k in range(99):
        c.set_slice((k * 5) % n)
        c.begin_stroke(rows / 2 + 120, cols / 2 - 40 + k % 20, False, 6.0)  # outside the accepted AI mask
        for step in range(15):
            c.continue_stroke(rows / 2 + 120 + 3 * step, cols / 2 - 40 + k % 20 + 2 * step)
        c.end_stroke()
        app.processEvents()
    app.processEvents()
    steps = s.editor.undo_steps
    peak = peak_rss_bytes()
    try:
        import psutil

        current = psutil.Process().memory_info().rss
    except Exception:  # noqa: BLE001
        current = None
    detail = {"voxels": int(s.volume.voxels.nbytes), "editor_mask": int(s.editor.mask.nbytes),
              "undo_bytes": int(s.editor.undo_bytes)}
    for name in ("ai_mask", "confidence"):
        arr = getattr(s, name, None)
        if arr is not None and hasattr(arr, "nbytes"):
            detail[name] = int(arr.nbytes)
    c.shutdown()
    return {"peak_rss_bytes": int(peak), "current_rss_bytes": current, "undo_steps": int(steps),
            "voxel_bytes": int(s.volume.voxels.nbytes), "shape": [n, rows, cols], "detail": detail}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m heartseg_gui.bench.gui")
    p.add_argument("mode", choices=["interactive", "startup", "memory", "planes", "firstimage"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--scan", type=Path, default=None)
    args = p.parse_args(argv)
    if args.mode == "interactive":
        result = interactive(args.quick)
    elif args.mode == "startup":
        result = startup(args.quick)
    elif args.mode == "planes":
        result = planes(args.quick)
    elif args.mode == "firstimage":
        result = first_image(args.scan)
    else:
        result = memory(args.quick, args.scan)
    args.out.write_text(json.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown (Qt + TensorFlow objects in finalisation can crash it)


if __name__ == "__main__":
    sys.exit(main())
