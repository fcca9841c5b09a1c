"""Training data: Kaggle-layout slices (:func:`load_slice_pairs`) or the slices of whole scans with their masks, as
a NIfTI ``imagesTr`` / ``labelsTr`` dataset holds them (:func:`load_volume_cases`), read through :mod:`core.io`,
brought to the model size and scale by :mod:`core.preprocess` (the same functions inference uses), held as a
:class:`SliceSet`, and served as a seeded ``tf.data`` pipeline with per-sample deterministic augmentation
(:mod:`core.training.augment`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from core.errors import HeartsegError
from core.io.kaggle import read_mask_slice
from core.io.png import read_png
from core.preprocess import (
    DEFAULT_IMAGE_SIZE,
    image_to_model_input,
    kaggle_scale_slice,
    mask_to_model_target,
    resize_image8,
    resize_mask,
    slice_to_kaggle8,
)
from core.training.config import TrainConfig
from core.types import CancelToken, Progress, ProgressFn, Volume, check_cancel, report


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
        images[k] = resize_image8(img, image_size)
        masks[k] = resize_mask(mask, image_size)
        weights[k] = weight

    chunk = 64
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, chunk):
            check_cancel(cancel)
            list(pool.map(load, range(start, min(n, start + chunk))))
            report(progress, Progress("read", min(n, start + chunk), n, "reading slices"))
    ids = [p[3] for p in pairs]
    return SliceSet(images, masks, weights, ids)


#: One scan to train on: ``(pid, load, weights)``. ``load()`` reads the :class:`core.types.Volume` with its ``mask``
#: (only when its turn comes); ``weights`` has one entry per slice: the slice's sample weight, or None to leave the
#: slice out (flagged).
VolumeCase = tuple[str, Callable[[], Volume], Sequence[Optional[float]]]


def volume_training_slices(volume: Volume, image_size: int = DEFAULT_IMAGE_SIZE,
                           indices: Optional[Sequence[int]] = None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(index, image (s, s) uint8, mask (s, s) uint8 0/1)`` for slices ``indices`` (default: all) of a
    scan with its mask, one slice at a time (the float values of one slice at a time, never of the volume).

    The image takes exactly the steps inference takes (:func:`core.preprocess.volume_to_model_input`): the slice in
    the Kaggle scale (:func:`core.preprocess.slice_to_kaggle8`: HU + 1024, per-slice ``pixel / max * 255``) resized
    bilinearly to the model size; :func:`_sample` then repeats it to 3 channels and divides by 255, so a training
    slice is bit for bit the predictor's input for that slice. The mask is resized with nearest neighbour."""
    if volume.mask is None:
        source = volume.source_files[0] if volume.source_files else None
        raise HeartsegError("the scan has no mask to train on", source)
    for i in (range(volume.n_slices) if indices is None else indices):
        yield i, resize_image8(slice_to_kaggle8(volume, i), image_size), resize_mask(volume.mask[i], image_size)


def load_volume_cases(cases: Sequence[VolumeCase], image_size: int = DEFAULT_IMAGE_SIZE, *,
                      progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None) -> SliceSet:
    """Read scans with their masks (:data:`VolumeCase`: NIfTI ``imagesTr`` / ``labelsTr`` cases) into a
    :class:`SliceSet`, one scan at a time: only one case's volume is in memory while its slices go, one by one
    (:func:`volume_training_slices`), into the set at the model size. Slice ids are ``"<pid>/<slice name>"``
    (``1-NNN`` for NIfTI). A scan whose slice count differs from ``len(weights)`` (the count from its header) is
    an error naming it; a label map with several labels and no ``label`` is refused by the reader."""
    total = sum(1 for _, _, weights in cases for w in weights if w is not None)
    if total == 0:
        raise HeartsegError("no training slices found (every slice flagged, or no scan with a mask)")
    images = np.empty((total, image_size, image_size), np.uint8)
    masks = np.empty((total, image_size, image_size), np.uint8)
    sample_weights = np.empty((total,), np.float32)
    ids: list = []
    report(progress, Progress("read", 0, total, "reading scans"))
    for pid, load, weights in cases:
        check_cancel(cancel)
        volume = load()
        if volume.n_slices != len(weights):
            source = volume.source_files[0] if volume.source_files else None
            raise HeartsegError(f"the scan has {volume.n_slices} slices but {len(weights)} were counted when the "
                                "training was planned (did the file change?)", source)
        names = volume.slice_names
        keep = [i for i, w in enumerate(weights) if w is not None]
        for i, image8, mask in volume_training_slices(volume, image_size, keep):
            k = len(ids)
            images[k], masks[k], sample_weights[k] = image8, mask, weights[i]
            ids.append(f"{pid}/{names[i]}")
        del volume  # the next case replaces it
        report(progress, Progress("read", len(ids), total, f"read {pid}"))
    return SliceSet(images, masks, sample_weights, ids)


def make_dataset(data: SliceSet, config: TrainConfig, *, training: bool, input_context=None):
    """A ``tf.data`` pipeline yielding ``(images (b,s,s,3) float32 0..1, masks (b,s,s,1) float32[, weights])``.

    Training: shuffled per epoch (seeded), augmented on the fly in parallel (deterministic per sample: the sample
    seed is derived from the run seed, the slice index and its position in the epoch), batched, prefetched.

    ``input_context`` (a ``tf.distribute.InputContext``; training under a strategy, see
    :func:`distributed_train_dataset`): ``config.batch_size`` is the *global* batch. Every input pipeline shuffles
    and numbers the slices identically (same seed), cuts the epoch into global batches (the last partial one is
    dropped: every replica must run the same number of steps), keeps its own contiguous share of each global batch
    and only then reads and augments it, so each worker decodes and augments only its shard. Replica ``r`` of
    ``R`` thus trains on positions ``[r*b, (r+1)*b)`` of every global batch (``b = batch_size / R``), whatever
    the mix of workers and local devices, and every sample keeps the augmentation seed it has without a strategy.
    """
    import keras  # lazy: Keras (TensorFlow) takes ~3 s to import; only training needs it

    if keras.backend.backend() != "tensorflow":
        return SlicePyDataset(data, config, training=training)
    import tensorflow as tf  # lazy: TensorFlow takes ~3 s to import; only training needs it

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
    ds = ds.enumerate()
    batch = config.batch_size
    if input_context is not None:
        pipelines, pipeline = input_context.num_input_pipelines, input_context.input_pipeline_id
        share = batch // pipelines  # this pipeline's part of each global batch (its local replicas' batches)
        ds = ds.batch(batch, drop_remainder=True)
        ds = ds.map(lambda pos, idx: (pos[pipeline * share:(pipeline + 1) * share],
                                      idx[pipeline * share:(pipeline + 1) * share])).unbatch()
        batch = input_context.get_per_replica_batch_size(config.batch_size)
    ds = ds.map(lambda pos, idx: tf_load(idx, pos), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch)
    if training and config.steps_per_epoch:
        ds = ds.repeat()
    if input_context is None and not training:
        options = tf.data.Options()  # validation under a multi-worker strategy: each worker takes its share
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)


def distributed_train_dataset(data: SliceSet, config: TrainConfig, strategy):
    """The training pipeline of :func:`make_dataset` sharded over ``strategy``'s workers and replicas (explicit
    sharding through ``strategy.distribute_datasets_from_function``: no tf.data auto-sharding rewrite)."""
    replicas = int(strategy.num_replicas_in_sync)
    if config.batch_size % replicas:
        raise HeartsegError(f"the global batch ({config.batch_size}) must be a multiple of the number of replicas "
                            f"({replicas})")
    if not config.steps_per_epoch and len(data) < config.batch_size:
        raise HeartsegError(f"{len(data)} training slices are fewer than one global batch ({config.batch_size})")
    return strategy.distribute_datasets_from_function(
        lambda context: make_dataset(data, config, training=True, input_context=context))


def _sample(data: SliceSet, i: int, position: int, augmenter, seed: int):
    img = np.repeat(data.images[i][:, :, None], 3, axis=2)
    mask = data.masks[i]
    if augmenter is not None:
        img, mask = augmenter(img, mask, seed * 1_000_003 + int(position) * 7_919 + i)
    size = data.images.shape[1]
    return image_to_model_input(img, size), mask_to_model_target(mask, size)


def _py_dataset_class():
    import keras  # lazy: Keras (TensorFlow) takes ~3 s to import; only training needs it

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
