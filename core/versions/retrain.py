"""Retraining from the clinician's corrections: one plain, cancellable job shared by the window and scripts.

:func:`plan_retraining` (no TensorFlow, cheap: folder listings and review sidecars) says which patients train and
which are held out (the registry's fixed split, :meth:`core.versions.registry.ModelRegistry.fixed_split`), how many slices
are used, how many of them were corrected and how many flagged slices are left out — the numbers the Retrain
dialog shows.

:func:`run_retraining` then

1. reads the training and validation slices (flagged slices left out; corrected slices weighted
   ``config.corrected_weight``),
2. trains with :func:`core.training.loop.train` (from scratch or fine-tuning a registry version) in a temporary folder
   inside the registry,
3. evaluates the old (active) and the new model on the same held-out patients with
   :func:`core.versions.evaluation.evaluate_volumes` (flagged slices are not scored),
4. registers the new version with its record (:meth:`core.versions.registry.ModelRegistry.add_version`).

Progress stages: ``"read"`` (slices), ``"train"`` (batches, with ``metrics`` and ``eta_s``), ``"epoch"`` (epoch
logs incl. ``val_loss`` / ``val_dice_coef``), ``"evaluate"`` (patients, ``message`` names the model),
``"register"``. ``cancel`` is checked per training batch and per prediction batch; a cancelled run raises
:class:`core.errors.Cancelled`, deletes its temporary folder and registers nothing.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from core.errors import Cancelled, HeartsegError
from core.inference.engines.openvino import copy_ir, ensure_ir, openvino_available, sidecar_dir
from core.inference.precision import precision_check
from core.model.unet import load_model
from core.postprocess import DEFAULT_POSTPROCESS
from core.store.dataset import Dataset, open_dataset
from core.training.loop import TrainConfig, TrainResult, load_slice_pairs, train
from core.types import CancelToken, Progress, ProgressFn, check_cancel, report
from core.versions.evaluation import evaluate_volumes
from core.versions.registry import ModelRegistry, default_registry_dir, model_input_size

#: The weight the Retrain dialog suggests for corrected slices (``TrainConfig.corrected_weight``).
DEFAULT_CORRECTED_WEIGHT = 2.0


@dataclass
class RetrainRequest:
    """What to retrain. ``init_version``: fine-tune this registry version (None: train from scratch with
    ``config.filters`` / ``config.bottleneck``). ``compare_version``: the "old" model of the comparison (None: the
    registry's active version). ``val_patients``: None = the registry's fixed split. ``base_model``: the file that
    is version 0 (None: the bundled model)."""

    dataset_root: Path
    config: TrainConfig = field(default_factory=TrainConfig)
    registry_dir: Optional[Path] = None
    init_version: Optional[int] = 0
    compare_version: Optional[int] = None
    val_patients: Optional[Sequence[str]] = None
    val_fraction: float = 0.2
    split_seed: int = 0
    base_model: Optional[Path] = None
    skip_flagged: bool = True

    def registry(self) -> ModelRegistry:
        folder = self.registry_dir if self.registry_dir is not None else default_registry_dir(self.dataset_root)
        return ModelRegistry(folder, base_model=self.base_model)


@dataclass
class RetrainPlan:
    """Patients and slice counts of a retraining (what the dialog shows)."""
    dataset_root: Path
    registry_dir: Path
    train_pids: list
    val_pids: list
    split_fixed: bool          # True: the validation patients come from the registry's stored split
    train_slices: int
    val_slices: int
    corrected_slices: int      # corrected slices among the training slices
    corrected_val_slices: int
    flagged_excluded: int      # flagged slices left out (training and validation)

    def summary(self, corrected_weight: float = 1.0) -> str:
        weight = f", weighted ×{corrected_weight:g}" if corrected_weight != 1.0 and self.corrected_slices else ""
        return (f"{self.train_slices} training slices from {len(self.train_pids)} patient(s), "
                f"{self.corrected_slices} of them corrected{weight}; {self.flagged_excluded} flagged slice(s) left "
                f"out; validation on {len(self.val_pids)} held-out patient(s) ({', '.join(self.val_pids)}), "
                f"{self.val_slices} slices" + (" — the registry's fixed split" if self.split_fixed else ""))

    def data_record(self) -> dict:
        return {"train_slices": self.train_slices, "val_slices": self.val_slices,
                "corrected_slices": self.corrected_slices, "corrected_val_slices": self.corrected_val_slices,
                "flagged_excluded": self.flagged_excluded}


@dataclass
class RetrainOutcome:
    """A finished retraining: the new ``version`` (registered, not activated), its record, and old vs new
    validation metrics on the same held-out patients (``old_metrics`` None when the old model was unavailable)."""

    version: int
    record: dict
    old_version: Optional[int]
    old_metrics: Optional[dict]
    new_metrics: dict
    plan: RetrainPlan
    history: list
    registry_dir: Path
    model_path: Path


def _labelled(dataset) -> list[str]:
    return [p.pid for p in dataset.patients if p.has_masks and p.kind == "kaggle_patient"]


def plan_retraining(dataset, registry: ModelRegistry, *, val_patients: Optional[Sequence[str]] = None,
                    val_fraction: float = 0.2, seed: int = 0, skip_flagged: bool = True,
                    store_split: bool = False) -> RetrainPlan:
    """Count what a retraining of ``dataset`` (:class:`core.store.dataset.Dataset` or its root) would use.

    Needs at least two patients with masks (one is held out). ``store_split``: fix the split in the registry now
    (:func:`run_retraining` does; the dialog's preview does not).
    """

    if not isinstance(dataset, Dataset):
        dataset = open_dataset(dataset)
    labelled = _labelled(dataset)
    if len(labelled) < 2:
        raise HeartsegError(f"retraining needs at least 2 patients with masks (one is held out for validation); "
                            f"this dataset has {len(labelled)}", dataset.root)
    fixed = val_patients is None and registry.stored_split() is not None
    train_pids, val_pids = registry.fixed_split(labelled, val_fraction, seed, val_patients, store=store_split)
    if not train_pids or not val_pids:
        raise HeartsegError("the split leaves no training or no validation patient; choose the held-out patients",
                            dataset.root)
    all_pairs = dataset.training_pairs(train_pids + val_pids, skip_flagged=False)
    val_set = set(val_pids)
    flagged = sum(1 for p in all_pairs if p.state == "flagged") if skip_flagged else 0
    used = [p for p in all_pairs if not (skip_flagged and p.state == "flagged")]
    train = [p for p in used if p.pid not in val_set]
    val = [p for p in used if p.pid in val_set]
    return RetrainPlan(Path(dataset.root), registry.folder, list(train_pids), list(val_pids), fixed, len(train),
                       len(val), sum(p.state == "corrected" for p in train), sum(p.state == "corrected" for p in val),
                       flagged)


def _pairs(dataset, pids, weight: float, skip_flagged: bool) -> list[tuple]:
    out = []
    for p in dataset.training_pairs(pids, skip_flagged=skip_flagged):
        w = weight if p.state == "corrected" else 1.0
        out.append((p.image_path, p.mask_path, w, f"{p.pid}/{p.image_path.stem}"))
    return out


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


def validation_volumes(dataset, pids: Sequence[str], *, skip_flagged: bool = True,
                       cancel: Optional[CancelToken] = None) -> list[tuple]:
    """``(pid, Volume)`` of the held-out patients; flagged slices are marked unscored (``mask_present`` False)."""
    volumes = []
    for pid in pids:
        check_cancel(cancel)
        vol = dataset.load(pid, cancel=cancel)
        if vol.mask is None:
            raise HeartsegError(f"validation patient {pid} has no masks", dataset.patient_dir(pid))
        present = np.ones(vol.n_slices, bool) if vol.mask_present is None else np.asarray(vol.mask_present, bool)
        if skip_flagged:
            states = dataset.review_states(pid)
            present = present & np.array([states.get(n) != "flagged" for n in vol.slice_names], bool)
        vol = dataclasses.replace(vol, mask_present=present)
        volumes.append((pid, vol))
    return volumes


def evaluate_model(model_path: Path, volumes: Sequence[tuple], *, label: str = "",
                   progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None) -> dict:
    """Validation metrics (:func:`metrics_summary`) of the ``.keras`` model on ``volumes`` (default clean-up)."""
    model = load_model(model_path)

    def relabel(p: Progress) -> None:
        report(progress, Progress("evaluate", p.done, p.total, f"{label}: {p.message}".strip(": ")))

    result = evaluate_volumes(model, volumes, postprocess=DEFAULT_POSTPROCESS, progress=relabel, cancel=cancel)
    return metrics_summary(result)


def run_retraining(request: RetrainRequest, *, progress: Optional[ProgressFn] = None,
                   cancel: Optional[CancelToken] = None) -> RetrainOutcome:
    """Train, evaluate old vs new on the held-out patients and register the new version (module docstring).

    Raises :class:`core.errors.Cancelled` when cancelled (nothing is registered, the temporary folder is removed)
    and :class:`HeartsegError` for problems a user can act on (too few patients, missing model, ...).
    """

    check_cancel(cancel)
    dataset = open_dataset(request.dataset_root)
    registry = request.registry()
    config = dataclasses.replace(request.config)
    init_path = None
    if request.init_version is not None:
        init_path = registry.model_path(request.init_version)
        size = model_input_size(init_path)
        if size is not None and size != config.image_size:
            config = dataclasses.replace(config, image_size=size)  # fine-tuning keeps the model's input size
    old_version = registry.active_version() if request.compare_version is None else int(request.compare_version)
    plan = plan_retraining(dataset, registry, val_patients=request.val_patients, val_fraction=request.val_fraction,
                           seed=request.split_seed, skip_flagged=request.skip_flagged, store_split=True)
    if plan.train_slices == 0:
        raise HeartsegError("no training slices left (every slice flagged or without a mask)", dataset.root)

    train_set = load_slice_pairs(_pairs(dataset, plan.train_pids, config.corrected_weight, request.skip_flagged),
                                 config.image_size, progress=progress, cancel=cancel)
    val_pairs = _pairs(dataset, plan.val_pids, 1.0, request.skip_flagged)
    val_set = load_slice_pairs(val_pairs, config.image_size, progress=progress, cancel=cancel) if val_pairs else None
    check_cancel(cancel)

    registry._ensure_folder()
    work = Path(tempfile.mkdtemp(prefix=".training-", dir=registry.folder))
    try:
        result: TrainResult = train(train_set, val_set, config, work, init_model=init_path, progress=progress,
                                    cancel=cancel)
        if result.cancelled or (cancel is not None and cancel.cancelled):
            raise Cancelled()
        if result.best_model_path is None:
            raise HeartsegError("training finished without a model (no epoch completed)", work)

        volumes = validation_volumes(dataset, plan.val_pids, skip_flagged=request.skip_flagged, cancel=cancel)
        old_metrics = None
        try:
            old_path = registry.model_path(old_version)
        except HeartsegError:
            old_path = None
        if old_path is not None:
            old_metrics = evaluate_model(old_path, volumes, label=f"v{old_version} (old)", progress=progress,
                                         cancel=cancel)
        new_metrics = evaluate_model(result.best_model_path, volumes, label="new", progress=progress, cancel=cancel)
        check_cancel(cancel)
        prepared = _prepare_fast_inference(result.best_model_path, progress)  # before registering: cancellable
        check_cancel(cancel)

        report(progress, Progress("register", 0, 1, "registering the new version"))
        split = {"train": plan.train_pids, "val": plan.val_pids, "fixed": plan.split_fixed or
                 request.val_patients is None}
        version = registry.add_version(
            result, config, parent=request.init_version, data_root=dataset.root, train_pids=plan.train_pids,
            val_pids=plan.val_pids, data=plan.data_record(), validation=new_metrics,
            parent_validation=old_metrics, split=split, extra={"compared_with": old_version if old_path else None})
        report(progress, Progress("register", 1, 1, f"registered v{version}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    entry = registry.get(version)
    if prepared is not None:
        _install_beside(prepared, entry.model_path)  # best effort: the cached copy serves either way
    return RetrainOutcome(version, entry.record, old_version if old_path else None, old_metrics, new_metrics, plan,
                          list(result.history), registry.folder, entry.model_path)


def _prepare_fast_inference(model_path: Path, progress: Optional[ProgressFn]):
    """Convert the new model for OpenVINO now (into the cache, keyed by its SHA-256, which its registered copy
    shares), while TensorFlow is loaded anyway, so the first prediction with it does not wait for a conversion.
    Best effort: returns the :class:`core.inference.openvino.IRModel`, or None (the first prediction converts)."""

    if not openvino_available():
        return None
    report(progress, Progress("evaluate", 1, 1, "preparing the new model for fast inference (OpenVINO)"))
    try:
        return ensure_ir(model_path, check=precision_check)
    except HeartsegError:
        return None


def _install_beside(ir, model_path: Path) -> None:
    """Copy a converted model next to its registered version (``v<N>.openvino/``, travels with the dataset)."""
    try:
        copy_ir(ir, sidecar_dir(model_path))
    except OSError:
        pass


def compare_text(outcome: RetrainOutcome) -> str:
    """Old vs new validation Dice on the same held-out patients, as lines for a dialog or a terminal."""
    def fmt(m: Optional[dict], key: str) -> str:
        v = None if m is None else m.get(key)
        return "n/a" if v is None else f"{v:.4f}"

    old, new = outcome.old_metrics, outcome.new_metrics
    old_label = f"v{outcome.old_version}" if outcome.old_version is not None else "old"
    lines = [f"Validation on held-out patient(s) {', '.join(outcome.plan.val_pids)} "
             f"({outcome.plan.val_slices} slices):",
             f"  pooled Dice:            {old_label} {fmt(old, 'pooled_dice')}  →  v{outcome.version} "
             f"{fmt(new, 'pooled_dice')}",
             f"  Dice on heart slices:   {old_label} {fmt(old, 'nonempty_pooled_dice')}  →  v{outcome.version} "
             f"{fmt(new, 'nonempty_pooled_dice')}",
             f"  empty-slice FP rate:    {old_label} {fmt(old, 'empty_slice_fp_rate')}  →  v{outcome.version} "
             f"{fmt(new, 'empty_slice_fp_rate')}"]
    return "\n".join(lines)


__all__ = ["RetrainRequest", "RetrainPlan", "RetrainOutcome", "plan_retraining", "run_retraining",
           "evaluate_model", "validation_volumes", "metrics_summary", "compare_text", "DEFAULT_CORRECTED_WEIGHT"]
