"""Training section of ``heartseg bench`` (see :mod:`heartseg_gui.bench.run`).

Images per second of :mod:`core.training.loop`'s pipeline (:func:`core.training.data.make_dataset`: seeded shuffle, the seed's
photometric augmentations via albumentations in ``tf.numpy_function``, parallel map, batching, prefetch) against a
plain ``model.fit(x, y)`` on the same in-memory arrays without augmentation. Same model, same compile (the
project's loss and metrics), batch 16; one warm-up epoch each, then timed epochs alternating between the two.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np

from core.model.unet import build_unet
from core.preprocess import hu_to_stored, kaggle_scale_slice
from core.training.config import TrainConfig
from core.training.data import SliceSet, make_dataset
from core.training.loop import compile_model
from heartseg_gui.bench.report import Report, Row, Stat, synthetic_slice_hu


def _slices(n: int, size: int):
    import cv2

    images = np.empty((n, size, size), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for k in range(n):
        hu = synthetic_slice_hu(size, k, n, seed=7)
        images[k] = kaggle_scale_slice(hu_to_stored(hu))
        masks[k] = (cv2.GaussianBlur(hu.astype(np.float32), (5, 5), 0) > 30) & (hu < 300)
    return SliceSet(images, masks, np.ones((n,), np.float32), [f"bench/{k}" for k in range(n)])


def bench_training(report: Report, quick: bool, log) -> None:
    import keras


    n = 32 if quick else 128
    epochs = 2 if quick else 4
    config = TrainConfig(epochs=1, batch_size=16, augment=True)
    data = _slices(n, config.image_size)
    keras.utils.set_random_seed(0)
    model = build_unet(config.image_size, filters=config.filters, bottleneck=config.bottleneck)
    compile_model(model, config)
    ds = make_dataset(data, config, training=True)
    x = np.repeat(data.images[..., None], 3, axis=3).astype(np.float32) / 255.0
    y = data.masks.astype(np.float32)[..., None]
    steps = math.ceil(n / config.batch_size)

    def core_epoch() -> float:
        t0 = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
        return steps * config.batch_size / (time.perf_counter() - t0) if n % config.batch_size == 0 else \
            n / (time.perf_counter() - t0)

    def plain_epoch() -> float:
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0, shuffle=True)
        return n / (time.perf_counter() - t0)

    core_epoch()
    plain_epoch()  # warm-up: traces both train functions
    log(f"bench: training: {epochs} timed epochs of {n} images each way")
    core_ips, plain_ips = [], []
    for e in range(epochs):
        order = (core_epoch, plain_epoch) if e % 2 == 0 else (plain_epoch, core_epoch)
        for fn in order:
            (core_ips if fn is core_epoch else plain_ips).append(fn())
    s_core, s_plain = Stat.of(core_ips), Stat.of(plain_ips)
    ratio = s_core.median / s_plain.median
    report.put("training.core_images_per_s", asdict(s_core))
    report.put("training.plain_images_per_s", asdict(s_plain))
    report.put("training.ratio", ratio)
    report.rows.append(Row("4 training", f"images/s, core.training.loop pipeline with seed augmentations ({n} images "
                           "256x256, batch 16)", f"{s_core.median:.1f} img/s (p95 {s_core.p95:.1f}, n={s_core.n})",
                           baseline=f"plain model.fit, no augmentation {s_plain.median:.1f} img/s",
                           ratio=f"{ratio:.2f}x", target=">= 0.9x", met=ratio >= 0.9))
