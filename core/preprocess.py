"""The one place that turns stored pixels into model input and model output back into masks.

Conventions (``../shared/data/kaggle_ct_heart/FORMAT.md``): the model sees slices as the Kaggle PNGs are —
stored CT values scaled per slice to 0..255 as ``pixel / max * 255`` (no windowing) — resized to
``image_size x image_size`` with bilinear interpolation, repeated to 3 channels and divided by 255.
Probabilities come back resized to the slice's own size and are thresholded at 0.5.

For Hounsfield-unit volumes (DICOM after rescale, NIfTI) the "stored" value is taken as ``HU + 1024`` clipped at
0, which is what the Kaggle / NLST DICOMs store (rescale intercept -1024) and how the TotalSegmentator crop's
Kaggle-layout PNGs were made.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from core.types import Volume

#: Default model input size (pixels, square).
DEFAULT_IMAGE_SIZE = 256
#: Offset that turns Hounsfield units into the stored values the Kaggle PNGs were scaled from.
HU_OFFSET = 1024.0
#: Probability threshold for the binary mask.
THRESHOLD = 0.5


def kaggle_scale_slice(stored: np.ndarray) -> np.ndarray:
    """Scale one slice of non-negative stored values to uint8 0..255 as ``pixel / max * 255`` (rounded).

    ``stored``: ``(rows, cols)`` any real dtype, values >= 0. An all-zero slice maps to zeros.
    """
    stored = np.asarray(stored, dtype=np.float32)
    peak = float(stored.max()) if stored.size else 0.0
    if peak <= 0:
        return np.zeros(stored.shape, dtype=np.uint8)
    return np.clip(np.rint(stored * (255.0 / peak)), 0, 255).astype(np.uint8)


def hu_to_stored(hu: np.ndarray) -> np.ndarray:
    """Hounsfield units -> stored values ``max(HU + 1024, 0)`` as float32 (same shape)."""
    return np.maximum(np.asarray(hu, dtype=np.float32) + HU_OFFSET, 0.0)


def to_kaggle_scale(volume: Volume) -> np.ndarray:
    """The volume's slices in the Kaggle PNG scale: ``(n_slices, rows, cols)`` uint8 0..255.

    ``"kaggle8bit"`` volumes are returned as they are; ``"hu"`` volumes go through :func:`hu_to_stored`;
    ``"raw"`` volumes (16-bit PNGs, other stored values) are clipped at 0. Each slice is scaled by its own max.
    """
    if volume.intensity == "kaggle8bit":
        return np.ascontiguousarray(volume.voxels, dtype=np.uint8)
    out = np.empty(volume.voxels.shape, dtype=np.uint8)
    for i in range(volume.n_slices):
        out[i] = kaggle_scale_slice(kaggle_stored_slice(volume, i))
    return out


def kaggle_stored_slice(volume: Volume, index: int) -> np.ndarray:
    """Slice ``index`` as non-negative stored values (before the per-slice 0..255 scaling), float32."""
    sl = volume.voxels[index]
    if volume.intensity == "hu":
        return hu_to_stored(sl)
    return np.maximum(sl.astype(np.float32), 0.0)


def slice_to_kaggle8(volume: Volume, index: int) -> np.ndarray:
    """One slice in the Kaggle PNG scale, ``(rows, cols)`` uint8."""
    if volume.intensity == "kaggle8bit":
        return np.asarray(volume.voxels[index], dtype=np.uint8)
    return kaggle_scale_slice(kaggle_stored_slice(volume, index))


def resize_image8(image8: np.ndarray, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """A Kaggle-scale slice ``(rows, cols)`` uint8 (or ``(rows, cols, 3)``) at the model size, bilinear."""
    img = np.asarray(image8)
    if img.shape[:2] == (image_size, image_size):
        return img
    return cv2.resize(img, (image_size, image_size), interpolation=cv2.INTER_LINEAR)


def resize_mask(mask01: np.ndarray, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """A 0/1 ``(rows, cols)`` uint8 mask at the model size, nearest neighbour (it stays binary)."""
    m = np.asarray(mask01, np.uint8)
    if m.shape == (image_size, image_size):
        return m
    return cv2.resize(m, (image_size, image_size), interpolation=cv2.INTER_NEAREST)


def image_to_model_input(image8: np.ndarray, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """A Kaggle-scale slice -> model input.

    ``image8``: ``(rows, cols)`` uint8 0..255 (or ``(rows, cols, 3)``). Returns ``(image_size, image_size, 3)``
    float32 in 0..1 (bilinear resize, grey repeated to 3 channels, divided by 255) — exactly what the seed notebook
    fed its U-Net.
    """
    img = resize_image8(image8, image_size)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img.astype(np.float32) * (1.0 / 255.0)


def mask_to_model_target(mask: np.ndarray, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """A mask -> training target ``(image_size, image_size, 1)`` float32 0/1.

    ``mask``: ``(rows, cols)`` uint8, either 0/1 or 0/255 (thresholded at 127 like the seed: > 127 or == 1 is
    foreground). Resized with nearest-neighbour interpolation so the target stays binary.
    """
    m = np.asarray(mask)
    binary = (m > 127) if m.max(initial=0) > 1 else (m > 0)
    return resize_mask(binary.astype(np.uint8), image_size).astype(np.float32)[:, :, None]


def volume_to_model_input(volume: Volume, indices=None, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Slices ``indices`` (default: all) as a model batch ``(n, image_size, image_size, 3)`` float32 0..1."""
    idx = range(volume.n_slices) if indices is None else indices
    idx = list(idx)
    batch = np.empty((len(idx), image_size, image_size, 3), dtype=np.float32)
    for k, i in enumerate(idx):
        batch[k] = image_to_model_input(slice_to_kaggle8(volume, i), image_size)
    return batch


def probability_to_slice(prob: np.ndarray, slice_shape: tuple[int, int],
                         out: Optional[np.ndarray] = None) -> np.ndarray:
    """Model output for one slice ``(s, s)`` or ``(s, s, 1)`` float -> ``(rows, cols)`` float32 probabilities
    resized (bilinear) to the slice's own size ``slice_shape = (rows, cols)``.

    ``out``: a ``(rows, cols)`` float32 buffer to write the result into (returned), so a loop over many slices
    allocates nothing."""
    p = np.asarray(prob, dtype=np.float32)
    if p.ndim == 3:
        p = p[:, :, 0]
    rows, cols = slice_shape
    if p.shape != (rows, cols):
        p = cv2.resize(p, (cols, rows), dst=out, interpolation=cv2.INTER_LINEAR)
    return np.clip(p, 0.0, 1.0, out=out)


def threshold(prob: np.ndarray, level: float = THRESHOLD) -> np.ndarray:
    """Probabilities (any shape, 0..1) -> uint8 mask 0/1 (``prob >= level``... strictly ``> level`` is not used:
    0.5 exactly counts as foreground)."""
    return (np.asarray(prob) >= level).astype(np.uint8)
