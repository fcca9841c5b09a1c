"""The ``heartseg`` console command.

* ``heartseg`` — the annotator window on the bundled sample scan with the bundled model;
* ``heartseg open PATH [--mask MASK] [--model MODEL] [--layout axial|three|grid] [--screenshot FILE]`` — the
  window on any scan or dataset;
* any other sub-command (``train``, ``predict``, ``evaluate``, ``verify-dataset`` ...) runs
  :func:`core.cli.main` without importing Qt.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

GUI_COMMANDS = ("open", "gui")


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="heartseg open",
                                description="Open the annotator window on a scan or dataset (default: the "
                                            "bundled sample).")
    p.add_argument("path", nargs="?", help="Kaggle patient folder, dataset folder, DICOM series folder, NIfTI "
                                           "file or PNG folder")
    p.add_argument("--mask", help="a mask for the scan (NIfTI, or a folder of PNG masks)")
    p.add_argument("--model", help="a .keras model (default: the bundled model)")
    p.add_argument("--screenshot", metavar="FILE",
                   help="save the window as PNG once the prediction has finished, then exit")
    p.add_argument("--layout", choices=("axial", "three", "grid"),
                   help="axial only, three planes side by side, or a 2 x 2 grid with the area-per-slice plot "
                        "(default: the layout used last)")
    p.add_argument("--confidence", action="store_true", help="start with the AI confidence heat map shown (K)")
    p.add_argument("--most-uncertain", action="store_true",
                   help="once predicted, go to the slice the AI is least sure of (Review ▸ Next most uncertain, Q)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "bench":
        from heartseg_gui.bench.run import main as bench_main  # lazy: Qt only in the window's own subprocesses

        return int(bench_main(args[1:]) or 0)
    if args and args[0] not in GUI_COMMANDS and not args[0].startswith("--screenshot") \
            and not args[0].startswith("--model"):
        from core.cli import main as cli_main  # lazy: no Qt for the command-line tools

        return int(cli_main(args) or 0)
    if args and args[0] in GUI_COMMANDS:
        args = args[1:]
    opts = _gui_parser().parse_args(args)
    from heartseg_gui.app import run  # lazy: Qt is imported only for the window

    return run(opts.path, opts.mask, opts.model, opts.screenshot, confidence=opts.confidence,
               most_uncertain=opts.most_uncertain, layout=opts.layout)


if __name__ == "__main__":
    sys.exit(main())
