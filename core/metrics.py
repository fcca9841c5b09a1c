"""Evaluation metrics on binary masks (numpy only: usable from the GUI without loading TensorFlow).

Masks are ``(n_slices, rows, cols)`` (or one ``(rows, cols)`` slice) of 0/1 or booleans.

The empty-slice rule: a slice whose true mask is empty has no Dice of its own. heartseg therefore headlines
(1) Dice/IoU pooled over all pixels of all slices (empty slices contribute only their false positives) and
(2) the mean per-slice Dice over slices whose *true* mask is non-empty; false positives on truly-empty slices are
reported separately as ``empty_slice_fp_rate`` (the fraction of empty slices where anything was predicted).
The per-slice mean that scores an empty slice predicted empty as 1.0 is never reported: it is inflated by the
~62 % empty slices of the Kaggle data. Where both masks are empty, :func:`dice` returns 1.0 (no disagreement).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def counts(truth: np.ndarray, pred: np.ndarray) -> Counts:
    """Pixel confusion counts of two same-shape binary masks."""
    t = np.asarray(truth).astype(bool)
    p = np.asarray(pred).astype(bool)
    if t.shape != p.shape:
        raise ValueError(f"mask shapes differ: {t.shape} vs {p.shape}")
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(t)) - tp
    return Counts(tp, fp, fn, int(t.size) - tp - fp - fn)


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num / den) if den > 0 else empty


def scores(c: Counts) -> dict:
    """Dice, IoU, accuracy, precision, recall from counts. Empty truth and empty prediction give Dice/IoU 1.0;
    precision with nothing predicted and recall with nothing true are 1.0 when the other side is empty too, else 0."""
    nothing = c.tp + c.fp + c.fn == 0
    return {
        "dice": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, 1.0),
        "iou": _ratio(c.tp, c.tp + c.fp + c.fn, 1.0),
        "accuracy": _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn, 1.0),
        "precision": _ratio(c.tp, c.tp + c.fp, 1.0 if nothing else 0.0),
        "recall": _ratio(c.tp, c.tp + c.fn, 1.0 if nothing else 0.0),
    }


def dice(truth: np.ndarray, pred: np.ndarray) -> float:
    """Pooled Dice of two binary masks (any same shape); 1.0 where both are empty."""
    return scores(counts(truth, pred))["dice"]


def iou(truth: np.ndarray, pred: np.ndarray) -> float:
    return scores(counts(truth, pred))["iou"]


@dataclass
class Evaluation:
    """Metrics of one scan (or several pooled). Every figure is described in the module docstring."""

    counts: Counts
    nonempty_counts: Counts
    slice_dice: list  # Dice of each slice whose true mask is non-empty
    n_slices: int
    n_empty: int
    n_empty_with_fp: int

    @property
    def n_nonempty(self) -> int:
        return len(self.slice_dice)

    @property
    def pooled(self) -> dict:
        return scores(self.counts)

    @property
    def nonempty_pooled(self) -> dict:
        return scores(self.nonempty_counts)

    @property
    def nonempty_mean_dice(self) -> float:
        return float(np.mean(self.slice_dice)) if self.slice_dice else float("nan")

    @property
    def empty_slice_fp_rate(self) -> float:
        return self.n_empty_with_fp / self.n_empty if self.n_empty else float("nan")

    def as_row(self) -> dict:
        """Flat dict of the headline figures (for tables and CSV)."""
        row = {"slices": self.n_slices, "heart_slices": self.n_nonempty}
        row.update({f"pooled_{k}": v for k, v in self.pooled.items()})
        row["nonempty_pooled_dice"] = self.nonempty_pooled["dice"]
        row["nonempty_mean_dice"] = self.nonempty_mean_dice
        row["empty_slice_fp_rate"] = self.empty_slice_fp_rate
        return row

    def __add__(self, other: "Evaluation") -> "Evaluation":
        return Evaluation(self.counts + other.counts, self.nonempty_counts + other.nonempty_counts,
                          self.slice_dice + other.slice_dice, self.n_slices + other.n_slices,
                          self.n_empty + other.n_empty, self.n_empty_with_fp + other.n_empty_with_fp)


EMPTY_EVALUATION = Evaluation(Counts(), Counts(), [], 0, 0, 0)


def evaluate_masks(truth: np.ndarray, pred: np.ndarray) -> Evaluation:
    """Evaluate a predicted volume against the truth, both ``(n_slices, rows, cols)`` (or one slice) binary."""
    t = np.asarray(truth).astype(bool)
    p = np.asarray(pred).astype(bool)
    if t.ndim == 2:
        t, p = t[None], p[None]
    if t.shape != p.shape:
        raise ValueError(f"mask shapes differ: {t.shape} vs {p.shape}")
    total, nonempty = Counts(), Counts()
    slice_dice: list[float] = []
    n_empty = n_empty_fp = 0
    for ts, ps in zip(t, p):
        c = counts(ts, ps)
        total = total + c
        if c.tp + c.fn > 0:
            nonempty = nonempty + c
            slice_dice.append(scores(c)["dice"])
        else:
            n_empty += 1
            n_empty_fp += int(c.fp > 0)
    return Evaluation(total, nonempty, slice_dice, int(t.shape[0]), n_empty, n_empty_fp)


def pool_evaluations(evals) -> Evaluation:
    """Pool several scans exactly (pixel counts added, per-slice Dice lists concatenated)."""
    out = EMPTY_EVALUATION
    for e in evals:
        out = out + e
    return out
