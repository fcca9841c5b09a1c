"""Window tests: garbage from one test is collected in the GUI thread before the next starts.

The product collects cyclic garbage only in the GUI thread once a job runner exists
(:func:`heartseg_gui.workers.collect_garbage_in_gui_thread`); collecting after each test as well keeps one test's
closed windows from being destroyed during a later test. What survives that collection is then frozen
(``gc.freeze``): once TensorFlow is loaded a full collection walked its ~400,000 live objects every time (0.4-1.3 s a
test late in the run, ~100 s of the window tests' 500 s). A test's own garbage is still collected at its end; a
frozen object is never examined again and never collected, even if it becomes garbage later (memory, never a
destruction on the wrong thread).
"""

from __future__ import annotations

import gc

import pytest


@pytest.fixture(autouse=True)
def _collect_in_the_gui_thread():
    yield
    gc.collect()
    gc.freeze()
