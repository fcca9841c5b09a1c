"""Training augmentation — the only module that imports albumentations.

The seed notebook's six photometric transforms, each with p=0.7 at albumentations' default parameters
(RandomBrightnessContrast, HueSaturationValue, RGBShift, RandomGamma, CLAHE, ChannelShuffle), applied on the fly
to every training sample (the seed wrote nine augmented copies of each slice to disk instead), plus optional
geometric transforms that move image and mask together:

* ``"none"``: photometric only (the seed recipe).
* ``"mild"``: small affine jitter (scale 0.9-1.1, rotation ±10°, shift ±5 %).
* ``"strong"``: zoom out to 0.45-1.15 (the heart of a tight crop becomes as small as on a full 350 mm chest
  slice), rotation ±15°, shift ±15 %, shear ±5°, plus low-contrast / noise / blur variants of low-dose CT.

Inputs and outputs: image ``(rows, cols, 3)`` uint8 0..255 (grey repeated to 3 channels, see
:mod:`core.preprocess`), mask ``(rows, cols)`` uint8 0/1. Results are deterministic for a given sample seed:
:class:`Augmenter` reseeds a thread-local pipeline before each call, so parallel workers give the same
results in any order.
"""

from __future__ import annotations

import threading
from typing import Literal

import albumentations as A
import cv2
import numpy as np

Geometric = Literal["none", "mild", "strong"]
PHOTOMETRIC_P = 0.7


def photometric_transforms() -> list:
    """The seed's six photometric transforms (p=0.7 each, default parameters)."""
    return [
        A.RandomBrightnessContrast(p=PHOTOMETRIC_P),
        A.HueSaturationValue(p=PHOTOMETRIC_P),
        A.RGBShift(p=PHOTOMETRIC_P),
        A.RandomGamma(p=PHOTOMETRIC_P),
        A.CLAHE(p=PHOTOMETRIC_P),
        A.ChannelShuffle(p=PHOTOMETRIC_P),
    ]


def geometric_transforms(level: Geometric) -> list:
    """Transforms that move image and mask together (nearest-neighbour for the mask, air-black borders)."""
    if level == "none":
        return []
    if level == "mild":
        return [A.Affine(scale=(0.9, 1.1), rotate=(-10, 10), translate_percent=(-0.05, 0.05),
                         interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                         border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.7)]
    if level == "strong":
        return [
            A.Affine(scale=(0.45, 1.15), rotate=(-15, 15), translate_percent=(-0.15, 0.15), shear=(-5, 5),
                     interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                     border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.85),
            A.OneOf([A.GaussNoise(std_range=(0.02, 0.08)), A.GaussianBlur(blur_limit=(3, 5)),
                     A.Downscale(scale_range=(0.5, 0.9))], p=0.4),
        ]
    raise ValueError(f"unknown geometric augmentation level {level!r}: choose none, mild or strong")


def build_pipeline(geometric: Geometric = "none", seed: int = 0) -> A.Compose:
    """Geometric transforms first (on the clean image), then the seed's photometric ones."""
    return A.Compose(geometric_transforms(geometric) + photometric_transforms(), seed=seed)


class Augmenter:
    """Thread-safe, deterministic augmentation: ``augmenter(image, mask, sample_seed) -> (image, mask)``."""

    def __init__(self, geometric: Geometric = "none"):
        geometric_transforms(geometric)  # validate early
        self.geometric = geometric
        self._local = threading.local()

    def _pipeline(self) -> A.Compose:
        pipe = getattr(self._local, "pipe", None)
        if pipe is None:
            pipe = build_pipeline(self.geometric)
            self._local.pipe = pipe
        return pipe

    def __call__(self, image: np.ndarray, mask: np.ndarray, sample_seed: int) -> tuple[np.ndarray, np.ndarray]:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"augment expects (rows, cols, 3) uint8, got {image.shape} {image.dtype}")
        pipe = self._pipeline()
        pipe.set_random_seed(int(sample_seed) % (2 ** 32))
        out = pipe(image=image, mask=mask)
        return out["image"], out["mask"]
