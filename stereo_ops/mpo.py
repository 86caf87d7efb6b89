"""Stereo MPO (multi-picture JPEG, CIPA DC-007) files, as 3D cameras and stereo viewers write them.

Pillow writes two-frame MPO files but tags the frames as "baseline primary" and "undefined"; a
stereo file tags both as "disparity" images (MP type 0x020002), the first one as representative.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from PIL import Image

# CIPA DC-007 MP entry attribute: bits 0-23 MP type code, bit 29 representative image.
MP_TYPE_DISPARITY = 0x020002
MP_REPRESENTATIVE = 1 << 29
_MP_ENTRY_TAG = 0xB002


def _tag_frames_as_disparity(data: bytearray) -> None:
    start = data.find(b"MPF\x00")
    if start < 0:
        raise ValueError("Pillow wrote no MPF segment; cannot tag the MPO frames as a stereo pair")
    tiff = start + 4
    endian = {b"II": "<", b"MM": ">"}[bytes(data[tiff:tiff + 2])]
    (ifd,) = struct.unpack_from(endian + "L", data, tiff + 4)
    (count,) = struct.unpack_from(endian + "H", data, tiff + ifd)
    for k in range(count):
        entry = tiff + ifd + 2 + 12 * k
        tag, _type, length, offset = struct.unpack_from(endian + "HHLL", data, entry)
        if tag != _MP_ENTRY_TAG:
            continue
        for i in range(length // 16):
            attribute = MP_TYPE_DISPARITY | (MP_REPRESENTATIVE if i == 0 else 0)
            struct.pack_into(endian + "L", data, tiff + offset + 16 * i, attribute)
        return
    raise ValueError("the MPF segment has no MP entry table; cannot tag the MPO frames as a stereo pair")


def stereo_mpo_bytes(left: Image.Image, right: Image.Image, quality: int = 95) -> bytes:
    """A two-frame stereo MPO (left first, as stereo cameras store it) as bytes."""
    if left.size != right.size:
        raise ValueError(f"left {left.size} and right {right.size} must have the same size for an MPO")
    buffer = io.BytesIO()
    left.convert("RGB").save(
        buffer, format="MPO", save_all=True, append_images=[right.convert("RGB")], quality=quality
    )
    data = bytearray(buffer.getvalue())
    _tag_frames_as_disparity(data)
    return bytes(data)


def write_stereo_mpo(path: str | Path, left: Image.Image, right: Image.Image, quality: int = 95) -> None:
    Path(path).write_bytes(stereo_mpo_bytes(left, right, quality))
