"""Keras metrics watched during training (on probabilities thresholded at 0.5).

``dice_coef`` and ``iou_coef`` are pooled over every pixel of a batch (smoothing 1e-6, so a batch with no heart
predicted empty scores ~1.0 — the honest per-scan figures come from :mod:`core.metrics` at evaluation time).
"""

from __future__ import annotations

import keras
from keras import ops

EPS = 1e-6


def _binary(y_true, y_pred):
    y_true = ops.cast(y_true > 0.5, "float32")
    y_hat = ops.cast(y_pred >= 0.5, "float32")
    return y_true, y_hat


@keras.saving.register_keras_serializable(package="heartseg")
def dice_coef(y_true, y_pred):
    """Batch-pooled hard Dice ``2|A∩B| / (|A|+|B|)``."""
    t, p = _binary(y_true, y_pred)
    inter = ops.sum(t * p)
    return (2.0 * inter + EPS) / (ops.sum(t) + ops.sum(p) + EPS)


@keras.saving.register_keras_serializable(package="heartseg")
def iou_coef(y_true, y_pred):
    """Batch-pooled hard IoU ``|A∩B| / |A∪B|``."""
    t, p = _binary(y_true, y_pred)
    inter = ops.sum(t * p)
    return (inter + EPS) / (ops.sum(t) + ops.sum(p) - inter + EPS)


def training_metrics() -> list:
    """The metrics compiled into every heartseg model: Dice, IoU, accuracy, precision, recall."""
    return [dice_coef, iou_coef, keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")]


def custom_objects() -> dict:
    return {"dice_coef": dice_coef, "iou_coef": iou_coef}
