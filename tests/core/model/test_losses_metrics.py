import math

import numpy as np
import pytest

from core.metrics import dice, evaluate_masks, iou, pool_evaluations


def test_losses_on_probabilities():
    from keras import ops

    from core.model.losses import bce_dice_loss, dice_loss

    y = np.zeros((1, 8, 8, 1), np.float32)
    y[0, 2:6, 2:6] = 1
    perfect = float(ops.convert_to_numpy(dice_loss(y, y)))
    assert perfect == pytest.approx(0.0, abs=1e-6)
    wrong = float(ops.convert_to_numpy(dice_loss(y, 1 - y)))
    assert wrong > 0.9
    assert float(ops.convert_to_numpy(bce_dice_loss(y, y * 0.99 + 0.005))) < float(
        ops.convert_to_numpy(bce_dice_loss(y, np.full_like(y, 0.5))))


def test_dice_iou_and_the_empty_rule():
    a = np.zeros((4, 4), bool)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0  # both empty: no disagreement
    b = a.copy()
    b[0, 0] = True
    assert dice(a, b) == 0.0
    c = np.zeros((4, 4), bool)
    c[0, :2] = True
    assert dice(b, c) == pytest.approx(2 / 3) and iou(b, c) == pytest.approx(0.5)


def test_evaluation_never_counts_empty_slices_as_perfect():
    truth = np.zeros((10, 8, 8), np.uint8)
    truth[0, 2:6, 2:6] = 1
    pred = np.zeros_like(truth)  # misses the only heart slice, 9 empty slices predicted empty
    e = evaluate_masks(truth, pred)
    assert e.n_nonempty == 1 and e.nonempty_mean_dice == 0.0 and e.pooled["dice"] == 0.0
    assert e.empty_slice_fp_rate == 0.0
    pred[5, 0, 0] = 1
    e2 = evaluate_masks(truth, pred)
    assert e2.empty_slice_fp_rate == pytest.approx(1 / 9)
    pooled = pool_evaluations([e, e2])
    assert pooled.n_slices == 20 and pooled.counts.fp == 1
    row = e.as_row()
    assert set(row) >= {"pooled_dice", "pooled_iou", "pooled_accuracy", "pooled_precision", "pooled_recall",
                        "nonempty_mean_dice", "empty_slice_fp_rate"}
    assert math.isnan(evaluate_masks(np.zeros((2, 3, 3)), np.zeros((2, 3, 3))).nonempty_mean_dice)


def test_keras_training_metrics_match_numpy():
    from keras import ops

    from core.model.train_metrics import dice_coef, iou_coef

    rng = np.random.default_rng(1)
    y = (rng.random((2, 16, 16, 1)) > 0.5).astype(np.float32)
    p = rng.random((2, 16, 16, 1)).astype(np.float32)
    assert float(ops.convert_to_numpy(dice_coef(y, p))) == pytest.approx(dice(y > 0.5, p >= 0.5), abs=1e-5)
    assert float(ops.convert_to_numpy(iou_coef(y, p))) == pytest.approx(iou(y > 0.5, p >= 0.5), abs=1e-5)
