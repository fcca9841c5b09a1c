"""Small shared builders for tests (a tiny U-Net, a tiny Kaggle-layout dataset) and a mask outline reference."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from core.preprocess import resize_image8, resize_mask
from core.training.data import SliceSet

TINY = dict(image_size=64, filters=(4, 8, 8, 8, 8), bottleneck=8)


def tiny_model(path: Path | None = None, seed: int = 0):
    """A 64x64 U-Net small enough to train in seconds; saved to ``path`` when given."""
    import keras

    from core.model.unet import build_unet, save_model

    keras.utils.set_random_seed(seed)
    model = build_unet(**TINY)
    if path is not None:
        save_model(model, path)
    return model


def kaggle_root_from_patient(patient: Path, root: Path, splits: dict[str, slice]) -> Path:
    """Copy slices of one Kaggle patient folder into ``root/data/train/<pid>`` for each ``pid: slice``."""
    from natsort import natsorted

    images = natsorted((patient / "image").glob("*.png"), key=lambda p: p.name)
    for pid, sl in splits.items():
        for sub in ("image", "mask"):
            (root / "data" / "train" / pid / sub).mkdir(parents=True, exist_ok=True)
        for img in images[sl]:
            shutil.copy(img, root / "data" / "train" / pid / "image" / img.name)
            shutil.copy(patient / "mask" / img.name, root / "data" / "train" / pid / "mask" / img.name)
    return root


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a ``(rows, cols)`` 0/1 mask (foreground pixels with a 4-neighbour in the background or
    on the image edge), uint8 0/1 same shape: what the window's outline mode must draw."""
    m = np.asarray(mask).astype(bool)
    if m.size == 0:
        return m.astype(np.uint8)
    p = np.pad(m, 1, mode="constant", constant_values=False)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return (m & ~interior).astype(np.uint8)


def slice_set_from_arrays(images8: np.ndarray, masks01: np.ndarray, ids: Sequence[str],
                          image_size: int = 256, weights=None) -> SliceSet:
    """Build a :class:`SliceSet` from in-memory Kaggle-scale slices ``(n, rows, cols)`` uint8 and 0/1 masks."""
    n = images8.shape[0]
    imgs = np.stack([resize_image8(im, image_size) for im in images8])
    msks = np.stack([resize_mask((m > 0).astype(np.uint8), image_size) for m in masks01])
    w = np.ones((n,), np.float32) if weights is None else np.asarray(weights, np.float32)
    return SliceSet(imgs, msks, w, list(ids))
