"""Command-line progress: a one-line text bar with ETA, and Ctrl+C as a clean cancel."""

from __future__ import annotations

import signal
import sys
import time

from core.types import CancelToken, Progress, format_duration


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
        eta_text = f" ETA {format_duration(eta)}" if eta is not None and not final else ""
        line = f"{p.stage:8s} [{bar}] {p.done}/{p.total} {p.message}{extra}{eta_text}"
        if self.tty and p.stage != "epoch":
            self.stream.write("\r" + line[:150].ljust(150) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()





def sigint_cancels(cancel: CancelToken) -> None:
    """First Ctrl+C sets ``cancel`` (the job stops cleanly within one batch); a second one interrupts."""

    def handler(signum, frame):
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        print("\nstopping after this batch (Ctrl+C again to abort)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
