"""Pieces of the window on their own: the mask layer's region repaint, display helpers, the job runner."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from core.errors import Cancelled, HeartsegError  # noqa: E402
from heartseg_gui import display  # noqa: E402
from tests.helpers import drawn_pixels, outline  # noqa: E402

pytestmark = pytest.mark.gui


def test_outline_marks_only_boundary_pixels(qtbot):
    from heartseg_gui.views.mask_layer import MaskLayerItem

    m = np.zeros((7, 7), np.uint8)
    m[1:6, 1:6] = 1
    edge = outline(m)
    assert edge[1, 1:6].all() and edge[5, 1:6].all() and edge[1:6, 1].all()
    assert not edge[2:5, 2:5].any() and not edge[0].any()
    full = np.ones((3, 3), np.uint8)
    assert outline(full).sum() == 8  # the image edge counts as background
    for mask in (m, full):  # the mask layer's outline mode draws exactly these pixels
        item = MaskLayerItem((0, 255, 0), outline_mode=True)
        item.set_mask(mask)
        assert np.array_equal(drawn_pixels(item), outline(mask))


def test_window_helpers():
    assert display.MEDIASTINUM.levels == (-135.0, 215.0)
    assert display.LUNG.levels == (-1350.0, 150.0)
    assert display.BONE.levels == (-700.0, 1300.0)
    assert display.kaggle_levels_for("kaggle8bit", (0, 200)) == (0.0, 255.0)
    assert display.default_levels("kaggle8bit", (0, 255)) == (0.0, 255.0)
    assert not display.preset_applies(display.LUNG, "kaggle8bit")
    low, high = display.adjust_window((0.0, 100.0), -500.0, 10.0)
    assert high - low == 1.0 and (low + high) / 2 == 60.0
    table = display.mask_color_table((255, 0, 0))
    assert len(table) == 256 and table[0] == 0 and table[1] == 0xFFFF0000


@pytest.mark.parametrize("outline_mode", [False, True])
def test_mask_layer_region_update_matches_full_redraw(qtbot, outline_mode):
    from heartseg_gui.views.mask_layer import MaskLayerItem

    rng = np.random.default_rng(0)
    base = (rng.random((40, 37)) > 0.5).astype(np.uint8)
    item = MaskLayerItem((0, 255, 0), outline_mode=outline_mode)
    item.set_mask(base)
    changed = base.copy()
    changed[10:20, 5:15] = 1
    changed[12:14, 7:9] = 0
    item.update_region(changed, 10, 20, 5, 15)
    reference = MaskLayerItem((0, 255, 0), outline_mode=outline_mode)
    reference.set_mask(changed)
    assert np.array_equal(item.mask, changed)
    assert np.array_equal(drawn_pixels(item), drawn_pixels(reference))
    assert item.last_repaint.width() <= 12 and item.last_repaint.height() <= 12
    # changing the mode redraws from the kept copy
    item.set_outline(not outline_mode)
    reference.set_outline(not outline_mode)
    assert np.array_equal(drawn_pixels(item), drawn_pixels(reference))


@pytest.mark.parametrize("outline_mode", [False, True])
def test_mask_layer_reused_for_new_slices_draws_each_exactly_and_paints_nothing_when_empty(qtbot, outline_mode):
    """The crosshair sets a new slice on each layer per move: the buffers are reused, so each new slice (a
    strided sagittal one included) must be drawn exactly as by a fresh layer, and an empty one not at all."""
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QStyleOptionGraphicsItem

    from heartseg_gui.views.mask_layer import MaskLayerItem

    rng = np.random.default_rng(1)
    volume = (rng.random((30, 40, 37)) > 0.6).astype(np.uint8)
    item = MaskLayerItem((255, 0, 0), outline_mode=outline_mode)
    for sl in (volume[3], volume[:, 5, :], volume[:, :, 7], np.zeros((40, 37), np.uint8), volume[4]):
        item.set_mask(sl)
        fresh = MaskLayerItem((255, 0, 0), outline_mode=outline_mode)
        fresh.set_mask(sl.copy())
        assert np.array_equal(item.mask, sl != 0)
        assert np.array_equal(drawn_pixels(item), drawn_pixels(fresh))
        canvas = QImage(40, 40, QImage.Format.Format_ARGB32)
        canvas.fill(0)
        painter = QPainter(canvas)
        option = QStyleOptionGraphicsItem()
        option.exposedRect = item.boundingRect()
        item.paint(painter, option)
        painter.end()
        painted = any(canvas.pixel(x, y) != 0 for x in range(sl.shape[1]) for y in range(sl.shape[0]))
        assert painted == bool(sl.any())


def _run(qtbot, fn):
    from PySide6.QtCore import QThread

    from heartseg_gui.workers import Job, JobRunner, error_text

    runner = JobRunner()
    job = Job("test", fn, generation=7)
    seen, threads = {}, []

    def note(key, value):
        threads.append(QThread.currentThread())
        seen.setdefault(key, value)

    runner.start(job, returned=lambda r: note("returned", (job.generation, r)),
                 errored=lambda exc: note("errored", (job.generation, exc, error_text(job.name, exc))),
                 aborted=lambda: note("cancelled", job.generation))
    if getattr(fn, "cancel_now", False):
        job.cancel()
    qtbot.waitUntil(lambda: not runner.jobs, timeout=10_000)
    assert threads and all(t is QThread.currentThread() for t in threads)  # callbacks run in the GUI thread
    return seen


def test_job_runner_reports_result_error_and_cancel(qtbot):
    def ok(*, progress, cancel, yielded):
        return 42

    def bad_input(*, progress, cancel, yielded):
        raise HeartsegError("broken file", "/x/y.png")

    def crash(*, progress, cancel, yielded):
        raise ZeroDivisionError("boom")

    def slow(*, progress, cancel, yielded):
        for _ in range(200):
            if cancel.cancelled:
                raise Cancelled()
            time.sleep(0.01)
        return "finished"

    slow.cancel_now = True
    assert _run(qtbot, ok) == {"returned": (7, 42)}
    seen = _run(qtbot, bad_input)
    generation, exc, text = seen["errored"]
    assert generation == 7 and isinstance(exc, HeartsegError) and text == "/x/y.png: broken file"
    seen = _run(qtbot, crash)
    assert isinstance(seen["errored"][1], ZeroDivisionError)  # the exception object itself
    assert "ZeroDivisionError" in seen["errored"][2]
    assert _run(qtbot, slow) == {"cancelled": 7}


def test_controller_slots_run_in_the_main_thread(qtbot):
    """Job signals are emitted in the worker thread; the controller's slots must still run in the GUI thread."""
    from PySide6.QtCore import QThread

    from heartseg_gui.controllers.controller import Controller

    c = Controller()
    threads = []
    c.jobProgress.connect(lambda *a: threads.append(QThread.currentThread()))

    def fn(*, progress, cancel, yielded):
        from core.types import Progress

        progress(Progress("read", 1, 2))
        return None

    c._start("predict", "probe", fn, "probe")
    qtbot.waitUntil(lambda: not c.runner.jobs, timeout=10_000)
    assert threads and all(t is QThread.currentThread() for t in threads)


def test_job_runner_shutdown_waits_for_threads(qtbot):
    from heartseg_gui.workers import Job, JobRunner

    def slow(*, progress, cancel, yielded):
        while not cancel.cancelled:
            time.sleep(0.01)
        raise Cancelled()

    runner = JobRunner()
    runner.start(Job("slow", slow))
    qtbot.wait(50)
    runner.shutdown()
    assert not runner.jobs


def test_job_bar_coalesces_fast_progress_and_shows_the_last(qtbot):
    from heartseg_gui.widgets.job_bar import MIN_INTERVAL_S, JobBar

    bar = JobBar()
    qtbot.addWidget(bar)
    bar.start("Predicting…")
    for done in range(1, 11):
        bar.progress(done, 10, f"{done} / 10")
    assert bar.bar.value() == 1 and bar.label.text() == "1 / 10"  # the rest came within MIN_INTERVAL_S
    qtbot.waitUntil(lambda: bar.bar.value() == 10, timeout=int(MIN_INTERVAL_S * 1000) + 2000)
    assert bar.label.text() == "10 / 10"
    bar.start("again")
    bar.progress(1, 4)
    bar.progress(2, 4)
    bar.finish()  # a pending report after finish is dropped
    qtbot.wait(int(MIN_INTERVAL_S * 1000) + 100)
    assert bar.bar.value() == 1


def test_prediction_job_reports_the_slices_its_cleanup_changed(tmp_path, monkeypatch):
    """The window applies each batch as it comes, then only the slices the whole-volume clean-up changed."""
    from core.types import CancelToken, Volume
    from heartseg_gui import jobs
    from tests.helpers import tiny_model

    monkeypatch.setenv("HEARTSEG_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.keras"
    tiny_model(model)
    rng = np.random.default_rng(3)
    vol = Volume(rng.integers(-1000, 1500, (12, 64, 64)).astype(np.int16), (1.0, 1.0, 1.0), None,
                 [f"s{i}" for i in range(12)], "hu", "nifti", "synthetic")
    shown = np.zeros((12, 64, 64), np.uint8)

    scores = np.full(12, np.nan)

    def batch(payload):
        idx, masks, unc, maps = payload
        shown[idx] = masks
        scores[idx] = unc
        assert maps.dtype == np.uint8 and maps.shape == (len(idx), 64, 64)

    run = jobs.predict_job(jobs.PredictorCache(), model, vol, 5, "float32")
    messages = []
    name, final, changed, review = run(progress=lambda p: messages.append(p.message), cancel=CancelToken(),
                                       yielded=batch)
    assert np.all((scores >= 0) & (scores <= 1))  # every slice got its uncertainty with its batch
    assert len(review["flags"]) == 12 and review["adjacent"] is True
    assert messages[0].startswith("Preparing this model for fast inference")  # a new model is converted first
    assert messages[-1] == "12/12 slices"
    assert name.startswith("m.keras (OpenVINO float32")
    differ = [i for i in range(12) if not np.array_equal(shown[i], final[i])]
    assert differ == changed  # exactly the slices the clean-up altered after their batch was sent
    shown[changed] = final[changed]
    assert np.array_equal(shown, final)


def test_cyclic_qt_garbage_is_destroyed_in_the_gui_thread_while_jobs_run(qtbot):
    """A Qt object in a reference cycle, dropped while a job allocates on its worker thread, is destroyed in the
    GUI thread, never on the worker (Python's collector would run where the allocation crossed its threshold)."""
    import gc

    from PySide6.QtCore import QObject, Qt, QThread

    from heartseg_gui.workers import Job, JobRunner

    runner = JobRunner()  # the first runner hands collection to the GUI thread
    assert not gc.isenabled()
    destroyed_in = []

    def make_cycle():
        obj = QObject()
        obj.me = obj  # a cycle: only the collector frees it
        obj.destroyed.connect(lambda *_: destroyed_in.append(QThread.currentThread()),
                              Qt.ConnectionType.DirectConnection)

    def allocate(*, progress, cancel, yielded):
        for _ in range(50):
            junk = [[] for _ in range(2000)]
            for a, b in zip(junk, junk[1:]):
                a.append(b)
                b.append(a)  # cycles, so the collector's counts rise as they would in real work
        return len(junk)

    make_cycle()
    runner.start(Job("alloc", allocate))
    qtbot.waitUntil(lambda: not runner.jobs, timeout=20_000)
    qtbot.waitUntil(lambda: bool(destroyed_in), timeout=5_000)  # the GUI thread's timer collects it
    assert destroyed_in == [QThread.currentThread()]


def test_review_queue_updates_changed_cells_in_place_and_matches_a_fresh_fill(qtbot):
    """A second set_rows over the same slices rewrites only the changed cells (same item objects) and shows
    exactly what a fresh queue filled with the same data shows, in the same order; NaN scores sort last."""
    from heartseg_gui.widgets.review_queue import ReviewQueue

    def shown(q):
        t = q.table
        return [tuple(t.item(r, c).text() for c in range(4)) for r in range(t.rowCount())]

    names = [f"1-{i + 1:03d}" for i in range(6)]
    scores = np.array([0.1, np.nan, 0.5, 0.3, 0.9, 0.2])
    flags = [[], [], ["small_mask"], [], [], []]
    states = ["not_reviewed"] * 6
    done = [True] * 5 + [False]
    q = ReviewQueue()
    qtbot.addWidget(q)
    q.set_rows(names, scores, flags, states, done)
    items_before = {q.table.item(r, 0).data(256): q.table.item(r, 3) for r in range(5)}
    assert [row[0].split()[0] for row in shown(q)] == ["5", "3", "4", "1", "2"]   # most uncertain first, NaN last
    scores2, states2, flags2 = scores.copy(), list(states), [list(f) for f in flags]
    scores2[0], states2[3], flags2[2] = 0.95, "corrected", []
    q.set_rows(names, scores2, flags2, states2, done)
    fresh = ReviewQueue()
    qtbot.addWidget(fresh)
    fresh.set_rows(names, scores2, flags2, states2, done)
    assert shown(q) == shown(fresh)
    assert shown(q)[0][0].startswith("1 ") and ("4  (1-004)", "0.30", "", "corrected") in shown(q)
    after = {q.table.item(r, 0).data(256): q.table.item(r, 3) for r in range(5)}
    assert all(after[i] is items_before[i] for i in items_before)   # updated in place, not rebuilt
    for done2 in ([True] * 6, [False, True, True, False, True, True]):   # a batch arrives; a new prediction
        scores2[5] = 0.3   # ties with slice 4 (index 3): slice order first, as Review > Next most uncertain
        q.set_rows(names, scores2, flags2, states2, done2)
        fresh = ReviewQueue()
        qtbot.addWidget(fresh)
        fresh.set_rows(names, scores2, flags2, states2, done2)
        assert shown(q) == shown(fresh) and q.table.rowCount() == sum(done2)
        listed = [int(q.table.item(r, 0).data(256)) for r in range(q.table.rowCount())]
        assert [i for i in listed if i in (3, 5)] == [i for i in (3, 5) if done2[i]]
    assert q.summary.text().startswith("4 slices predicted, 4 not reviewed")   # the corrected slice 4 is gone
    order = [int(q.table.item(r, 0).data(256)) for r in range(q.table.rowCount())]
    assert order == [4, 2, 5, 1]
