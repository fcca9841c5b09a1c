"""Patient-level cross-validation of the bundled model's recipe on the real Kaggle slices (kaggle_strips).

    python scripts/build_training_root.py ../shared/data runs/train_root
    python scripts/cross_validate.py train runs/train_root runs/cv            # 4 folds + the shipped model
    python scripts/cross_validate.py analyse runs/train_root runs/cv          # rules, tables -> runs/cv/cv.json

Design (nothing is chosen on the patient it is scored on):

* The 16 Kaggle patients are split into 4 folds of 4 (``FOLDS``: sorted by number of heart slices and dealt in a
  snake order, so every fold has hearts of every size; 100053 and 100092, the two bottom-up patients, fall in
  different folds). Each fold is held out once as the **test** patients.
* For a fold, two patients of the next fold are its **inner validation** patients: they choose the epoch (best
  validation loss, ``heartseg train``'s checkpoint rule) and the post-processing rule (threshold and the
  smallest mask kept on a slice, :func:`choose_rule`). The other 10 Kaggle patients plus the sample's training
  part (``ts_pulm_a``, ``ts_abd_a``) are trained on.
* The shipped model is fold 0's (``SHIPPED``): 10 Kaggle patients + the sample's training part, its epoch and its
  post-processing rule chosen on its 2 validation patients, and 4 patients it never saw (its test patients) to
  report it on. The 14-patient run (``final``, validated on ``FINAL_VAL``) is trained and reported too; it is not
  shipped: with 2 validation patients its early stopping chose epoch 5 (see the model card).
* The review queue's score is the single-pass measure with the highest AUROC on the validation slices of every
  fold (each fold's own validation patients, scored by that fold's model).
* Every run is the same ``heartseg train`` command (``RECIPE``), launched as a subprocess; a run whose folder
  already holds ``done.json`` is skipped, so the script resumes after a stop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FOLDS = [
    ["100093", "100056", "100080", "100072"],
    ["100069", "100065", "100089", "100079"],
    ["100075", "100053", "100095", "100067"],
    ["100082", "100092", "100091", "100094"],
]
KAGGLE = sorted(p for fold in FOLDS for p in fold)
SAMPLE_TRAIN = ["ts_pulm_a", "ts_abd_a"]
SAMPLE_HELD_OUT = ["ts_pulm_b", "ts_abd_b"]
FINAL_VAL = ["100056", "100065"]
#: the run whose model ships (resources/model/heartseg_unet.keras)
SHIPPED = "fold0"

RECIPE = ["--image-size", "128", "--epochs", "24", "--batch-size", "8", "--learning-rate", "1e-3", "--lr-patience", "4",
          "--early-stopping-patience", "8", "--geometric", "mild", "--bn-momentum", "0.9", "--seed", "0"]

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_SLICE_FRACTIONS = (0.0, 0.002, 0.004, 0.008, 0.012, 0.016, 0.02, 0.03)


def runs() -> dict:
    """run name -> (training patients, validation patients, test patients)."""
    out = {}
    for k, test in enumerate(FOLDS):
        nxt = FOLDS[(k + 1) % len(FOLDS)]
        val = [nxt[0], nxt[2]]
        train = [p for p in KAGGLE if p not in test and p not in val]
        out[f"fold{k}"] = (train + SAMPLE_TRAIN, val, test)
    out["final"] = ([p for p in KAGGLE if p not in FINAL_VAL] + SAMPLE_TRAIN, FINAL_VAL, [])
    # fold 0 without the sample's training slices (same epochs, patients and seed): does mixing the demo
    # patient in help or hurt the Kaggle patients, and what does it do to the demo?
    train0, val0, test0 = out["fold0"]
    out["fold0_nosample"] = ([p for p in train0 if p not in SAMPLE_TRAIN], val0, test0)
    return out


def train_command(root: Path, out: Path, train: list, val: list, epochs: int | None = None) -> list:
    recipe = list(RECIPE)
    if epochs is not None:
        recipe[recipe.index("--epochs") + 1] = str(epochs)
    return [str(Path(sys.executable).parent / "heartseg"), "train", str(root), "--out", str(out),
            "--patients", ",".join(train + val), "--val-patients", ",".join(val), *recipe]


def cmd_train(root: Path, out: Path, only: list, fold_epochs: int | None = None) -> None:
    plan = runs()
    for name in only or list(plan):
        train, val, test = plan[name]
        run_dir = out / name
        if (run_dir / "done.json").exists():
            print(f"{name}: done already", flush=True)
            continue
        cmd = train_command(root, run_dir, train, val, fold_epochs if name.startswith("fold") else None)
        print(f"{name}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(cmd)
        if rc != 0:
            sys.exit(f"{name}: heartseg train exited {rc}")
        (run_dir / "done.json").write_text(json.dumps(
            {"seconds": time.monotonic() - t0, "train": train, "val": val, "test": test, "command": cmd}, indent=2))


# ------------------------------------------------------------------------------------------------ analysis
def predict_probabilities(model_path: Path, dataset, pids: list) -> dict:
    """pid -> (probabilities (n, rows, cols) float32, Volume, model-grid probabilities (n, s, s))."""
    from core import preprocess
    from core.inference.predictor import Predictor

    predictor = Predictor(model_path, runtime="tensorflow", dtype="float32")
    out = {}
    for pid in pids:
        vol = dataset.load(pid)
        grid = model_grid(predictor, vol)
        flipped = model_grid(predictor, dataclasses.replace(vol, voxels=np.ascontiguousarray(vol.voxels[:, :, ::-1])))
        FLIPPED[pid] = flipped[:, :, ::-1]
        if TTA["on"]:  # test-time flip: the mean of the slice's and its mirror image's probabilities
            grid = 0.5 * (grid + FLIPPED[pid])
        full = np.stack([preprocess.probability_to_slice(g, vol.slice_shape) for g in grid])
        out[pid] = (full, vol, grid)
    return out


#: analyse --tta: every figure from flip-averaged probabilities (what a test-time flip would give)
TTA = {"on": False}
#: pid -> model-grid probabilities of the horizontally flipped scan, flipped back (the test-time-flip experiment)
FLIPPED: dict = {}


def model_grid(predictor, vol) -> np.ndarray:
    grid = np.zeros((vol.n_slices, predictor.image_size, predictor.image_size), np.float32)
    for idx, probs in predictor.iter_batches(vol, model_grid=True):
        grid[list(idx)] = probs.reshape(len(idx), predictor.image_size, predictor.image_size)
    return grid


def flip_disagreement(grid: np.ndarray, flipped: np.ndarray, threshold: float) -> np.ndarray:
    """1 - Dice between the masks of a slice and of its mirror image (0 where both are empty)."""
    a, b = grid >= threshold, flipped >= threshold
    inter = (a & b).reshape(len(a), -1).sum(1)
    total = a.reshape(len(a), -1).sum(1) + b.reshape(len(b), -1).sum(1)
    return np.where(total > 0, 1.0 - 2.0 * inter / np.maximum(total, 1), 0.0).astype(np.float32)


def needs_correction(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per slice: AI Dice < 0.90 on a slice with heart (a miss included), or a false mask on one without."""
    from core.metrics import dice

    return np.array([(dice(t, p) < 0.90) if t.any() else bool(p.any()) for t, p in zip(truth, pred)], bool)


def uncertainty_entries(preds: dict, pids: list, rule: dict) -> list:
    """[(pid, measures dict of (n,) arrays, needs-correction labels (n,))] for scored slices."""
    from core.review.uncertainty import slice_measures

    out = []
    for pid in pids:
        probs, vol, grid = preds[pid]
        pred = apply_rule(probs, vol, rule)
        truth, pred = scored(vol, pred)
        keep = np.ones(vol.n_slices, bool) if vol.mask_present is None else np.asarray(vol.mask_present, bool)
        m = {k: v[keep] for k, v in slice_measures(grid, rule["threshold"], rule["min_slice_fraction"]).items()}
        if pid in FLIPPED:  # experiment only: the window does not run the extra pass
            m["flip"] = flip_disagreement(grid, FLIPPED[pid], rule["threshold"])[keep]
            m["soft_dice+flip"] = np.maximum(m["soft_dice"], m["flip"])
        out.append((pid, m, needs_correction(truth, pred)))
    return out


#: the measures the combined score (an experiment: measured, not shipped) is fitted on
COMBINED_FEATURES = ("band", "entropy", "small_mask", "dropped", "peak_doubt", "mask_doubt", "area")


def fit_combined(entries: list, l2: float = 0.05) -> dict:
    """An experiment: an L2-regularised logistic regression of "needs correction" on the standardised measures of
    ``entries`` (validation slices only), as a combined per-slice score."""
    from scipy.optimize import minimize

    feats = list(COMBINED_FEATURES)
    x = np.stack([np.concatenate([m[f] for _, m, _ in entries]) for f in feats], axis=1).astype(np.float64)
    y = np.concatenate([lab for _, _, lab in entries]).astype(np.float64)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd < 1e-6] = 1.0
    z = (x - mu) / sd

    def loss(theta):
        logit = theta[0] + z @ theta[1:]
        prob = 1.0 / (1.0 + np.exp(-logit))
        value = np.mean(np.logaddexp(0.0, logit) - y * logit) + 0.5 * l2 * np.sum(theta[1:] ** 2)
        g = prob - y
        return value, np.concatenate([[g.mean()], z.T @ g / len(y) + l2 * theta[1:]])

    theta = minimize(loss, np.zeros(len(feats) + 1), jac=True, method="L-BFGS-B").x
    return {"features": feats, "mean": [round(float(v), 6) for v in mu], "std": [round(float(v), 6) for v in sd],
            "weights": [round(float(v), 6) for v in theta[1:]], "bias": round(float(theta[0]), 6),
            "fitted_on_slices": int(len(y)), "positives": int(y.sum())}


def combined_score(measures: dict, params: dict) -> np.ndarray:
    """``sigmoid(bias + sum(weight * (measure - mean) / std))`` over ``params["features"]``."""
    z = np.full(len(next(iter(measures.values()))), float(params["bias"]), np.float64)
    for name, mu, sd, w in zip(params["features"], params["mean"], params["std"], params["weights"]):
        z += float(w) * (np.asarray(measures[name], np.float64) - float(mu)) / max(float(sd), 1e-9)
    return 1.0 / (1.0 + np.exp(-z))


def apply_combined(entries: list, params: dict) -> None:
    for _pid, m, _y in entries:
        m["combined"] = combined_score(m, params).astype(np.float32)


def uncertainty_figures(entries: list) -> dict:
    """Per measure: pooled AUROC for needs-correction, and the share of such slices in the first 20 % of each
    scan's queue (pooled over scans)."""
    from core.review.uncertainty import auroc, found_in_top

    res = {}
    for name in (entries[0][1] if entries else {}):
        scores = np.concatenate([m[name] for _, m, _ in entries]) if entries else np.zeros(0)
        labels = np.concatenate([y for _, _, y in entries]) if entries else np.zeros(0, bool)
        # pooled over scans: each scan's own queue, its share found times its count
        found = sum(round(found_in_top(m[name], y, 0.2) * int(y.sum())) for _, m, y in entries if y.any())
        total = sum(int(y.sum()) for _, _, y in entries)
        res[name] = {"auroc": auroc(scores, labels), "top20_found": found / total if total else float("nan"),
                     "needs_correction": total, "slices": int(len(labels))}
    return res


def apply_rule(probs: np.ndarray, vol, rule: dict) -> np.ndarray:
    from core.postprocess import postprocess_for_volume, probabilities_to_masks

    opts = postprocess_for_volume(vol, rule_options(rule))
    return probabilities_to_masks(probs, threshold=rule["threshold"], postprocess=opts)


def rule_options(rule: dict):
    from core.postprocess import PostprocessOptions

    return PostprocessOptions(keep_largest=True, min_slice_fraction=rule["min_slice_fraction"])


def slice_table(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Per-slice counts the targets need: heart slices, misses, false masks, slices needing correction."""
    from core.metrics import dice

    n_heart = missed = false_masks = needs = 0
    for t, p in zip(truth, pred):
        has_t, has_p = bool(t.any()), bool(p.any())
        if has_t:
            n_heart += 1
            missed += not has_p
            needs += dice(t, p) < 0.90
        elif has_p:
            false_masks += 1
            needs += 1
    return {"slices": int(len(truth)), "heart_slices": n_heart, "empty_slices": int(len(truth)) - n_heart,
            "missed_heart_slices": missed, "false_masks": false_masks, "needs_correction": needs}


def score(entries: dict, rule: dict) -> tuple:
    """(slices needing correction, -pooled Dice) over ``entries`` under ``rule`` (lower is better)."""
    from core.metrics import evaluate_masks, pool_evaluations

    needs, evals = 0, []
    for probs, vol, _grid in entries.values():
        pred = apply_rule(probs, vol, rule)
        truth, pred = scored(vol, pred)
        needs += slice_table(truth, pred)["needs_correction"]
        evals.append(evaluate_masks(truth, pred))
    return needs, -pool_evaluations(evals).pooled["dice"]


def scored(vol, pred):
    truth = vol.mask
    if vol.mask_present is not None and not np.all(vol.mask_present):
        keep = np.asarray(vol.mask_present, bool)
        return truth[keep], pred[keep]
    return truth, pred


def choose_rule(entries: dict) -> dict:
    grid = [{"threshold": t, "min_slice_fraction": f} for t in THRESHOLDS for f in MIN_SLICE_FRACTIONS]
    return min(grid, key=lambda r: (score(entries, r), abs(r["threshold"] - 0.5), r["min_slice_fraction"]))


def patient_row(pid: str, probs, vol, _grid, rule: dict) -> dict:
    from core.metrics import evaluate_masks

    pred = apply_rule(probs, vol, rule)
    truth, pred = scored(vol, pred)
    ev = evaluate_masks(truth, pred)
    return {"patient": pid, **ev.as_row(), **slice_table(truth, pred), "_eval": ev}


def pooled_row(rows: list) -> dict:
    from core.metrics import pool_evaluations

    ev = pool_evaluations([r["_eval"] for r in rows])
    out = {"patient": "pooled", **ev.as_row()}
    for k in ("slices", "heart_slices", "empty_slices", "missed_heart_slices", "false_masks", "needs_correction"):
        out[k] = int(sum(r[k] for r in rows))
    return out


def demo_checks(model_path: Path, rule: dict) -> dict:
    """The bundled demo: the whole sample scan (its 57 training slices included) and the 20 abdomen DICOM slices
    (no heart), under the shipped rule, as ``heartseg predict`` runs them."""
    from core.inference.predictor import Predictor
    from core.io import open_scan
    from core.metrics import evaluate_masks
    from core.resources import sample_mask_path, sample_scan_path

    predictor = Predictor(model_path, runtime="tensorflow", dtype="float32")
    opts = rule_options(rule)
    sample = open_scan(sample_scan_path(), sample_mask_path())
    pred = predictor.predict_masks(sample, threshold=rule["threshold"], postprocess=opts)
    ev = evaluate_masks(sample.mask, pred)
    abd = open_scan(Path(__file__).resolve().parents[2] / "shared" / "data" / "ts_abdomen_dicom")
    abd_pred = predictor.predict_masks(abd, threshold=rule["threshold"], postprocess=opts)
    return {"sample_scan": {**ev.as_row(), **slice_table(sample.mask, pred)},
            "abdomen_slices_with_false_mask": int(abd_pred.reshape(abd.n_slices, -1).any(axis=1).sum()),
            "abdomen_slices": abd.n_slices}


def clean(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def cmd_analyse(root: Path, out: Path) -> None:
    from core.review.uncertainty import MEASURES
    from core.store.dataset import open_dataset

    dataset = open_dataset(root)
    result = {"folds": {}, "recipe": RECIPE, "folds_def": FOLDS}
    test_rows = []
    unc_by_run = {}  # run -> (validation entries, test entries, test patients)
    preds_by_run = {}  # run -> patient -> probabilities (predict_probabilities)
    for name, (train, val, test) in runs().items():
        if name == "fold0_nosample":
            continue
        model = out / name / "best_model.keras"
        if not model.exists():
            print(f"{name}: no model yet, skipped", flush=True)
            continue
        # the shipped run's model is also scored on the held-out sample (below): one prediction per patient
        preds = predict_probabilities(model, dataset, val + test + (SAMPLE_HELD_OUT if name == SHIPPED else []))
        preds_by_run[name] = preds
        val_entries = {p: preds[p] for p in val}
        rule = choose_rule(val_entries)
        rows = [patient_row(p, *preds[p], rule) for p in test]
        test_rows += rows
        unc_by_run[name] = (uncertainty_entries(preds, val, rule), uncertainty_entries(preds, test, rule), test)
        done = json.loads((out / name / "done.json").read_text()) if (out / name / "done.json").exists() else {}
        history = (out / name / "history.csv").read_text().splitlines()
        result["folds"][name] = {
            "train": train, "val": val, "test": test, "rule": rule, "seconds": done.get("seconds"),
            "epochs_run": len(history) - 1,
            "val_rows": [clean(patient_row(p, *preds[p], rule)) for p in val],
            "test_rows": [clean(r) for r in rows], "test_pooled": clean(pooled_row(rows)) if rows else None,
        }
        print(f"{name}: rule {rule}; test pooled {result['folds'][name]['test_pooled']}", flush=True)
    if test_rows:
        result["cv_pooled"] = clean(pooled_row(test_rows))
        result["cv_patients"] = [clean(r) for r in test_rows]
    # the combined score, nested: a run's test (or validation) slices are scored with parameters fitted on the
    # validation slices of the other runs, leaving out every slice of a patient being scored
    unc_val, unc_test = [], []
    for name, (val_entries, test_entries, test) in unc_by_run.items():
        for own, scored_pids in ((test_entries, set(test)), (val_entries, {e[0] for e in val_entries})):
            pool = [e for other, (v, _t, _p) in unc_by_run.items() if other != name for e in v
                    if e[0] not in scored_pids]
            if not pool:
                sys.exit(f"{name}: no validation slices of other patients to fit the combined score on "
                         "(analyse needs every fold)")
            apply_combined(own, fit_combined(pool))
        unc_val += val_entries
        unc_test += test_entries
    if unc_test:
        result["uncertainty_validation"] = uncertainty_figures(unc_val)
        result["uncertainty_cv_test"] = uncertainty_figures(unc_test)
        # the shipped score: the single-pass measure with the highest AUROC on the validation slices
        result["chosen_score"] = max(MEASURES, key=lambda k: result["uncertainty_validation"][k]["auroc"])
    shipped = out / SHIPPED / "best_model.keras"
    if shipped.exists() and SHIPPED in result["folds"]:
        _train, s_val, s_test = runs()[SHIPPED]
        rule = result["folds"][SHIPPED]["rule"]  # chosen on the shipped run's own validation patients
        result["shipped_run"] = SHIPPED
        result["shipped_rule"] = rule
        result["shipped_rule_chosen_on"] = s_val
        pids = s_test + s_val + SAMPLE_HELD_OUT
        preds = preds_by_run[SHIPPED]
        result["final_rows"] = [{**clean(patient_row(p, *preds[p], rule)),
                                 "role": "test" if p in s_test else "validation" if p in s_val else "sample held out"}
                                for p in pids]
        result["final_sample_pooled"] = clean(pooled_row([patient_row(p, *preds[p], rule) for p in SAMPLE_HELD_OUT]))
        # the combined score (measured, not shipped) on the sample: fitted on every fold's validation slices
        params = fit_combined([e for v, _t, _p in unc_by_run.values() for e in v])
        result["combined_params"] = params
        sample_entries = uncertainty_entries(preds, SAMPLE_HELD_OUT, rule)
        apply_combined(sample_entries, params)
        result["uncertainty_sample"] = uncertainty_figures(sample_entries)
        result["final_demo"] = demo_checks(shipped, rule)
    final = out / "final" / "best_model.keras"
    if final.exists():  # the 14-patient run: trained, reported, not shipped
        preds = predict_probabilities(final, dataset, FINAL_VAL + SAMPLE_HELD_OUT)
        rule = choose_rule({p: preds[p] for p in FINAL_VAL})
        history = (out / "final" / "history.csv").read_text().splitlines()
        result["final_14"] = {"rule": rule, "epochs_run": len(history) - 1,
                              "rows": [clean(patient_row(p, *preds[p], rule)) for p in FINAL_VAL + SAMPLE_HELD_OUT]}
    for name in ("fold0", "fold0_nosample"):  # the sample mixed in, or not: fold 0's test patients and the demo
        model = out / name / "best_model.keras"
        if not model.exists():
            continue
        train, val, test = runs()[name]
        reuse = name == SHIPPED and "final_demo" in result  # predicted and demo-checked above
        preds = preds_by_run[name] if reuse else predict_probabilities(model, dataset, val + test + SAMPLE_HELD_OUT)
        rule = choose_rule({p: preds[p] for p in val})
        rows = [patient_row(p, *preds[p], rule) for p in test]
        sample = [patient_row(p, *preds[p], rule) for p in SAMPLE_HELD_OUT]
        result.setdefault("sample_mixing", {})[name] = {
            "rule": rule, "test_pooled": clean(pooled_row(rows)), "sample_held_out": clean(pooled_row(sample)),
            "demo": result["final_demo"] if reuse else demo_checks(model, rule)}
    result["tta_flip"] = TTA["on"]
    (out / ("cv_tta.json" if TTA["on"] else "cv.json")).write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps({k: result.get(k) for k in ("cv_pooled", "shipped_rule", "uncertainty_validation",
                                                 "uncertainty_cv_test", "final_sample_pooled",
                                                 "uncertainty_sample")}, indent=2, default=float))


# ---------------------------------------------------------------------------------------------------- card
CARD_COLUMNS = [("pooled_dice", "pooled Dice"), ("pooled_iou", "pooled IoU"),
                ("nonempty_pooled_dice", "Dice heart slices (pooled)"),
                ("nonempty_mean_dice", "Dice heart slices (mean)"), ("false_masks", "false masks"),
                ("empty_slices", "empty slices"), ("missed_heart_slices", "missed heart slices"),
                ("needs_correction", "slices needing correction"), ("slices", "slices")]


def _cell(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def table(rows: list, first: str = "patient") -> str:
    head = "| " + " | ".join([first] + [c[1] for c in CARD_COLUMNS]) + " |"
    rule = "|" + "---|" * (len(CARD_COLUMNS) + 1)
    body = ["| " + " | ".join([str(r["patient"])] + [_cell(r[c[0]]) for c in CARD_COLUMNS]) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def card_record(result: dict) -> dict:
    """What the model card states, as data (resources/model/cv_record.json; tests compare the two)."""
    keep = [c[0] for c in CARD_COLUMNS] + ["patient"]
    folds = {}
    for name, f in result["folds"].items():
        if name.startswith("fold"):
            folds[name] = {"test": f["test"], "val": f["val"], "rule": f["rule"], "epochs_run": f["epochs_run"],
                           "pooled": {k: f["test_pooled"][k] for k in keep}}
    return {"recipe": result["recipe"], "folds": folds,
            "cv_pooled": {k: result["cv_pooled"][k] for k in keep},
            "cv_patients": [{k: r[k] for k in keep} for r in result["cv_patients"]],
            "shipped_rule": result["shipped_rule"],
            "shipped_run": result["shipped_run"],
            "shipped_rows": [{**{k: r[k] for k in keep}, "role": r["role"]} for r in result["final_rows"]],
            "final_14": {"rule": result["final_14"]["rule"], "epochs_run": result["final_14"]["epochs_run"],
                         "rows": [{k: r[k] for k in keep} for r in result["final_14"]["rows"]]},
            "demo": result["final_demo"],
            "uncertainty": {"validation": result["uncertainty_validation"],
                            "cv_test": result["uncertainty_cv_test"], "sample": result["uncertainty_sample"]},
            "chosen_score": result["chosen_score"], "combined_params": result["combined_params"]}


def shipped_table_rows(rec: dict) -> list:
    return [{**r, "patient": f"{r['patient']} ({r['role']})"} for r in rec["shipped_rows"]]


def cmd_card(out: Path, record_path: Path | None) -> None:
    result = json.loads((out / "cv.json").read_text())
    rec = card_record(result)
    fold_rows = [{**f["pooled"], "patient": f"{n} ({', '.join(f['test'])})"} for n, f in rec["folds"].items()]
    print("## Cross-validation, per fold (test patients)\n")
    print(table(fold_rows + [{**rec["cv_pooled"], "patient": "**pooled, 16 patients**"}], "fold"))
    print("\n## Cross-validation, per patient\n")
    print(table(sorted(rec["cv_patients"], key=lambda r: r["patient"])))
    print("\n## The shipped model on its test, validation and held-out sample patients\n")
    print(table(shipped_table_rows(rec)))
    print("\n## The 14-patient run (not shipped) on its validation patients and the held-out sample\n")
    print(table(rec["final_14"]["rows"]))
    print("\n## Uncertainty\n")
    for where, figs in rec["uncertainty"].items():
        print(where, json.dumps(figs))
    if record_path is not None:
        record_path.write_text(json.dumps(rec, indent=2, default=float) + "\n")
        print(f"\nwrote {record_path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["train", "analyse", "card"])
    ap.add_argument("root", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--record", type=Path, default=None, help="card: also write this JSON record")
    ap.add_argument("--tta", action="store_true", help="analyse: flip-averaged probabilities -> cv_tta.json")
    ap.add_argument("--only", default="", help="comma-separated run names (fold0..fold3, final)")
    ap.add_argument("--fold-epochs", type=int, default=None,
                    help="cap the folds' epochs below the recipe's (a time budget; the card says so)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.command == "train":
        cmd_train(a.root, a.out, [s for s in a.only.split(",") if s], a.fold_epochs)
    elif a.command == "analyse":
        TTA["on"] = a.tta
        cmd_analyse(a.root, a.out)
    else:
        cmd_card(a.out, a.record)


if __name__ == "__main__":
    main()
