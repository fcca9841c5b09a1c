"""Running an inference engine over a scan: batched at the engine's fixed shape (the last batch padded, so
nothing is re-traced or re-compiled), current slice first, slices preprocessed (:mod:`core.preprocess`) in a
background thread while the engine runs the previous batch, cancellable per batch.

Output probabilities are ``(n_slices, rows, cols)`` float32 in 0..1 on the scan's own grid.

Sagittal and coronal series (and oblique ones nearest to them) are resliced: :meth:`EngineRunner.predict_volume`
and :meth:`EngineRunner.predict_masks` run the model on the axial view of the voxels
(:func:`core.inference.reslice.axial_view`: axes permuted, nothing interpolated), threshold and post-process there
exactly as for an axial scan, and permute the result back onto the series' own grid. The callbacks then come once
the whole scan is done, per stored slice (current slice first): ``on_batch`` gets the final, post-processed masks;
``on_probabilities`` gets each stored slice's probabilities (the resliced-back axial ones, kept as float16) resized
to the model grid, so the per-slice uncertainty, the QC rows and the confidence overlay describe the stored slices
the user reviews; the uncertainty measures were validated on axial slices only. :meth:`EngineRunner.iter_batches`
always runs on the volume's own slices.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

import numpy as np

from core import preprocess
from core.inference.reslice import axial_orientation, axial_view, stored_view, to_stored
from core.postprocess import PostprocessOptions, postprocess_for_volume, postprocess_masks, threshold_of
from core.types import CancelToken, Progress, ProgressFn, Volume, check_cancel, report

#: ``on_batch(indices, array)``: called as each batch finishes.
BatchFn = Callable[[list, np.ndarray], None]


def slice_order(n: int, first: Optional[int]) -> list[int]:
    """All slice indices, starting at ``first`` and moving outward (first, first+1, first-1, first+2 ...)."""
    if first is None or not 0 <= first < n:
        return list(range(n))
    order = [first]
    for step in range(1, n):
        for cand in (first + step, first - step):
            if 0 <= cand < n:
                order.append(cand)
    return order


class EngineRunner:
    """An engine (see :mod:`core.inference.engines`) run over volumes. Thread-compatible: one call at a time."""

    def __init__(self, engine, *, name: str = "model"):
        self._engine = engine
        self.name = name
        self.batch_size, self.runtime = engine.batch_size, engine.runtime
        self.image_size, self.dtype = engine.image_size, engine.precision

    @property
    def engine(self):
        return self._engine

    @property
    def description(self) -> str:
        """``"OpenVINO bfloat16"`` and the like, for the status bar and logs."""
        return f"{'OpenVINO' if self.runtime == 'openvino' else 'TensorFlow'} {self.dtype}"

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """``(k, s, s, 3)`` float32 model input (k <= batch_size) -> ``(k, s, s)`` float32 probabilities."""
        k = batch.shape[0]
        if k > self.batch_size:
            return np.concatenate([self.predict_batch(batch[i:i + self.batch_size])
                                   for i in range(0, k, self.batch_size)])
        if k < self.batch_size:
            pad = np.zeros((self.batch_size - k,) + batch.shape[1:], np.float32)
            batch = np.concatenate([batch, pad])
        return self.engine.run(batch)[:k]

    def iter_batches(self, volume: Volume, *, first: Optional[int] = None,
                     indices: Optional[Sequence[int]] = None, progress: Optional[ProgressFn] = None,
                     cancel: Optional[CancelToken] = None, model_grid: bool = False):
        """Yield ``(indices, probs (k, rows, cols) float32)`` batch by batch, slice ``first`` first
        (``model_grid``: the model's own ``(k, s, s)`` output, not yet resized to the slice).

        The next batch is preprocessed in a background thread while the model runs; cancellation is checked
        before every batch (:class:`core.errors.Cancelled`).
        """
        order = list(indices) if indices is not None else slice_order(volume.n_slices, first)
        if indices is not None and first in order:
            order.remove(first)
            order.insert(0, first)
        rows, cols = volume.slice_shape
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        total = len(order)
        done = 0
        report(progress, Progress("predict", 0, total, "predicting"))

        def prep(idx):
            return preprocess.volume_to_model_input(volume, idx, self.image_size)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(prep, batches[0]) if batches else None
            for b, idx in enumerate(batches):
                check_cancel(cancel)
                x = pending.result()
                if b + 1 < len(batches):
                    pending = pool.submit(prep, batches[b + 1])
                probs = self.predict_batch(x)
                if model_grid:
                    yield list(idx), probs
                else:
                    yield list(idx), np.stack([preprocess.probability_to_slice(p, (rows, cols)) for p in probs])
                done += len(idx)
                report(progress, Progress("predict", done, total, f"{done}/{total} slices"))

    def predict_volume(self, volume: Volume, *, first: Optional[int] = None,
                       indices: Optional[Sequence[int]] = None, progress: Optional[ProgressFn] = None,
                       cancel: Optional[CancelToken] = None, on_batch: Optional[BatchFn] = None) -> np.ndarray:
        """Heart probabilities for every slice: ``(n_slices, rows, cols)`` float32 0..1 (NaN-free).

        ``first``: slice predicted first (the one on screen), then outward. ``indices``: only these slices
        (others stay 0). ``on_batch(indices, probs (k, rows, cols))`` is called as each batch finishes.
        Raises :class:`core.errors.Cancelled` when ``cancel`` is set (checked per batch). A sagittal or coronal
        series is predicted on its axial view (every axial slice, whatever ``indices``: each stored slice needs
        them all) and the probabilities permuted back (module docstring).
        """
        ornt = axial_orientation(volume)
        if ornt is not None:
            probs = to_stored(self._predict_probabilities(axial_view(volume, ornt), progress=progress,
                                                          cancel=cancel), ornt)
            order = slice_order(volume.n_slices, first)
            if indices is not None:
                wanted = set(int(i) for i in indices)
                probs[[i for i in range(volume.n_slices) if i not in wanted]] = 0.0
                order = [i for i in order if i in wanted]
            if on_batch is not None:
                for start in range(0, len(order), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    on_batch(idx, probs[idx])
            return probs
        return self._predict_probabilities(volume, first=first, indices=indices, progress=progress, cancel=cancel,
                                           on_batch=on_batch)

    def _predict_probabilities(self, volume: Volume, *, first: Optional[int] = None,
                               indices: Optional[Sequence[int]] = None, progress: Optional[ProgressFn] = None,
                               cancel: Optional[CancelToken] = None, on_batch: Optional[BatchFn] = None) -> np.ndarray:
        out = np.zeros((volume.n_slices,) + volume.slice_shape, np.float32)
        for idx, probs in self.iter_batches(volume, first=first, indices=indices, progress=progress,
                                            cancel=cancel):
            out[idx] = probs
            if on_batch is not None:
                on_batch(idx, probs)
        return out

    def predict_masks(self, volume: Volume, *, first: Optional[int] = None, progress: Optional[ProgressFn] = None,
                      cancel: Optional[CancelToken] = None, on_batch: Optional[BatchFn] = None,
                      on_probabilities: Optional[BatchFn] = None, threshold: Optional[float] = None,
                      postprocess: Optional[PostprocessOptions] = None) -> np.ndarray:
        """Heart masks ``(n_slices, rows, cols)`` uint8 0/1, thresholded batch by batch (a quarter of the memory
        of :meth:`predict_volume` on large scans), then post-processed over the whole volume.

        ``on_batch(indices, masks (k, rows, cols) uint8)`` gets each batch's thresholded masks (before the
        whole-volume post-processing); ``on_probabilities(indices, probs (k, s, s) float32)`` the batch's
        model-grid probabilities (for :class:`core.review.uncertainty.UncertaintyCollector`). Same as
        ``probabilities_to_masks(predict_volume(...), ...)`` with ``postprocess_for_volume(volume, postprocess)``.
        ``threshold`` defaults to ``postprocess.threshold`` (0.5 without post-processing). A sagittal or coronal
        series is predicted, thresholded and post-processed on its axial view and the masks permuted back; the
        callbacks then come at the end, per stored slice (module docstring).
        """
        if threshold is None:
            threshold = threshold_of(postprocess)
        ornt = axial_orientation(volume)
        if ornt is not None:
            return self._predict_masks_resliced(volume, ornt, first=first, progress=progress, cancel=cancel,
                                                on_batch=on_batch, on_probabilities=on_probabilities,
                                                threshold=threshold, postprocess=postprocess)
        out = np.zeros(volume.voxels.shape, np.uint8)
        self._threshold_batches(volume, out, threshold, first=first, progress=progress, cancel=cancel,
                                on_batch=on_batch, on_probabilities=on_probabilities)
        return postprocess_masks(out, postprocess_for_volume(volume, postprocess))

    def _threshold_batches(self, volume: Volume, out: np.ndarray, threshold: float, *, first=None, progress=None,
                           cancel=None, on_batch=None, on_probabilities=None, probs_out=None) -> None:
        """Predict every slice of ``volume`` into ``out`` (uint8 0/1, thresholded; ``probs_out``: the slice-size
        probabilities too, in its dtype)."""
        rows, cols = volume.slice_shape
        grid = np.empty((rows, cols), np.float32)  # one buffer for every slice: no large temporaries per batch
        for idx, probs in self.iter_batches(volume, first=first, progress=progress, cancel=cancel, model_grid=True):
            if on_probabilities is not None:
                on_probabilities(idx, probs)
            for p, i in zip(probs, idx):
                preprocess.probability_to_slice(p, (rows, cols), out=grid)
                np.greater_equal(grid, threshold, out=out[i].view(bool))  # as preprocess.threshold, in place
                if probs_out is not None:
                    probs_out[i] = grid
            if on_batch is not None:
                on_batch(idx, out[idx])

    def _predict_masks_resliced(self, volume: Volume, ornt: np.ndarray, *, first, progress, cancel, on_batch,
                                on_probabilities, threshold: float, postprocess) -> np.ndarray:
        view = axial_view(volume, ornt)
        axial = np.zeros(view.voxels.shape, np.uint8)
        probs = np.zeros(view.voxels.shape, np.float16) if on_probabilities is not None else None
        self._threshold_batches(view, axial, threshold, progress=progress, cancel=cancel, probs_out=probs)
        masks = to_stored(postprocess_masks(axial, postprocess_for_volume(view, postprocess)), ornt)
        stored_probs = None if probs is None else stored_view(probs, ornt)
        order = slice_order(volume.n_slices, first)
        size = (self.image_size, self.image_size)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if stored_probs is not None:
                on_probabilities(idx, np.stack([preprocess.probability_to_slice(
                    np.ascontiguousarray(stored_probs[i], dtype=np.float32), size) for i in idx]))
            if on_batch is not None:
                on_batch(idx, masks[idx])
        return masks
