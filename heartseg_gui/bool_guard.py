"""A guard against a PySide6 6.12.0 bug that aborts the interpreter after a few thousand signal emits."""

from __future__ import annotations

import ctypes
import sys
from typing import Optional

from PySide6.QtCore import QObject, QTimer, Signal


class BoolRefGuard(QObject):
    """Workaround for a PySide6 6.12.0 bug: every ``Signal.emit()`` drops one reference to ``True`` without
    taking it. On Python < 3.12 (``True`` is not immortal) a few thousand emits -- a couple of minutes of painting
    -- bring its count to zero and the interpreter aborts ("bool_dealloc: deallocating True or False"), killing
    the window and the clinician's unsaved work. Probed once at start-up: only when emits really leak does a
    timer keep the count topped up (``Py_IncRef``; a few MB over a long day). Harmless and idle elsewhere."""

    MINIMUM = 200_000
    TOP_UP = 400_000

    _installed: Optional["BoolRefGuard"] = None

    def __init__(self, parent=None):
        super().__init__(parent)
        self.leaks = self._probe()
        self.top_ups = 0
        if self.leaks:
            self.check()
            self.timer = QTimer(self)
            self.timer.setInterval(500)
            self.timer.timeout.connect(self.check)
            self.timer.start()

    @staticmethod
    def _probe() -> bool:
        class Probe(QObject):
            ping = Signal()

        probe = Probe()
        before = sys.getrefcount(True)
        for _ in range(8):
            probe.ping.emit()
        leaked = sys.getrefcount(True) < before - 4
        if leaked:
            BoolRefGuard._incref(before - sys.getrefcount(True))
        return leaked

    @staticmethod
    def _incref(n: int) -> None:
        incref = ctypes.pythonapi.Py_IncRef
        incref.argtypes = [ctypes.py_object]
        incref.restype = None
        for _ in range(max(0, int(n))):
            incref(True)

    def check(self) -> None:
        count = sys.getrefcount(True)
        if count < self.MINIMUM:
            self._incref(self.TOP_UP - count)
            self.top_ups += 1

    @classmethod
    def install(cls, app) -> "BoolRefGuard":
        """One guard per process, owned by the QApplication."""
        if cls._installed is None:
            cls._installed = cls(app)
        return cls._installed
