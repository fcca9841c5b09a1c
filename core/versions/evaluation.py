"""Evaluating a model on labelled scans: a per-patient and pooled table, and the seed's comparison panels.

Figures follow :mod:`core.metrics` (pooled over pixels, over slices with heart, per patient; false positives on
slices without heart reported apart). Panels are the seed notebook's ``[image | true mask | predicted mask]``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from core.atomic import write_bytes_atomic, write_csv_atomic, write_text_atomic
from core.inference.predictor import Predictor
from core.metrics import Evaluation, evaluate_masks, pool_evaluations
from core.model.unet import load_model
from core.postprocess import DEFAULT_POSTPROCESS, postprocess_for_volume, probabilities_to_masks
from core.preprocess import to_kaggle_scale
from core.store.dataset import output_name
from core.types import CancelToken, Progress, ProgressFn, Volume, report

COLUMNS = ["patient", "slices", "heart_slices", "pooled_dice", "pooled_iou", "pooled_accuracy",
           "pooled_precision", "pooled_recall", "nonempty_pooled_dice", "nonempty_mean_dice",
           "empty_slice_fp_rate"]


@dataclass
class EvaluationReport:
    per_patient: dict = field(default_factory=dict)  # pid -> Evaluation
    panels: list = field(default_factory=list)

    @property
    def pooled(self) -> Evaluation:
        return pool_evaluations(self.per_patient.values())

    def rows(self) -> list[dict]:
        rows = [{"patient": pid, **e.as_row()} for pid, e in self.per_patient.items()]
        rows.append({"patient": "ALL (pooled)", **self.pooled.as_row()})
        return rows


def panel(image8: np.ndarray, truth: np.ndarray, pred: np.ndarray, gap: int = 4) -> np.ndarray:
    """``[image | true mask | predicted mask]`` as one uint8 grey image (masks shown 0/255)."""
    sep = np.full((image8.shape[0], gap), 128, np.uint8)
    return np.hstack([image8, sep, (truth > 0).astype(np.uint8) * 255, sep, (pred > 0).astype(np.uint8) * 255])


def panel_slices(truth: np.ndarray, count: int) -> list[int]:
    """``count`` slice indices spread evenly over the slices with heart (or over all slices if none)."""
    heart = np.flatnonzero(truth.reshape(truth.shape[0], -1).max(axis=1) > 0)
    pool = heart if heart.size else np.arange(truth.shape[0])
    if count <= 0 or pool.size == 0:
        return []
    picks = np.linspace(0, pool.size - 1, min(count, pool.size)).round().astype(int)
    return [int(pool[i]) for i in picks]


def evaluate_volumes(model, volumes: Sequence[tuple[str, Volume]], *, postprocess=None,
                     progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                     panels_dir: Optional[Path] = None, panels_per_patient: int = 6,
                     batch_size: int = 8) -> EvaluationReport:
    """Predict every labelled volume with ``model`` and score it against ``volume.mask``."""
    predictor = Predictor(model, batch_size=batch_size)
    result = EvaluationReport()
    for k, (pid, volume) in enumerate(volumes):
        report(progress, Progress("evaluate", k, len(volumes), f"patient {pid}"))
        probs = predictor.predict_volume(volume, cancel=cancel)
        pred = probabilities_to_masks(probs, postprocess=postprocess_for_volume(volume, postprocess))
        truth = volume.mask
        if volume.mask_present is not None and not np.all(volume.mask_present):
            keep = np.asarray(volume.mask_present, bool)  # slices without a mask file are not scored
            truth, pred_scored = truth[keep], pred[keep]
        else:
            pred_scored = pred
        result.per_patient[pid] = evaluate_masks(truth, pred_scored)
        if panels_dir is not None and panels_per_patient > 0:
            panels_dir.mkdir(parents=True, exist_ok=True)
            images = to_kaggle_scale(volume)
            for i in panel_slices(volume.mask, panels_per_patient):
                name = f"{output_name(pid)}_{volume.slice_names[i]}.png"
                ok, buf = cv2.imencode(".png", panel(images[i], volume.mask[i], pred[i]))
                write_bytes_atomic(panels_dir / name, buf.tobytes())
                result.panels.append(panels_dir / name)
    report(progress, Progress("evaluate", len(volumes), len(volumes), "done"))
    return result


def _fmt(v) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the report rows."""
    head = "| " + " | ".join(COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_fmt(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def write_report(result: EvaluationReport, out_dir: Path, model_name: str = "") -> str:
    """Write ``metrics.csv``, ``metrics.json`` and ``report.md`` to ``out_dir``; return the Markdown text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = result.rows()
    write_csv_atomic(out_dir / "metrics.csv", COLUMNS, rows)
    write_text_atomic(out_dir / "metrics.json", json.dumps({"model": model_name, "rows": rows}, indent=2,
                                                           default=float))
    text = (f"# Evaluation of {model_name}\n\n{format_table(rows)}\n\n"
            "pooled_*: over all pixels of all slices; nonempty_*: over slices whose true mask has heart; "
            "empty_slice_fp_rate: share of slices without heart where anything was predicted.\n")
    write_text_atomic(out_dir / "report.md", text)
    return text


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def metrics_summary(report_) -> dict:
    """Pooled and per-patient rows of a :class:`core.versions.evaluation.EvaluationReport` (NaN written as null)."""
    pooled = {k: _clean(v) for k, v in report_.pooled.as_row().items()}
    per_patient = {pid: {k: _clean(v) for k, v in e.as_row().items()} for pid, e in report_.per_patient.items()}
    return {"patients": list(report_.per_patient), **pooled, "per_patient": per_patient}


def evaluate_model(model_path: Path, volumes: Sequence[tuple], *, label: str = "",
                   progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None) -> dict:
    """Validation metrics (:func:`metrics_summary`) of the ``.keras`` model on ``volumes`` (default clean-up)."""
    model = load_model(model_path)

    def relabel(p: Progress) -> None:
        report(progress, Progress("evaluate", p.done, p.total, f"{label}: {p.message}".strip(": ")))

    result = evaluate_volumes(model, volumes, postprocess=DEFAULT_POSTPROCESS, progress=relabel, cancel=cancel)
    return metrics_summary(result)
