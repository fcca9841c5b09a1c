"""Where the bundled files are: found both from a source checkout and from an installed wheel.

``resources/`` is installed as a package (``import resources``); its files are located with
``importlib.resources`` so the same code works from a checkout, an editable install and a wheel.
"""

from __future__ import annotations

import os
from importlib import resources as _ir
from pathlib import Path


def resources_dir() -> Path:
    """The folder holding the bundled files."""
    return Path(str(_ir.files("resources")))


def bundled_model_path() -> Path:
    """The default U-Net (``.keras``), version 0 of every model registry."""
    return resources_dir() / "model" / "heartseg_unet.keras"


def sample_dir() -> Path:
    """The bundled sample scan (TotalSegmentator chest crop, Apache-2.0; attribution in ``SOURCE.md``)."""
    return resources_dir() / "sample" / "ts_chest_crop"


def sample_scan_path() -> Path:
    """The sample CT as NIfTI (1.5 mm isotropic, Hounsfield units)."""
    return sample_dir() / "ct.nii.gz"


def sample_mask_path() -> Path:
    """The sample's heart mask on the same grid (NIfTI, 0/1)."""
    return sample_dir() / "heart.nii.gz"


def kaggle_manifest_path() -> Path:
    """The Kaggle ``ct-heart-segmentation`` file manifest (path, size, sha256) for ``heartseg verify-dataset``."""
    return resources_dir() / "kaggle_manifest.tsv"


def user_dir(env_var: str, settings_sub: str, xdg_var: str, home_default: str) -> Path:
    """A per-user folder of heartseg's: ``$env_var``, else ``$HEARTSEG_SETTINGS_DIR/settings_sub`` (tests and
    portable installs keep everything beside the settings), else ``$xdg_var/heartseg``, else
    ``~/home_default/heartseg``."""
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    settings_dir = os.environ.get("HEARTSEG_SETTINGS_DIR")
    if settings_dir:
        return Path(settings_dir) / settings_sub
    xdg = os.environ.get(xdg_var)
    return (Path(xdg) if xdg else Path.home() / home_default) / "heartseg"
