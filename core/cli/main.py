"""``heartseg`` sub-commands that need no window: train, predict, evaluate, verify-dataset.

Bad input: exit status 2, one line on stderr naming the file and the problem, no traceback, nothing written.
(``heartseg`` with no argument and ``heartseg open`` start the window: see ``heartseg_gui.launcher``.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import core
from core.cli.commands import cmd_evaluate, cmd_predict, cmd_report, cmd_train, cmd_verify
from core.errors import Cancelled, HeartsegError
from core.training.config import TrainConfig

EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130

#: Sub-commands the launcher runs itself (they need the window's package).
WINDOW_COMMANDS = {"open": "open the annotator window on a scan or dataset (see `heartseg open --help`)",
                   "bench": "measure speed against baselines in the same run (see `heartseg bench --help`)"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="heartseg", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"heartseg {core.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the U-Net on a Kaggle-layout dataset")
    t.add_argument("data", type=Path, help="dataset root (data/train/<patient>/image|mask) or patients folder")
    t.add_argument("--out", type=Path, required=True, help="output folder (best_model.keras, history, plot)")
    t.add_argument("--patients", default=None,
                   help="comma-separated patient ids to use, validation ones included (default: all with masks)")
    t.add_argument("--val-patients", default=None, help="comma-separated patient ids held out for validation")
    t.add_argument("--val-fraction", type=float, default=0.2)
    t.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    t.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="the global batch")
    t.add_argument("--image-size", type=int, default=None,
                   help=f"model input size (default: {TrainConfig.image_size} from scratch; a fine-tuned model "
                        "keeps its own)")
    t.add_argument("--loss", choices=["bce_dice", "dice"], default=TrainConfig.loss)
    t.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate)
    t.add_argument("--geometric", choices=["none", "mild", "strong"], default=TrainConfig.geometric,
                   help="geometric augmentation on top of the seed's photometric one")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--seed", type=int, default=TrainConfig.seed)
    t.add_argument("--steps-per-epoch", type=int, default=None)
    t.add_argument("--early-stopping-patience", type=int, default=TrainConfig.early_stopping_patience)
    t.add_argument("--lr-patience", type=int, default=TrainConfig.lr_patience,
                   help="epochs without validation-loss improvement before the learning rate is cut 10x")
    t.add_argument("--init-model", type=Path, default=None, help="fine-tune this .keras model")
    t.add_argument("--corrected-weight", type=float, default=TrainConfig.corrected_weight,
                   help="sample weight of slices reviewed as corrected")
    t.add_argument("--registry", type=Path, default=None, help="model registry folder (adds a version)")
    t.add_argument("--from-version", type=int, default=None, help="fine-tune this registry version")

    pr = sub.add_parser("predict", help="predict heart masks for a scan")
    pr.add_argument("scan", type=Path)
    pr.add_argument("--out", type=Path, required=True)
    pr.add_argument("--model", type=Path, default=None, help="a .keras model (default: the bundled one)")
    pr.add_argument("--batch-size", type=int, default=8)
    pr.add_argument("--no-postprocess", action="store_true", help="plain 0.5 threshold, no clean-up")
    pr.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                    help="auto (default): bfloat16 on CPUs with AMX when the model's bfloat16 check passed "
                         "(Dice on the bundled sample within 0.005 of float32), else float32")
    pr.add_argument("--runtime", choices=["auto", "openvino", "tensorflow"], default="auto",
                    help="auto (default): OpenVINO (the model converted once and cached), TensorFlow if OpenVINO "
                         "is missing")
    pr.add_argument("--dicom-seg", action="store_true",
                    help="also write OUT/<scan>_heart.seg.dcm, a DICOM Segmentation of the source series "
                         "(DICOM input with UIDs only)")

    ev = sub.add_parser("evaluate", help="evaluate a model on labelled scans")
    ev.add_argument("data", type=Path, help="a dataset root, a Kaggle patient folder or a NIfTI scan")
    ev.add_argument("--mask", type=Path, default=None, help="the NIfTI mask when DATA is a NIfTI scan")
    ev.add_argument("--model", type=Path, default=None)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--patients", default=None, help="comma-separated patient ids (default: all with masks)")
    ev.add_argument("--panels", type=int, default=6, help="panel PNGs per patient")
    ev.add_argument("--no-postprocess", action="store_true")

    rp = sub.add_parser("report", help="the correction record of a dataset: CSV, Markdown summary, area plot")
    rp.add_argument("data", type=Path, help="a dataset root or a patient folder")
    rp.add_argument("--out", type=Path, required=True)

    vd = sub.add_parser("verify-dataset", help="check a downloaded Kaggle copy against its manifest")
    vd.add_argument("root", type=Path)
    vd.add_argument("--manifest", type=Path, default=None)

    # run by the launcher (heartseg_gui.launcher), listed here so that ``heartseg --help`` names every command
    for name, text in WINDOW_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


COMMANDS = {"train": cmd_train, "predict": cmd_predict, "evaluate": cmd_evaluate, "verify-dataset": cmd_verify,
            "report": cmd_report}


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    try:
        if args.command in WINDOW_COMMANDS:  # only reachable through ``python -m core.cli``
            print(f"heartseg {args.command}: run it as `heartseg {args.command}` (the launcher)", file=sys.stderr)
            return EXIT_BAD_INPUT
        fn = COMMANDS[args.command]
        return int(fn(args) or 0)
    except HeartsegError as exc:
        print(f"heartseg {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a safety net: file-system errors the commands did not word themselves
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"heartseg {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled:
        print(f"heartseg {args.command}: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print(f"heartseg {args.command}: interrupted", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
