"""Model versions next to a dataset: ``v<N>.keras`` + ``v<N>.json``, an ``active.json`` pointer, a fixed split.

Layout of a registry folder (default ``<dataset root>/.heartseg/models/``)::

    v0.json          the bundled model's record (written lazily; its model file is referenced, never copied)
    v1.keras         a trained model (Keras 3 archive)
    v1.json          its record: version, parent, created (ISO 8601, UTC), data used, recipe (TrainConfig),
                     training summary, validation metrics on the held-out patients, the split
    active.json      {"version": N, "activated": ISO date, "history": [earlier active versions, oldest first]}
    split.json       the patient-level split fixed on first use; every later version validates on the same patients

A version exists when its ``.json`` exists: the model file is written first (atomically, under a name reserved
with ``O_EXCL`` so two writers never share a number), the record last, so a crash or a cancelled run never leaves
a half-written version. Every write goes through :mod:`core.atomic`. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from core.atomic import atomic_path, file_sha256, now_iso, write_text_atomic
from core.errors import HeartsegError
from core.resources import bundled_model_path
from core.store.dataset import SPLIT_SEED, VAL_FRACTION, patient_split
from core.store.layout import ACTIVE_FILE, SPLIT_FILE, registry_dir

RECORD_FORMAT = 1
_VERSION_FILE = re.compile(r"^v(\d+)\.(json|keras)$")



def default_registry_dir(dataset_root: str | Path) -> Path:
    """``<dataset root>/.heartseg/models`` (:func:`core.store.layout.registry_dir`)."""
    return registry_dir(dataset_root)



def model_input_size(path: str | Path) -> Optional[int]:
    """The square input size of a ``.keras`` model read from its ``config.json`` (no TensorFlow); None when the
    archive does not say."""
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
    for layer in config.get("config", {}).get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_shape") or layer.get("config", {}).get("batch_input_shape")
            if shape and len(shape) == 4 and shape[1] == shape[2] and shape[1]:
                return int(shape[1])
    return None


@dataclass(frozen=True)
class ModelVersion:
    """One registry entry. ``record`` is the JSON record (see the module docstring); ``model_path`` the
    ``.keras`` file (for version 0 the bundled model, wherever it is installed)."""

    version: int
    record: dict
    model_path: Path

    @property
    def parent(self) -> Optional[int]:
        return self.record.get("parent")

    @property
    def created(self) -> str:
        return str(self.record.get("created", ""))

    @property
    def validation(self) -> Optional[dict]:
        """Pooled metrics on the held-out patients (``pooled_dice``, ``nonempty_pooled_dice`` ...) or None."""
        return self.record.get("validation")

    @property
    def label(self) -> str:
        return f"v{self.version}"


class ModelRegistry:
    """The model versions of one dataset (see the module docstring).

    ``base_model``: the ``.keras`` file that is version 0 (default :func:`core.resources.bundled_model_path`).
    The folder is created on the first write, not by reading.
    """

    def __init__(self, folder: str | Path, *, base_model: str | Path | None = None):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise HeartsegError("model registry is not a folder", self.folder)
        if base_model is None:

            base_model = bundled_model_path()
        self.base_model = Path(base_model)

    @classmethod
    def for_dataset(cls, dataset_root: str | Path, **kwargs) -> "ModelRegistry":
        return cls(default_registry_dir(dataset_root), **kwargs)

    # --- reading ---------------------------------------------------------------------------------------------------
    def _record_path(self, version: int) -> Path:
        return self.folder / f"v{int(version)}.json"

    def _read_json(self, path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HeartsegError(f"unreadable registry file ({exc.__class__.__name__})", path) from exc

    def version_numbers(self) -> list[int]:
        """Registered versions, ascending; 0 (the bundled model) is always there."""
        found = {0}
        if self.folder.is_dir():
            for p in self.folder.iterdir():
                m = _VERSION_FILE.match(p.name)
                if m and m.group(2) == "json":
                    found.add(int(m.group(1)))
        return sorted(found)

    def _base_record(self) -> dict:
        return {"format": RECORD_FORMAT, "version": 0, "parent": None, "created": now_iso(),
                "model_file": str(self.base_model), "kind": "bundled", "data": None, "recipe": None,
                "validation": None, "split": None,
                "note": "the bundled model (referenced, not copied)"}

    def get(self, version: int) -> ModelVersion:
        """Version ``version``; :class:`HeartsegError` when it is not registered."""
        version = int(version)
        path = self._record_path(version)
        if version == 0:
            record = self._read_json(path) if path.is_file() else self._base_record()
            return ModelVersion(0, record, self.base_model)
        if not path.is_file():
            have = ", ".join(f"v{v}" for v in self.version_numbers())
            raise HeartsegError(f"no model version {version} in this registry (it has {have})", self.folder)
        record = self._read_json(path)
        if not isinstance(record, dict):
            raise HeartsegError("registry record is not a JSON object", path)
        return ModelVersion(version, record, self._model_file(record, version, path))

    def _model_file(self, record: dict, version: int, record_path: Path) -> Path:
        """The record's ``"model_file"``, which must name a ``.keras`` file directly inside the registry folder:
        a path read from a file never leads elsewhere (``../../elsewhere/m.keras``, ``/abs/m.keras``, a symbolic
        link out of the folder are refused with one line naming the record)."""
        name = record.get("model_file", f"v{version}.keras")
        if (not isinstance(name, str) or not name or name != Path(name).name or "\\" in name or name in (".", "..")
                or name.startswith(".") or not name.endswith(".keras") or "\0" in name):
            raise HeartsegError(f"refused: model_file {str(name)[:80]!r} is not a .keras file name inside the "
                                "registry folder", record_path)
        target = self.folder / name
        try:
            inside = target.resolve().parent == self.folder.resolve()
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise HeartsegError(f"refused: model_file {name!r} leads out of the registry folder (a link?)",
                                record_path)
        return target

    def versions(self) -> list[ModelVersion]:
        return [self.get(v) for v in self.version_numbers()]

    def latest_version(self) -> int:
        return self.version_numbers()[-1]

    def model_path(self, version: int) -> Path:
        """The ``.keras`` file of ``version``; :class:`HeartsegError` if it is not registered or the file is
        missing."""
        entry = self.get(version)
        if not entry.model_path.is_file():
            what = "the bundled model" if entry.version == 0 else f"the model file of version {entry.version}"
            raise HeartsegError(f"{what} is missing", entry.model_path)
        return entry.model_path

    # --- the active version ---------------------------------------------------------------------------------------
    def _active_state(self) -> dict:
        path = self.folder / ACTIVE_FILE
        if not path.is_file():
            return {"version": 0, "activated": None, "history": []}
        state = self._read_json(path)
        state.setdefault("history", [])
        return state

    def active_version(self) -> int:
        """The active version (0, the bundled model, until something is activated)."""
        return int(self._active_state().get("version", 0))

    def has_active_pointer(self) -> bool:
        return (self.folder / ACTIVE_FILE).is_file()

    def active_model_path(self) -> Path:
        return self.model_path(self.active_version())

    def activate(self, version: int) -> ModelVersion:
        """Make ``version`` the active one (``active.json``, written atomically); the previous active version goes
        on the rollback history. Its model file must exist."""
        version = int(version)
        entry = self.get(version)
        self.model_path(version)  # refuses a version whose model file is gone
        state = self._active_state()
        current = int(state.get("version", 0))
        history = [int(v) for v in state.get("history", [])]
        if current != version:
            history.append(current)
        self._ensure_folder()
        if version == 0:
            self._ensure_base_record()
        write_text_atomic(self.folder / ACTIVE_FILE, json.dumps(
            {"version": version, "activated": now_iso(), "history": history[-50:]}, indent=2))
        return entry

    def rollback(self) -> ModelVersion:
        """Activate the version that was active before the current one (the history pointer moves back)."""
        state = self._active_state()
        history = [int(v) for v in state.get("history", [])]
        known = set(self.version_numbers())
        while history and history[-1] not in known:
            history.pop()
        if not history:
            raise HeartsegError("nothing to roll back to: no earlier active version", self.folder / ACTIVE_FILE)
        previous = history.pop()
        self.model_path(previous)
        self._ensure_folder()
        write_text_atomic(self.folder / ACTIVE_FILE, json.dumps(
            {"version": previous, "activated": now_iso(), "history": history}, indent=2))
        return self.get(previous)

    # --- the fixed split ----------------------------------------------------------------------------------------
    def stored_split(self) -> Optional[dict]:
        path = self.folder / SPLIT_FILE
        return self._read_json(path) if path.is_file() else None

    def fixed_split(self, labelled_pids: Iterable[str], val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED,
                    val_patients: Optional[Sequence[str]] = None, *, store: bool = True) -> tuple[list[str], list[str]]:
        """``(train_pids, val_pids)`` among ``labelled_pids`` with the registry's fixed validation patients.

        The first call computes the split (:func:`core.store.dataset.patient_split`, or ``val_patients``) and stores it
        in ``split.json`` (when ``store``); afterwards the stored validation patients are used, so every version is
        validated on the same patients. Patients added to the dataset later go to training; stored validation
        patients no longer in the dataset are dropped (with none left: :class:`HeartsegError`).
        ``val_patients`` given while a split is stored overrides it for this call only (it is not stored).
        """

        labelled = [str(p) for p in labelled_pids]
        stored = self.stored_split()
        if val_patients is not None:
            train, val = patient_split(labelled, val_fraction, seed, val_patients)
            if stored is None and store:
                self._store_split(val, val_fraction, seed, "chosen")
            return train, val
        if stored is not None:
            wanted = [str(p) for p in stored.get("val", [])]
            present = [p for p in wanted if p in set(labelled)]
            if wanted and not present:
                raise HeartsegError(f"none of the registry's validation patients ({', '.join(wanted)}) is in this "
                                    "dataset; choose validation patients explicitly", self.folder / SPLIT_FILE)
            return patient_split(labelled, val_patients=present)
        train, val = patient_split(labelled, val_fraction, seed)
        if store:
            self._store_split(val, val_fraction, seed, "patient_split")
        return train, val

    def _store_split(self, val: Sequence[str], val_fraction: float, seed: int, how: str) -> None:
        self._ensure_folder()
        write_text_atomic(self.folder / SPLIT_FILE, json.dumps(
            {"val": list(val), "val_fraction": val_fraction, "seed": seed, "how": how, "created": now_iso()},
            indent=2))

    # --- adding ----------------------------------------------------------------------------------------------------
    def _ensure_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HeartsegError(f"cannot create the model registry: {exc.strerror or exc}", self.folder) from exc

    def _ensure_base_record(self) -> None:
        path = self._record_path(0)
        if not path.is_file():
            write_text_atomic(path, json.dumps(self._base_record(), indent=2))

    def _reserve(self) -> tuple[int, Path]:
        """A new version number with its model file name reserved (an empty placeholder made with O_EXCL)."""
        self._ensure_folder()
        taken = {0}
        for p in self.folder.iterdir():
            m = _VERSION_FILE.match(p.name)
            if m:
                taken.add(int(m.group(1)))
        n = max(taken) + 1
        while True:
            target = self.folder / f"v{n}.keras"
            try:
                fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                n += 1
                continue
            except OSError as exc:
                raise HeartsegError(f"cannot write to the model registry: {exc.strerror or exc}", target) from exc
            os.close(fd)
            return n, target

    def add_version(self, result, config, *, parent: Optional[int] = None, data_root: str | Path | None = None,
                    train_pids: Sequence[str] = (), val_pids: Sequence[str] = (), data: Optional[dict] = None,
                    validation: Optional[dict] = None, parent_validation: Optional[dict] = None,
                    split: Optional[dict] = None, extra: Optional[dict] = None) -> int:
        """Register the best model of a finished training run as a new version; returns its number.

        ``result``: :class:`core.training.config.TrainResult` (a cancelled run or one without a model is refused);
        ``config``: its :class:`core.training.config.TrainConfig` (the recipe); ``parent``: the version it was fine-tuned
        from (None: trained from scratch). ``data``: slice counts etc. (merged into the record's ``data``);
        ``validation`` / ``parent_validation``: metrics of the new / parent model on the held-out patients.
        The model file is copied into the registry first, the record written last, both atomically.
        """
        if getattr(result, "cancelled", False):
            raise HeartsegError("a cancelled training run is not registered as a version")
        source = getattr(result, "best_model_path", None)
        if source is None or not Path(source).is_file():
            raise HeartsegError("the training run produced no model to register", getattr(result, "out_dir", None))
        if parent is not None:
            self.get(parent)
        version, target = self._reserve()
        try:
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
            record = {
                "format": RECORD_FORMAT, "version": version, "parent": parent, "created": now_iso(),
                "model_file": target.name, "model_sha256": file_sha256(target), "kind": "trained",
                "init": "scratch" if parent is None else f"fine-tuned from v{parent}",
                "data": {"root": None if data_root is None else str(Path(data_root).resolve()),
                         "train_patients": list(train_pids), "val_patients": list(val_pids), **(data or {})},
                "recipe": config.to_dict() if hasattr(config, "to_dict") else dict(config),
                "training": _training_summary(result),
                "validation": validation, "parent_validation": parent_validation,
                "split": split or {"train": list(train_pids), "val": list(val_pids)},
            }
            if extra:
                record.update(extra)
            if parent == 0:
                self._ensure_base_record()
            write_text_atomic(self._record_path(version), json.dumps(record, indent=2, default=_json_default))
        except BaseException:
            if not self._record_path(version).is_file():
                try:
                    target.unlink()
                except OSError:
                    pass
            raise
        return version


def _training_summary(result) -> dict:
    history = list(getattr(result, "history", []) or [])
    return {"best_epoch": getattr(result, "best_epoch", None), "best_val_loss": getattr(result, "best_val_loss", None),
            "epochs_run": len(history), "seconds": round(float(getattr(result, "seconds", 0.0)), 2),
            "images_per_second": round(float(getattr(result, "images_per_second", 0.0)), 2), "history": history}


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["ModelRegistry", "ModelVersion", "default_registry_dir", "model_input_size"]
