"""``heartseg`` sub-commands that need no window: train, predict, evaluate, verify-dataset.

Bad input: exit status 2, one line on stderr naming the file and the problem, no traceback, nothing written.
(``heartseg`` with no argument and ``heartseg open`` start the window: see ``heartseg_gui.launcher``.)
Result paths go to stdout (one per line); progress, messages and warnings go to stderr through :mod:`logging`
(logger ``heartseg``: ``--quiet`` keeps warnings and errors only, ``--verbose`` adds debug lines).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import core
from core.cli.commands import cmd_evaluate, cmd_predict, cmd_report, cmd_train, cmd_verify
from core.errors import Cancelled, HeartsegError
from core.io.common import one_line
from core.store.dataset import VAL_FRACTION
from core.training.config import TrainConfig
from core.training.distribute import WORKER_FLAG

EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130
log = logging.getLogger("heartseg")
#: Options that must be whole numbers above 0 (checked after parsing: one line, exit 2).
_POSITIVE = ("batch_size", "image_size", "epochs", "steps_per_epoch")

#: Sub-commands the launcher runs itself (they need the window's package).
WINDOW_COMMANDS = {"open": "open the annotator window on a scan or dataset (see `heartseg open --help`)",
                   "bench": "measure speed against baselines in the same run (see `heartseg bench --help`)"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="heartseg", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"heartseg {core.__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    loud = common.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr (no progress)")
    loud.add_argument("-v", "--verbose", action="store_true", help="debug messages on stderr")

    t = sub.add_parser("train", help="train the U-Net on a Kaggle-layout or imagesTr/labelsTr NIfTI dataset",
                       parents=[common])
    t.add_argument("data", type=Path, help="dataset root (data/train/<patient>/image|mask), patients folder, or a "
                                           "NIfTI dataset (imagesTr/ + labelsTr/)")
    t.add_argument("--out", type=Path, required=True, help="output folder (best_model.keras, history, plot)")
    t.add_argument("--patients", default=None,
                   help="comma-separated patient ids to use, validation ones included (default: all with masks)")
    t.add_argument("--val-patients", default=None, help="comma-separated patient ids held out for validation")
    t.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
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
    t.add_argument("--bn-momentum", type=float, default=TrainConfig.bn_momentum,
                   help="batch-norm moving-average momentum of a model built from scratch")
    t.add_argument("--no-prior-bias", action="store_true",
                   help="start the output at p = 0.5 (the seed) instead of the training pixels' heart share")
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
    t.add_argument("--label", type=int, default=None,
                   help="NIfTI datasets: which label of the label maps is the heart (default: the only label present)")
    t.add_argument("--local-workers", type=int, default=None, metavar="N",
                   help="train as a cluster of N worker processes on this machine (MultiWorkerMirroredStrategy "
                        "over loopback ports; README: Training on a cluster)")
    t.add_argument(WORKER_FLAG, type=int, default=None, help=argparse.SUPPRESS)  # a --local-workers child

    pr = sub.add_parser("predict", help="predict heart masks for a scan", parents=[common])
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

    ev = sub.add_parser("evaluate", help="evaluate a model on labelled scans", parents=[common])
    ev.add_argument("data", type=Path, help="a dataset root, a Kaggle patient folder or a NIfTI scan")
    ev.add_argument("--mask", type=Path, default=None, help="the NIfTI mask when DATA is a NIfTI scan")
    ev.add_argument("--model", type=Path, default=None)
    ev.add_argument("--out", type=Path, required=True)
    ev.add_argument("--patients", default=None, help="comma-separated patient ids (default: all with masks)")
    ev.add_argument("--panels", type=int, default=6, help="panel PNGs per patient")
    ev.add_argument("--no-postprocess", action="store_true")
    ev.add_argument("--label", type=int, default=None,
                    help="which label of a label-map mask is the heart (default: the only label present)")

    rp = sub.add_parser("report", help="the correction record of a dataset: CSV, Markdown summary, area plot",
                        parents=[common])
    rp.add_argument("data", type=Path, help="a dataset root or a patient folder")
    rp.add_argument("--out", type=Path, required=True)

    vd = sub.add_parser("verify-dataset", help="check a downloaded Kaggle copy against its manifest",
                        parents=[common])
    vd.add_argument("root", type=Path)
    vd.add_argument("--manifest", type=Path, default=None)

    # run by the launcher (heartseg_gui.launcher), listed here so that ``heartseg --help`` names every command
    for name, text in WINDOW_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


def _setup_logging(args) -> None:
    """``heartseg`` messages as plain lines on the current stderr (replacing a handler of an earlier call)."""
    level = logging.WARNING if getattr(args, "quiet", False) else \
        logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    for h in list(log.handlers):
        if getattr(h, "_heartseg", False):
            log.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._heartseg = True
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def _check_numbers(args) -> None:
    for key in _POSITIVE:
        value = getattr(args, key, None)
        if value is not None and value <= 0:
            raise HeartsegError(f"--{key.replace('_', '-')} must be a whole number above 0, got {value}")


COMMANDS = {"train": cmd_train, "predict": cmd_predict, "evaluate": cmd_evaluate, "verify-dataset": cmd_verify,
            "report": cmd_report}


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # --local-workers restarts the same command
    _setup_logging(args)
    try:
        if args.command in WINDOW_COMMANDS:  # only reachable through ``python -m core.cli``
            log.error(f"heartseg {args.command}: run it as `heartseg {args.command}` (the launcher)")
            return EXIT_BAD_INPUT
        _check_numbers(args)
        fn = COMMANDS[args.command]
        return int(fn(args) or 0)
    except HeartsegError as exc:  # one line whatever the file names hold (newlines are shown escaped)
        log.error(f"heartseg {args.command}: error: {one_line(exc, 1000)}")
        return EXIT_BAD_INPUT
    except OSError as exc:  # a safety net: file-system errors the commands did not word themselves
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        log.error(f"heartseg {args.command}: error: {one_line(f'{where}{exc.strerror or exc}', 1000)}")
        return EXIT_BAD_INPUT
    except Cancelled:
        log.error(f"heartseg {args.command}: cancelled")
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        log.error(f"heartseg {args.command}: interrupted")
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
