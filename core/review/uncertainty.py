"""Per-slice uncertainty from the probabilities the inference already computes (no extra model pass).

All measures work on the model-grid probabilities ``p`` of one slice (``s x s``, float 0..1) and the mask ``m`` they
give at the threshold; each is 0..1, higher meaning less sure:

* ``soft_dice``: ``1 - (2·Σ p·m + ε) / (Σ p + Σ m + ε)``, the disagreement
  between the soft probabilities and their own hard mask. It is ~0 where the model is sure (p near 0 or 1),
  grows with a wide uncertain rim around the heart, and is high on a slice with a faint heart-like blob below the
  threshold (a possible missed heart) or a mask made of weak probabilities (a possible false mask).
  ``ε = 0.005 · s²`` (half a per cent of the slice) keeps specks on empty slices from scoring high; ``p`` below
  :data:`FLOOR` counts as 0 in ``Σ p``.
* ``band``: pixels with ``0.3 <= p <= 0.7`` relative to the predicted area (+ ε), clipped to 1.
* ``entropy``: summed binary entropy (bits) relative to the predicted area (+ ε), clipped to 1.
* ``small_mask``: how far a non-empty predicted mask falls below :data:`SMALL_FRACTION` of the slice (0 for an
  empty prediction); ``band_small`` is the larger and ``band_small_mean`` the mean of ``band`` and ``small_mask``.
* ``dropped``, ``peak_doubt``, ``mask_doubt``, ``area``: what the post-processing rule did and how the mask
  looks (see :func:`slice_measures`).

The shipped score (:data:`SCORE`) is the one with the highest AUROC for "needs correction" (slice Dice < 0.90 or a
false mask) on validation slices only: ``band``. A logistic regression of seven measures, fitted on validation
slices and scored nested (``scripts/cross_validate.py``), did worse on the test slices; figures in the model card.

A second, mirrored pass (the mask's change under a horizontal flip) is measured in the model card for comparison
but not run: it doubles the inference time.

:class:`UncertaintyCollector` receives the batches of :meth:`core.inference.predictor.Predictor.predict_masks` and keeps the
scores and, for the confidence overlay, one uint8 map per slice at the model grid (``255 · (1 - |2p - 1|)``:
255 = a coin toss): 16 KiB a slice at 128², 8 MiB for a 512-slice scan.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: single-pass measures (each 0..1, higher = less sure); the review queue uses one of them (SCORE)
MEASURES = ("soft_dice", "band", "entropy", "small_mask", "band_small", "band_small_mean", "dropped", "peak_doubt",
            "mask_doubt", "area")
#: The score the review queue and ``<scan>_qc.csv`` use: the measure with the highest AUROC on validation slices
#: (``scripts/cross_validate.py``, ``chosen_score`` in resources/model/cv_record.json; a test checks they agree).
SCORE = "band"
EPS_FRACTION = 0.005
BAND = (0.3, 0.7)
#: a predicted mask smaller than this fraction of the slice is suspect in proportion (``small_mask``): on a
#: 512 x 512 chest slice a mid-heart ellipse covers about 5 %; false masks (aorta, stomach) and the apex and base
#: slices, where Dice is most fragile, are smaller
SMALL_FRACTION = 0.05
#: probabilities below this count as background (a model's near-zero output spread over a whole slice is not doubt)
FLOOR = 0.05


def slice_measures(probs: np.ndarray, threshold: float = 0.5, min_slice_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """Every measure for ``probs`` ``(k, s, s)`` float: name -> ``(k,)`` float32 in 0..1.

    ``threshold`` and ``min_slice_fraction`` are the post-processing rule's (``dropped``: the raw mask at the
    threshold is not empty but smaller than ``min_slice_fraction`` of the slice, so the rule removed it — a
    possible missed apex or base slice, or a false speck rightly removed). ``peak_doubt``: how close the slice's
    highest probability is to the threshold (1 at it, 0 at 0 or 1). ``mask_doubt``: 1 - the mean probability
    inside the mask (0 without a mask). ``area``: the raw mask's share of the slice, times 10, clipped to 1."""
    p = np.asarray(probs, np.float32)
    if p.ndim == 2:
        p = p[None]
    k = p.shape[0]
    flat = p.reshape(k, -1)
    n_px = flat.shape[1]
    eps = EPS_FRACTION * n_px
    m = flat >= threshold
    area = m.sum(axis=1).astype(np.float64)
    soft = np.where(flat >= FLOOR, flat, 0.0).sum(axis=1, dtype=np.float64)
    inter = np.where(m, flat, 0.0).sum(axis=1, dtype=np.float64)
    soft_dice = 1.0 - (2.0 * inter + eps) / (soft + area + eps)
    band = ((flat >= BAND[0]) & (flat <= BAND[1])).sum(axis=1) / (area + eps)
    q = np.clip(np.where(flat >= FLOOR, flat, 0.0), 1e-6, 1 - 1e-6)
    ent = -(q * np.log2(q) + (1 - q) * np.log2(1 - q)).sum(axis=1, dtype=np.float64) / (area + eps)
    small = np.where(area > 0, 1.0 - area / (SMALL_FRACTION * n_px), 0.0)
    band = np.clip(band, 0, 1)
    small = np.clip(small, 0, 1)
    dropped = (area > 0) & (area < float(min_slice_fraction) * n_px)
    peak = flat.max(axis=1).astype(np.float64)
    span = np.where(peak >= threshold, 1.0 - threshold, threshold)
    peak_doubt = 1.0 - np.abs(peak - threshold) / np.maximum(span, 1e-6)
    mask_doubt = np.where(area > 0, 1.0 - inter / np.maximum(area, 1.0), 0.0)
    out = {"soft_dice": np.clip(soft_dice, 0, 1),
           "band": band,
           "entropy": np.clip(ent, 0, 1),
           "small_mask": small,
           "band_small": np.maximum(band, small),
           "band_small_mean": 0.5 * (band + small),
           "dropped": dropped.astype(np.float64),
           "peak_doubt": np.clip(peak_doubt, 0, 1),
           "mask_doubt": np.clip(mask_doubt, 0, 1),
           "area": np.clip(10.0 * area / n_px, 0, 1)}
    return {name: np.asarray(v, np.float32) for name, v in out.items()}


def slice_uncertainty(probs: np.ndarray, threshold: float = 0.5, min_slice_fraction: float = 0.0) -> np.ndarray:
    """The shipped score (:data:`SCORE`) per slice of ``probs`` ``(k, s, s)``."""
    return slice_measures(probs, threshold, min_slice_fraction)[SCORE]


def confidence_map(probs: np.ndarray) -> np.ndarray:
    """uint8 uncertainty per pixel: ``255 · (1 - |2p - 1|)`` (0 = sure, 255 = p is 0.5)."""
    p = np.asarray(probs, np.float32)
    return np.rint(255.0 * (1.0 - np.abs(2.0 * p - 1.0))).astype(np.uint8)


class UncertaintyCollector:
    """Scores (and, with ``keep_maps``, confidence maps) of a scan's slices as the prediction batches arrive.

    ``scores`` is ``(n,)`` float32, NaN for slices not predicted yet; ``maps`` ``(n, s, s)`` uint8 or None.
    Call :meth:`add` from the prediction's ``on_probabilities`` hook (model-grid probabilities)."""

    def __init__(self, n_slices: int, threshold: float = 0.5, keep_maps: bool = True, min_slice_fraction: float = 0.0):
        self.threshold = float(threshold)
        self.min_slice_fraction = float(min_slice_fraction)
        self.scores = np.full(int(n_slices), np.nan, np.float32)
        self.keep_maps = keep_maps
        self.maps: Optional[np.ndarray] = None

    def add(self, indices, probs: np.ndarray) -> None:
        idx = np.asarray(list(indices), np.int64)
        p = np.asarray(probs, np.float32)
        if p.ndim == 4:
            p = p[..., 0]
        self.scores[idx] = slice_uncertainty(p, self.threshold, self.min_slice_fraction)
        if self.keep_maps:
            if self.maps is None:
                self.maps = np.zeros((self.scores.shape[0],) + p.shape[1:], np.uint8)
            self.maps[idx] = confidence_map(p)


def review_order(scores: np.ndarray, states=None) -> list[int]:
    """Slices in descending uncertainty (NaN last), only those ``not_reviewed`` when ``states`` is given; ties
    keep slice order."""
    scores = np.asarray(scores, np.float64)
    keys = np.where(np.isnan(scores), -1.0, scores)
    order = sorted(range(len(keys)), key=lambda i: (-keys[i], i))
    if states is not None:
        order = [i for i in order if states[i] == "not_reviewed"]
    return order


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties counted half); NaN without both
    classes. Mann-Whitney U with average ranks."""
    from scipy.stats import rankdata

    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def found_in_top(scores, labels, fraction: float = 0.2) -> float:
    """Share of positive ``labels`` among the first ``fraction`` of slices in descending ``scores`` (NaN without
    positives)."""
    y = np.asarray(labels, bool)
    if not y.any():
        return float("nan")
    order = review_order(scores)
    k = int(np.ceil(fraction * len(order)))
    return float(y[order[:k]].sum() / y.sum())


__all__ = ["MEASURES", "SCORE", "slice_measures", "slice_uncertainty", "confidence_map", "UncertaintyCollector",
           "review_order", "auroc", "found_in_top"]
