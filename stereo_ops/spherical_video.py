"""Google's Spherical Video V2 metadata in MP4 files: `st3d` (stereo mode) and `sv3d` (projection).

Players (YouTube, Quest and desktop VR players) read the stereo layout of a video from an `st3d`
box in the video track's sample entry, and a 180 or 360 degree projection from an `sv3d` box next
to it. FFmpeg writes neither by default, so `inject_spherical_metadata` adds them to a finished
file: it grows the sample entry, fixes the sizes of every box that contains it, and moves the chunk
offsets (`stco`/`co64`) when the movie box sits before the media data. Plain Python, no FFmpeg.

Box names and fields follow the Spherical Video V2 RFC (google/spatial-media,
docs/spherical-video-v2-rfc.md): all integers big-endian, fractions of the frame as 0.32 fixed
point, angles as 16.16 fixed point degrees.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import isobmff
from .isobmff import box

StereoMode = Literal["mono", "top-bottom", "left-right"]
STEREO_MODES: dict[str, int] = {"mono": 0, "top-bottom": 1, "left-right": 2}

# A 180 degree wide view cut from the middle of a 360 degree equirectangular frame: a quarter of
# the full width is cropped on each side (0.25 in 0.32 fixed point).
QUARTER = 0x40000000
METADATA_SOURCE = "ComfyUI-StereoDiffusion"

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta", b"dinf"}
_VISUAL_SAMPLE_ENTRY_FIELDS = 78  # bytes between a visual sample entry's header and its child boxes
_SPHERICAL = {b"st3d", b"sv3d"}


# ---------------------------------------------------------------------------------------------
# Box writers, one per box of the RFC
# ---------------------------------------------------------------------------------------------

def full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    """A FullBox, the argument order of the box writers below (version 0 unless told)."""
    return isobmff.full_box(kind, version, flags, payload)


def st3d(stereo_mode: StereoMode) -> bytes:
    """Stereoscopic 3D Video Box: which eye sits where in each frame."""
    if stereo_mode not in STEREO_MODES:
        raise ValueError(f"stereo_mode must be one of {', '.join(STEREO_MODES)}; got {stereo_mode!r}")
    return full_box(b"st3d", bytes([STEREO_MODES[stereo_mode]]))


def svhd(metadata_source: str = METADATA_SOURCE) -> bytes:
    """Spherical Video Header Box: the tool that wrote the metadata, a null-terminated string."""
    return full_box(b"svhd", metadata_source.encode("utf-8") + b"\x00")


def prhd(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> bytes:
    """Projection Header Box: the pose of the sphere, degrees as 16.16 fixed point."""
    return full_box(b"prhd", struct.pack(">iii", *(round(a * 65536) for a in (yaw, pitch, roll))))


def equi(top: int = 0, bottom: int = 0, left: int = 0, right: int = 0) -> bytes:
    """Equirectangular Projection Box: what is cropped from each side of a full 360 x 180 frame,
    as 0.32 fixed point fractions of the frame."""
    bounds = (top, bottom, left, right)
    if any(not 0 <= b <= 0xFFFFFFFF for b in bounds) or top + bottom >= 1 << 32 or left + right >= 1 << 32:
        raise ValueError(f"equi bounds must be 0.32 fractions that leave part of the frame; got {bounds}")
    return full_box(b"equi", struct.pack(">IIII", *bounds))


def proj(pose: bytes, projection: bytes) -> bytes:
    """Projection Box: the pose header, then the projection (here always `equi`)."""
    return box(b"proj", pose + projection)


def sv3d(projection: bytes, metadata_source: str = METADATA_SOURCE) -> bytes:
    """Spherical Video Box: the header, then the projection."""
    return box(b"sv3d", svhd(metadata_source) + projection)


def vr180_boxes(stereo_mode: StereoMode) -> bytes:
    """st3d plus sv3d for a 180 x 180 degree equirectangular view per eye."""
    return st3d(stereo_mode) + sv3d(proj(prhd(), equi(left=QUARTER, right=QUARTER)))


# ---------------------------------------------------------------------------------------------
# Reading boxes
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int  # offset of the size field, relative to the buffer the box was read from
    header: int  # 8, or 16 for a 64-bit size
    size: int

    @property
    def body(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def iter_boxes(data: bytes | memoryview, start: int = 0, end: int | None = None):
    """The boxes laid end to end in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        try:
            kind, size, header = isobmff.read_box_header(data, pos, end)
        except ValueError as exc:
            raise ValueError(f"damaged MP4: {exc}") from None
        yield Box(kind, pos, header, size)
        pos += size


def top_level_boxes(path: str | os.PathLike) -> list[Box]:
    """The file's top-level boxes, read from their headers only (the media data is not read)."""
    boxes = []
    with open(path, "rb") as f:
        total = f.seek(0, os.SEEK_END)
        pos = 0
        while pos + 8 <= total:
            f.seek(pos)
            head = f.read(16)
            size, kind = struct.unpack_from(">I4s", head)
            header = 8
            if size == 1:
                (size,) = struct.unpack_from(">Q", head, 8)
                header = 16
            elif size == 0:
                size = total - pos
            if size < header or pos + size > total:
                raise ValueError(f"{os.fspath(path)} is not a complete MP4 file (box {kind!r} at byte {pos})")
            boxes.append(Box(kind, pos, header, size))
            pos += size
    return boxes


def child(data: bytes | memoryview, parent: Box, kind: bytes) -> Box | None:
    return next((b for b in iter_boxes(data, parent.body, parent.end) if b.kind == kind), None)


def _handler(data, trak: Box) -> bytes | None:
    mdia = child(data, trak, b"mdia")
    hdlr = mdia and child(data, mdia, b"hdlr")
    # FullBox header, pre_defined, then the handler type
    return bytes(data[hdlr.body + 8:hdlr.body + 12]) if hdlr else None


def video_sample_entry_path(moov: bytes) -> list[Box]:
    """moov, trak, mdia, minf, stbl, stsd and the first sample entry of the first video track."""
    (root,) = [b for b in iter_boxes(moov) if b.kind == b"moov"]
    for trak in iter_boxes(moov, root.body, root.end):
        if trak.kind != b"trak" or _handler(moov, trak) != b"vide":
            continue
        path = [root, trak]
        for kind in (b"mdia", b"minf", b"stbl", b"stsd"):
            found = child(moov, path[-1], kind)
            if found is None:
                raise ValueError(f"damaged MP4: the video track has no {kind.decode()} box")
            path.append(found)
        stsd = path[-1]
        entry = next(iter_boxes(moov, stsd.body + 8, stsd.end), None)  # after FullBox + entry_count
        if entry is None:
            raise ValueError("damaged MP4: the video track has no sample entry")
        return path + [entry]
    raise ValueError("the MP4 file has no video track")


def sample_entry_children(moov: bytes, entry: Box) -> list[Box]:
    return list(iter_boxes(moov, entry.body + _VISUAL_SAMPLE_ENTRY_FIELDS, entry.end))


def _read_moov(path) -> tuple[Box, bytes]:
    moovs = [b for b in top_level_boxes(path) if b.kind == b"moov"]
    if len(moovs) != 1:
        raise ValueError(f"{os.fspath(path)} must hold exactly one moov box; found {len(moovs)}")
    with open(path, "rb") as f:
        f.seek(moovs[0].start)
        return moovs[0], f.read(moovs[0].size)


@dataclass(frozen=True)
class SphericalMetadata:
    sample_entry: str  # e.g. "avc1"
    stereo_mode: int | None  # st3d's byte, None without st3d
    projection: str | None  # "equirectangular" with sv3d/proj/equi, None without sv3d
    metadata_source: str | None
    pose: tuple[float, float, float] | None  # yaw, pitch, roll in degrees
    bounds: tuple[int, int, int, int] | None  # equi top, bottom, left, right (0.32 fixed point)


def read_spherical_metadata(path: str | os.PathLike) -> SphericalMetadata:
    """The st3d and sv3d contents of the first video track's sample entry."""
    _, moov = _read_moov(path)
    entry = video_sample_entry_path(moov)[-1]
    stereo = source = pose = bounds = projection = None
    for b in sample_entry_children(moov, entry):
        if b.kind == b"st3d":
            stereo = moov[b.body + 4]
        elif b.kind == b"sv3d":
            svhd_box = child(moov, b, b"svhd")
            if svhd_box:
                source = moov[svhd_box.body + 4:svhd_box.end].split(b"\x00")[0].decode("utf-8", "replace")
            proj_box = child(moov, b, b"proj")
            prhd_box = proj_box and child(moov, proj_box, b"prhd")
            equi_box = proj_box and child(moov, proj_box, b"equi")
            if prhd_box:
                pose = tuple(v / 65536 for v in struct.unpack_from(">iii", moov, prhd_box.body + 4))
            if equi_box:
                projection = "equirectangular"
                bounds = struct.unpack_from(">IIII", moov, equi_box.body + 4)
    return SphericalMetadata(entry.kind.decode("latin-1"), stereo, projection, source, pose, bounds)


def spherical_boxes(path: str | os.PathLike) -> bytes:
    """The st3d and sv3d boxes of the first video track's sample entry, as bytes (to copy them into
    another file with `inject_spherical_metadata`); empty when it has none."""
    _, moov = _read_moov(path)
    entry = video_sample_entry_path(moov)[-1]
    return b"".join(bytes(moov[b.start:b.end]) for b in sample_entry_children(moov, entry)
                    if b.kind in (b"st3d", b"sv3d"))


# ---------------------------------------------------------------------------------------------
# Writing boxes into a finished file
# ---------------------------------------------------------------------------------------------

def _set_size(buf: bytearray, b: Box, delta: int) -> None:
    if b.header == 16:
        struct.pack_into(">Q", buf, b.start + 8, b.size + delta)
    else:
        if b.size + delta >= 1 << 32:
            raise ValueError(f"the {b.kind.decode()} box would exceed 4 GiB")
        struct.pack_into(">I", buf, b.start, b.size + delta)


def _shift_chunk_offsets(moov: bytearray, shift: int, past: int) -> None:
    """Add `shift` to every chunk offset of every track that points beyond byte `past` (the media
    data there moved by that much; data before the movie box stays where it was)."""
    def walk(start: int, end: int) -> None:
        for b in iter_boxes(moov, start, end):
            if b.kind in _CONTAINERS:
                walk(b.body, b.end)
            elif b.kind in (b"stco", b"co64"):
                (count,) = struct.unpack_from(">I", moov, b.body + 4)
                wide = b.kind == b"co64"
                fmt, step = (">Q", 8) if wide else (">I", 4)
                for i in range(count):
                    at = b.body + 8 + i * step
                    (offset,) = struct.unpack_from(fmt, moov, at)
                    if offset < past:
                        continue
                    if not wide and offset + shift >= 1 << 32:
                        raise ValueError("chunk offsets would overflow stco; rewrite the file without faststart")
                    struct.pack_into(fmt, moov, at, offset + shift)
    walk(0, len(moov))


def with_sample_entry_boxes(moov: bytes, boxes: bytes) -> bytes:
    """A copy of the moov box whose video sample entry ends with `boxes` (replacing any st3d/sv3d
    already there), with the sizes of the entry and all its parents fixed."""
    path = video_sample_entry_path(moov)
    entry = path[-1]
    kept = b"".join(
        moov[b.start:b.end] for b in sample_entry_children(moov, entry) if b.kind not in _SPHERICAL
    )
    fields_end = entry.body + _VISUAL_SAMPLE_ENTRY_FIELDS
    new_entry_tail = kept + boxes
    delta = len(new_entry_tail) - (entry.end - fields_end)
    out = bytearray(moov[:fields_end]) + new_entry_tail + moov[entry.end:]
    for b in path:  # every box on the path starts before the edit, so its header did not move
        _set_size(out, b, delta)
    return bytes(out)


def inject_spherical_metadata(path: str | os.PathLike, boxes: bytes) -> None:
    """Put `boxes` (e.g. `st3d(...)`, `vr180_boxes(...)`) at the end of the video sample entry of
    the MP4 file at `path`, in place.

    With the movie box after the media data (FFmpeg's default) only the movie box is rewritten.
    With the movie box first (faststart) the media data moves by the growth, so every chunk offset
    moves too and the file is rewritten through a temporary file next to it.
    """
    path = os.fspath(path)
    moov_box, moov = _read_moov(path)
    new_moov = bytearray(with_sample_entry_boxes(moov, boxes))
    growth = len(new_moov) - moov_box.size
    media_after = any(b.kind == b"mdat" and b.start > moov_box.start for b in top_level_boxes(path))
    if media_after:
        _shift_chunk_offsets(new_moov, growth, moov_box.end)
    total = os.path.getsize(path)
    if not media_after:
        with open(path, "r+b") as f:
            f.seek(moov_box.end)
            tail = f.read()  # boxes after the movie box (usually none): small
            f.seek(moov_box.start)
            f.write(new_moov)
            f.write(tail)
            f.truncate()
        return
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".mp4.part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            _copy(src, out, 0, moov_box.start)
            out.write(new_moov)
            _copy(src, out, moov_box.end, total)
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy(src, dst, start: int, end: int, block: int = 1 << 22) -> None:
    src.seek(start)
    left = end - start
    while left > 0:
        chunk = src.read(min(block, left))
        if not chunk:
            raise ValueError("the MP4 file ended early")
        dst.write(chunk)
        left -= len(chunk)
