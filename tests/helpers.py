"""Small shared builders for tests (a tiny U-Net, a tiny Kaggle-layout dataset)."""

from __future__ import annotations

import shutil
from pathlib import Path

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
