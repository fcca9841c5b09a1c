"""Output paths never land inside, on, or around an input: one check every command and export dialog calls first.

:func:`check_output_path` refuses (with one :class:`~core.errors.HeartsegError` line naming the path) an output
file or folder that

* **is** an input (a scan folder, a Kaggle patient, a dataset root, a NIfTI / DICOM file, a mask file),
* **lies inside** one (``P/image``, ``P/mask``, ``R/p1/image``, ``P/.heartseg/...``), or
* **contains** one (``--out`` the folder that holds the scan, or ``/``),

and any output inside a ``.heartseg`` folder (heartseg's own state: journal, lock, versions). When an input is a
patient's ``image/`` or ``mask/`` folder, its sibling ``image/``, ``mask/`` and ``.heartseg/`` folders are inputs too
(predicting ``P/image`` into ``P/mask`` would replace the dataset's masks). Symbolic links are resolved and existing
folders are also compared by device and inode, so a link, a bind mount or another spelling of the same folder is
caught. Nothing is created or read beyond ``stat``.

Only Save writes into a scan's own folders; it does not go through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

from core.errors import HeartsegError

#: Folder names of a Kaggle-layout patient whose siblings are protected with them.
_PATIENT_PARTS = ("image", "images", "mask", "masks", ".heartseg")
STATE_DIR = ".heartseg"


def _real(path: str | Path) -> Path:
    """Absolute path with every existing symbolic link resolved (never raises, loops included)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _identity(path: Path) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _chain(path: Path) -> list[tuple[int, int]]:
    """Identities of ``path`` (if it exists) and of every existing folder above it."""
    out = []
    for p in (path, *path.parents):
        ident = _identity(p)
        if ident is not None:
            out.append(ident)
    return out


def protected_paths(inputs: Iterable[str | Path | None]) -> list[tuple[Path, str]]:
    """``(resolved path, how to name it)`` of everything an output must stay clear of, for these inputs
    (``None`` entries are skipped)."""
    seen: dict[str, tuple[Path, str]] = {}
    for given in inputs:
        if given is None:
            continue
        real = _real(given)
        seen.setdefault(str(real), (real, f"the input {real}"))
        if real.name.lower() in _PATIENT_PARTS and real.parent != real:
            names = set(_PATIENT_PARTS)
            try:  # the same names in another case (Image/, MASK/)
                names |= {e.name for e in os.scandir(real.parent) if e.name.lower() in _PATIENT_PARTS}
            except OSError:
                pass
            for sibling in sorted(names):
                cand = _real(real.parent / sibling)
                seen.setdefault(str(cand), (cand, f"the {sibling} folder of the input's patient {real.parent}"))
    return list(seen.values())


def _relation(out: Path, protected: Path) -> Optional[str]:
    """How ``out`` collides with ``protected``: ``"is"``, ``"inside"``, ``"contains"`` or ``None``."""
    if out == protected:
        return "is"
    if protected in out.parents:
        return "inside"
    if out in protected.parents:
        return "contains"
    p_id, o_id = _identity(protected), _identity(out)
    if p_id is not None and o_id is not None and p_id == o_id:
        return "is"
    if p_id is not None and p_id in _chain(out.parent):
        return "inside"
    if o_id is not None and o_id in _chain(protected.parent):
        return "contains"
    return None


def check_output_path(out: str | Path, inputs: Iterable[str | Path | None], *, what: str = "--out") -> Path:
    """Refuse an output that is, lies inside, or contains an input (or lies in a ``.heartseg`` folder).

    ``out``: the output folder or file as the user gave it; ``inputs``: the scans, patients, dataset roots and
    mask files the command or dialog reads; ``what``: how the user named the output, for the message
    (``"--out"``, ``"the export folder"``). Returns ``out`` resolved. Raises :class:`HeartsegError` (one line,
    naming ``out`` and the input) before anything is written.
    """
    if out is None:
        raise HeartsegError(f"no output given ({what})")
    real_out = _real(out)
    if any(part.lower() == STATE_DIR for part in real_out.parts):
        raise HeartsegError(f"{what} lies inside a {STATE_DIR} folder (heartseg's own journal, lock and versions "
                            "of a patient); choose a folder outside the dataset", out)
    for protected, name in protected_paths(inputs):
        relation = _relation(real_out, protected)
        if relation is None:
            continue
        if relation == "is":
            problem = f"{what} is {name}"
        elif relation == "inside":
            problem = f"{what} lies inside {name}"
        else:
            problem = f"{what} contains {name}"
        raise HeartsegError(f"{problem}; writing there could overwrite the scan, its masks or its saved work - "
                            "choose a folder outside the input (nothing was written)", out)
    return real_out
