"""Which slices a retraining reads: the trainable patients of a dataset, every slice's review state, the training
slices (:func:`read_training_slices`: Kaggle PNG pairs and NIfTI cases with their label maps, flagged slices left
out, corrected ones weighted) and the held-out volumes (:func:`validation_volumes`, flagged slices unscored).

Used by :mod:`core.versions.retrain` (the one train -> evaluate -> register path) and its plan.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from core.errors import HeartsegError
from core.training.data import SliceSet, VolumeCase, load_slice_pairs, load_volume_cases
from core.types import CancelToken, ProgressFn, check_cancel

#: the patient kinds a retraining can read (Kaggle PNG pairs, NIfTI cases with a label map)
_TRAINABLE = ("kaggle_patient", "nifti")


def labelled_patients(dataset) -> list[str]:
    return [p.pid for p in dataset.patients if p.has_masks and p.kind in _TRAINABLE]


def _nifti_states(dataset, pid: str) -> list[str]:
    """The review state of every slice of NIfTI case ``pid`` (slice count from its header, names ``1-NNN`` as
    :attr:`core.types.Volume.slice_names` gives them; no review record: ``not_reviewed``)."""
    entry = dataset.entry(pid)
    states = dataset.review_states(pid)
    return [states.get(f"1-{i + 1:03d}", "not_reviewed") for i in range(entry.n_slices)]


def slice_states(dataset, pids: Sequence[str]) -> list[tuple[str, str]]:
    """``(pid, review state)`` of every slice of ``pids`` that has a target (flagged ones included)."""
    nifti = {p for p in pids if dataset.entry(p).kind == "nifti"}
    out = [(p.pid, p.state) for p in dataset.training_pairs([p for p in pids if p not in nifti], skip_flagged=False)]
    for pid in pids:
        if pid in nifti:
            out += [(pid, state) for state in _nifti_states(dataset, pid)]
    return out


def _pairs(dataset, pids, weight: float, skip_flagged: bool) -> list[tuple]:
    out = []
    for p in dataset.training_pairs(pids, skip_flagged=skip_flagged):
        w = weight if p.state == "corrected" else 1.0
        out.append((p.image_path, p.mask_path, w, f"{p.pid}/{p.image_path.stem}"))
    return out


def _volume_cases(dataset, pids, weight: float, skip_flagged: bool, label: Optional[int],
                  cancel: Optional[CancelToken]) -> list[VolumeCase]:
    """The NIfTI cases of ``pids`` for :func:`core.training.data.load_volume_cases`: each read (with its label map,
    ``label``) only when its slices are taken; flagged slices left out, corrected ones weighted ``weight``."""
    def loader(pid: str):
        return lambda: dataset.load(pid, cancel=cancel, label=label)

    cases = []
    for pid in pids:
        weights = [None if (skip_flagged and state == "flagged") else (weight if state == "corrected" else 1.0)
                   for state in _nifti_states(dataset, pid)]
        cases.append((pid, loader(pid), weights))
    return cases


def read_training_slices(dataset, pids: Sequence[str], image_size: int, *, weight: float = 1.0,
                         skip_flagged: bool = True, label: Optional[int] = None,
                         progress: Optional[ProgressFn] = None,
                         cancel: Optional[CancelToken] = None) -> Optional[SliceSet]:
    """The slices of patients ``pids`` as a :class:`core.training.data.SliceSet` (None when there are none):
    Kaggle patients' PNG pairs (:func:`core.training.data.load_slice_pairs`) and NIfTI cases' scans with their
    label maps (:func:`core.training.data.load_volume_cases`, one case in memory at a time)."""
    nifti = [p for p in pids if dataset.entry(p).kind == "nifti"]
    kaggle = [p for p in pids if p not in nifti]
    sets = []
    pairs = _pairs(dataset, kaggle, weight, skip_flagged) if kaggle else []
    if pairs:
        sets.append(load_slice_pairs(pairs, image_size, progress=progress, cancel=cancel))
    cases = _volume_cases(dataset, nifti, weight, skip_flagged, label, cancel)
    if any(w is not None for _, _, weights in cases for w in weights):
        sets.append(load_volume_cases(cases, image_size, progress=progress, cancel=cancel))
    if len(sets) <= 1:
        return sets[0] if sets else None
    return SliceSet(np.concatenate([s.images for s in sets]), np.concatenate([s.masks for s in sets]),
                    np.concatenate([s.weights for s in sets]), [i for s in sets for i in s.ids])


def validation_volumes(dataset, pids: Sequence[str], *, skip_flagged: bool = True,
                       cancel: Optional[CancelToken] = None, label: Optional[int] = None) -> list[tuple]:
    """``(pid, Volume)`` of the held-out patients; flagged slices are marked unscored (``mask_present`` False).
    ``label``: the heart label of NIfTI label maps."""
    volumes = []
    for pid in pids:
        check_cancel(cancel)
        vol = dataset.load(pid, cancel=cancel, label=label)
        if vol.mask is None:
            raise HeartsegError(f"validation patient {pid} has no masks", dataset.patient_dir(pid))
        present = np.ones(vol.n_slices, bool) if vol.mask_present is None else np.asarray(vol.mask_present, bool)
        if skip_flagged:
            states = dataset.review_states(pid)
            present = present & np.array([states.get(n) != "flagged" for n in vol.slice_names], bool)
        vol = dataclasses.replace(vol, mask_present=present)
        volumes.append((pid, vol))
    return volumes
