"""The correction record: what the radiologist changed, slice by slice and patient by patient.

Per slice (kept in the patient's ``.heartseg/review.json`` by :func:`core.store.writeback.save_masks` at every save):
review state, AI area and saved area (pixels), the Dice between AI and saved mask (``—`` when both are empty,
as :mod:`core.metrics` scores an empty pair apart), and the seconds the slice was on screen (summed over
sittings). :func:`write_report` turns rows into ``record.csv``, ``report.md`` (a summary per patient) and
``area.png`` (AI and saved area per slice); ``heartseg report DATASET --out DIR`` does it for a whole dataset,
File ▸ Export Report… for the open scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from core.atomic import save_figure, write_csv_atomic, write_text_atomic
from core.metrics import dice
from core.store.writeback import read_review

COLUMNS = ["patient", "slice", "state", "ai_area_px", "saved_area_px", "area_change_px", "dice_ai", "seconds",
           "saved_at"]


def slice_row(patient: str, name: str, rec: dict) -> dict:
    """One CSV row from a sidecar slice record (missing fields stay empty)."""
    ai, saved = rec.get("ai_area_px"), rec.get("area_px")
    both_empty = ai == 0 and saved == 0
    dice = rec.get("dice_ai")
    return {"patient": patient, "slice": name, "state": rec.get("state", "not_reviewed"),
            "ai_area_px": "" if ai is None else int(ai), "saved_area_px": "" if saved is None else int(saved),
            "area_change_px": "" if ai is None or saved is None else int(saved) - int(ai),
            "dice_ai": "—" if both_empty else ("" if dice is None else round(float(dice), 4)),
            "seconds": round(float(rec.get("seconds", 0.0)), 1), "saved_at": rec.get("saved_at", "")}


def patient_rows(patient_dir: str | Path, patient: Optional[str] = None) -> list[dict]:
    """Rows of one patient's sidecar, in natural slice order (empty if it has none)."""
    from natsort import natsorted


    patient_dir = Path(patient_dir)
    slices = read_review(patient_dir).get("slices", {})
    pid = patient or patient_dir.name
    return [slice_row(pid, name, slices[name]) for name in natsorted(slices)]


def session_rows(patient: str, slice_names, ai_masks: np.ndarray, masks: np.ndarray, states,
                 seconds) -> list[dict]:
    """Rows for a scan that is open (not necessarily saved): AI vs working masks."""
    rows = []
    for i, name in enumerate(slice_names):
        ai, saved = int(np.count_nonzero(ai_masks[i])), int(np.count_nonzero(masks[i]))
        rec = {"state": states[i], "ai_area_px": ai, "area_px": saved, "seconds": float(seconds[i]),
               "dice_ai": dice(ai_masks[i], masks[i])}
        rows.append(slice_row(patient, name, rec))
    return rows


def summary(rows: Iterable[dict]) -> list[dict]:
    """Per patient: slices, how many of each state, slices changed, mean Dice AI vs saved over changed-or-not
    slices with heart, total seconds."""
    out: dict[str, dict] = {}
    for r in rows:
        s = out.setdefault(r["patient"], {"patient": r["patient"], "slices": 0, "accepted": 0, "corrected": 0,
                                          "flagged": 0, "not_reviewed": 0, "changed": 0, "_dice": [],
                                          "seconds": 0.0})
        s["slices"] += 1
        s[r["state"]] = s.get(r["state"], 0) + 1
        if r["area_change_px"] not in ("", 0) or (r["dice_ai"] not in ("", "—") and float(r["dice_ai"]) < 1.0):
            s["changed"] += 1
        if r["dice_ai"] not in ("", "—"):
            s["_dice"].append(float(r["dice_ai"]))
        s["seconds"] += float(r["seconds"] or 0.0)
    result = []
    for s in out.values():
        d = s.pop("_dice")
        s["mean_dice_ai"] = round(float(np.mean(d)), 4) if d else "—"
        s["seconds"] = round(s["seconds"], 1)
        result.append(s)
    return result


def plot_areas(rows: list[dict], path: Path) -> Optional[Path]:
    """AI and saved area per slice, one panel per patient (matplotlib, Agg)."""
    patients = list(dict.fromkeys(r["patient"] for r in rows))
    if not patients:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(patients), 1, figsize=(9, 2.6 * len(patients)), squeeze=False)
    for ax, pid in zip(axes[:, 0], patients):
        mine = [r for r in rows if r["patient"] == pid]
        x = np.arange(len(mine))
        for key, label, style in (("ai_area_px", "AI", "--"), ("saved_area_px", "saved", "-")):
            y = [float(r[key]) if r[key] != "" else np.nan for r in mine]
            ax.plot(x, y, style, label=label)
        corrected = [k for k, r in enumerate(mine) if r["state"] == "corrected"]
        if corrected:
            ax.scatter(corrected, [float(mine[k]["saved_area_px"] or 0) for k in corrected], s=12, c="tab:red",
                       label="corrected", zorder=3)
        ax.set_title(pid)
        ax.set_xlabel("slice")
        ax.set_ylabel("area (px)")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    return save_figure(fig, path, dpi=90)


def write_report(rows: list[dict], out_dir: str | Path, title: str = "Correction record") -> list[Path]:
    """``record.csv``, ``report.md`` and ``area.png`` in ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_csv_atomic(out_dir / "record.csv", COLUMNS, rows)]
    plot = plot_areas(rows, out_dir / "area.png")
    cols = ["patient", "slices", "accepted", "corrected", "flagged", "not_reviewed", "changed", "mean_dice_ai",
            "seconds"]
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s in summary(rows):
        lines.append("| " + " | ".join(str(s.get(c, 0)) for c in cols) + " |")
    lines += ["", "changed: slices whose saved mask differs from the AI mask; mean_dice_ai: Dice between AI and "
              "saved mask over slices where either has heart; seconds: time each slice was on screen.", ""]
    if plot is not None:
        lines += ["![AI and saved area per slice](area.png)", ""]
        written.append(plot)
    write_text_atomic(out_dir / "report.md", "\n".join(lines))
    written.append(out_dir / "report.md")
    return written


__all__ = ["COLUMNS", "slice_row", "patient_rows", "session_rows", "summary", "plot_areas", "write_report"]
