"""Running the U-Net over a scan: batched, compiled once, current slice first, cancellable.

:class:`Predictor` runs a model through one of two engines with a fixed input shape ``(batch, s, s, 3)`` (the last
batch is padded, so nothing is re-traced or re-compiled per call and there is no per-call ``model.predict``
overhead): :class:`core.openvino_runtime.OpenVinoEngine` for a model file (converted once to OpenVINO IR and
cached; float32, or bfloat16 on CPUs with AMX) or :class:`TensorFlowEngine` for an in-memory Keras model (one
``tf.function``). Slices are preprocessed (:mod:`core.preprocess`) in a background thread while the model runs on
the previous batch.

Output probabilities are ``(n_slices, rows, cols)`` float32 in 0..1 on the scan's own grid;
:func:`probabilities_to_masks` thresholds them at 0.5 and applies the optional post-processing.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from core import preprocess
from core.errors import HeartsegError
from core.types import CancelToken, Progress, ProgressFn, Volume, check_cancel, report

BatchFn = Callable[[list, np.ndarray], None]


# Post-processing lives in core.postprocess; re-exported here for the callers that predict and clean up in one go.
from core.postprocess import (DEFAULT_POSTPROCESS, NO_POSTPROCESS, PostprocessOptions,  # noqa: E402,F401
                              postprocess_for_volume, postprocess_masks, threshold_of)


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


#: Compute precisions :class:`Predictor` accepts. ``"bfloat16"`` computes in bfloat16 with float32 input and output;
#: it is only worth it on CPUs with bfloat16 units (AMX, AVX512_BF16). ``"auto"`` picks bfloat16 only with the
#: OpenVINO runtime, on a CPU with AMX, for a model whose recorded bfloat16 check passed
#: (:mod:`core.openvino_runtime`); otherwise float32.
DTYPES = ("auto", "float32", "bfloat16")
#: Inference runtimes: ``"openvino"`` (a model file converted once to OpenVINO IR; no TensorFlow needed) and
#: ``"tensorflow"`` (the Keras model in one ``tf.function``). ``"auto"``: OpenVINO for a model file when the
#: package imports, TensorFlow for an in-memory Keras model.
RUNTIMES = ("auto", "openvino", "tensorflow")


class TensorFlowEngine:
    """A Keras model in one ``tf.function`` with the fixed signature ``(batch_size, s, s, 3)`` float32 (traced
    once, on the first call). float32 only: Keras ``mixed_bfloat16`` was measured at 1.16x, OpenVINO's bfloat16
    at ~3x, so reduced precision lives in the OpenVINO runtime."""

    runtime = "tensorflow"

    precision = "float32"

    def __init__(self, model, *, batch_size: int):
        from core.model import check_model_io

        self.model = model
        self.image_size = check_model_io(model)
        self.batch_size = int(batch_size)
        self._fn = None

    def _compiled(self):
        if self._fn is None:
            import tensorflow as tf

            model = self.model
            spec = tf.TensorSpec((self.batch_size, self.image_size, self.image_size, 3), tf.float32)

            @tf.function(input_signature=[spec], reduce_retracing=True)
            def run(x):
                return tf.cast(model(x, training=False), tf.float32)

            self._fn = run
        return self._fn

    def run(self, batch: np.ndarray) -> np.ndarray:
        """``(batch_size, s, s, 3)`` float32 -> ``(batch_size, s, s)`` float32 probabilities."""
        out = self._compiled()(np.ascontiguousarray(batch, np.float32))
        return np.asarray(out)[:, :, :, 0].astype(np.float32)


def _resolve_runtime(model, runtime: str) -> str:
    from core.openvino_runtime import openvino_available

    if runtime not in RUNTIMES:
        raise ValueError(f"Predictor runtime must be one of {RUNTIMES}, got {runtime!r}")
    is_file = isinstance(model, (str, Path))
    if runtime == "auto":
        return "openvino" if is_file and openvino_available() else "tensorflow"
    if runtime == "openvino" and not is_file:
        raise ValueError("the OpenVINO runtime needs the model file (it is converted once and cached)")
    if runtime == "openvino" and not openvino_available():
        raise HeartsegError("the OpenVINO runtime is not installed (pip install openvino), or use --runtime "
                            "tensorflow")
    return runtime


class Predictor:
    """A model ready for inference. Thread-compatible: one call at a time per predictor.

    ``model``: a ``.keras`` file or an in-memory Keras model. ``runtime``: see :data:`RUNTIMES` (the window and
    ``heartseg predict`` use OpenVINO; evaluation of an in-memory model uses TensorFlow). ``dtype``: see
    :data:`DTYPES`; the precision actually used is ``self.dtype`` after construction. Output probabilities are
    float32 either way. ``threads``: CPU threads for OpenVINO (None: all cores; the window leaves one core free).
    ``progress`` hears when a model file must first be converted (seconds, once per model). ``heartseg bench``
    measures both runtimes and both precisions.
    """

    def __init__(self, model, *, batch_size: int = 8, name: Optional[str] = None, dtype: str = "float32",
                 runtime: str = "auto", threads: Optional[int] = None, progress: Optional[ProgressFn] = None):
        from core.model import load_model

        if dtype not in DTYPES:
            raise ValueError(f"Predictor dtype must be one of {DTYPES}, got {dtype!r}")
        self.batch_size = int(batch_size)
        self.threads = threads
        self.runtime = _resolve_runtime(model, runtime)
        self.model = None
        self.ir = None
        self._model_path: Optional[Path] = None
        if isinstance(model, (str, Path)):
            self.name = name or Path(model).name
            if self.runtime == "openvino":
                from core.openvino_runtime import amx_bf16_supported, bfloat16_units, ensure_ir

                self._model_path = Path(model)
                self.ir = ensure_ir(model, progress=progress)
                self.image_size = self.ir.image_size
                if dtype == "auto":
                    dtype = "bfloat16" if amx_bf16_supported() and self.ir.bf16_ok else "float32"
                elif dtype == "bfloat16" and not bfloat16_units():
                    dtype = "float32"  # OpenVINO would compute float32 anyway; say so instead of "bfloat16"
            else:
                model = load_model(model)
        else:
            self.name = name or getattr(model, "name", "model")
        if self.runtime == "tensorflow":
            if dtype == "bfloat16":
                raise HeartsegError("bfloat16 needs the OpenVINO runtime (pass the model file); TensorFlow runs "
                                    "float32")
            self.model = model
            self._engine = TensorFlowEngine(model, batch_size=self.batch_size)
            self.image_size = self._engine.image_size
        else:
            self._engine = None
        self.dtype = "float32" if dtype == "auto" else dtype

    @classmethod
    def from_engine(cls, engine, *, name: str = "model") -> "Predictor":
        """A predictor around an already built engine (:class:`TensorFlowEngine` or
        :class:`core.openvino_runtime.OpenVinoEngine`)."""
        self = cls.__new__(cls)
        self.batch_size, self.runtime, self.model, self.ir = engine.batch_size, engine.runtime, None, None
        self._model_path = None
        self.threads = getattr(engine, "threads", None)
        self.name, self.image_size, self.dtype, self._engine = name, engine.image_size, engine.precision, engine
        return self

    @property
    def engine(self):
        """The compiled engine (OpenVINO compiles on first use, ~0.1 s; TensorFlow traces on first call)."""
        if self._engine is None:
            from core.openvino_runtime import OpenVinoEngine, ensure_ir, sidecar_dir

            def build():
                return OpenVinoEngine(self.ir.xml, batch_size=self.batch_size, precision=self.dtype,
                                      threads=self.threads)

            try:
                self._engine = build()
            except HeartsegError:
                # an IR this OpenVINO cannot read (a newer release wrote it): convert the model here, once
                if self.ir.folder != sidecar_dir(self._model_path):
                    shutil.rmtree(self.ir.folder, ignore_errors=True)
                self.ir = ensure_ir(self._model_path, use_sidecar=False)
                self._engine = build()
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
        Raises :class:`core.errors.Cancelled` when ``cancel`` is set (checked per batch).
        """
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
        ``probabilities_to_masks(predict_volume(...), ...)`` with ``postprocess_for_volume(volume, postprocess)``. ``threshold`` defaults to ``postprocess.threshold`` (0.5
        without post-processing).
        """
        if threshold is None:
            threshold = threshold_of(postprocess)
        postprocess = postprocess_for_volume(volume, postprocess)
        rows, cols = volume.slice_shape
        out = np.zeros((volume.n_slices, rows, cols), np.uint8)
        grid = np.empty((rows, cols), np.float32)  # one buffer for every slice: no large temporaries per batch
        for idx, probs in self.iter_batches(volume, first=first, progress=progress, cancel=cancel, model_grid=True):
            if on_probabilities is not None:
                on_probabilities(idx, probs)
            for p, i in zip(probs, idx):
                preprocess.probability_to_slice(p, (rows, cols), out=grid)
                np.greater_equal(grid, threshold, out=out[i].view(bool))  # as preprocess.threshold, in place
            if on_batch is not None:
                on_batch(idx, out[idx])
        return postprocess_masks(out, postprocess)


def predict_volume(model, volume: Volume, **kwargs) -> np.ndarray:
    """One-shot convenience: ``Predictor(model).predict_volume(volume, **kwargs)``."""
    return Predictor(model).predict_volume(volume, **kwargs)


def probabilities_to_masks(probs: np.ndarray, threshold: Optional[float] = None,
                           postprocess: Optional[PostprocessOptions] = None) -> np.ndarray:
    """``(n, rows, cols)`` probabilities -> uint8 0/1 masks, thresholded (>= ``threshold``, by default the
    post-processing's own, else 0.5) then post-processed. Give ``postprocess_for_volume(volume, options)`` so the
    clean-up knows whether the slices are neighbours."""
    if threshold is None:
        threshold = threshold_of(postprocess)
    return postprocess_masks(preprocess.threshold(probs, threshold), postprocess)
