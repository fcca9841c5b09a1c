"""A fast header pass for the common DICOM file: Part-10, explicit VR little endian (uncompressed or
encapsulated: JPEG, JPEG-2000, RLE ...).

pydicom's parser spends ~2-4 ms a CT slice walking its ~150 header elements in Python; :func:`scan_header`
walks them with ``struct`` in one buffer (about 10x faster) and hands the top-level elements to pydicom as
*raw* elements, so every value is still converted by pydicom itself, exactly as ``dcmread`` would. It returns
``None`` (the caller then uses ``pydicom.dcmread``) for anything else: no ``DICM`` preamble, implicit VR, big
endian or deflated transfer syntaxes, an unknown VR, an undefined-length element other than a sequence, a Modality
LUT Sequence, Float Pixel Data, or a file that ends early. The returned header holds no sequences (they are skipped:
the series reader uses none but the Modality LUT, for which pydicom reads the file).
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

#: VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2)
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
                        b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_OTHER_PIXEL_DATA = (0x7FE00008, 0x7FE00009)  # Float / Double Float Pixel Data
_MODALITY_LUT_SEQUENCE = 0x00283000
_CHARSET = 0x00080005
#: bytes read first; a header longer than this is read whole
FIRST_READ = 64 * 1024

_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class _Unusual(Exception):
    """The fast pass met something it leaves to pydicom."""


def _element(buf: bytes, pos: int) -> tuple[int, bytes | None, int, int]:
    """``(tag, VR or None for item tags, value length, value start)`` of the element at ``pos``."""
    group, elem = _TAG.unpack_from(buf, pos)
    tag = group << 16 | elem
    if group == 0xFFFE:
        return tag, None, _U32.unpack_from(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if vr in _LONG_VRS:
        return tag, vr, _U32.unpack_from(buf, pos + 8)[0], pos + 12
    if vr in _SHORT_VRS:
        return tag, vr, _U16.unpack_from(buf, pos + 6)[0], pos + 8
    raise _Unusual(f"VR {vr!r}")


def _skip_sequence(buf: bytes, pos: int) -> int:
    """Position after the Sequence Delimitation Item of the undefined-length sequence whose value starts at
    ``pos``."""
    while True:
        tag, _, length, start = _element(buf, pos)
        if tag == _SEQUENCE_END:
            return start
        if tag != _ITEM:
            raise _Unusual("not an item")
        pos = start + length if length != _UNDEFINED else _skip_item(buf, start)


def _skip_item(buf: bytes, pos: int) -> int:
    """Position after the Item Delimitation Item of the undefined-length item whose elements start at ``pos``."""
    while True:
        tag, vr, length, start = _element(buf, pos)
        if tag == _ITEM_END:
            return start
        if length == _UNDEFINED:
            if vr != b"SQ":
                raise _Unusual("undefined length")
            pos = _skip_sequence(buf, start)
        else:
            pos = start + length


def _scan(buf: bytes, path: Path):
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise _Unusual("no DICM preamble")
    pos, meta = 132, {}
    while buf[pos:pos + 2] == b"\x02\x00":
        tag, vr, length, start = _element(buf, pos)
        if vr is None or length == _UNDEFINED or start + length > len(buf):
            raise _Unusual("file meta")
        meta[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr.decode("ascii"), length, buf[start:start + length],
                                            start, False, True)
        pos = start + length
    file_meta = FileMetaDataset(meta)
    ts = file_meta.get("TransferSyntaxUID")
    if not isinstance(ts, UID) or not ts.is_transfer_syntax or ts.is_implicit_VR or not ts.is_little_endian \
            or ts.is_deflated:
        raise _Unusual("transfer syntax")
    elements, offset = {}, None
    while pos < len(buf):
        tag, vr, length, start = _element(buf, pos)
        if tag == _PIXEL_DATA:
            offset = pos
            break
        if vr is None or tag in _OTHER_PIXEL_DATA or tag == _MODALITY_LUT_SEQUENCE:
            raise _Unusual("element")
        if length == _UNDEFINED:
            if vr != b"SQ":
                raise _Unusual("undefined length")
            pos = _skip_sequence(buf, start)
            continue
        if start + length > len(buf):
            raise _Unusual("truncated")
        if vr != b"SQ":
            elements[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr.decode("ascii"), length,
                                                    buf[start:start + length], start, False, True)
        pos = start + length
    if offset is None:
        raise _Unusual("no pixel data")  # pydicom reads it (and the reader reports what is missing)
    encoding = default_encoding
    if _CHARSET in elements:
        encoding = convert_encodings(convert_raw_data_element(elements[BaseTag(_CHARSET)]).value)
    dataset = Dataset(elements)
    dataset.set_original_encoding(False, True, encoding)
    ds = FileDataset(str(path), dataset, preamble=buf[:128], file_meta=file_meta, is_implicit_VR=False,
                     is_little_endian=True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds, offset


def scan_header(path: Path):
    """``(header dataset, file offset of the Pixel Data element)`` of ``path`` read by the fast pass, or ``None``
    when the file is not the common case (then read it with ``pydicom.dcmread``). Raises ``OSError``."""
    with open(path, "rb") as fh:
        buf = fh.read(FIRST_READ)
        for attempt in range(2):
            try:
                return _scan(buf, path)
            except Exception:  # noqa: BLE001 - anything unusual or damaged: pydicom reads it and reports it
                if attempt or len(buf) < FIRST_READ:
                    return None
                buf += fh.read()  # a header longer than the first read: read the whole file once
    return None
