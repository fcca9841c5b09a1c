"""The one train -> evaluate -> register path: ``heartseg train`` and Model > Retrain... both run
:func:`run_retraining` (one plain, cancellable job).

:func:`plan_retraining` (no TensorFlow, cheap: folder listings, NIfTI headers and review sidecars) says which
patients train and which are held out (the registry's fixed split,
:meth:`core.versions.registry.ModelRegistry.fixed_split`), how many slices are used, how many of them were corrected
and how many flagged slices are left out — the numbers the Retrain dialog shows.

Datasets: the Kaggle layout (``image/`` + ``mask/`` PNG pairs) and NIfTI ``imagesTr`` / ``labelsTr`` datasets
(nnU-Net, Medical Segmentation Decathlon, MONAI): each case is a patient, every slice of its scan is a training slice
with the label map as target (``RetrainRequest.label`` picks the heart label of a multi-label map, as ``--label``
does; several labels without it are refused naming the file), read case by case through
:func:`core.training.data.load_volume_cases` with the preprocessing inference uses.

:func:`run_retraining` then

1. reads the training and validation slices (flagged slices left out; corrected slices weighted
   ``config.corrected_weight``),
2. trains with :func:`core.training.loop.train` (from scratch, or fine-tuning a registry version or a model file) in
   ``request.out_dir`` (``heartseg train --out``) or a temporary folder inside the registry,
3. evaluates the old (active) and the new model on the same held-out patients with
   :func:`core.versions.evaluation.evaluate_volumes` (flagged slices are not scored),
4. converts the new model for OpenVINO (cached; a copy beside the model) and
5. registers the new version with its record (:meth:`core.versions.registry.ModelRegistry.add_version`), when the
   request registers (the window always; ``heartseg train`` with ``--registry``).

Progress stages: ``"read"`` (slices), ``"train"`` (batches, with ``metrics`` and ``eta_s``), ``"epoch"`` (epoch
logs incl. ``val_loss`` / ``val_dice_coef``), ``"evaluate"`` (patients, ``message`` names the model),
``"register"``. ``cancel`` is checked per training batch and per prediction batch; a cancelled run registers
nothing: into a temporary folder it raises :class:`core.errors.Cancelled` and deletes the folder; into
``out_dir`` it keeps the best model so far and returns an outcome with ``cancelled`` True.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from core.atomic import write_text_atomic
from core.errors import Cancelled, HeartsegError
from core.inference.engines.openvino import copy_ir, ensure_ir, openvino_available, sidecar_dir
from core.inference.precision import precision_check
from core.store.dataset import SPLIT_SEED, VAL_FRACTION, Dataset, open_dataset, patient_split
from core.store.layout import SPLIT_FILE
from core.training.config import TrainConfig, TrainResult
from core.training.distribute import is_chief
from core.training.loop import train
from core.types import CancelToken, Progress, ProgressFn, check_cancel, report
from core.versions.evaluation import evaluate_model, metrics_summary
from core.versions.registry import ModelRegistry, default_registry_dir, model_input_size
from core.versions.slices import labelled_patients, read_training_slices, slice_states, validation_volumes

#: The weight of corrected slices (the one default lives in :class:`core.training.config.TrainConfig`).
DEFAULT_CORRECTED_WEIGHT = TrainConfig.corrected_weight


@dataclass
class RetrainRequest:
    """What to retrain. ``init_version``: fine-tune this registry version; ``init_model``: fine-tune this model
    file instead (both None: train from scratch with ``config.filters`` / ``config.bottleneck``).
    ``compare_version``: the "old" model of the comparison (None: the registry's active version; without a registry
    the ``init_model``). ``val_patients``: None = the registry's fixed split (without a registry,
    :func:`core.store.dataset.patient_split`). ``patients``: train and validate only among these. ``base_model``:
    the file that is version 0 (None: the bundled model). ``register``: add the result to the registry
    (``registry_dir``, default the dataset's own); False trains into ``out_dir`` only. ``out_dir``: keep the run's
    files there (model, history, plot, ``split.json``, the old-vs-new comparison). ``label``: the heart label of
    a NIfTI dataset's label maps (:func:`core.io.masks.binary_from_labels`)."""

    dataset_root: Path
    config: TrainConfig = field(default_factory=TrainConfig)
    registry_dir: Optional[Path] = None
    init_version: Optional[int] = 0
    compare_version: Optional[int] = None
    val_patients: Optional[Sequence[str]] = None
    val_fraction: float = VAL_FRACTION
    split_seed: int = SPLIT_SEED
    base_model: Optional[Path] = None
    skip_flagged: bool = True
    init_model: Optional[Path] = None
    patients: Optional[Sequence[str]] = None
    out_dir: Optional[Path] = None
    register: bool = True
    label: Optional[int] = None  # NIfTI datasets: which label of the label maps is the heart (None: the only one)

    def registry(self) -> Optional[ModelRegistry]:
        if not self.register and self.registry_dir is None:
            return None
        folder = self.registry_dir if self.registry_dir is not None else default_registry_dir(self.dataset_root)
        return ModelRegistry(folder, base_model=self.base_model)


@dataclass
class RetrainPlan:
    """Patients and slice counts of a retraining (what the dialog shows)."""
    dataset_root: Path
    registry_dir: Optional[Path]
    train_pids: list
    val_pids: list
    split_fixed: bool          # True: the validation patients come from the registry's stored split
    train_slices: int
    val_slices: int
    corrected_slices: int      # corrected slices among the training slices
    corrected_val_slices: int
    flagged_excluded: int      # flagged slices left out (training and validation)

    def summary(self, corrected_weight: float = DEFAULT_CORRECTED_WEIGHT) -> str:
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
    validation metrics on the same held-out patients (``old_metrics`` None when there was no old model)."""

    version: Optional[int]           # None: not registered (``register`` False, or cancelled)
    record: dict
    old_version: Optional[int]
    old_metrics: Optional[dict]
    new_metrics: Optional[dict]      # None without validation patients, or when cancelled
    plan: RetrainPlan
    history: list
    registry_dir: Optional[Path]
    model_path: Path
    train_result: Optional[TrainResult] = None
    cancelled: bool = False


#: Patient kinds with slices to train on: Kaggle PNG pairs and NIfTI cases with a label file.
def plan_retraining(dataset, registry: Optional[ModelRegistry], *, val_patients: Optional[Sequence[str]] = None,
                    val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED, skip_flagged: bool = True,
                    store_split: bool = False, patients: Optional[Sequence[str]] = None) -> RetrainPlan:
    """Count what a retraining of ``dataset`` (:class:`core.store.dataset.Dataset` or its root) would use.

    With a registry: at least two patients with masks (one is held out) and the registry's fixed split
    (``store_split``: fix it now, as :func:`run_retraining` does; the dialog's preview does not). Without one
    (``heartseg train --out`` alone): :func:`core.store.dataset.patient_split`; validation may be empty.
    ``patients``: only these (each must have masks).
    """
    if not isinstance(dataset, Dataset):
        dataset = open_dataset(dataset)
    labelled = labelled_patients(dataset)
    if patients is not None:
        chosen = [str(p).strip() for p in patients if str(p).strip()]
        unknown = [p for p in chosen if p not in labelled]
        if unknown:
            raise HeartsegError(f"these patients have no masks or are not in the dataset: {', '.join(unknown)}",
                                dataset.root)
        labelled = chosen
    if not labelled:
        raise HeartsegError("no patient with masks to train on", dataset.root)
    if registry is None:
        fixed = False
        train_pids, val_pids = patient_split(labelled, val_fraction, seed, val_patients)
    else:
        if len(labelled) < 2:
            raise HeartsegError(f"retraining needs at least 2 patients with masks (one is held out for "
                                f"validation); this dataset has {len(labelled)}", dataset.root)
        fixed = val_patients is None and registry.stored_split() is not None
        train_pids, val_pids = registry.fixed_split(labelled, val_fraction, seed, val_patients, store=store_split)
    if not train_pids or (registry is not None and not val_pids):
        raise HeartsegError("the split leaves no training or no validation patient; choose the held-out patients",
                            dataset.root)
    all_slices = slice_states(dataset, list(train_pids) + list(val_pids))
    val_set = set(val_pids)
    flagged = sum(1 for _, state in all_slices if state == "flagged") if skip_flagged else 0
    used = [(pid, state) for pid, state in all_slices if not (skip_flagged and state == "flagged")]
    train = [state for pid, state in used if pid not in val_set]
    val = [state for pid, state in used if pid in val_set]
    return RetrainPlan(Path(dataset.root), registry.folder if registry is not None else None, list(train_pids),
                       list(val_pids), fixed, len(train), len(val), train.count("corrected"), val.count("corrected"),
                       flagged)


def run_retraining(request: RetrainRequest, *, progress: Optional[ProgressFn] = None,
                   cancel: Optional[CancelToken] = None) -> RetrainOutcome:
    """Train, evaluate old vs new on the held-out patients, convert, and register (module docstring).

    Raises :class:`core.errors.Cancelled` when cancelled into a temporary folder (nothing is registered, the folder
    is removed) and :class:`HeartsegError` for problems a user can act on (too few patients, missing model, ...).
    """
    check_cancel(cancel)
    dataset = open_dataset(request.dataset_root)
    registry = request.registry()
    if request.register and registry is None:
        raise HeartsegError("registering a version needs a registry folder", request.dataset_root)
    config = dataclasses.replace(request.config)
    chief = is_chief()  # a multi-worker run: only the chief writes (split, model, validation, registry, IR)
    init_path = _init_model(request, registry)
    if init_path is not None:
        size = model_input_size(init_path)
        if size is not None and size != config.image_size:
            config = dataclasses.replace(config, image_size=size)  # fine-tuning keeps the model's input size
    plan = plan_retraining(dataset, registry, val_patients=request.val_patients, val_fraction=request.val_fraction,
                           seed=request.split_seed, skip_flagged=request.skip_flagged,
                           store_split=request.register and chief, patients=request.patients)
    if plan.train_slices == 0:
        raise HeartsegError("no training slices left (every slice flagged or without a mask)", dataset.root)
    old_version, old_path = _old_model(request, registry, init_path)

    train_set = read_training_slices(dataset, plan.train_pids, config.image_size, weight=config.corrected_weight,
                                     skip_flagged=request.skip_flagged, label=request.label, progress=progress,
                                     cancel=cancel)
    if train_set is None:
        raise HeartsegError("no training slices left (every slice flagged or without a mask)", dataset.root)
    val_set = read_training_slices(dataset, plan.val_pids, config.image_size, skip_flagged=request.skip_flagged,
                                   label=request.label, progress=progress, cancel=cancel)
    check_cancel(cancel)

    keep = request.out_dir is not None
    if not chief:  # trains in step with the chief; train() keeps its files in a temporary folder
        work = Path(request.out_dir) if keep else Path(tempfile.mkdtemp(prefix="heartseg-worker-"))
    elif keep:
        work = Path(request.out_dir)
        work.mkdir(parents=True, exist_ok=True)
        split = {"train": plan.train_pids, "val": plan.val_pids}
        write_text_atomic(work / SPLIT_FILE, json.dumps(split, indent=2) + "\n")
    else:
        registry._ensure_folder()
        work = Path(tempfile.mkdtemp(prefix=".training-", dir=registry.folder))
    try:
        result: TrainResult = train(train_set, val_set, config, work, init_model=init_path, progress=progress,
                                    cancel=cancel)
        cancelled = result.cancelled or (cancel is not None and cancel.cancelled)
        if not result.chief:
            return RetrainOutcome(None, {}, old_version, None, None, plan, list(result.history),
                                  registry.folder if registry else None, work, result, cancelled)
        if cancelled and keep and result.best_model_path is not None:
            return RetrainOutcome(None, {}, old_version, None, None, plan, list(result.history),
                                  registry.folder if registry else None, result.best_model_path, result, True)
        if cancelled:
            raise Cancelled()
        if result.best_model_path is None:
            raise HeartsegError("training finished without a model (no epoch completed)", work)

        old_metrics = new_metrics = None
        if plan.val_pids:
            volumes = validation_volumes(dataset, plan.val_pids, skip_flagged=request.skip_flagged, cancel=cancel,
                                         label=request.label)
            if old_path is not None:
                label = f"v{old_version} (old)" if old_version is not None else f"{old_path.name} (old)"
                old_metrics = evaluate_model(old_path, volumes, label=label, progress=progress, cancel=cancel)
            new_metrics = evaluate_model(result.best_model_path, volumes, label="new", progress=progress,
                                         cancel=cancel)
        check_cancel(cancel)
        prepared = _prepare_fast_inference(result.best_model_path, progress)  # before registering: cancellable
        check_cancel(cancel)
        if keep:
            if prepared is not None:
                _install_beside(prepared, result.best_model_path)
            comparison = {"old_model": str(old_path) if old_path else None, "old_version": old_version,
                          "old": old_metrics, "new": new_metrics}
            write_text_atomic(work / "validation.json", json.dumps(comparison, indent=2, default=str) + "\n")
        if not request.register:
            return RetrainOutcome(None, {}, old_version, old_metrics, new_metrics, plan, list(result.history),
                                  registry.folder if registry else None, result.best_model_path, result)

        report(progress, Progress("register", 0, 1, "registering the new version"))
        split = {"train": plan.train_pids, "val": plan.val_pids, "fixed": plan.split_fixed or
                 request.val_patients is None}
        parent = request.init_version if request.init_model is None else None
        version = registry.add_version(
            result, config, parent=parent, data_root=dataset.root, train_pids=plan.train_pids,
            val_pids=plan.val_pids, data=plan.data_record(), validation=new_metrics,
            parent_validation=old_metrics, split=split,
            extra={"compared_with": old_version if old_path else None,
                   **({"label": int(request.label)} if request.label is not None else {})})
        report(progress, Progress("register", 1, 1, f"registered v{version}"))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    entry = registry.get(version)
    if prepared is not None:
        _install_beside(prepared, entry.model_path)  # best effort: the cached copy serves either way
    return RetrainOutcome(version, entry.record, old_version if old_path else None, old_metrics, new_metrics, plan,
                          list(result.history), registry.folder, entry.model_path, result)


def _init_model(request: RetrainRequest, registry: Optional[ModelRegistry]) -> Optional[Path]:
    """The model file to fine-tune: ``init_model``, else the registry's ``init_version``, else None (scratch)."""
    if request.init_model is not None:
        path = Path(request.init_model)
        if not path.is_file():
            raise HeartsegError("model file not found", path)
        return path
    if request.init_version is None:
        return None
    if registry is None:
        raise HeartsegError("fine-tuning a version needs a registry", request.dataset_root)
    return registry.model_path(request.init_version)


def _old_model(request: RetrainRequest, registry: Optional[ModelRegistry],
               init_path: Optional[Path]) -> tuple[Optional[int], Optional[Path]]:
    """The "old" side of the comparison: ``compare_version`` or the registry's active version; without a registry
    the model being fine-tuned (None when training from scratch)."""
    if registry is None:
        return None, init_path
    version = registry.active_version() if request.compare_version is None else int(request.compare_version)
    try:
        return version, registry.model_path(version)
    except HeartsegError:
        return version, None


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
    new_label = f"v{outcome.version}" if outcome.version is not None else "new"
    lines = [f"Validation on held-out patient(s) {', '.join(outcome.plan.val_pids)} "
             f"({outcome.plan.val_slices} slices):",
             f"  pooled Dice:            {old_label} {fmt(old, 'pooled_dice')}  →  {new_label} "
             f"{fmt(new, 'pooled_dice')}",
             f"  Dice on heart slices:   {old_label} {fmt(old, 'nonempty_pooled_dice')}  →  {new_label} "
             f"{fmt(new, 'nonempty_pooled_dice')}",
             f"  empty-slice FP rate:    {old_label} {fmt(old, 'empty_slice_fp_rate')}  →  {new_label} "
             f"{fmt(new, 'empty_slice_fp_rate')}"]
    return "\n".join(lines)


__all__ = ["RetrainRequest", "RetrainPlan", "RetrainOutcome", "plan_retraining", "run_retraining",
           "evaluate_model", "validation_volumes", "read_training_slices", "metrics_summary", "compare_text",
           "DEFAULT_CORRECTED_WEIGHT"]
