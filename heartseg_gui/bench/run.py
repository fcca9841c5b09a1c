"""``heartseg bench [--quick] [--json FILE]``: how fast heartseg is, against baselines measured in the same run.

The machines these run on are shared and noisy, so every figure is a ratio against a baseline timed in the same
process run (interleaved with it where practical), and timings are reported as the median and 95th percentile over
repeated trials. Sections:

1. inference (:mod:`heartseg_gui.bench.inference`): per slice and for a whole scan from PNG files on disk to mask PNGs on
   disk; the project's path vs a naive ``model.predict`` loop and vs the float32 compute floor; bfloat16 option.
2. window while inference runs (``heartseg_gui.bench.gui interactive``, offscreen, in a subprocess so ``core``
   never imports Qt): slice change with its overlays and brush stamp to repainted image.
3. start-up (``heartseg_gui.bench.gui startup``, fresh subprocesses): launch to window shown, and to the first
   AI overlay on the bundled sample.
4. training throughput (:mod:`heartseg_gui.bench.training`): ``core.training.loop`` with the seed augmentations vs a plain
   ``model.fit`` on in-memory arrays.
5. memory (``heartseg_gui.bench.gui memory``, subprocess): peak RSS with a 512x512x512 scan open in the window,
   its masks and 100 undo steps.
6. DICOM open (:mod:`heartseg_gui.bench.dicom`): a 300-slice 512x512 series made from the shared real slices,
   uncompressed and JPEG-2000, read by ``core.io.open_scan`` vs SimpleITK's ``ImageSeriesReader`` on the same
   files (interleaved), with the HU difference between the two.
7. three planes (``heartseg_gui.bench.gui planes``, subprocess): on a 512x512x512 scan (``--quick``: 128
   slices), a crosshair move redrawing all three planes and a brush stamp in the sagittal view, idle and while
   inference runs.
8. many scans (:mod:`heartseg_gui.bench.many`): ``heartseg predict`` over a dataset root of the shared
   kaggle_strips patients vs one ``heartseg predict`` process per patient: scans per minute, cores busy.

``--quick`` shrinks every measurement (fewer slices, repeats and images) but still reports every figure; it is
what ``tests/gui/test_bench.py`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from core.atomic import write_text_atomic
from heartseg_gui.bench import dicom, inference, many, training
from heartseg_gui.bench.report import FIGURES, Report, Row, Stat, fmt_ms, fmt_s, synthetic_slice_hu


# ------------------------------------------------------------------------------------------------- machine
def machine_info() -> dict:
    """CPU model, cores, relevant CPU flags, memory, Python / TensorFlow / Keras versions (TF imported here)."""
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni")
    info = {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu_flags": [f for f in wanted if f" {f} " in f" {flags} "],
            "python": platform.python_version(), "platform": platform.platform(terse=True)}
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # noqa: BLE001 - informational only
        pass
    import keras
    import tensorflow as tf

    info["tensorflow"] = tf.__version__
    info["keras"] = keras.__version__
    try:
        import openvino

        info["openvino"] = openvino.__version__.split("-")[0]
    except Exception:  # noqa: BLE001 - informational only
        info["openvino"] = "missing"
    info["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")
    return info


# ------------------------------------------------------------------------------------------------- subprocesses
def run_gui_child(mode: str, quick: bool, extra: Sequence[str] = (), timeout: float = 600) -> dict:
    """Run ``python -m heartseg_gui.bench.gui MODE`` offscreen in a subprocess and return its JSON result."""
    with tempfile.TemporaryDirectory(prefix="heartseg-bench-") as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3",
               "HEARTSEG_SETTINGS_DIR": str(Path(tmp) / "settings")}
        cmd = [sys.executable, "-m", "heartseg_gui.bench.gui", mode, "--out", str(out), *extra]
        if quick:
            cmd.append("--quick")
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or not out.exists():
            tail = "\n".join((r.stderr or "").strip().splitlines()[-15:])
            raise RuntimeError(f"bench_gui {mode} failed (exit {r.returncode}):\n{tail}")
        return json.loads(out.read_text())


def bench_startup(report: Report, quick: bool) -> None:
    """Fresh processes: launch -> window shown -> first AI overlay on the bundled sample (wall clock)."""
    repeats = 2 if quick else 5
    shown, overlay, tf_before, tf_overlay = [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="heartseg-bench-") as tmp:
            out = Path(tmp) / "startup.json"
            env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3",
                   "HEARTSEG_SETTINGS_DIR": str(Path(tmp) / "settings")}
            t_launch = time.time()
            r = subprocess.run([sys.executable, "-m", "heartseg_gui.bench.gui", "startup", "--out", str(out)],
                               env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0 or not out.exists():
                tail = "\n".join((r.stderr or "").strip().splitlines()[-15:])
                raise RuntimeError(f"bench_gui startup failed (exit {r.returncode}):\n{tail}")
            res = json.loads(out.read_text())
        shown.append(res["t_shown"] - t_launch)
        overlay.append(res["t_overlay"] - t_launch)
        tf_before.append(bool(res["tf_loaded_at_shown"]))
        tf_overlay.append(bool(res.get("tf_loaded_at_overlay")))
    s_shown, s_overlay = Stat.of(shown), Stat.of(overlay)
    report.put("startup.window_s", asdict(s_shown))
    report.put("startup.first_overlay_s", asdict(s_overlay))
    report.put("startup.tf_loaded_before_window", any(tf_before))
    report.put("startup.tf_loaded_for_overlay", any(tf_overlay))
    report.rows.append(Row("3 start-up", "launch -> window shown (TF not yet loaded: "
                           f"{'no!' if any(tf_before) else 'yes'})", fmt_s(s_shown), target="<= 2 s",
                           met=s_shown.median <= 2.0 and not any(tf_before)))
    report.rows.append(Row("3 start-up", "launch -> first AI overlay (bundled sample; TensorFlow loaded for it: "
                           f"{'yes' if any(tf_overlay) else 'no'})", fmt_s(s_overlay),
                           target="<= 4 s", met=s_overlay.median <= 4.0))


def bench_gui(report: Report, quick: bool) -> None:
    res = run_gui_child("interactive", quick)
    sc, st = Stat(**res["slice_change_ms"]), Stat(**res["stamp_ms"])
    report.put("gui.slice_change_ms", asdict(sc))
    report.put("gui.stamp_ms", asdict(st))
    report.put("gui.samples_with_inference", res["samples_with_inference"])
    if res.get("slice_change_idle_ms"):
        report.put("gui.slice_change_idle_ms", res["slice_change_idle_ms"])
        report.put("gui.stamp_idle_ms", res["stamp_idle_ms"])
    idle_sc, idle_st = Stat(**res["slice_change_idle_ms"]), Stat(**res["stamp_idle_ms"])
    shape = "x".join(str(v) for v in res["slice_shape"])
    report.rows.append(Row("2 window", f"slice change + overlays, {shape}, inference running", fmt_ms(sc),
                           baseline=f"idle {fmt_ms(idle_sc)}", ratio=f"{sc.p95 / idle_sc.p95:.2f}x p95",
                           target="p95 <= 16 ms", met=sc.p95 <= 16.0))
    report.rows.append(Row("2 window", f"brush stamp -> repainted, {shape}, inference running", fmt_ms(st),
                           baseline=f"idle {fmt_ms(idle_st)}", ratio=f"{st.p95 / idle_st.p95:.2f}x p95",
                           target="p95 <= 5 ms", met=st.p95 <= 5.0))


def bench_planes(report: Report, quick: bool) -> None:
    """The three-plane layout (``heartseg_gui.bench.gui planes``): crosshair move and sagittal brush stamp, idle
    and while inference runs."""
    res = run_gui_child("planes", quick)
    shape = "x".join(str(v) for v in res["shape"])
    for key, what, target in (("crosshair_move", f"crosshair move, three planes redrawn with overlays, {shape}", 16.0),
                              ("sagittal_stamp", f"brush stamp in the sagittal view -> repainted, {shape}", 5.0)):
        busy, idle = Stat(**res[f"{key}_ms"]), Stat(**res[f"{key}_idle_ms"])
        report.put(f"planes.{key}_ms", asdict(busy))
        report.put(f"planes.{key}_idle_ms", asdict(idle))
        report.rows.append(Row("7 planes", f"{what}, inference running", fmt_ms(busy), baseline=f"idle {fmt_ms(idle)}",
                               ratio=f"{busy.p95 / idle.p95:.2f}x p95", target=f"p95 <= {target:g} ms",
                               met=busy.p95 <= target if not quick else None))
    report.put("planes.samples_with_inference", res["samples_with_inference"])


def bench_memory(report: Report, quick: bool) -> None:
    n = 128 if quick else 512
    with tempfile.TemporaryDirectory(prefix="heartseg-bench-mem-") as tmp:
        path = write_synthetic_nifti(Path(tmp) / "big_ct.nii", n, 512)
        res = run_gui_child("memory", quick, ["--scan", str(path)])
    peak = res["peak_rss_bytes"] / 2**30
    report.put("memory.peak_rss_gb", peak)
    report.put("memory.undo_steps", res["undo_steps"])
    report.put("memory.detail", res.get("detail", {}))
    report.rows.append(Row("5 memory", f"peak RSS, {n}x512x512 int16 scan open, AI + working masks, "
                           f"{res['undo_steps']} undo steps", f"{peak:.2f} GB",
                           baseline=f"scan voxels {res['voxel_bytes'] / 2**30:.2f} GB",
                           ratio=f"{res['peak_rss_bytes'] / res['voxel_bytes']:.1f}x voxels",
                           target="<= 1.5 GB at 512 slices" + (" (quick: smaller scan)" if quick else ""),
                           met=None if quick else peak <= 1.5))


def write_synthetic_nifti(path: Path, n_slices: int, side: int) -> Path:
    """A synthetic HU volume ``(n_slices, side, side)`` int16 written as an uncompressed NIfTI (1 mm voxels)."""
    import nibabel as nib


    data = np.empty((side, side, n_slices), dtype=np.int16)  # NIfTI order (col, row, slice)
    for k in range(n_slices):
        data[:, :, k] = synthetic_slice_hu(side, k, n_slices).T
    img = nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]))
    img.header.set_data_dtype(np.int16)
    nib.save(img, str(path))
    return path


# ------------------------------------------------------------------------------------------------- table
def format_table(report: Report) -> str:
    m = report.machine
    head = (f"heartseg bench{' --quick' if report.quick else ''} — {m.get('cpu')}, {m.get('usable_cores')} "
            f"cores ({', '.join(m.get('cpu_flags', []))}), {m.get('memory_gb', '?')} GB RAM, "
            f"TensorFlow {m.get('tensorflow')} / Keras {m.get('keras')}, OpenVINO {m.get('openvino')}, "
            f"Python {m.get('python')}; "
            f"{report.seconds / 60:.1f} min")
    cols = ("section", "what", "value", "baseline (same run)", "ratio", "target", "met")
    rows = [(r.section, r.what, r.value, r.baseline, r.ratio, r.target,
             "" if r.met is None else ("yes" if r.met else "NO")) for r in report.rows]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    if report.notes:
        lines += [""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- entry point
SECTIONS = ("inference", "gui", "startup", "training", "memory", "dicom", "planes", "many")


def run_bench(quick: bool, sections: Sequence[str] = SECTIONS, log=None) -> Report:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    t0 = time.monotonic()
    report = Report(quick=quick, machine=machine_info())
    for name in sections:
        log(f"bench: {name} ...")
        t = time.monotonic()
        try:
            if name == "inference":

                inference.bench_inference(report, quick, log)
            elif name == "training":

                training.bench_training(report, quick, log)
            elif name == "gui":
                bench_gui(report, quick)
            elif name == "startup":
                bench_startup(report, quick)
            elif name == "memory":
                bench_memory(report, quick)
            elif name == "dicom":
                dicom.bench_dicom(report, quick, log)
            elif name == "planes":
                bench_planes(report, quick)
            elif name == "many":
                many.bench_many(report, quick, log)
        except Exception as exc:  # noqa: BLE001 - one failing section must not hide the others
            report.notes.append(f"section {name} failed: {type(exc).__name__}: {exc}")
            log(f"bench: {name} FAILED: {exc}")
        log(f"bench: {name} done in {time.monotonic() - t:.0f} s")
    report.seconds = time.monotonic() - t0
    return report


def main(argv=None) -> int:
    """``heartseg bench [--quick] [--json FILE]``."""
    p = argparse.ArgumentParser(prog="heartseg bench", description="measure speed against baselines in the same run")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and smaller scans (the test suite's run)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    return cmd_bench(p.parse_args(argv))


def cmd_bench(args) -> int:
    sections = SECTIONS
    only = os.environ.get("HEARTSEG_BENCH_ONLY")  # e.g. "inference,training" while working on one section
    if only:
        sections = tuple(s for s in only.split(",") if s in SECTIONS)
    report = run_bench(bool(args.quick), sections)
    print(format_table(report))
    if args.json is not None:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(args.json), json.dumps(report.to_json(), indent=2, default=str))
    missing = [k for k in FIGURES if k not in report.figures] if sections == SECTIONS else []
    return 1 if missing else 0
