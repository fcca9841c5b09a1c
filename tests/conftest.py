"""Shared test fixtures.

Tests marked ``shared`` read real CT files from ``../shared/data`` (beside the project checkout). They are skipped
only where that folder is absent (a user's machine); in CI (``CI`` set in the environment) a missing folder is an
error, never a skip.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# converted models (core.inference.openvino) go to a throw-away cache, not the user's ~/.cache
os.environ.setdefault("HEARTSEG_CACHE_DIR", tempfile.mkdtemp(prefix="heartseg-test-cache-"))
# settings, journals and scan locks of the suite's windows go to a throw-away folder too: never the user's
# ~/.config or ~/.local/state, and one per pytest process, so two xdist workers that open the same scan (the
# bundled sample) at once do not find each other's edit lock
os.environ.setdefault("HEARTSEG_SETTINGS_DIR", tempfile.mkdtemp(prefix="heartseg-test-settings-"))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HEARTSEG_SHARED", ROOT.parent / "shared")) / "data"


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI run without the shared test data at {SHARED_DATA}")
    skip = pytest.mark.skip(reason=f"needs {SHARED_DATA} (absent on this machine)")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture(scope="session")
def chest_crop(shared_data) -> Path:
    """The TotalSegmentator chest crop: ct.nii.gz, heart.nii.gz, kaggle_layout/ts_pulm/{image,mask}."""
    return shared_data / "ts_chest_crop"


@pytest.fixture(scope="session")
def abdomen_dicom(shared_data) -> Path:
    """20 JPEG-2000 DICOM slices of one abdomen series (no heart)."""
    return shared_data / "ts_abdomen_dicom"


@pytest.fixture(scope="session")
def kaggle_patient(chest_crop) -> Path:
    """A Kaggle-layout patient folder (image/ + mask/ PNGs, 122 x 102, 112 slices)."""
    return chest_crop / "kaggle_layout" / "ts_pulm"
