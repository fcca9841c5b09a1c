"""Build the training set of the bundled model (resources/model) from ../shared/data, in the Kaggle layout.

    python scripts/build_bundled_training_set.py ../shared/data runs/bundle_data

Patients written to ``OUT/data/train/``:

* ``ts_pulm_a``  TotalSegmentator chest crop, every slice not listed below           -> training
* ``ts_pulm_b``  the same crop, four held-out blocks of 8 slices: 1-025..1-032, 1-051..1-058, 1-077..1-084
                 (with heart) and 1-103..1-110 (below the heart)                      -> held out
                 The 3 slices on each side of every held-out block are left out of both sets as a gap:
                 the crop was resampled from 3 mm to 1.5 mm, so neighbouring slices are near copies.
* ``ts_abd_a``   TotalSegmentator abdomen DICOM series, slices 1-001..1-012, no heart (empty masks) -> training
* ``ts_abd_b``   the same series, slices 1-015..1-020, no heart -> held out (1-013, 1-014 left out as a gap)

Images are written in the Kaggle PNG scale (``core.preprocess.to_kaggle_scale``), masks as 0/255 PNGs; the
abdomen slices keep their full 512 x 512 field of view, so the model also sees a whole body cross-section, the
table and slices without heart. Both sources are Apache-2.0 (TotalSegmentator); their SOURCE.md files are copied.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from core.io import open_scan
from core.io.masks import write_image_pngs, write_mask_pngs
from core.preprocess import to_kaggle_scale

HELD_OUT_BLOCKS = [range(24, 32), range(50, 58), range(76, 84), range(102, 110)]
GAP = 3
_held = sorted(i for block in HELD_OUT_BLOCKS for i in block)
_gaps = sorted({i for b in HELD_OUT_BLOCKS for i in (*range(b.start - GAP, b.start), *range(b.stop, b.stop + GAP))})
_train = [i for i in range(112) if i not in set(_held) | set(_gaps)]

SPLITS = {
    "ts_pulm_a": ("ts_chest_crop/kaggle_layout/ts_pulm", _train),
    "ts_pulm_b": ("ts_chest_crop/kaggle_layout/ts_pulm", _held),
    "ts_abd_a": ("ts_abdomen_dicom", list(range(0, 12))),
    "ts_abd_b": ("ts_abdomen_dicom", list(range(14, 20))),
}


def main(shared_data: str, out: str) -> None:
    shared, root = Path(shared_data), Path(out) / "data" / "train"
    for pid, (rel, sl) in SPLITS.items():
        sl = np.asarray(sl)
        vol = open_scan(shared / rel)
        images = to_kaggle_scale(vol)[sl]
        masks = (vol.mask[sl] if vol.mask is not None else np.zeros_like(images)).astype(np.uint8)
        names = [f"1-{i + 1:03d}" for i in sl]
        write_image_pngs(root / pid / "image", images, names)
        write_mask_pngs(root / pid / "mask", masks, names)
        src = shared / rel.split("/")[0] / "SOURCE.md"
        shutil.copy(src, root / pid / "SOURCE.md")
        print(f"{pid}: {len(names)} slices from {rel} ({int((masks.reshape(len(names), -1).max(1) > 0).sum())} with heart)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
