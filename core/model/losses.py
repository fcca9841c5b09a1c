"""Training losses. All take probabilities (after the sigmoid), never logits.

``y_true`` and ``y_pred``: ``(batch, rows, cols, 1)`` float, 0/1 targets and 0..1 probabilities.
"""

from __future__ import annotations

import keras
from keras import ops

SMOOTH = 1.0


@keras.saving.register_keras_serializable(package="heartseg")
def dice_loss(y_true, y_pred):
    """1 - soft Dice, pooled over every pixel of the batch (smoothing 1: an empty batch predicted empty costs 0)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    inter = ops.sum(y_true * y_pred)
    return 1.0 - (2.0 * inter + SMOOTH) / (ops.sum(y_true) + ops.sum(y_pred) + SMOOTH)


@keras.saving.register_keras_serializable(package="heartseg")
def bce_dice_loss(y_true, y_pred):
    """Binary cross-entropy (mean over pixels, on probabilities) + :func:`dice_loss`. The default."""
    y_true = ops.cast(y_true, y_pred.dtype)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    return bce + dice_loss(y_true, y_pred)


LOSSES = {"bce_dice": bce_dice_loss, "dice": dice_loss}


def get_loss(name: str):
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None


def custom_objects() -> dict:
    return {"dice_loss": dice_loss, "bce_dice_loss": bce_dice_loss}
