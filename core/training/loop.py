"""Training the U-Net: the seed recipe, driven by ``progress`` / ``cancel`` so the CLI and the window share it.

Recipe (defaults = the seed notebook): images in the Kaggle scale resized to 256, 3 channels, /255; the seed's
photometric augmentations on the fly (+ optional geometric ones, :mod:`core.training.augment`); BCE + Dice loss; Adam 1e-4;
ReduceLROnPlateau(factor 0.1, patience 10) and EarlyStopping on validation loss; the best checkpoint (lowest
validation loss) kept; batch 16; 20 epochs. The split is by patient (:func:`core.store.dataset.patient_split`).

Everything here is synchronous; cancellation is checked after every training batch (a cancelled run stops
within one batch and leaves only complete files: the best checkpoint is written atomically).

Distributed runs (:mod:`core.training.distribute`): under a ``tf.distribute`` strategy (several local GPUs, or a
``TF_CONFIG`` cluster) the model is built and compiled in ``strategy.scope()``, ``batch_size`` is the global batch,
the learning rate is not scaled, and only the chief writes into ``out_dir``. A multi-worker run keeps a
``keras.callbacks.BackupAndRestore`` backup per task in ``out_dir/backup/<task>-<index>/`` (written every epoch,
removed when the run ends normally or is cancelled): the same command rerun after a kill resumes after the last
finished epoch (history.csv and the best model so far carry over; the plateau / early-stopping counters restart).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from core.atomic import save_figure, write_text_atomic
from core.errors import Cancelled, HeartsegError
from core.model.unet import build_unet, check_model_io, load_model, prior_bias, save_model
from core.training.config import TrainConfig, TrainResult
from core.training.data import SliceSet, distributed_train_dataset, make_dataset
from core.training.distribute import is_chief, is_multi_worker, task_name, training_strategy
from core.types import CancelToken, Progress, ProgressFn, check_cancel, report


def _callbacks(config, out_dir, total_steps_per_epoch, progress, cancel, state):
    import keras  # lazy: Keras (TensorFlow) takes ~3 s to import; only training needs it


    class Driver(keras.callbacks.Callback):
        """Adapts Keras to heartseg: progress per batch, cancel within one batch, atomic best checkpoint."""
        def on_train_begin(self, logs=None):
            state["t0"] = time.monotonic()
            state["batches"] = 0
            start = int(getattr(self.model, "_initial_epoch", 0) or 0)  # set by BackupAndRestore on a resume
            if start:
                state["resumed_from"] = start
                state["history"] = [row for row in _read_history(out_dir) if row.get("epoch", 0) <= start]
                for row in state["history"]:
                    val = row.get("val_loss", row.get("loss"))
                    if val is not None and math.isfinite(val) and (state["best"] is None or val < state["best"]):
                        state["best"], state["best_epoch"] = val, int(row["epoch"])
                report(progress, Progress("train", start * total_steps_per_epoch,
                                          config.epochs * total_steps_per_epoch,
                                          f"resuming after epoch {start} (backup)"))

        def on_epoch_begin(self, epoch, logs=None):
            state["epoch"] = epoch

        def on_train_batch_end(self, batch, logs=None):
            state["batches"] += 1
            done = state["epoch"] * total_steps_per_epoch + batch + 1
            total = config.epochs * total_steps_per_epoch
            elapsed = time.monotonic() - state["t0"]
            eta = elapsed / done * (total - done) if done else None
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            metrics["epoch"] = state["epoch"] + 1
            report(progress, Progress("train", done, total,
                                      f"epoch {state['epoch'] + 1}/{config.epochs}", metrics, eta))
            if cancel is not None and cancel.cancelled:
                state["cancelled"] = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            if state.get("cancelled") and "val_loss" not in logs:
                return
            logs["epoch"] = epoch + 1
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            state["history"].append(logs)
            val = logs.get("val_loss", logs.get("loss"))
            if val is not None and math.isfinite(val) and (state["best"] is None or val < state["best"]):
                state["best"] = val
                state["best_epoch"] = epoch + 1
                save_model(self.model, out_dir / "best_model.keras")
            _write_history(out_dir, state["history"])
            report(progress, Progress("epoch", epoch + 1, config.epochs, f"epoch {epoch + 1} done", logs))

    monitor = "val_loss"
    return [
        Driver(),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=config.lr_factor, patience=config.lr_patience,
                                          min_lr=config.min_lr, verbose=0),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=config.early_stopping_patience,
                                      restore_best_weights=False, verbose=0),
    ]


def _read_history(out_dir: Path) -> list:
    """The rows of ``out_dir/history.csv`` (numbers as float, ``epoch`` as int); [] when there is none."""
    path = out_dir / "history.csv"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    keys = lines[0].split(",") if lines else []
    rows = []
    for line in lines[1:]:
        row = {k: float(v) for k, v in zip(keys, line.split(",")) if v != ""}
        if "epoch" in row:
            row["epoch"] = int(row["epoch"])
            rows.append(row)
    return rows


def _write_history(out_dir: Path, history: list) -> None:
    if not history:
        return
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    lines = [",".join(keys)] + [",".join(f"{row.get(k, '')}" for k in keys) for row in history]
    write_text_atomic(out_dir / "history.csv", "\n".join(lines) + "\n")


def plot_history(history: list, path: Path) -> Optional[Path]:
    """Loss and Dice curves (training and validation) as a PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "dice_coef", "Dice (batch-pooled)")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [row.get(prefix + key) for row in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, label=("validation " if prefix else "training ") + key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=100)


def compile_model(model, config: TrainConfig, replicas: int = 1) -> None:
    """Adam(``config.learning_rate``) on ``config.loss`` with the training metrics.

    ``replicas`` > 1 (inside a ``tf.distribute`` scope): the loss, a batch-pooled scalar, is returned once per
    sample instead. Keras 3 (``keras/src/losses/loss.py`` ``reduce_values``) divides a per-sample loss by the
    number of replicas before the gradients are summed across them, but passes a scalar through unscaled: the
    gradient would be the *sum* over replicas and the logged loss ``replicas`` times too high (measured: 3.74 for
    1.78 on 2 replicas). The mean of the repeated value is the value, so nothing else changes.
    """
    import keras  # lazy: Keras (TensorFlow) takes ~3 s to import; only training needs it

    from core.model.losses import get_loss  # lazy: imports Keras (TensorFlow)
    from core.model.train_metrics import training_metrics  # lazy: imports Keras (TensorFlow)

    loss = get_loss(config.loss)
    if replicas > 1:
        loss = _per_sample(loss)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=training_metrics())


def _per_sample(loss_fn):
    import keras  # lazy: Keras (TensorFlow) takes ~3 s to import; only training needs it

    def loss(y_true, y_pred):
        value = loss_fn(y_true, y_pred)
        return keras.ops.ones((keras.ops.shape(y_pred)[0],), dtype=value.dtype) * value

    loss.__name__ = getattr(loss_fn, "__name__", "loss")
    return loss


def train(train_data: SliceSet, val_data: Optional[SliceSet], config: TrainConfig, out_dir: str | Path, *,
          init_model: str | Path | None = None, progress: Optional[ProgressFn] = None,
          cancel: Optional[CancelToken] = None, strategy="auto", backup: Optional[bool] = None) -> TrainResult:
    """Train (from scratch, or fine-tune ``init_model``) and keep the best checkpoint in ``out_dir``.

    Writes ``out_dir/best_model.keras`` (lowest validation loss; training loss without validation data),
    ``history.csv``, ``history.png`` and ``config.json``. Returns a :class:`TrainResult`; with ``cancel`` set the
    run stops within one batch and ``result.cancelled`` is True (the best checkpoint so far is kept).

    ``strategy``: ``"auto"`` = :func:`core.training.distribute.training_strategy` (None on one device), or a
    ``tf.distribute`` strategy, or None. A task that is not the chief writes into a temporary folder (removed at
    the end) and returns ``chief`` False with no model. ``backup`` (default: in multi-worker runs): keep a
    ``BackupAndRestore`` backup in ``out_dir/backup/<task>-<index>/`` and resume from it (module docstring).
    """
    import keras  # lazy: Keras (TensorFlow) takes ~3 s to import; only training needs it

    out_dir = Path(out_dir)
    check_cancel(cancel)
    if strategy == "auto":
        strategy = training_strategy()  # first: MultiWorkerMirroredStrategy must precede every other TF op
    chief = is_chief()
    backup = is_multi_worker() if backup is None else bool(backup)
    backup_dir = out_dir / "backup" / task_name()
    if backup:
        _check_backup(out_dir, backup_dir, config)
    scratch = None
    if not chief:
        scratch = Path(tempfile.mkdtemp(prefix=f"heartseg-{task_name()}-"))
        if backup_dir.is_dir() and (out_dir / "history.csv").is_file():
            shutil.copy2(out_dir / "history.csv", scratch / "history.csv")
        write_dir = scratch
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_dir = out_dir
    try:
        return _train(keras, train_data, val_data, config, write_dir, init_model, progress, cancel, strategy,
                      chief, backup_dir if backup else None)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _build_before_fit(model, strategy, train_data: SliceSet, config: TrainConfig) -> None:
    """Build the compiled loss and metrics from one per-replica batch of zeros, in ``strategy.scope()``.

    Keras 3's ``fit`` otherwise builds them from the first distributed batch by ``strategy.reduce("MEAN", batch)``
    (``keras/src/backend/tensorflow/trainer.py`` ``_maybe_symbolic_build``), which fails under
    ``MultiWorkerMirroredStrategy`` ("Attempt to convert a value (PerReplica...) to a Tensor"); it works under
    ``MirroredStrategy``. Only shapes and dtypes matter to that build, so the instance's hook builds from zeros.
    """
    b = config.batch_size // int(strategy.num_replicas_in_sync)
    s = config.image_size
    sample = [np.zeros((b, s, s, 3), np.float32), np.zeros((b, s, s, 1), np.float32)]
    if bool(np.any(train_data.weights != 1.0)):
        sample.append(np.zeros((b,), np.float32))

    def build(iterator=None, data_batch=None):
        with strategy.scope():
            model._symbolic_build(data_batch=tuple(sample))

    model._maybe_symbolic_build = build


def _check_backups_agree(strategy, backup_dir: Path) -> None:
    """Every task must resume from the same epoch: gather each task's backup epoch (0: none) and refuse, on every
    task alike, a set of backups that disagree (a kill between two workers' epoch-end saves)."""
    epoch = 0
    meta = backup_dir / "training_metadata.json"
    if meta.is_file():
        try:
            epoch = int(json.loads(meta.read_text())["epoch"])
        except (ValueError, KeyError, TypeError):
            raise HeartsegError("the training backup is unreadable: delete the backup folder", meta) from None
    if strategy is None:
        return
    import tensorflow as tf  # lazy: TensorFlow loads only to train

    values = strategy.run(lambda: tf.constant([epoch], tf.int64))
    epochs = sorted(set(int(v) for v in strategy.gather(values, axis=0).numpy().tolist()))
    if len(epochs) > 1:
        raise HeartsegError(f"the workers' backups are from different epochs ({', '.join(map(str, epochs))}); "
                            "delete the backup folder on every node and start again", backup_dir.parent)


def _check_backup(out_dir: Path, backup_dir: Path, config: TrainConfig) -> None:
    """A backup left by a killed run resumes only the same configuration (else its weights would not fit)."""
    if not backup_dir.is_dir() or not (out_dir / "config.json").is_file():
        return
    try:
        saved = json.loads((out_dir / "config.json").read_text())
    except ValueError:
        saved = None
    if saved != json.loads(json.dumps(config.to_dict())):
        raise HeartsegError("a backup of an interrupted run with other training options is here: rerun it with "
                            "the same options to resume, or delete the backup folder", backup_dir)


def _train(keras, train_data, val_data, config, out_dir, init_model, progress, cancel, strategy, chief,
           backup_dir) -> TrainResult:
    keras.utils.set_random_seed(config.seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if init_model is not None:
            model = load_model(init_model)
            size = check_model_io(model, init_model)
            if size != config.image_size:
                raise HeartsegError(f"model input is {size}x{size} but training images are {config.image_size}",
                                    init_model)
        else:
            bias = prior_bias(float(np.mean(train_data.masks))) if config.prior_bias else 0.0
            model = build_unet(config.image_size, filters=config.filters, bottleneck=config.bottleneck,
                               output_bias=bias, bn_momentum=config.bn_momentum)
        compile_model(model, config, int(strategy.num_replicas_in_sync) if strategy is not None else 1)

    write_text_atomic(out_dir / "config.json", json.dumps(config.to_dict(), indent=2))

    if strategy is not None:
        steps = config.steps_per_epoch or len(train_data) // config.batch_size  # partial global batch dropped
        train_ds = distributed_train_dataset(train_data, config, strategy)
    else:
        steps = config.steps_per_epoch or math.ceil(len(train_data) / config.batch_size)
        train_ds = make_dataset(train_data, config, training=True)
    val_ds = make_dataset(val_data, config, training=False) if val_data is not None and len(val_data) else None
    state = {"history": [], "best": None, "best_epoch": None, "cancelled": False, "epoch": 0, "batches": 0}
    callbacks = _callbacks(config, out_dir, steps, progress, cancel, state)
    if backup_dir is not None:
        _check_backups_agree(strategy, backup_dir)
        callbacks.insert(0, keras.callbacks.BackupAndRestore(str(backup_dir)))  # restores before Driver starts
    if strategy is not None:
        _build_before_fit(model, strategy, train_data, config)
        # The logged metrics are already the all-reduced results (Keras 3 metric variables are sync-on-read
        # sums), so every replica holds the same value: take the first. The default ("auto" = "mean") calls
        # strategy.reduce("MEAN", scalar, axis=0) under MultiWorkerMirroredStrategy, which fails on a scalar
        # (keras/src/backend/tensorflow/trainer.py reduce_per_replica).
        model.distribute_reduction_method = "first"
    t0 = time.monotonic()
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                  steps_per_epoch=config.steps_per_epoch,
                  callbacks=callbacks, verbose=0, shuffle=False)
    except KeyboardInterrupt:
        state["cancelled"] = True
    seconds = time.monotonic() - t0
    if backup_dir is not None and not backup_dir.exists():
        try:
            backup_dir.parent.rmdir()  # the last task's backup is gone: no empty backup/ folder left
        except OSError:
            pass  # another task's backup is still there
    plot_history(state["history"], out_dir / "history.png")
    best = out_dir / "best_model.keras"
    n_images = state["batches"] * config.batch_size
    model_path = best if chief and best.exists() and state["best_epoch"] else None
    return TrainResult(out_dir, model_path, state["best_epoch"], state["best"], state["history"],
                       bool(state["cancelled"]), seconds, n_images / seconds if seconds > 0 else 0.0,
                       chief=chief, replicas=int(strategy.num_replicas_in_sync) if strategy is not None else 1,
                       resumed_from=state.get("resumed_from"))


__all__ = ["train", "plot_history", "compile_model", "Cancelled"]
