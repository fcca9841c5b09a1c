"""Paths read from registry records stay inside the registry folder (issue 12 item 4): a ``vN.json`` whose
``"model_file"`` is ``../../elsewhere/m.keras``, absolute, hidden, not a .keras name, or a link leading out is
refused with one line naming the record; nothing outside is ever loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import HeartsegError
from core.versions.registry import ModelRegistry

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    base = tmp_path / "bundled.keras"
    base.write_bytes(b"bundled")
    folder = tmp_path / "ds" / ".heartseg" / "models"
    folder.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "m.keras").write_bytes(b"not yours")
    return ModelRegistry(folder, base_model=base)


def _record(registry: ModelRegistry, version: int, model_file) -> Path:
    path = registry.folder / f"v{version}.json"
    path.write_text(json.dumps({"format": 1, "version": version, "parent": None, "model_file": model_file}))
    return path


@pytest.mark.parametrize("model_file", ["../../../elsewhere/m.keras", "../v1.keras", "/etc/hostname",
                                        "sub/v1.keras", ".v1.keras", "v1.h5", "", "..", 12, None,
                                        "..\\..\\elsewhere\\m.keras"])
def test_a_model_file_outside_the_registry_is_refused(registry, model_file):
    record = _record(registry, 1, model_file)
    (registry.folder / "v1.keras").write_bytes(b"model")
    for call in (lambda: registry.get(1), lambda: registry.model_path(1), lambda: registry.activate(1)):
        with pytest.raises(HeartsegError) as info:
            call()
        msg = str(info.value)
        assert "refused" in msg and str(record) in msg and "\n" not in msg, msg
    assert not (registry.folder / "active.json").exists()


def test_a_link_out_of_the_registry_is_refused(registry, tmp_path):
    (registry.folder / "v2.keras").symlink_to(tmp_path / "elsewhere" / "m.keras")
    _record(registry, 2, "v2.keras")
    with pytest.raises(HeartsegError, match="leads out of the registry"):
        registry.model_path(2)


def test_a_plain_name_inside_still_works(registry):
    (registry.folder / "v3.keras").write_bytes(b"model")
    _record(registry, 3, "v3.keras")
    assert registry.model_path(3) == registry.folder / "v3.keras"
    assert registry.activate(3).version == 3


def test_a_record_that_is_not_an_object_is_one_line(registry):
    (registry.folder / "v4.json").write_text("[1, 2]")
    with pytest.raises(HeartsegError, match="not a JSON object"):
        registry.get(4)
