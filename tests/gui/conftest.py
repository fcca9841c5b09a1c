"""Window tests: garbage from one test is collected in the GUI thread before the next starts.

The product collects cyclic garbage only in the GUI thread once a job runner exists
(:func:`heartseg_gui.workers.collect_garbage_in_gui_thread`); collecting after each test as well keeps one test's
closed windows from being destroyed during a later test, and keeps memory flat over the suite. What survives that
collection is then frozen (``gc.freeze``): once TensorFlow is loaded a full collection walked its ~400,000 live
objects every time (0.2-1.2 s a test, ~100 s of the window tests' 500 s); a frozen object is never examined again
and never collected, so a test's garbage is still collected at its own end.
"""

from __future__ import annotations

import gc

import pytest


@pytest.fixture(autouse=True)
def _collect_in_the_gui_thread():
    yield
    gc.collect()
    gc.freeze()
