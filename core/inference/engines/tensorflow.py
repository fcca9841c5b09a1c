"""The TensorFlow engine: an in-memory Keras model in one ``tf.function`` (evaluation during training, and the
fallback where OpenVINO is missing). TensorFlow is imported lazily, on the first call."""

from __future__ import annotations

import numpy as np

from core.model.unet import check_model_io


class TensorFlowEngine:
    """A Keras model in one ``tf.function`` with the fixed signature ``(batch_size, s, s, 3)`` float32 (traced
    once, on the first call). float32 only: Keras ``mixed_bfloat16`` was measured at 1.16x, OpenVINO's bfloat16
    at ~3x, so reduced precision lives in the OpenVINO runtime."""

    runtime = "tensorflow"

    precision = "float32"

    def __init__(self, model, *, batch_size: int):
        self.model = model
        self.image_size = check_model_io(model)
        self.batch_size = int(batch_size)
        self._fn = None

    def _compiled(self):
        if self._fn is None:
            import tensorflow as tf  # lazy: TensorFlow takes ~3 s to import; loaded on the first call only

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
