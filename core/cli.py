"""``heartseg`` sub-commands that need no window: train, predict, evaluate, verify-dataset.

Bad input: exit status 2, one line on stderr naming the file and the problem, no traceback, nothing written.
(``heartseg`` with no argument and ``heartseg open`` start the window: see ``heartseg_gui.launcher``.)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from core.errors import Cancelled, HeartsegError
from core.types import CancelToken, Progress

EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


class ProgressBar:
    """A one-line text progress bar with ETA on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream=None, min_interval: float = 0.5):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval = min_interval if self.tty else max(min_interval, 10.0)
        self._last = 0.0
        self._t0 = time.monotonic()
        self._stage = None

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.stage != self._stage:
            self._stage, self._t0 = p.stage, now
        final = p.done >= p.total
        if not final and now - self._last < self.min_interval and p.stage != "epoch":
            return
        self._last = now
        elapsed = now - self._t0
        eta = p.eta_s if p.eta_s is not None else (elapsed / p.done * (p.total - p.done) if p.done else None)
        width = 28
        filled = int(width * p.fraction)
        bar = "#" * filled + "-" * (width - filled)
        extra = ""
        if p.metrics:
            keys = [k for k in ("loss", "dice_coef", "val_loss", "val_dice_coef") if k in p.metrics]
            extra = " " + " ".join(f"{k}={p.metrics[k]:.4f}" for k in keys)
        eta_text = f" ETA {_fmt_seconds(eta)}" if eta is not None and not final else ""
        line = f"{p.stage:8s} [{bar}] {p.done}/{p.total} {p.message}{extra}{eta_text}"
        if self.tty and p.stage != "epoch":
            self.stream.write("\r" + line[:150].ljust(150) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="heartseg", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the U-Net on a Kaggle-layout dataset")
    t.add_argument("data", type=Path, help="dataset root (data/train/<patient>/image|mask) or patients folder")
    t.add_argument("--out", type=Path, required=True, help="output folder (best_model.keras, history, plot)")
    t.add_argument("--patients", default=None,
                   help="comma-separated patient ids to use, validation ones included (default: all with masks)")
    t.add_argument("--val-patients", default=None, help="comma-separated patient ids held out for validation")
    t.add_argument("--val-fraction", type=float, default=0.2)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--image-size", type=int, default=None,
                   help="model input size (default: 256 from scratch; a fine-tuned model keeps its own)")
    t.add_argument("--loss", choices=["bce_dice", "dice"], default="bce_dice")
    t.add_argument("--learning-rate", type=float, default=1e-4)
    t.add_argument("--geometric", choices=["none", "mild", "strong"], default="none",
                   help="geometric augmentation on top of the seed's photometric one")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps-per-epoch", type=int, default=None)
    t.add_argument("--early-stopping-patience", type=int, default=15)
    t.add_argument("--lr-patience", type=int, default=10,
                   help="epochs without validation-loss improvement before the learning rate is cut 10x")
    t.add_argument("--init-model", type=Path, default=None, help="fine-tune this .keras model")
    t.add_argument("--corrected-weight", type=float, default=1.0,
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

    b = sub.add_parser("bench", help="measure speed against baselines in the same run")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--json", type=Path, default=None)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            from core.cli_commands import cmd_train as fn
        elif args.command == "predict":
            from core.cli_commands import cmd_predict as fn
        elif args.command == "evaluate":
            from core.cli_commands import cmd_evaluate as fn
        elif args.command == "verify-dataset":
            from core.cli_commands import cmd_verify as fn
        elif args.command == "report":
            from core.cli_commands import cmd_report as fn
        else:
            from core.bench import cmd_bench as fn
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


def sigint_cancels(cancel: CancelToken) -> None:
    """First Ctrl+C sets ``cancel`` (the job stops cleanly within one batch); a second one interrupts."""

    def handler(signum, frame):
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        print("\nstopping after this batch (Ctrl+C again to abort)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)


if __name__ == "__main__":
    sys.exit(main())
