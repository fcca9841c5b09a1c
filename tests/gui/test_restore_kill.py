"""A restore killed at any moment leaves the patient all-old or all-new (issue 12 item 6), as the save kill tests in
``test_crash_safety.py`` do for saves.

A forked process restores an earlier mask version and is SIGKILLed (a) at the k-th executed line of the restore
code (50 moments spread over every stage: blobs, the snapshot of the current state, the commit record, the
renames, the removals, retention) and (b) after random delays while it restores old/new/old/... in a loop. After
each kill the dataset is opened again (which finishes an interrupted restore) and then every mask file must be
complete and all of them from the same state -- the one before the restore or the restored version, never a mix
-- every version complete, and the patient loads. 50 + 20 = 70 kills.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.corpus import SAMPLE_PATIENT
from tests.helpers import kill_after, kill_at_line

ROOT = Path(__file__).resolve().parents[2]
N_SLICES = 10
TRACED = ("core/atomic.py", "core/store/writeback.py", "core/store/_blobs.py", "core/store/_commit.py",
          "core/store/_versions.py", "core/io/masks.py", "core/store/dataset.py", "core/store/locking.py")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """data/train/p1 (10 sample slices) after two saves: version V0 holds the dataset's own masks minus one slice
    (that slice had no mask), V1 mask set A; mask/ holds B on every slice. Returns (root, V0 id, V1 id)."""
    from core.store.dataset import list_versions, open_dataset, save_masks

    root = tmp_path_factory.mktemp("restore") / "ds"
    patient = root / "data" / "train" / "p1"
    names = sorted(p.name for p in (SAMPLE_PATIENT / "image").glob("*.png"))[50:50 + N_SLICES]
    for sub in ("image", "mask"):
        (patient / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(SAMPLE_PATIENT / sub / n, patient / sub / n)
    (patient / "mask" / names[4]).unlink()  # a slice without a mask: a restore of V0 must remove it again
    vol = open_dataset(root).load("p1")
    a = vol.mask.copy()
    a[:, 10:30, 10:40] = 1
    b = np.zeros_like(a)
    b[:, 40:70, 50:90] = 1
    save_masks(patient, "p1", a, vol.slice_names)
    save_masks(patient, "p1", b, vol.slice_names)
    v0, v1 = list_versions(patient)
    return root, v0.version_id, v1.version_id


def _state(folder: Path) -> dict[str, str]:
    return {p.name: sha(p.read_bytes()) for p in folder.iterdir() if not p.name.startswith(".")}


def fresh(prepared, where: Path) -> Path:
    root = prepared[0]
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(root, where)  # copies (hard links inside versions become plain copies: a fallback path)
    return where / "data" / "train" / "p1"


def check_all_or_nothing(patient: Path, states: dict[str, dict[str, str]], kept_states=()) -> str:
    """Open the dataset (finishing an interrupted restore), then mask/ must equal one of ``states`` exactly; each
    version one of ``states`` or ``kept_states``."""
    from core.store.dataset import list_versions, open_dataset
    from core.store.writeback import read_review

    ds = open_dataset(patient.parents[2])
    now = _state(patient / "mask")
    matches = [name for name, st in states.items() if st == now]
    assert matches, f"mask/ is a mix of states: {sorted(now)}"
    for v in list_versions(patient):
        kept = _state(v.path)
        assert kept in list(states.values()) + list(kept_states), f"version {v.version_id} is incomplete or torn"
    assert not (patient / ".heartseg" / "commit.json").exists()
    read_review(patient)
    assert ds.load("p1").n_slices == N_SLICES
    return matches[0]


def test_sigkill_during_restore_at_every_stage(prepared, tmp_path):
    from core.store.dataset import restore_version

    _, v0, v1 = prepared
    work = tmp_path / "work"
    patient = fresh(prepared, work)
    states = {"before (B)": _state(patient / "mask"),
              "V0": _state(patient / ".heartseg" / "versions" / v0)}
    kept_states = [_state(patient / ".heartseg" / "versions" / v1)]
    assert len(states["V0"]) == N_SLICES - 1 and len(states["before (B)"]) == N_SLICES
    status, total = kill_at_line(TRACED, 0, restore_version, patient, v0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and total > 100
    assert _state(patient / "mask") == states["V0"]
    moments = sorted(set(np.linspace(1, total, 50).astype(int).tolist()))
    assert len(moments) >= 50
    outcomes = {}
    for kill_at in moments:
        patient = fresh(prepared, work)
        status, _ = kill_at_line(TRACED, kill_at, restore_version, patient, v0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"not killed at line {kill_at}"
        outcomes[kill_at] = check_all_or_nothing(patient, states, kept_states)
    kinds = set(outcomes.values())
    assert kinds == {"before (B)", "V0"}, outcomes  # kills landed both before and after the commit point


def _restore_loop(patient: Path, ids) -> None:
    from core.store.dataset import restore_version

    k = 0
    while True:
        restore_version(patient, ids[k % 2])
        k += 1


def test_sigkill_during_restore_at_random_moments(prepared, tmp_path):
    from core.store.dataset import restore_version

    _, v0, v1 = prepared
    work = tmp_path / "work"
    patient = fresh(prepared, work)
    states = {"B": _state(patient / "mask"), "V0": _state(patient / ".heartseg" / "versions" / v0),
              "V1": _state(patient / ".heartseg" / "versions" / v1)}
    t0 = time.perf_counter()
    for k in range(4):
        restore_version(patient, (v0, v1)[k % 2])
    one = (time.perf_counter() - t0) / 4
    rng = random.Random(77)
    seen = set()
    for _ in range(20):
        patient = fresh(prepared, work)
        kill_after(rng.uniform(0, 4 * one), _restore_loop, patient, (v0, v1))
        seen.add(check_all_or_nothing(patient, states))
    assert len(seen) >= 2, seen
