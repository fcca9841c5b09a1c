"""Every on-disk name heartseg writes inside a dataset, in one place (as MONAI's ``FolderLayout``).

A patient folder (Kaggle layout) ``<patient>/image/*.png`` and ``<patient>/mask/*.png`` gets a hidden state folder::

    <patient>/.heartseg/review.json             review states, who/when, per-slice areas (store.writeback)
    <patient>/.heartseg/versions/<id>/          earlier masks, kept by every save (store.writeback)
    <patient>/.heartseg/blobs/<sha256>.png      mask contents an unfinished save still needs (store._blobs)
    <patient>/.heartseg/lock.json               the window editing it (store.locking)
    <patient>/.heartseg/journal.json            unsaved strokes, for crash recovery (store.journal)
    <patient>/.heartseg/journal.declined.json   a journal the user chose not to recover
    <patient>/.heartseg/source.json             where an added patient came from (store.dataset)

and a dataset root gets its model registry::

    <root>/.heartseg/models/v<N>.keras, v<N>.json, active.json, split.json   (versions.registry)

(a training run's output folder holds its own ``split.json`` too, :func:`core.versions.retrain.run_retraining`).
"""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".heartseg"
REVIEW_FILE = "review.json"
VERSIONS_DIR = "versions"
LOCK_FILE = "lock.json"
JOURNAL_FILE = "journal.json"
DECLINED_FILE = "journal.declined.json"
SOURCE_FILE = "source.json"
MODELS_DIR = "models"
BLOBS_DIR = "blobs"
ACTIVE_FILE = "active.json"   # the registry's active version
SPLIT_FILE = "split.json"     # the patient-level split (the registry's, and a training run's)


def state_dir(folder: str | Path) -> Path:
    """``<folder>/.heartseg`` (a patient's or a dataset root's)."""
    return Path(folder) / STATE_DIR


def review_path(patient_dir: str | Path) -> Path:
    return state_dir(patient_dir) / REVIEW_FILE


def versions_dir(patient_dir: str | Path) -> Path:
    return state_dir(patient_dir) / VERSIONS_DIR


def lock_path(folder: str | Path) -> Path:
    return state_dir(folder) / LOCK_FILE


def registry_dir(dataset_root: str | Path) -> Path:
    """``<dataset root>/.heartseg/models`` (hidden, so :func:`core.store.dataset.open_dataset` never takes it for
    a patient)."""
    return state_dir(dataset_root) / MODELS_DIR
