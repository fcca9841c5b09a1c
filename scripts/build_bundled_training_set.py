"""Build the training set of the bundled model (resources/model) from ../shared/data, in the Kaggle layout.

    python scripts/build_bundled_training_set.py ../shared/data runs/bundle_data

Patients written to ``OUT/data/train/``:

* ``ts_pulm_a``  TotalSegmentator chest crop, slices 1-001..1-070 (heart on 1-014..1-070)   -> training
* ``ts_pulm_b``  the same crop, slices 1-077..1-112 (heart on 1-077..1-099, 13 slices below the heart)
                 -> held out (slices 1-071..1-076 are left out as a gap: neighbouring slices are near copies)
* ``ts_abd_a``   TotalSegmentator abdomen DICOM series, slices 1-001..1-012, no heart (empty masks)   -> training
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
from core.io.masks import write_mask_pngs
from core.preprocess import to_kaggle_scale

SPLITS = {
    "ts_pulm_a": ("ts_chest_crop/kaggle_layout/ts_pulm", slice(0, 70)),
    "ts_pulm_b": ("ts_chest_crop/kaggle_layout/ts_pulm", slice(76, 112)),
    "ts_abd_a": ("ts_abdomen_dicom", slice(0, 12)),
    "ts_abd_b": ("ts_abdomen_dicom", slice(14, 20)),
}


def main(shared_data: str, out: str) -> None:
    shared, root = Path(shared_data), Path(out) / "data" / "train"
    for pid, (rel, sl) in SPLITS.items():
        vol = open_scan(shared / rel)
        images = to_kaggle_scale(vol)[sl]
        masks = (vol.mask[sl] if vol.mask is not None else np.zeros_like(images)).astype(np.uint8)
        names = vol.slice_names[sl] if vol.kind == "kaggle_patient" else [
            f"1-{i + 1:03d}" for i in range(vol.n_slices)][sl]
        for sub in ("image", "mask"):
            (root / pid / sub).mkdir(parents=True, exist_ok=True)
        write_mask_pngs(root / pid / "mask", masks, names)
        import cv2

        for name, img in zip(names, images):
            cv2.imwrite(str(root / pid / "image" / f"{name}.png"), img)
        src = shared / rel.split("/")[0] / "SOURCE.md"
        shutil.copy(src, root / pid / "SOURCE.md")
        print(f"{pid}: {len(names)} slices from {rel} ({int((masks.reshape(len(names), -1).max(1) > 0).sum())} with heart)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
