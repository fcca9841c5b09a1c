"""Write the bundled model's OpenVINO IR next to it: resources/model/heartseg_unet.openvino/.

    python scripts/export_bundled_runtime.py

Run it whenever ``resources/model/heartseg_unet.keras`` changes (``tests/core/inference/test_openvino_runtime.py`` fails while
the IR's record names another model). The folder holds ``model.xml``, ``model.bin`` (float32 weights) and
``record.json`` with the model's SHA-256 and the bfloat16 check on the bundled sample
(:func:`core.inference.openvino.precision_check`). Shipping it means a fresh install never needs TensorFlow (2.8 s to
import) or a conversion (~8 s) before the first overlay.
"""

from __future__ import annotations

import json
import shutil

from core.atomic import file_sha256
from core.inference.engines.openvino import export_ir, sidecar_dir
from core.inference.precision import precision_check
from core.model.unet import load_model
from core.resources import bundled_model_path


def main() -> int:
    path = bundled_model_path()
    folder = sidecar_dir(path)
    if folder.exists():
        shutil.rmtree(folder)
    ir = export_ir(load_model(path), folder, keras_sha=file_sha256(path), check=precision_check)
    print(f"wrote {ir.folder}")
    print(json.dumps(ir.record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
