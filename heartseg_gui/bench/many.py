"""Section 8 of ``heartseg bench``: many scans. ``heartseg predict`` over a Kaggle-layout dataset root (one process,
one model, the next patient read while the model runs) against the baseline a user would script: one
``heartseg predict`` process per patient. Both on the same patients of ``../shared/data/kaggle_strips`` (16;
``--quick``: 4), each a fresh subprocess, in the same run; the outputs must be byte-identical. Reports scans per
minute and how busy the cores were (CPU seconds of the child processes / wall seconds / usable cores)."""

from __future__ import annotations

import filecmp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from heartseg_gui.bench.dicom import SHARED_DATA
from heartseg_gui.bench.report import Report, Row

STRIPS = SHARED_DATA / "kaggle_strips" / "train"


def _predict(scan: Path, out: Path) -> tuple[float, float]:
    """Run ``heartseg predict scan --out out -q`` in a subprocess -> (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "heartseg_gui.launcher", "predict", str(scan), "--out", str(out), "-q"],
                       capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=1800)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"heartseg predict {scan} failed: {r.stderr.strip().splitlines()[-1:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    if filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)[0] != sorted(cmp.common_files):
        return False
    return all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def bench_many(report: Report, quick: bool, log=print) -> None:
    if not STRIPS.is_dir():
        raise FileNotFoundError(f"{STRIPS}: the shared kaggle_strips patients are missing")
    patients = sorted(p for p in STRIPS.iterdir() if p.is_dir())[: 4 if quick else None]
    slices = sum(len(list((p / "image").glob("*.png"))) for p in patients)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="heartseg-bench-many-") as tmp:
        root = Path(tmp) / "root"
        for p in patients:  # the chosen patients as one Kaggle-layout dataset root
            shutil.copytree(p, root / "data" / "train" / p.name)
        _predict(root / "data" / "train" / patients[0].name, Path(tmp) / "warm-up")  # model conversion cache
        t_all, cpu_all = _predict(root, Path(tmp) / "all")
        log(f"bench: many: {len(patients)} patients as one dataset in {t_all:.1f} s")
        t_one, cpu_one = 0.0, 0.0
        for p in patients:
            w, c = _predict(root / "data" / "train" / p.name, Path(tmp) / "one" / p.name)
            t_one, cpu_one = t_one + w, cpu_one + c
        log(f"bench: many: one process per patient in {t_one:.1f} s")
        same = _same_tree(Path(tmp) / "all", Path(tmp) / "one")
    n = len(patients)
    spm, spm_one = 60 * n / t_all, 60 * n / t_one
    busy, busy_one = cpu_all / t_all / cores, cpu_one / t_one / cores
    report.put("many.patients", n)
    report.put("many.scans_per_minute", spm)
    report.put("many.baseline_scans_per_minute", spm_one)
    report.put("many.cores_busy", busy)
    report.put("many.baseline_cores_busy", busy_one)
    report.put("many.outputs_identical", int(same))
    report.rows.append(Row("8 many scans", f"heartseg predict over a dataset root, {n} kaggle_strips patients "
                           f"({slices} slices), outputs {'identical' if same else 'DIFFERENT'}",
                           f"{spm:.1f} scans/min ({t_all:.1f} s, cores {100 * busy:.0f} % busy)",
                           baseline=f"one process per patient {spm_one:.1f} scans/min ({t_one:.1f} s, cores "
                                    f"{100 * busy_one:.0f} % busy)",
                           ratio=f"{spm / spm_one:.2f}x", target="more scans/min than one by one, same outputs",
                           met=None if quick else (spm > spm_one and same)))
