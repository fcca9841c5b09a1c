"""Training the U-Net: the seed recipe, driven by ``progress`` / ``cancel`` so the CLI and the window share it.

Recipe (defaults = the seed notebook): images in the Kaggle scale resized to 256, 3 channels, /255; the seed's
photometric augmentations on the fly (+ optional geometric ones, :mod:`core.training.augment`); BCE + Dice loss; Adam 1e-4;
ReduceLROnPlateau(factor 0.1, patience 10) and EarlyStopping on validation loss; the best checkpoint (lowest
validation loss) kept; batch 16; 20 epochs. The split is by patient (:func:`core.store.dataset.patient_split`).

Everything here is synchronous; cancellation is checked after every training batch (a cancelled run stops
within one batch and leaves only complete files: the best checkpoint is written atomically).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

from core.atomic import save_figure, write_text_atomic
from core.errors import Cancelled, HeartsegError
from core.model.unet import build_unet, check_model_io, load_model, save_model
from core.training.config import TrainConfig, TrainResult
from core.training.data import SliceSet, make_dataset
from core.types import CancelToken, Progress, ProgressFn, check_cancel, report


def _callbacks(config, out_dir, total_steps_per_epoch, progress, cancel, state):
    import keras


    class Driver(keras.callbacks.Callback):
        """Adapts Keras to heartseg: progress per batch, cancel within one batch, atomic best checkpoint."""
        def on_train_begin(self, logs=None):
            state["t0"] = time.monotonic()
            state["batches"] = 0

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


def compile_model(model, config: TrainConfig) -> None:
    import keras

    from core.model.losses import get_loss  # lazy: imports Keras (TensorFlow)
    from core.model.train_metrics import training_metrics  # lazy: imports Keras (TensorFlow)

    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=get_loss(config.loss),
                  metrics=training_metrics())


def train(train_data: SliceSet, val_data: Optional[SliceSet], config: TrainConfig, out_dir: str | Path, *,
          init_model: str | Path | None = None, progress: Optional[ProgressFn] = None,
          cancel: Optional[CancelToken] = None) -> TrainResult:
    """Train (from scratch, or fine-tune ``init_model``) and keep the best checkpoint in ``out_dir``.

    Writes ``out_dir/best_model.keras`` (lowest validation loss; training loss without validation data),
    ``history.csv``, ``history.png`` and ``config.json``. Returns a :class:`TrainResult`; with ``cancel`` set the
    run stops within one batch and ``result.cancelled`` is True (the best checkpoint so far is kept).
    """
    import keras


    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_cancel(cancel)
    keras.utils.set_random_seed(config.seed)
    if init_model is not None:
        model = load_model(init_model)
        size = check_model_io(model, init_model)
        if size != config.image_size:
            raise HeartsegError(f"model input is {size}x{size} but training images are {config.image_size}",
                                init_model)
    else:
        model = build_unet(config.image_size, filters=config.filters, bottleneck=config.bottleneck)
    compile_model(model, config)

    write_text_atomic(out_dir / "config.json", json.dumps(config.to_dict(), indent=2))

    steps = config.steps_per_epoch or math.ceil(len(train_data) / config.batch_size)
    train_ds = make_dataset(train_data, config, training=True)
    val_ds = make_dataset(val_data, config, training=False) if val_data is not None and len(val_data) else None
    state = {"history": [], "best": None, "best_epoch": None, "cancelled": False, "epoch": 0, "batches": 0}
    callbacks = _callbacks(config, out_dir, steps, progress, cancel, state)
    t0 = time.monotonic()
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                  steps_per_epoch=config.steps_per_epoch, callbacks=callbacks, verbose=0, shuffle=False)
    except KeyboardInterrupt:
        state["cancelled"] = True
    seconds = time.monotonic() - t0
    plot_history(state["history"], out_dir / "history.png")
    best = out_dir / "best_model.keras"
    n_images = state["batches"] * config.batch_size
    return TrainResult(out_dir, best if best.exists() and state["best_epoch"] else None, state["best_epoch"],
                       state["best"], state["history"], bool(state["cancelled"]), seconds,
                       n_images / seconds if seconds > 0 else 0.0)


__all__ = ["train", "plot_history", "compile_model", "Cancelled"]
