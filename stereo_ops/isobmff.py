"""A small ISOBMFF reader/writer: just what a HEIF still image needs to gain entity groups and item
properties after an encoder has written it.

Box and field names follow ISO/IEC 14496-12 (the base format: box headers, `meta`, `iloc`, `iinf`,
`pitm`, `grpl`, EntityToGroupBox) and ISO/IEC 23008-12 (HEIF: `iprp`/`ipco`/`ipma`, `ispe`, the
`ster` stereo pair group, and the camera intrinsic/extrinsic matrix properties `cmin`/`cmex`).
One small function per box; writers return whole boxes as bytes, parsers take the file's bytes and
a parsed `Box`.

Adding boxes to `meta` moves every byte after them, so `insert_into_meta` rewrites the sizes of the
enclosing boxes and every `iloc` offset (file offsets, construction method 0) that points at or
past an inserted byte. Offsets relative to `idat` (method 1) or to another item (method 2) are
relative to data that moves as a whole, and stay as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

# Boxes whose payload is a sequence of boxes, and how many bytes come before the first child
# (the FullBox version/flags, and the entry count of iinf).
_CONTAINERS = {b"meta", b"iprp", b"ipco", b"dinf", b"grpl", b"iinf", b"moov", b"trak", b"mdia", b"minf"}
_FULL_BOX_CONTAINERS = {b"meta", b"iinf"}


# --- box headers (14496-12 4.2) -----------------------------------------------------------------

def box_header(box_type: bytes, payload_size: int) -> bytes:
    """Box header: 32-bit size and type, or size 1 and a 64-bit largesize when it does not fit."""
    _check_type(box_type)
    size = 8 + payload_size
    if size <= 0xFFFFFFFF:
        return struct.pack(">I4s", size, box_type)
    return struct.pack(">I4sQ", 1, box_type, size + 8)


def full_box_header(box_type: bytes, version: int, flags: int, payload_size: int) -> bytes:
    """FullBox header: the box header, then an 8-bit version and 24-bit flags."""
    return box_header(box_type, payload_size + 4) + struct.pack(">I", (version << 24) | (flags & 0xFFFFFF))


def box(box_type: bytes, payload: bytes) -> bytes:
    return box_header(box_type, len(payload)) + payload


def full_box(box_type: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return full_box_header(box_type, version, flags, len(payload)) + payload


def _check_type(box_type: bytes) -> None:
    if len(box_type) != 4:
        raise ValueError(f"a box type is four bytes, got {box_type!r}")


# --- parsing the box tree -----------------------------------------------------------------------

@dataclass
class Box:
    """One box of a file: where it starts, its whole size, its header size, its children."""

    type: bytes
    start: int
    size: int
    header_size: int
    children: list[Box] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def payload_start(self) -> int:
        return self.start + self.header_size

    def payload(self, data: bytes) -> bytes:
        return data[self.payload_start:self.end]

    def child(self, box_type: bytes) -> Box | None:
        return next((c for c in self.children if c.type == box_type), None)

    def children_of_type(self, box_type: bytes) -> list[Box]:
        return [c for c in self.children if c.type == box_type]


def read_box_header(data: bytes, offset: int, end: int) -> tuple[bytes, int, int]:
    """(type, size, header size) of the box at `offset`; size 0 means "to the end"."""
    if end - offset < 8:
        raise ValueError(f"truncated box header at byte {offset}")
    size, box_type = struct.unpack_from(">I4s", data, offset)
    header = 8
    if size == 1:
        if end - offset < 16:
            raise ValueError(f"truncated largesize of {box_type!r} at byte {offset}")
        (size,) = struct.unpack_from(">Q", data, offset + 8)
        header = 16
    elif size == 0:
        size = end - offset
    if box_type == b"uuid":
        header += 16
    if size < header or offset + size > end:
        raise ValueError(f"box {box_type!r} at byte {offset} has size {size}, outside its parent (ends at {end})")
    return box_type, size, header


def read_full_box_header(data: bytes, box: Box) -> tuple[int, int]:
    """(version, flags) of a FullBox."""
    (word,) = struct.unpack_from(">I", data, box.payload_start)
    return word >> 24, word & 0xFFFFFF


def _read_id(data: bytes, at: int, wide: bool) -> tuple[int, int]:
    """A 16-bit or (wide) 32-bit id or count, and the offset after it."""
    return (struct.unpack_from(">I", data, at)[0], at + 4) if wide else (struct.unpack_from(">H", data, at)[0], at + 2)


def parse_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes between `start` and `end`, with the children of the containers HEIF uses."""
    end = len(data) if end is None else end
    boxes, offset = [], start
    while offset < end:
        box_type, size, header = read_box_header(data, offset, end)
        parsed = Box(box_type, offset, size, header)
        if box_type in _CONTAINERS:
            parsed.children = parse_boxes(data, _first_child(data, parsed), parsed.end)
        boxes.append(parsed)
        offset += size
    return boxes


def _first_child(data: bytes, container: Box) -> int:
    offset = container.payload_start
    if container.type in _FULL_BOX_CONTAINERS:
        version, _ = read_full_box_header(data, container)
        offset += 4
        if container.type == b"iinf":
            offset += 2 if version == 0 else 4
    return offset


def find_path(boxes: Sequence[Box], *types: bytes) -> list[Box]:
    """The boxes along a path of types from the top (e.g. meta, iprp, ipco); raises if absent."""
    path, level = [], list(boxes)
    for box_type in types:
        found = next((b for b in level if b.type == box_type), None)
        if found is None:
            where = "/".join(t.decode() for t in types)
            raise ValueError(f"not a HEIF file as expected: no {box_type.decode()} box on the path {where}")
        path.append(found)
        level = found.children
    return path


# --- ftyp, pitm, infe, ispe (14496-12 4.3, 8.11.4, 8.11.6; 23008-12 6.5.3) ---------------------

@dataclass(frozen=True)
class FileType:
    major_brand: bytes
    minor_version: int
    compatible_brands: tuple[bytes, ...]


def parse_file_type_box(data: bytes, box: Box) -> FileType:
    payload = box.payload(data)
    major, minor = struct.unpack_from(">4sI", payload)
    brands = tuple(payload[i:i + 4] for i in range(8, len(payload) - 3, 4))
    return FileType(major, minor, brands)


def parse_primary_item_box(data: bytes, box: Box) -> int:
    version, _ = read_full_box_header(data, box)
    return struct.unpack_from(">H" if version == 0 else ">I", data, box.payload_start + 4)[0]


@dataclass(frozen=True)
class ItemInfo:
    item_id: int
    item_type: bytes
    hidden: bool
    content_type: str = ""


def parse_item_info_entry(data: bytes, box: Box) -> ItemInfo:
    """An `infe` of version 2 or 3 (the versions HEIF allows)."""
    version, flags = read_full_box_header(data, box)
    if version not in (2, 3):
        raise ValueError(f"infe version {version} is not a HEIF item info entry (versions 2 and 3)")
    at = box.payload_start + 4
    item_id, at = _read_id(data, at, wide=version == 3)
    item_type = bytes(data[at + 2:at + 6])
    content_type = ""
    if item_type == b"mime":
        strings = bytes(data[at + 6:box.end]).split(b"\x00")
        content_type = strings[1].decode("utf-8", "replace") if len(strings) > 1 else ""
    return ItemInfo(item_id, item_type, bool(flags & 1), content_type)


def parse_item_infos(data: bytes, meta: Box) -> list[ItemInfo]:
    (iinf,) = find_path(meta.children, b"iinf")
    return [parse_item_info_entry(data, infe) for infe in iinf.children_of_type(b"infe")]


def parse_image_spatial_extents(data: bytes, box: Box) -> tuple[int, int]:
    """`ispe`: (width, height)."""
    return struct.unpack_from(">II", data, box.payload_start + 4)


# --- iref (14496-12 8.11.12) ---------------------------------------------------------------------

@dataclass(frozen=True)
class ItemReference:
    reference_type: bytes
    from_item_id: int
    to_item_ids: tuple[int, ...]


def parse_item_reference_box(data: bytes, box: Box) -> list[ItemReference]:
    """`iref`: SingleItemTypeReferenceBoxes with 16-bit ids (version 0) or 32-bit ids (version 1)."""
    version, _ = read_full_box_header(data, box)
    fmt, step = (">H", 2) if version == 0 else (">I", 4)
    references = []
    for child in parse_boxes(data, box.payload_start + 4, box.end):
        at = child.payload_start
        (from_id,) = struct.unpack_from(fmt, data, at)
        (count,) = struct.unpack_from(">H", data, at + step)
        to_ids = tuple(struct.unpack_from(fmt, data, at + step + 2 + step * k)[0] for k in range(count))
        references.append(ItemReference(child.type, from_id, to_ids))
    return references


# --- iloc (14496-12 8.11.3) ---------------------------------------------------------------------

@dataclass(frozen=True)
class Extent:
    index: int
    offset: int
    length: int


@dataclass(frozen=True)
class ItemLocation:
    item_id: int
    construction_method: int
    data_reference_index: int
    base_offset: int
    extents: tuple[Extent, ...]


@dataclass(frozen=True)
class ItemLocationBox:
    version: int
    offset_size: int
    length_size: int
    base_offset_size: int
    index_size: int
    items: tuple[ItemLocation, ...]


def _read_uint(data: bytes, at: int, size: int) -> tuple[int, int]:
    if size not in (0, 4, 8):
        raise ValueError(f"iloc field size {size} is not 0, 4 or 8")
    return (int.from_bytes(data[at:at + size], "big") if size else 0), at + size


def _uint(value: int, size: int, what: str) -> bytes:
    if size == 0:
        if value:
            raise ValueError(f"iloc has no room for {what} {value} (its field size is 0)")
        return b""
    if value < 0 or value >= 1 << (8 * size):
        raise ValueError(f"iloc {what} {value} does not fit its {8 * size}-bit field")
    return value.to_bytes(size, "big")


def parse_item_location_box(data: bytes, box: Box) -> ItemLocationBox:
    version, _ = read_full_box_header(data, box)
    if version > 2:
        raise ValueError(f"iloc version {version} is not defined (0, 1, 2)")
    at = box.payload_start + 4
    sizes, packed = data[at], data[at + 1]
    offset_size, length_size, base_offset_size = sizes >> 4, sizes & 15, packed >> 4
    index_size = packed & 15 if version > 0 else 0
    at += 2
    count, at = _read_id(data, at, wide=version == 2)
    items = []
    for _ in range(count):
        item_id, at = _read_id(data, at, wide=version == 2)
        method = 0
        if version > 0:
            method, at = struct.unpack_from(">H", data, at)[0] & 15, at + 2
        (reference,) = struct.unpack_from(">H", data, at)
        base, at = _read_uint(data, at + 2, base_offset_size)
        (n_extents,) = struct.unpack_from(">H", data, at)
        at += 2
        extents = []
        for _ in range(n_extents):
            index, at = _read_uint(data, at, index_size) if version > 0 else (0, at)
            offset, at = _read_uint(data, at, offset_size)
            length, at = _read_uint(data, at, length_size)
            extents.append(Extent(index, offset, length))
        items.append(ItemLocation(item_id, method, reference, base, tuple(extents)))
    if at > box.end:
        raise ValueError("iloc is shorter than its item entries")
    return ItemLocationBox(version, offset_size, length_size, base_offset_size, index_size, tuple(items))


def item_location_box(iloc: ItemLocationBox, flags: int = 0) -> bytes:
    v = iloc.version
    index_size = iloc.index_size if v else 0  # reserved in version 0
    payload = bytearray([(iloc.offset_size << 4) | iloc.length_size, (iloc.base_offset_size << 4) | index_size])
    payload += struct.pack(">H" if v < 2 else ">I", len(iloc.items))
    for item in iloc.items:
        payload += struct.pack(">H" if v < 2 else ">I", item.item_id)
        if v > 0:
            payload += struct.pack(">H", item.construction_method)
        payload += struct.pack(">H", item.data_reference_index)
        payload += _uint(item.base_offset, iloc.base_offset_size, "base_offset")
        payload += struct.pack(">H", len(item.extents))
        for extent in item.extents:
            if v > 0:
                payload += _uint(extent.index, iloc.index_size, "extent_index")
            payload += _uint(extent.offset, iloc.offset_size, "extent_offset")
            payload += _uint(extent.length, iloc.length_size, "extent_length")
    return full_box(b"iloc", v, flags, bytes(payload))


def item_file_extents(iloc: ItemLocationBox, item_id: int) -> list[tuple[int, int]]:
    """(file offset, length) of each extent of an item stored in this file (construction method 0)."""
    item = next((i for i in iloc.items if i.item_id == item_id), None)
    if item is None:
        raise ValueError(f"item {item_id} has no iloc entry")
    if item.construction_method != 0 or item.data_reference_index != 0:
        return []
    return [(item.base_offset + e.offset, e.length) for e in item.extents]


# --- ipma (23008-12 9.3.3) ----------------------------------------------------------------------

@dataclass(frozen=True)
class ItemPropertyAssociationBox:
    version: int
    flags: int
    # item id -> (essential, 1-based property index in ipco) in order
    associations: dict[int, tuple[tuple[bool, int], ...]]


def parse_item_property_association_box(data: bytes, box: Box) -> ItemPropertyAssociationBox:
    version, flags = read_full_box_header(data, box)
    at = box.payload_start + 4
    (count,) = struct.unpack_from(">I", data, at)
    at += 4
    associations: dict[int, tuple[tuple[bool, int], ...]] = {}
    for _ in range(count):
        item_id, at = _read_id(data, at, wide=version >= 1)
        n = data[at]
        at += 1
        entries = []
        for _ in range(n):
            if flags & 1:
                (word,) = struct.unpack_from(">H", data, at)
                entries.append((bool(word >> 15), word & 0x7FFF))
                at += 2
            else:
                entries.append((bool(data[at] >> 7), data[at] & 0x7F))
                at += 1
        associations[item_id] = tuple(entries)
    return ItemPropertyAssociationBox(version, flags, associations)


def item_property_association_box(ipma: ItemPropertyAssociationBox) -> bytes:
    """`ipma`, switching to 15-bit property indices (flags bit 0) when an index needs them."""
    flags = ipma.flags
    if any(index > 0x7F for entries in ipma.associations.values() for _, index in entries):
        flags |= 1
    payload = bytearray(struct.pack(">I", len(ipma.associations)))
    for item_id, entries in ipma.associations.items():
        if ipma.version < 1 and item_id > 0xFFFF:
            raise ValueError(f"item id {item_id} does not fit an ipma of version 0")
        payload += struct.pack(">H" if ipma.version < 1 else ">I", item_id)
        if len(entries) > 255:
            raise ValueError(f"item {item_id} has more than 255 property associations")
        payload.append(len(entries))
        for essential, index in entries:
            if flags & 1:
                payload += struct.pack(">H", (essential << 15) | index)
            else:
                payload.append((essential << 7) | index)
    return full_box(b"ipma", ipma.version, flags, bytes(payload))


# --- entity groups (14496-12 8.18; 23008-12 6.8.4 `ster`) ---------------------------------------

def entity_to_group_box(grouping_type: bytes, group_id: int, entity_ids: Sequence[int]) -> bytes:
    """EntityToGroupBox, FullBox version 0: group_id, num_entities_in_group, entity ids."""
    payload = struct.pack(f">II{len(entity_ids)}I", group_id, len(entity_ids), *entity_ids)
    return full_box(grouping_type, 0, 0, payload)


def stereo_pair_group_box(group_id: int, left_id: int, right_id: int) -> bytes:
    """The `ster` group: the left view's entity first, then the right view's."""
    return entity_to_group_box(b"ster", group_id, (left_id, right_id))


def groups_list_box(groups: Iterable[bytes]) -> bytes:
    """`grpl`: a plain box holding EntityToGroupBoxes."""
    return box(b"grpl", b"".join(groups))


@dataclass(frozen=True)
class EntityGroup:
    grouping_type: bytes
    group_id: int
    entity_ids: tuple[int, ...]


def parse_entity_to_group_box(data: bytes, box: Box) -> EntityGroup:
    at = box.payload_start + 4
    group_id, n = struct.unpack_from(">II", data, at)
    if 8 + 4 * n > box.end - at:
        raise ValueError(f"{box.type!r} group lists {n} entities but is too short for them")
    return EntityGroup(box.type, group_id, struct.unpack_from(f">{n}I", data, at + 8))


def parse_groups(data: bytes, meta: Box) -> list[EntityGroup]:
    grpl = meta.child(b"grpl")
    return [parse_entity_to_group_box(data, g) for g in grpl.children] if grpl else []


# --- camera matrices (23008-12 Amd: `cmin`, `cmex`) ---------------------------------------------
# Layout as libheif reads and writes them, which is the layout found in the files Apple's ImageIO
# writes for spatial photos: cmin holds the focal length and principal point as fractions of the
# image width/height in signed fixed point, the denominator shift in flags bits 8-12 (bit 0: a
# separate vertical focal length and skew follow); cmex holds the camera position in micrometres,
# each coordinate only where its flag is set (0x1 x, 0x2 y, 0x4 z; 0x8 an orientation, 0x20 a
# world coordinate system id).

CMEX_POS_X, CMEX_POS_Y, CMEX_POS_Z = 0x1, 0x2, 0x4


def _fixed_point_shift(values: Sequence[float], most: int = 28) -> int:
    largest = max(abs(v) for v in values)
    shift = most
    while shift > 0 and largest * (1 << shift) >= 1 << 31:
        shift -= 1
    return shift


def camera_intrinsic_matrix_box(focal_x: float, principal_x: float, principal_y: float) -> bytes:
    """`cmin` for a square-pixel pinhole without skew; all values relative to the image size."""
    shift = _fixed_point_shift((focal_x, principal_x, principal_y))
    scale = 1 << shift
    payload = struct.pack(">iii", round(focal_x * scale), round(principal_x * scale), round(principal_y * scale))
    return full_box(b"cmin", 0, shift << 8, payload)


def parse_camera_intrinsic_matrix_box(data: bytes, box: Box) -> tuple[float, float, float]:
    """(focal x, principal point x, principal point y), relative to the image width/height."""
    version, flags = read_full_box_header(data, box)
    if version != 0:
        raise ValueError(f"cmin version {version} is not supported")
    scale = float(1 << ((flags >> 8) & 0x1F))
    fx, px, py = struct.unpack_from(">iii", data, box.payload_start + 4)
    return fx / scale, px / scale, py / scale


def camera_extrinsic_matrix_box(position_um: tuple[int, int, int]) -> bytes:
    """`cmex` with the camera position only (identity rotation, default coordinate system)."""
    flags, payload = 0, b""
    for flag, value in zip((CMEX_POS_X, CMEX_POS_Y, CMEX_POS_Z), position_um):
        if value:
            flags |= flag
            payload += struct.pack(">i", value)
    return full_box(b"cmex", 0, flags, payload)


def parse_camera_extrinsic_matrix_box(data: bytes, box: Box) -> tuple[int, int, int]:
    """The camera position in micrometres (absent coordinates are 0)."""
    _, flags = read_full_box_header(data, box)
    at, position = box.payload_start + 4, []
    for flag in (CMEX_POS_X, CMEX_POS_Y, CMEX_POS_Z):
        if flags & flag:
            position.append(struct.unpack_from(">i", data, at)[0])
            at += 4
        else:
            position.append(0)
    return position[0], position[1], position[2]


def item_properties(data: bytes, meta: Box, item_id: int) -> list[Box]:
    """The property boxes associated with an item, in association order."""
    iprp, ipco = find_path(meta.children, b"iprp", b"ipco")
    found = []
    for ipma_box in iprp.children_of_type(b"ipma"):
        ipma = parse_item_property_association_box(data, ipma_box)
        for _, index in ipma.associations.get(item_id, ()):
            if index:
                found.append(ipco.children[index - 1])
    return found


# --- inserting boxes into meta, and moving what they push back ----------------------------------

@dataclass(frozen=True)
class Splice:
    """Replace `remove` bytes at `at` (an offset in the original file) by `insert`."""

    at: int
    remove: int
    insert: bytes

    @property
    def growth(self) -> int:
        return len(self.insert) - self.remove


def apply_splices(data: bytes, splices: Sequence[Splice]) -> bytes:
    out, cursor = bytearray(), 0
    for s in sorted(splices, key=lambda s: (s.at, s.remove)):
        if s.at < cursor:
            raise ValueError(f"overlapping edits at byte {s.at}")
        out += data[cursor:s.at]
        out += s.insert
        cursor = s.at + s.remove
    out += data[cursor:]
    return bytes(out)


def moved_offset(offset: int, splices: Sequence[Splice]) -> int:
    """Where the byte at `offset` of the original file lands after the splices."""
    moved = offset
    for s in splices:
        if s.growth == 0:
            continue
        if s.remove and s.at <= offset < s.at + s.remove:
            raise ValueError(f"an iloc offset ({offset}) points into a box being rewritten")
        if offset >= s.at + s.remove:
            moved += s.growth
    return moved


def _resized(data: bytes, container: Box, growth: int) -> Splice | None:
    """The size field of a container that grows by `growth` bytes (none for size 0, "to the end")."""
    if struct.unpack_from(">I", data, container.start)[0] == 0:
        return None
    size = container.size + growth
    if container.header_size == 16:  # size 1 and a 64-bit largesize
        return Splice(container.start + 8, 8, struct.pack(">Q", size))
    if size > 0xFFFFFFFF:
        raise ValueError(f"{container.type.decode()} would outgrow its 32-bit size field")
    return Splice(container.start, 4, struct.pack(">I", size))


def _moved_location(item: ItemLocation, splices: Sequence[Splice]) -> ItemLocation:
    if item.construction_method != 0 or item.data_reference_index != 0:
        return item  # relative to idat, another item, or another file: nothing of it moves
    base = moved_offset(item.base_offset, splices) if item.base_offset else 0
    extents = tuple(replace(e, offset=moved_offset(item.base_offset + e.offset, splices) - base) for e in item.extents)
    return replace(item, base_offset=base, extents=extents)


def insert_into_meta(
    data: bytes,
    properties: Mapping[int, Sequence[bytes]] | None = None,
    groups: Sequence[bytes] = (),
) -> bytes:
    """Add item properties (appended to `ipco`, associated as non-essential in `ipma`) and entity
    groups (in `grpl`, created at the end of `meta` if absent) to a HEIF file; every size and
    file offset that the added bytes move is rewritten."""
    properties = properties or {}
    top = parse_boxes(data)
    meta, iprp, ipco = find_path(top, b"meta", b"iprp", b"ipco")
    ipma_boxes = iprp.children_of_type(b"ipma")
    if not ipma_boxes:
        raise ValueError("not a HEIF file as expected: no ipma box in meta/iprp")

    splices: list[Splice] = []
    growth: dict[int, int] = {}  # id() of a container -> bytes it gains

    def grow(at: int, remove: int, insert: bytes, *owners: Box) -> None:
        splices.append(Splice(at, remove, insert))
        for owner in owners:
            growth[id(owner)] = growth.get(id(owner), 0) + len(insert) - remove

    new_properties = b"".join(p for boxes in properties.values() for p in boxes)
    if new_properties:
        grow(ipco.end, 0, new_properties, ipco, iprp, meta)
        ipmas = [parse_item_property_association_box(data, b) for b in ipma_boxes]
        associations = [dict(ipma.associations) for ipma in ipmas]
        index = len(ipco.children)
        for item_id, boxes in properties.items():
            # An item appears in one ipma at most: extend its own, or the first one.
            k = next((k for k, a in enumerate(associations) if item_id in a), 0)
            added = tuple((False, index + j + 1) for j in range(len(boxes)))  # 1-based, not essential
            associations[k][item_id] = associations[k].get(item_id, ()) + added
            index += len(boxes)
        for ipma_box, ipma, new in zip(ipma_boxes, ipmas, associations):
            if new != ipma.associations:
                rewritten = item_property_association_box(replace(ipma, associations=new))
                grow(ipma_box.start, ipma_box.size, rewritten, iprp, meta)

    grpl = meta.child(b"grpl")
    if groups and grpl is None:
        grow(meta.end, 0, groups_list_box(groups), meta)
    elif groups:
        grow(grpl.end, 0, b"".join(groups), grpl, meta)

    sizes = [_resized(data, c, growth[id(c)]) for c in (meta, iprp, ipco, grpl) if c is not None and growth.get(id(c))]
    sizes = [s for s in sizes if s is not None]

    iloc_box = meta.child(b"iloc")
    if iloc_box is not None:
        iloc = parse_item_location_box(data, iloc_box)
        moved = replace(iloc, items=tuple(_moved_location(i, splices) for i in iloc.items))
        _, iloc_flags = read_full_box_header(data, iloc_box)
        rewritten = item_location_box(moved, iloc_flags)
        if len(rewritten) != iloc_box.size:
            raise ValueError("iloc changed size while moving its offsets")
        sizes.append(Splice(iloc_box.start, iloc_box.size, rewritten))
    return apply_splices(data, splices + sizes)
