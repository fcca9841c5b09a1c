"""A pydicom pixel-decoding plugin: JPEG 2000 frames decoded by imagecodecs (OpenJPEG), which releases the GIL
while it decodes, so the decode threads of :mod:`core.io._dicom_pixels` run in parallel (pylibjpeg-openjpeg,
pydicom's default here, holds it: two threads decode no faster than one).

Only the codestream -> samples step is imagecodecs'. Everything around it stays pydicom's: the frame is taken
out of the encapsulated Pixel Data by pydicom, the codestream's precision and signedness are read by pydicom
(``get_j2k_parameters``), and pydicom's decode runner applies its corrections afterwards (a codestream whose
signedness disagrees with Pixel Representation is sign-corrected; the bits-allocated choice below is the one
pydicom's own pylibjpeg plugin makes). Registered by :func:`register` under the label :data:`LABEL`; see
docs/BENCHMARKS.md, "Opening a DICOM series", for the measurements and the equality tests.
"""

from __future__ import annotations

import numpy as np
from pydicom import uid

LABEL = "heartseg-imagecodecs"

#: the transfer syntaxes this plugin decodes (single-component greyscale CT; anything else -> pydicom's plugins)
SYNTAXES = (uid.JPEG2000Lossless, uid.JPEG2000)

DECODER_DEPENDENCIES = {ts: ("imagecodecs>=2024.1",) for ts in SYNTAXES}


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs if hasattr(imagecodecs, "jpeg2k_decode") else None


def is_available(transfer_syntax: str) -> bool:
    """pydicom's plugin contract: whether this plugin can decode ``transfer_syntax`` here."""
    return transfer_syntax in SYNTAXES and _imagecodecs() is not None


def _decode_frame(src: bytes, runner) -> bytes:
    """pydicom's plugin contract: one encoded frame -> its samples, little-endian, as pydicom expects them."""
    if runner.samples_per_pixel != 1:
        raise ValueError("the imagecodecs plugin decodes single-component images only")
    arr = _imagecodecs().jpeg2k_decode(src, numthreads=1)
    if arr.ndim != 2 or arr.shape != (runner.rows, runner.columns):
        raise ValueError(f"decoded shape {arr.shape}, expected {(runner.rows, runner.columns)}")
    precision = runner.get_option("j2k_precision", runner.bits_stored)
    bits = 8 if precision <= 8 else 16 if precision <= 16 else 32
    if arr.dtype.itemsize * 8 != bits:
        raise ValueError(f"decoded {arr.dtype} samples for a {precision}-bit codestream")
    runner.set_option("bits_allocated", bits)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


_registered = False


def register() -> bool:
    """Add this plugin to pydicom's JPEG 2000 decoders (once; pydicom's ``add_plugin`` is not thread-safe, so
    this runs at import of :mod:`core.io._dicom_pixels`). Returns whether it is available."""
    global _registered
    if not _registered:
        from pydicom.pixels.decoders import JPEG2000Decoder, JPEG2000LosslessDecoder

        for decoder in (JPEG2000LosslessDecoder, JPEG2000Decoder):
            try:
                decoder.add_plugin(LABEL, (__name__, "_decode_frame"))
            except ValueError:  # "already has a plugin named ...": registered by an earlier import
                pass
        _registered = True
    return _imagecodecs() is not None
