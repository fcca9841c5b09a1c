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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from core.atomic import save_figure, write_text_atomic
from core.errors import Cancelled, HeartsegError
from core.io.kaggle import read_mask_slice
from core.io.png import read_png
from core.model.unet import build_unet, check_model_io, load_model, save_model
from core.preprocess import DEFAULT_IMAGE_SIZE, kaggle_scale_slice
from core.types import CancelToken, Progress, ProgressFn, check_cancel, report


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (JSON-serialisable; stored with every model version)."""
    epochs: int = 20
    batch_size: int = 16
    image_size: int = DEFAULT_IMAGE_SIZE
    loss: str = "bce_dice"
    learning_rate: float = 1e-4
    augment: bool = True
    geometric: str = "none"
    seed: int = 0
    lr_factor: float = 0.1
    lr_patience: int = 10
    min_lr: float = 1e-7
    early_stopping_patience: int = 15
    steps_per_epoch: Optional[int] = None  # cap (tiny test runs); None = one pass over the training slices
    corrected_weight: float = 1.0  # sample weight of slices whose review state is "corrected"
    filters: tuple = (16, 16, 32, 64, 128)
    bottleneck: int = 256

    def to_dict(self) -> dict:
        d = asdict(self)
        d["filters"] = list(self.filters)
        return d


@dataclass
class SliceSet:
    """Training or validation slices held in memory.

    images: ``(n, s, s)`` uint8 Kaggle-scale grey at the model size; masks: ``(n, s, s)`` uint8 0/1;
    weights: ``(n,)`` float32 sample weights; ids: ``"<patient>/<slice name>"`` per slice.
    """

    images: np.ndarray
    masks: np.ndarray
    weights: np.ndarray
    ids: list

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def patients(self) -> list[str]:
        return sorted({i.split("/", 1)[0] for i in self.ids})


@dataclass
class TrainResult:
    """What a training run produced. ``best_model_path`` is None only if no epoch finished."""
    out_dir: Path
    best_model_path: Optional[Path]
    best_epoch: Optional[int]
    best_val_loss: Optional[float]
    history: list = field(default_factory=list)  # one dict of logs per finished epoch
    cancelled: bool = False
    seconds: float = 0.0
    images_per_second: float = 0.0


def _read_image8(path: Path) -> np.ndarray:
    """A training image as ``(rows, cols)`` uint8 in the Kaggle scale, through :func:`core.io.png.read_png` (its size
    limits and one-line errors); a 16-bit slice is scaled ``pixel / max * 255`` like the Kaggle PNGs."""

    img = read_png(path)
    return img if img.dtype == np.uint8 else kaggle_scale_slice(img)


def load_slice_pairs(pairs: Sequence[tuple], image_size: int = DEFAULT_IMAGE_SIZE, *,
                     progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                     workers: int = 4) -> SliceSet:
    """Read ``(image_path, mask_path, weight, slice_id)`` tuples into a :class:`SliceSet` (parallel decoding).

    Images and masks are read by :mod:`core.io` (the same rules and errors as the viewer: masks 0/255 or 0/1),
    images resized bilinearly, masks with nearest neighbour. A mask whose size differs from its image is an error
    naming the mask.
    """
    n = len(pairs)
    if n == 0:
        raise HeartsegError("no training slices found (need image/ and mask/ PNG pairs)")
    images = np.empty((n, image_size, image_size), np.uint8)
    masks = np.empty((n, image_size, image_size), np.uint8)
    weights = np.empty((n,), np.float32)

    def load(k: int) -> None:
        img_path, mask_path, weight, _ = pairs[k]
        img = _read_image8(Path(img_path))
        mask = read_mask_slice(Path(mask_path), img.shape)  # 0/1; a size mismatch names the mask
        images[k] = cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_LINEAR)
        masks[k] = cv2.resize(mask, (image_size, image_size), interpolation=cv2.INTER_NEAREST)
        weights[k] = weight

    chunk = 64
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, chunk):
            check_cancel(cancel)
            list(pool.map(load, range(start, min(n, start + chunk))))
            report(progress, Progress("read", min(n, start + chunk), n, "reading slices"))
    ids = [p[3] for p in pairs]
    return SliceSet(images, masks, weights, ids)


def slice_set_from_arrays(images8: np.ndarray, masks01: np.ndarray, ids: Sequence[str],
                          image_size: int = DEFAULT_IMAGE_SIZE, weights=None) -> SliceSet:
    """Build a :class:`SliceSet` from in-memory Kaggle-scale slices ``(n, rows, cols)`` uint8 and 0/1 masks."""
    n = images8.shape[0]
    imgs = np.stack([cv2.resize(im, (image_size, image_size), interpolation=cv2.INTER_LINEAR) for im in images8])
    msks = np.stack([cv2.resize((m > 0).astype(np.uint8), (image_size, image_size),
                                interpolation=cv2.INTER_NEAREST) for m in masks01])
    w = np.ones((n,), np.float32) if weights is None else np.asarray(weights, np.float32)
    return SliceSet(imgs, msks, w, list(ids))


def make_dataset(data: SliceSet, config: TrainConfig, *, training: bool):
    """A ``tf.data`` pipeline yielding ``(images (b,s,s,3) float32 0..1, masks (b,s,s,1) float32[, weights])``.

    Training: shuffled per epoch (seeded), augmented on the fly in parallel (deterministic per sample: the sample
    seed is derived from the run seed, the slice index and its position in the epoch), batched, prefetched.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return SlicePyDataset(data, config, training=training)
    import tensorflow as tf

    from core.training.augment import Augmenter  # lazy: albumentations loads only to train

    n = len(data)
    augmenter = Augmenter(config.geometric) if (training and config.augment) else None
    use_weights = bool(np.any(data.weights != 1.0))
    seed = int(config.seed)

    def load(index, position):
        i = int(index)
        x, y = _sample(data, i, int(position), augmenter, seed)
        return x, y, np.float32(data.weights[i])

    def tf_load(index, position):
        x, y, w = tf.numpy_function(load, [index, position], [tf.float32, tf.float32, tf.float32])
        s = config.image_size
        x.set_shape((s, s, 3))
        y.set_shape((s, s, 1))
        w.set_shape(())
        return (x, y, w) if use_weights else (x, y)

    ds = tf.data.Dataset.from_tensor_slices(np.arange(n, dtype=np.int64))
    if training:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.enumerate().map(lambda pos, idx: tf_load(idx, pos), num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=True)
    ds = ds.batch(config.batch_size)
    if training and config.steps_per_epoch:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)


def _sample(data: SliceSet, i: int, position: int, augmenter, seed: int):
    img = np.repeat(data.images[i][:, :, None], 3, axis=2)
    mask = data.masks[i]
    if augmenter is not None:
        img, mask = augmenter(img, mask, seed * 1_000_003 + int(position) * 7_919 + i)
    return img.astype(np.float32) * (1.0 / 255.0), mask.astype(np.float32)[:, :, None]


def _py_dataset_class():
    import keras

    class _SlicePyDataset(keras.utils.PyDataset):
        """The same pipeline as :func:`make_dataset` for Keras backends other than TensorFlow (JAX, torch):
        seeded per-epoch shuffle, per-sample deterministic augmentation, batches built in worker threads."""

        def __init__(self, data: SliceSet, config: TrainConfig, *, training: bool):
            super().__init__(workers=8 if training else 2, use_multiprocessing=False, max_queue_size=16)
            from core.training.augment import Augmenter  # lazy: albumentations loads only to train

            self.data, self.config, self.training = data, config, training
            self.augmenter = Augmenter(config.geometric) if (training and config.augment) else None
            self.use_weights = bool(np.any(data.weights != 1.0))
            self.epoch = 0
            self.order = np.arange(len(data))
            self.on_epoch_end()

        def __len__(self):
            if self.training and self.config.steps_per_epoch:
                return int(self.config.steps_per_epoch)
            return math.ceil(len(self.data) / self.config.batch_size)

        def on_epoch_end(self):
            if self.training:
                rng = np.random.default_rng(self.config.seed + self.epoch)
                self.order = rng.permutation(len(self.data))
                self.epoch += 1

        def __getitem__(self, b):
            bs = self.config.batch_size
            n = len(self.data)
            positions = [(b * bs + k) for k in range(bs)]
            if not (self.training and self.config.steps_per_epoch):
                positions = [p for p in positions if p < n]
            idx = [int(self.order[p % n]) for p in positions]
            pairs = [_sample(self.data, i, p, self.augmenter, self.config.seed) for i, p in zip(idx, positions)]
            x = np.stack([p[0] for p in pairs])
            y = np.stack([p[1] for p in pairs])
            if self.use_weights:
                return x, y, self.data.weights[idx]
            return x, y

    return _SlicePyDataset


def SlicePyDataset(data: SliceSet, config: TrainConfig, *, training: bool):
    return _py_dataset_class()(data, config, training=training)


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


__all__ = ["TrainConfig", "SliceSet", "TrainResult", "load_slice_pairs", "slice_set_from_arrays",
           "make_dataset", "train", "plot_history", "compile_model", "Cancelled"]
