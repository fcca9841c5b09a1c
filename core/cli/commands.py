"""The bodies of the ``heartseg`` CLI sub-commands (argument parsing lives in :mod:`core.cli`).

Result paths are printed on stdout, one per line; progress, messages and warnings go to stderr through the
``heartseg`` logger (``--quiet`` / ``--verbose``, set up by :func:`core.cli.main.main`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.atomic import write_csv_atomic
from core.cli.progress import ProgressBar, sigint_cancels
from core.errors import Cancelled, HeartsegError
from core.inference.predictor import Predictor
from core.io import geometry_warnings, open_scan
from core.io.common import kaggle_slice_names
from core.io.dicom_seg import check_dicom_seg_source, seg_output_path, write_dicom_seg
from core.io.masks import write_image_pngs, write_mask_nifti, write_mask_pngs, write_scan_nifti
from core.model.unet import load_model
from core.postprocess import DEFAULT_POSTPROCESS, NO_POSTPROCESS, slices_adjacent
from core.preprocess import to_kaggle_scale
from core.resources import bundled_model_path, kaggle_manifest_path
from core.review.qc import describe, scan_flags, slice_flags
from core.review.record import patient_rows
from core.review.record import write_report as write_record
from core.review.uncertainty import UncertaintyCollector, review_order
from core.store.dataset import Dataset, is_dataset_root, is_nifti_dataset, open_dataset, output_name
from core.store.manifest import verify_dataset
from core.store.outputs import check_output_path, staged_output
from core.training.config import TrainConfig
from core.training.distribute import (
    exit_with_parent,
    is_multi_worker,
    run_as_worker,
    run_local_workers,
    task_name,
    training_strategy,
    worker_argv,
)
from core.types import CancelToken
from core.versions.evaluation import evaluate_volumes
from core.versions.evaluation import write_report as write_evaluation
from core.versions.retrain import RetrainRequest, compare_text, plan_retraining, run_retraining

log = logging.getLogger("heartseg")


def _progress():
    """The stderr progress bar, or ``None`` with ``--quiet``."""
    return ProgressBar() if log.isEnabledFor(logging.INFO) else None


def warn_geometry(command: str, volume) -> None:
    """One stderr line per geometry problem of ``volume`` (:func:`core.io.geometry_warnings`)."""
    for text in geometry_warnings(volume):
        log.warning(f"heartseg {command}: warning: {volume.name}: {text}")


def open_dataset_said(command: str, path) -> Dataset:
    """:func:`core.store.dataset.open_dataset`, with one stderr line naming the hidden folders (a name beginning
    with one ``.``) that hold a patient but were skipped, so none is left out silently."""
    dataset = open_dataset(path)
    if dataset.hidden:
        names = ", ".join(repr(p.name) for p in dataset.hidden[:5]) + (" ..." if len(dataset.hidden) > 5 else "")
        log.warning(f"heartseg {command}: warning: skipped {len(dataset.hidden)} hidden patient folder(s) or "
                    f"scan(s): {names} (a name beginning with one '.' is hidden; rename it to include it)")
    return dataset


def _model_path(path) -> Path:
    return Path(path) if path is not None else bundled_model_path()


def _postprocess(args):
    return NO_POSTPROCESS if getattr(args, "no_postprocess", False) else DEFAULT_POSTPROCESS


# ----------------------------------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    """``heartseg train``: :func:`core.versions.retrain.run_retraining`, the path Model > Retrain... takes, into
    ``--out`` (and the registry with ``--registry``), on a Kaggle-layout or a NIfTI ``imagesTr``/``labelsTr``
    dataset (``--label N``: the heart label of multi-label maps). With ``TF_CONFIG`` naming a cluster this process
    is one worker (only the chief writes); ``--local-workers N`` starts N such workers here
    (:func:`core.training.distribute.run_local_workers`)."""
    if getattr(args, "local_worker_of", None) is not None:
        exit_with_parent(args.local_worker_of)
    if is_multi_worker():
        training_strategy()  # MultiWorkerMirroredStrategy before any other TensorFlow op
        run_as_worker(lambda: _cmd_train(args), log)  # never returns: a worker ends by os._exit
    return _cmd_train(args)


def _cmd_train(args) -> int:
    check_output_path(args.out, [args.data])
    registry_dir = args.registry
    if args.from_version is not None and registry_dir is None:
        raise HeartsegError("--from-version needs --registry")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                         image_size=args.image_size or TrainConfig.image_size, loss=args.loss,
                         learning_rate=args.learning_rate, augment=not args.no_augment, geometric=args.geometric,
                         seed=args.seed, steps_per_epoch=args.steps_per_epoch,
                         early_stopping_patience=args.early_stopping_patience, lr_patience=args.lr_patience,
                         corrected_weight=args.corrected_weight, prior_bias=not args.no_prior_bias,
                         bn_momentum=args.bn_momentum)
    patients = [p.strip() for p in args.patients.split(",") if p.strip()] if args.patients else None
    val_list = [p.strip() for p in args.val_patients.split(",")] if args.val_patients else None
    request = RetrainRequest(Path(args.data), config, registry_dir=registry_dir, init_version=args.from_version,
                             init_model=args.init_model, val_patients=val_list, val_fraction=args.val_fraction,
                             split_seed=args.seed, patients=patients, out_dir=Path(args.out),
                             register=registry_dir is not None, skip_flagged=True,
                             label=getattr(args, "label", None))
    bar = _progress()
    plan = plan_retraining(open_dataset_said("train", args.data), request.registry(), val_patients=val_list,
                           val_fraction=args.val_fraction, seed=args.seed, patients=patients)
    if getattr(args, "local_workers", None) is not None:
        if is_multi_worker():
            raise HeartsegError("--local-workers starts its own cluster: unset TF_CONFIG")
        cancel = CancelToken()
        sigint_cancels(cancel)
        argv = list(args.argv)
        argv = argv[argv.index("train") + 1:] if "train" in argv else argv
        return run_local_workers(worker_argv(argv), args.local_workers, Path(args.out), cancel=cancel)
    log.info(f"training on {len(plan.train_pids)} patients ({', '.join(plan.train_pids)}), "
             f"validating on {len(plan.val_pids)} ({', '.join(plan.val_pids) or 'none'})")
    cancel = CancelToken()
    sigint_cancels(cancel)
    try:
        outcome = run_retraining(request, progress=bar, cancel=cancel)
    except Cancelled:
        log.warning("training cancelled before the first epoch ended: no model written")
        return 130
    result = outcome.train_result
    if not result.chief:
        log.info(f"worker {task_name()} finished ({result.images_per_second:.1f} images/s over all workers); "
                 f"the chief writes the model")
        return 130 if outcome.cancelled else 0
    state = "cancelled" if outcome.cancelled else "finished"
    if result.resumed_from:
        log.info(f"resumed after epoch {result.resumed_from} from the backup of an interrupted run")
    log.info(f"training {state}: best epoch {result.best_epoch} (val_loss {result.best_val_loss:.4f}), "
             f"{result.images_per_second:.1f} images/s -> {result.best_model_path}")
    print(result.best_model_path)
    if outcome.cancelled:
        return 130
    if outcome.new_metrics is not None:
        log.info(compare_text(outcome))
    if outcome.version is not None:
        log.info(f"registered as version {outcome.version}")
    return 0


# --------------------------------------------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    """``heartseg predict``: one scan, each scan of a NIfTI folder / ``imagesTr``-``imagesTs`` dataset, or each
    patient of a Kaggle-layout dataset root (``OUT/<patient>/`` gets what ``heartseg predict <patient> --out
    OUT/<patient>`` writes). Over many scans the next one is read while the model runs on the current one."""
    check_output_path(args.out, [args.scan])
    scan = Path(args.scan)
    out = Path(args.out)
    if is_dataset_root(scan):
        nifti = is_nifti_dataset(scan)
        dataset = open_dataset_said("predict", scan)
        names = [output_name(e.pid) for e in dataset.patients]
        if len(set(names)) != len(names):
            raise HeartsegError("two cases would write outputs of the same name; rename one", scan)
        if getattr(args, "dicom_seg", False) and nifti:
            raise HeartsegError("--dicom-seg needs a DICOM series; these are NIfTI scans", scan)
        if getattr(args, "dicom_seg", False) and any(e.kind == "kaggle_patient" for e in dataset.patients):
            raise HeartsegError("--dicom-seg needs DICOM series; this dataset has PNG patients", scan)
        # images only, no labels; NIfTI cases write beside each other in OUT, a dataset's patients each into
        # OUT/<patient>
        volumes = [(e.pid, out if nifti else out / n, lambda e=e: open_scan(e.path))
                   for e, n in zip(dataset.patients, names)]
        if not nifti:
            log.info(f"{len(volumes)} patients -> {out}/<patient>")
    else:
        first = open_scan(scan)  # reads and validates everything before anything is written
        if getattr(args, "dicom_seg", False):
            check_dicom_seg_source(first)  # refused before the model runs and before anything is written
        volumes = [(first.name, out, lambda: first)]
    model_path = _model_path(args.model)
    predictor = Predictor(model_path, batch_size=args.batch_size, dtype=args.precision, runtime=args.runtime)
    log.info(f"model {predictor.name} on {predictor.description}")
    for (name, where, _load), volume in zip(volumes, _read_ahead([load for _n, _w, load in volumes])):
        volume.name = name  # a dataset case is named by its case id (``chest``, not ``chest_0000``)
        _predict_one(args, predictor, volume, where)
    return 0


def _read_ahead(loads: list):
    """Yield ``load()`` for each of ``loads`` in order, the next one read in a thread while the caller works on
    the current one (PNG and DICOM decoding release the GIL; the model runs on every core meanwhile). A read
    that fails raises when its turn comes, after the scans before it were written."""
    if len(loads) <= 1:
        for load in loads:
            yield load()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="heartseg-read") as pool:
        pending = pool.submit(loads[0])
        for k in range(len(loads)):
            volume = pending.result()
            if k + 1 < len(loads):
                pending = pool.submit(loads[k + 1])
            yield volume


def _predict_one(args, predictor, volume, out: Path) -> None:
    warn_geometry("predict", volume)
    postprocess = _postprocess(args)
    collector = UncertaintyCollector(volume.n_slices, postprocess.threshold, keep_maps=False,
                                     min_slice_fraction=postprocess.min_slice_fraction)
    masks = predictor.predict_masks(volume, progress=_progress(), postprocess=postprocess,
                                    on_probabilities=collector.add)
    lines, shown = [], []  # what to say and print once every output is in place (all-or-nothing per scan)
    with staged_output(out) as stage:
        if volume.kind in ("kaggle_patient", "png_folder"):
            written = write_mask_pngs(stage, masks, volume.slice_names)
            lines.append(f"{len(written)} masks -> {out}")
            shown.append(out)
        else:
            pid = output_name(volume.name)
            names = kaggle_slice_names(volume.n_slices)
            write_image_pngs(stage / pid / "image", to_kaggle_scale(volume), names)
            write_mask_pngs(stage / pid / "mask", masks, names)
            nifti = f"{pid}_heart.nii.gz"
            write_mask_nifti(stage / nifti, masks, volume)  # on the input's own grid (for DICOM: SimpleITK's grid)
            written = [out / pid, out / nifti]
            if volume.kind == "dicom":  # the NIfTI SimpleITK / dcm2niix would write for the series, the mask on it
                write_scan_nifti(stage / f"{pid}_ct.nii.gz", volume)
                written.append(out / f"{pid}_ct.nii.gz")
            lines.append(f"{len(names)} slices -> {out / pid} (Kaggle layout) and "
                         f"{' and '.join(str(p) for p in written[1:])}")
            shown += written
        if getattr(args, "dicom_seg", False):
            seg = write_dicom_seg(volume, masks, seg_output_path(stage, output_name(volume.name)), corrected=False)
            lines.append(f"DICOM-SEG (AUTOMATIC) -> {out / seg.name}")
            shown.append(out / seg.name)
        qc = out / write_qc_csv(stage, volume, masks, collector.scores).name
        heart = int((masks.reshape(masks.shape[0], -1).max(axis=1) > 0).sum())
        lines.append(f"heart found on {heart} of {volume.n_slices} slices; per-slice uncertainty and QC flags -> {qc}")
        shown.append(qc)
    for line in lines:
        log.info(line)
    for path in shown:
        print(path)


def write_qc_csv(out: Path, volume, masks, scores) -> Path:
    """``out/<scan>_qc.csv``: per slice its name, mask area, uncertainty (0..1, higher = less sure), QC flags
    (names joined by ``;``) and its place in the review queue (1 = look first); scan-level flags on stderr."""

    adjacent = slices_adjacent(volume)
    flags = slice_flags(masks, adjacent=adjacent)
    rank = {i: k + 1 for k, i in enumerate(review_order(scores))}
    if volume.kind in ("kaggle_patient", "png_folder"):
        names = volume.slice_names
    elif volume.kind == "dicom":  # the names of the Kaggle-layout PNGs predict wrote for it

        names = kaggle_slice_names(volume.n_slices)
    else:
        names = [str(i) for i in range(volume.n_slices)]
    rows = [{"slice": names[i], "area_px": int(masks[i].sum()), "uncertainty": f"{float(scores[i]):.4f}",
             "flags": ";".join(flags[i]), "review_rank": rank[i]} for i in range(volume.n_slices)]
    path = write_csv_atomic(out / f"{output_name(volume.name)}_qc.csv",
                            ["slice", "area_px", "uncertainty", "flags", "review_rank"], rows, lineterminator="\n")
    whole = scan_flags(masks, adjacent=adjacent, spacing=volume.spacing)
    if whole:
        log.info(f"scan QC: {describe(whole)}")
    if not adjacent:
        log.info("slices are not neighbours (gaps in the numbering, or no positions): the largest region is kept "
                 "per slice and neighbour checks are off")
    return path


# ---------------------------------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    """The correction record of every patient of a dataset (their ``.heartseg/review.json``)."""
    check_output_path(args.out, [args.data])
    dataset = open_dataset_said("report", args.data)
    rows = []
    for entry in dataset.patients:
        rows += patient_rows(dataset.patient_dir(entry.pid), entry.pid)
    if not rows:
        raise HeartsegError("no patient has a review record yet (nothing was saved from heartseg)", args.data)
    out = Path(args.out)
    with staged_output(out) as stage:
        written = write_record(rows, stage, title=f"Correction record: {Path(args.data).name}")
    for path in written:
        print(out / path.relative_to(stage))
    return 0


# -------------------------------------------------------------------------------------------------- evaluate
def _labelled_volumes(args):
    """Yield ``(patient_id, Volume)`` for every labelled scan of ``args.data``."""
    data = Path(args.data)
    label = getattr(args, "label", None)
    if data.is_file() or args.mask is not None:
        vol = open_scan(data, args.mask, label=label)
        if vol.mask is None:
            raise HeartsegError("this scan has no mask to evaluate against (give --mask)", data)
        warn_geometry("evaluate", vol)
        return [(vol.name, vol)]

    dataset = open_dataset_said("evaluate", data)
    pids = [p.strip() for p in args.patients.split(",")] if args.patients else \
        [p.pid for p in dataset.patients if p.has_masks]
    if not pids:
        raise HeartsegError("no patient with masks to evaluate", data)
    for pid in pids:
        dataset.entry(pid)  # an unknown id is refused before any scan is read
    taken: dict[str, str] = {}
    for pid in pids:  # panels are named after the patient: two names must never share a file
        other = taken.setdefault(output_name(pid), pid)
        if other != pid:
            raise HeartsegError(f"patients {other!r} and {pid!r} would write evaluation panels of the same name "
                                f"({output_name(pid)}_*); rename one", data)
    volumes = [(pid, dataset.load(pid, label=label)) for pid in pids]
    for _, vol in volumes:
        warn_geometry("evaluate", vol)
    return volumes


def cmd_evaluate(args) -> int:
    check_output_path(args.out, [args.data, args.mask])
    volumes = _labelled_volumes(args)
    model_path = _model_path(args.model)
    model = load_model(model_path)
    with staged_output(Path(args.out)) as stage:  # panels and tables appear together, or not at all
        report = evaluate_volumes(model, volumes, postprocess=_postprocess(args), progress=_progress(),
                                  panels_dir=stage / "panels", panels_per_patient=args.panels)
        text = write_evaluation(report, stage, model_name=model_path.name)
    print(text)
    return 0


# ---------------------------------------------------------------------------------------------------- verify
def cmd_verify(args) -> int:
    report = verify_dataset(args.root, args.manifest or kaggle_manifest_path(), progress=_progress())
    print(report.summary())
    return 0 if report.ok else 1
