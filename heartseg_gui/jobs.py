"""The job functions the window runs on worker threads (see :mod:`heartseg_gui.workers`), and the job kinds.

Each returns a plain function ``fn(*, progress, cancel, yielded)`` that calls one core job with copies of the data
it needs. The inference runtime (OpenVINO, or TensorFlow) and TensorFlow for training are loaded only inside the
running job (by :mod:`core.inference` and :mod:`core.versions.retrain`), never at import time.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from core.errors import Cancelled
from core.inference.predictor import Predictor
from core.io import open_scan
from core.postprocess import DEFAULT_POSTPROCESS, slices_adjacent
from core.review.qc import scan_flags, slice_flags
from core.review.uncertainty import UncertaintyCollector
from core.types import Volume
from core.versions.retrain import RetrainRequest, run_retraining

#: the controller's job kinds (one job of each kind at a time; one model job at a time overall)
LOAD = "load"
PREDICT = "predict"
#: the retraining job's name (run by :class:`heartseg_gui.controllers.retrain_manager.RetrainManager`)
RETRAIN = "retraining"


class PredictorCache:
    """Keeps the last :class:`core.inference.predictor.Predictor` so a second job on the same model does not reload it.

    Only touched from worker threads, one model job at a time; guarded by a lock anyway.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key = None
        self._predictor = None

    def get(self, model_path: Path, precision: str = "auto", progress=None):
        """The predictor for ``model_path`` (OpenVINO; TensorFlow only when a model must first be converted, or
        OpenVINO is missing): worker thread only. ``progress`` hears when a new model is being converted."""
        key = (str(model_path), _mtime(model_path), precision)
        with self._lock:
            if self._key != key or self._predictor is None:
                self._predictor = None
                self._predictor = Predictor(str(model_path), dtype=precision, threads=inference_threads(),
                                            progress=progress)
                self._key = key
            return self._predictor


def inference_threads() -> Optional[int]:
    """CPU threads for the window's background inference: all usable cores but one, so the GUI thread always has
    a core to itself while a model runs (measured by ``heartseg bench``, section 2). None on one core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores - 1 if cores > 1 else None


def _mtime(path: Path) -> Optional[tuple]:
    """What identifies a model file's content cheaply: modification time (ns), size and inode."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def lower_thread_priority(niceness: int = 19) -> None:
    """Lower the calling worker thread's CPU priority (Linux: per-thread nice; threads it starts, such as
    the runtime's pools on first use, inherit it) so the window's thread wins the CPU while a model runs."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


def _read_only(array):
    if array is None:
        return None
    view = array.view()
    view.flags.writeable = False
    return view


def copy_volume(volume: Volume) -> Volume:
    """``volume`` for a job: the same voxels and dataset mask as read-only views (nothing in the window writes
    them: edits live in the MaskEditor), so a 512^3 scan is not duplicated while a prediction runs."""
    return dataclasses.replace(volume, voxels=_read_only(volume.voxels), mask=_read_only(volume.mask),
                               mask_present=_read_only(volume.mask_present), metadata=dict(volume.metadata))


def open_scan_job(path: Path, mask_path: Optional[Path] = None, label: Optional[int] = None,
                  series_uid: Optional[str] = None):
    """Open a scan (``series_uid``: that series of a DICOM folder holding several); a DICOM series yields a
    :class:`core.types.SlicePreview` of its middle slice first."""
    def run(*, progress, cancel, yielded):
        return open_scan(path, mask_path, progress=progress, cancel=cancel, label=label, preview=yielded,
                         series_uid=series_uid)

    return run


def load_patient_job(dataset, patient_id: str):
    def run(*, progress, cancel, yielded):
        return dataset.load(patient_id, progress=progress, cancel=cancel, preview=yielded)

    return run


def predict_job(cache: PredictorCache, model_path: Path, volume: Volume, first: int, precision: str = "auto"):
    """Predict every slice of ``volume`` (slice ``first`` first) at ``precision`` (see
    :data:`core.inference.predictor.DTYPES`). ``yielded`` receives ``(indices, masks (k, rows, cols) uint8, uncertainty (k,),
    confidence maps (k, s, s) uint8)`` per batch (:mod:`core.review.uncertainty`); the job returns
    ``("<model file> (<runtime> <precision>)", masks (n, rows, cols) uint8, changed, review)`` where ``review``
    holds the QC flags of the final masks (``flags`` per slice, ``scan_flags``, ``adjacent``) and
    ``changed`` lists the slices the whole-volume clean-up altered after their batch was sent (the clean-up only
    removes voxels, so a slice changed exactly when its count dropped): the window re-applies only those."""

    def run(*, progress, cancel, yielded):
        lower_thread_priority()  # before the runtime starts its thread pools: they inherit it
        predictor = cache.get(model_path, precision, progress)  # a model never seen is converted first (~10 s)
        if cancel.cancelled:
            raise Cancelled()
        sent = np.zeros(volume.n_slices, np.int64)
        collector = UncertaintyCollector(volume.n_slices, DEFAULT_POSTPROCESS.threshold,
                                         min_slice_fraction=DEFAULT_POSTPROCESS.min_slice_fraction)

        def on_batch(indices, masks):
            idx = list(indices)
            sent[idx] = np.count_nonzero(masks.reshape(len(masks), -1), axis=1)
            yielded((idx, masks, collector.scores[idx].copy(), collector.maps[idx].copy()))

        masks = predictor.predict_masks(volume, first=first, progress=progress, cancel=cancel, on_batch=on_batch,
                                        on_probabilities=collector.add, postprocess=DEFAULT_POSTPROCESS)
        final = np.count_nonzero(masks.reshape(len(masks), -1), axis=1)
        changed = [int(i) for i in np.flatnonzero(final != sent)]
        adjacent = slices_adjacent(volume)
        review = {"flags": slice_flags(masks, adjacent=adjacent),
                  "scan_flags": scan_flags(masks, adjacent=adjacent, spacing=volume.spacing), "adjacent": adjacent}
        return (f"{predictor.name} ({predictor.description})", masks, changed, review)

    return run


def retrain_job(request: RetrainRequest):
    """One retraining (:func:`core.versions.retrain.run_retraining`, which imports TensorFlow on this worker
    thread); returns its :class:`core.versions.retrain.RetrainOutcome`."""

    def run(*, progress, cancel, yielded):
        return run_retraining(request, progress=progress, cancel=cancel)

    return run
