"""Per-slice review states for :class:`core.editing.MaskEditor`.

Each slice is ``"not_reviewed"`` until the radiologist accepts it, corrects it (painting or a slice tool does this
automatically unless the slice is flagged) or flags it for a second look.
"""

from __future__ import annotations

from typing import Optional, Sequence

from core.types import REVIEW_STATES  # the states, in the order the GUI offers them


def check_state(state: str) -> str:
    """Return ``state`` if it is one of :data:`REVIEW_STATES`, else raise ``ValueError``."""
    if state not in REVIEW_STATES:
        raise ValueError(f"review state must be one of {REVIEW_STATES}, got {state!r}")
    return state


def next_with_state(states: Sequence[str], start: int, direction: int = +1, *, wrap: bool = False,
                    wanted: str = "not_reviewed") -> Optional[int]:
    """The nearest index after ``start`` (before it with ``direction=-1``) whose state is ``wanted``.

    ``start`` itself is skipped (``-1`` / ``len(states)`` search from either end). With ``wrap`` the search goes
    round, ending at ``start``. Returns ``None`` when there is none.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    n = len(states)
    start = int(start)
    for k in range(1, n + 1):
        i = start + direction * k
        if wrap:
            i %= n
        elif not 0 <= i < n:
            return None
        if states[i] == wanted:
            return i
    return None
