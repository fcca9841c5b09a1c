"""Outputs never land on, inside or around an input (core.store.outputs, issue 12 item 1).

In-process: every relation (is / inside / contains, a patient's sibling image/mask/.heartseg folders, symbolic
links, a NIfTI file, a .heartseg folder anywhere) and the paths that must stay allowed (a name that merely starts
like the input's). Through the real ``heartseg`` CLI in a subprocess: ``predict``, ``train``, ``evaluate`` and
``report`` with such an ``--out`` exit 2 with one line naming the output and the input, no traceback, nothing
written, the input byte-identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import HeartsegError
from core.store.outputs import check_output_path
from tests.corpus import kaggle_patient, png_folder, tree_state

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONIOENCODING": "utf-8"}


def _nifti(path: Path) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.int16), np.eye(4)), str(path))
    return path


@pytest.fixture
def world(tmp_path):
    root = tmp_path / "data" / "train"
    p1 = kaggle_patient(root / "p1")
    kaggle_patient(root / "p2")
    scan = png_folder(tmp_path / "slices", 3)
    (tmp_path / "scans").mkdir()
    ct = _nifti(tmp_path / "scans" / "ct.nii.gz")
    (tmp_path / "link-to-image").symlink_to(p1 / "image")
    return {"tmp": tmp_path, "root": root, "p1": p1, "scan": scan, "ct": ct}


@pytest.mark.parametrize("out, inputs, word", [
    ("p1/image", ["p1"], "inside"),
    ("p1/mask", ["p1"], "inside"),
    ("p1/.heartseg/x", ["p1"], ".heartseg"),
    ("p1/image/sub", ["p1"], "inside"),
    ("p1", ["p1"], "is"),
    ("scan", ["scan"], "is"),
    ("scan/out", ["scan"], "inside"),
    ("p1/mask", ["p1/image"], "mask folder"),
    ("p1/.heartseg", ["p1/image"], ".heartseg"),
    ("p1/image", ["p1/mask"], "image folder"),
    ("root/p1/image", ["root"], "inside"),
    ("root", ["root/p1"], "contains"),
    ("tmp", ["root"], "contains"),
    ("/", ["scan"], "contains"),
    ("ct", ["ct"], "is"),
    ("scans", ["ct"], "contains"),
    ("link-to-image", ["p1"], "inside"),
    ("link-to-image/new", ["p1/image"], "inside"),
    ("p1/image", ["link-to-image"], "is"),
    ("elsewhere/.heartseg/o", ["p1"], ".heartseg"),
])
def test_outputs_on_inside_or_around_an_input_are_refused(world, out, inputs, word):
    def where(name):
        if name == "/":
            return Path("/")
        head, _, rest = name.partition("/")
        base = world[head] if head in world else world["root"] / head if head.startswith("p") \
            else world["tmp"] / head
        return base / rest if rest else base

    before = tree_state(world["tmp"])
    target = where(out)
    with pytest.raises(HeartsegError) as info:
        check_output_path(target, [where(i) for i in inputs])
    text = str(info.value)
    assert "\n" not in text and str(target) in text and word in text, text
    assert tree_state(world["tmp"]) == before


@pytest.mark.parametrize("out", ["out", "p1-predictions", "root2", "slices_out", "scans/ct.nii.gz.d/../other"])
def test_outputs_beside_the_input_are_allowed(world, out):
    target = world["tmp"] / out
    inputs = [world["p1"], world["scan"], world["ct"], world["tmp"] / "root"]
    assert check_output_path(target, inputs) == Path(os.path.realpath(target))
    assert check_output_path(world["root"] / "p1-out", [world["p1"]])  # a sibling of the patient, not inside it
    assert not target.exists()


# ----------------------------------------------------------------------------------------------- the CLI
def _cli(*args) -> subprocess.CompletedProcess:
    code = "import sys\nfrom heartseg_gui.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, encoding="utf-8", timeout=300)


CLI_CASES = [
    ("predict", "p1", "p1/image"),          # replaced every CT slice by a mask before
    ("predict", "p1", "p1/mask"),           # replaced the dataset's masks, no kept original
    ("predict", "p1/image", "p1/mask"),     # the patient's image folder predicted into its own masks
    ("predict", "scan", "scan"),            # a PNG folder predicted onto itself
    ("predict", "link", "p1/image"),        # the same through a symbolic link
    ("predict", "ct", "scans"),             # a NIfTI scan's own folder
    ("train", "root", "root/p1/image"),     # history.png and models among the slices
    ("evaluate", "p1", "p1/mask"),
    ("report", "root", "root/p2/.heartseg"),
]


@pytest.mark.parametrize("command, source, out", CLI_CASES, ids=lambda v: str(v).replace("/", "_"))
def test_cli_refuses_an_output_over_its_input(world, command, source, out):
    def where(name):
        if name == "link":
            return world["tmp"] / "link-to-image"
        head, _, rest = name.partition("/")
        base = world[head] if head in world else world["root"] / head if head.startswith("p") \
            else world["tmp"] / head
        return base / rest if rest else base

    target, data = where(out), where(source)
    existed = target.exists()
    before = tree_state(world["tmp"])
    r = _cli(command, data, "--out", target)
    assert r.returncode == 2, f"exit {r.returncode}; stderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"heartseg {command}: error: ") and str(target) in lines[0], lines[0]
    assert tree_state(world["tmp"]) == before, "an input file changed"
    assert target.exists() == existed
