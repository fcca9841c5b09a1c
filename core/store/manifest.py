"""Check a downloaded dataset against its file manifest (path, size, sha256).

The manifest is a tab-separated file with the header ``path\tsize_bytes\tsha256``; paths are relative and start
with ``data/`` (the Kaggle ``ct-heart-segmentation`` layout). :func:`verify_dataset` accepts either the folder
that contains ``data/`` or ``data/`` itself. Files are compared by size first and hashed (streaming sha256) only
when the size matches. heartseg's own ``.heartseg/`` folders (review sidecars, mask versions) are not reported
as extra files.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from core.atomic import file_sha256
from core.errors import HeartsegError
from core.resources import kaggle_manifest_path
from core.store.layout import STATE_DIR
from core.types import CancelToken, Progress, ProgressFn, as_path, check_cancel, report

_CHUNK = 1 << 20
_PREFIX = "data/"
#: A manifest larger than this is refused (the Kaggle one is ~100 kB).
MAX_MANIFEST_BYTES = 64 << 20


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative, forward slashes, starts with "data/"
    size: int  # bytes
    sha256: str  # lower-case hex


@dataclass
class VerifyReport:
    """Result of :func:`verify_dataset`. Paths are manifest-style (``data/...``).

    ``ok``: every manifest file is present and identical (extra files are allowed: added patients, notes).
    """

    root: Path
    n_expected: int
    n_matching: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[tuple[str, str]] = field(default_factory=list)  # (path, "size 12 != 34" | "sha256 differs")
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.altered

    def summary(self, max_listed: int = 10) -> str:
        """A short multi-line text: one headline, then up to ``max_listed`` files per problem kind."""
        head = (f"{self.root}: {self.n_matching}/{self.n_expected} files match the manifest; "
                f"{len(self.missing)} missing, {len(self.altered)} altered, {len(self.extra)} extra"
                f" -> {'OK' if self.ok else 'NOT OK'}")
        lines = [head]
        for title, items in (("missing", self.missing), ("altered", [f"{p} ({why})" for p, why in self.altered]),
                             ("extra", self.extra)):
            for item in items[:max_listed]:
                lines.append(f"  {title}: {item}")
            if len(items) > max_listed:
                lines.append(f"  ... and {len(items) - max_listed} more {title}")
        return "\n".join(lines)


def read_manifest(manifest_path: str | Path) -> list[ManifestEntry]:
    """Parse a manifest TSV; :class:`HeartsegError` naming it (and the line) when it is malformed."""
    manifest_path = as_path(manifest_path)
    lines = _read_text(manifest_path).splitlines()
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (number == 1 and line.startswith("path\t")):
            continue
        parts = line.split("\t")
        try:
            path, size, digest = parts[0], int(parts[1]), parts[2].strip().lower()
        except (IndexError, ValueError):
            raise HeartsegError(f"line {number} is not 'path<TAB>size<TAB>sha256'", manifest_path) from None
        if not _relative_ok(path) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) \
                or size < 0:
            raise HeartsegError(f"line {number}: bad entry {path[:120]!r} (a relative data/... path inside the "
                                "dataset, a size and a sha256 are expected)", manifest_path)
        entries.append(ManifestEntry(path, size, digest))
    return entries



def _read_text(path: Path) -> str:
    """The manifest as text: a regular file (a FIFO, a device or a folder is refused without blocking), at most
    :data:`MAX_MANIFEST_BYTES`, UTF-8; else one :class:`HeartsegError` naming it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise HeartsegError(f"cannot read the manifest: {exc.strerror or exc}", path) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HeartsegError("the manifest is not a regular file (a folder, a FIFO or a device?)", path)
        if info.st_size > MAX_MANIFEST_BYTES:
            raise HeartsegError(f"the manifest is too large ({info.st_size} bytes; at most "
                                f"{MAX_MANIFEST_BYTES})", path)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise HeartsegError(f"cannot read the manifest: {exc.strerror or exc}", path) from exc
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeartsegError(f"the manifest is not UTF-8 text (byte {exc.start})", path) from None


def _relative_ok(path: str) -> bool:
    """A manifest path is ``data/...``, relative, forward slashes, no ``.``/``..``/empty part, no control
    characters: it can only name a file inside the dataset folder."""
    parts = path.split("/")
    return (path.startswith(_PREFIX) and not path.startswith("/") and "\\" not in path and len(parts) >= 2
            and all(p not in ("", ".", "..") for p in parts) and not any(ord(c) < 32 or ord(c) == 127 for c in path))


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` (links resolved) lies inside ``folder`` (links resolved)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _data_dir(root: Path) -> Path:
    if (root / "data").is_dir():
        return root / "data"
    if root.is_dir():
        return root  # root is data/ itself (any name)
    raise HeartsegError("dataset folder not found", root)


def verify_dataset(root: str | Path, manifest_path: str | Path | None = None, *,
                   progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None) -> VerifyReport:
    """Compare the files under ``root`` with the manifest (default: the bundled Kaggle manifest).

    ``progress`` gets one :class:`~core.types.Progress` (stage ``"verify"``) per file; ``cancel`` is checked per
    file and per MiB hashed.
    """
    root = as_path(root)
    data_dir = _data_dir(root)
    entries = read_manifest(manifest_path if manifest_path is not None else kaggle_manifest_path())
    result = VerifyReport(root=root, n_expected=len(entries))
    total = len(entries)
    for i, entry in enumerate(entries):
        check_cancel(cancel)
        path = data_dir / entry.path[len(_PREFIX):]
        try:
            size = path.stat().st_size if path.is_file() else None
        except OSError:
            size = None
        if size is not None and not _inside(path, data_dir):
            result.altered.append((entry.path, "a link leading outside the dataset"))
        elif size is None:
            result.missing.append(entry.path)
        elif size != entry.size:
            result.altered.append((entry.path, f"size {size} != {entry.size} bytes"))
        else:
            try:
                same = file_sha256(path, cancel) == entry.sha256
            except OSError as exc:
                raise HeartsegError(f"cannot read: {exc.strerror or exc}", path) from exc
            if same:
                result.n_matching += 1
            else:
                result.altered.append((entry.path, "sha256 differs"))
        if progress is not None and (i % 16 == 0 or i == total - 1):
            report(progress, Progress("verify", i + 1, total, f"checked {i + 1}/{total} files"))
    expected = {e.path for e in entries}
    for folder, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if d != STATE_DIR)
        for name in sorted(files):
            rel = _PREFIX + Path(os.path.relpath(Path(folder) / name, data_dir)).as_posix()
            if rel not in expected:
                result.extra.append(rel)
    return result
