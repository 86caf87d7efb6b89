"""Apple spatial photos (HEIC): the boxes against ISO/IEC 14496-12 and 23008-12, both eyes decoded
back, the metadata read back, an independent reader (libheif's heif-info), and the ISOBMFF editing
(sizes and iloc offsets) on hand-made files."""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import warnings

import numpy as np
import pytest
from PIL import Image

from stereo_pack.stereo_ops import isobmff
from stereo_pack.stereo_ops.pair_parallax import horizontal_parallax_range
from stereo_pack.stereo_ops.comfort import ParallaxBudget
from stereo_pack.stereo_ops.spatial_photo import (
    DEFAULT_BASELINE_MM,
    DEFAULT_HORIZONTAL_FOV_DEG,
    adjustment_into_budget,
    default_budget,
    pair_disparity_adjustment,
    read_spatial_photo,
    spatial_photo_bytes,
)
from stereo_pack.stereo_ops.synthetic_scenes import layered_scene


@pytest.fixture(scope="module")
def pillow_heif():
    """Encoding and decoding need pillow-heif; the ISOBMFF and parallax tests do not."""
    return pytest.importorskip("pillow_heif", reason="pillow-heif is a test extra (pip install .[test])")


SHIFT = 3  # pixels the right view's content sits left of the left view's (crossed parallax)


def photo_like(width=96, height=64, seed=0) -> np.ndarray:
    """Smooth colour and fine luminance detail, the statistics of a photo (its chroma is not
    finer than 4:2:0 keeps), as uint8 (H, W, 3)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=(3, 2))
    base = np.stack([0.5 + 0.3 * np.sin(x / 23 + phase[c, 0]) * np.cos(y / 17 + phase[c, 1]) for c in range(3)], -1)
    detail = 0.15 * np.sin(x / 3.1 + phase[0, 0]) * np.sin(y / 4.3)
    return (np.clip(base + detail[..., None], 0, 1) * 255).round().astype(np.uint8)


def pair(width=96, height=64):
    wide = photo_like(width + SHIFT, height)
    left, right = wide[:, :width], wide[:, SHIFT:].copy()  # content moves left in the right view: in front of the screen
    right[:, width // 2 - 8:width // 2 + 8] = 128  # a grey patch only the right eye has
    return Image.fromarray(left), Image.fromarray(right)


@pytest.fixture(scope="module")
def spatial(pillow_heif):
    left, right = pair()
    return left, right, spatial_photo_bytes(left, right)


def psnr(a, b) -> float:
    err = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return math.inf if err == 0 else 10 * math.log10(255**2 / err)


# --- the file against the standard ---------------------------------------------------------------

def test_boxes_follow_the_standard(spatial):
    _, _, data = spatial
    top = isobmff.parse_boxes(data)
    assert [b.type for b in top][:2] == [b"ftyp", b"meta"]
    assert sum(b.size for b in top) == len(data)
    ftyp = isobmff.parse_file_type_box(data, top[0])
    assert ftyp.major_brand == b"heic" and {b"mif1", b"heic"} <= set(ftyp.compatible_brands)

    meta = top[1]
    assert meta.children[0].type == b"hdlr" and data[meta.children[0].payload_start + 8:][:4] == b"pict"
    infos = {i.item_id: i for i in isobmff.parse_item_infos(data, meta)}
    images = [i for i, info in infos.items() if info.item_type == b"hvc1"]
    assert len(images) == 2 and not any(infos[i].hidden for i in images)
    primary = isobmff.parse_primary_item_box(data, meta.child(b"pitm"))
    assert primary == images[0]

    iloc = isobmff.parse_item_location_box(data, meta.child(b"iloc"))
    assert {item.item_id for item in iloc.items} == set(infos)
    mdat = next(b for b in top if b.type == b"mdat")
    for item in iloc.items:
        extents = isobmff.item_file_extents(iloc, item.item_id)
        assert extents, f"item {item.item_id} is not stored in this file"
        for offset, length in extents:
            assert mdat.payload_start <= offset and offset + length <= mdat.end <= len(data)
    # Each image's data starts with a length-prefixed HEVC NAL unit that fits its extent.
    for item_id in images:
        ((offset, length),) = isobmff.item_file_extents(iloc, item_id)
        (nal,) = struct.unpack_from(">I", data, offset)
        assert 0 < nal <= length - 4

    (group,) = isobmff.parse_groups(data, meta)
    assert group.grouping_type == b"ster" and group.entity_ids == tuple(images)  # left (primary) first
    assert group.group_id not in infos  # groups and items share one id space
    assert meta.child(b"grpl").children[0].size == 12 + 4 + 4 + 8  # FullBox v0, id, count, two ids


def test_each_image_carries_camera_properties(spatial):
    left, _, data = spatial
    (meta,) = isobmff.find_path(isobmff.parse_boxes(data), b"meta")
    info = read_spatial_photo(data)
    for item_id in (info.left_id, info.right_id):
        types = [p.type for p in isobmff.item_properties(data, meta, item_id)]
        assert types[0] == b"hvcC" and {b"ispe", b"cmin", b"cmex"} <= set(types)
        ispe = next(p for p in isobmff.item_properties(data, meta, item_id) if p.type == b"ispe")
        assert isobmff.parse_image_spatial_extents(data, ispe) == left.size
    # f = (W/2) / tan(FOV/2), stored relative to the width
    expected = 0.5 / math.tan(math.radians(DEFAULT_HORIZONTAL_FOV_DEG) / 2)
    assert info.focal_x == pytest.approx(expected, abs=1e-8)
    assert info.positions_um == {info.left_id: (0, 0, 0), info.right_id: (round(DEFAULT_BASELINE_MM * 1000), 0, 0)}


def test_metadata_reads_back(spatial):
    left, right, data = spatial
    info = read_spatial_photo(data)
    w, h = left.size
    f = (w / 2) / math.tan(math.radians(DEFAULT_HORIZONTAL_FOV_DEG) / 2)
    for item_id, position in ((info.left_id, [0, 0, 0]), (info.right_id, [DEFAULT_BASELINE_MM / 1000, 0, 0])):
        xmp = info.xmp[item_id]
        assert float(xmp["HorizontalFOV"]) == DEFAULT_HORIZONTAL_FOV_DEG
        assert float(xmp["Baseline"]) == DEFAULT_BASELINE_MM
        assert xmp["CameraModelType"] == "SimplifiedPinhole"
        assert [float(v) for v in xmp["CameraIntrinsics"].split()] == pytest.approx([f, 0, w / 2, 0, f, h / 2, 0, 0, 1], rel=1e-5)
        assert [float(v) for v in xmp["CameraExtrinsicsRotation"].split()] == [1, 0, 0, 0, 1, 0, 0, 0, 1]
        assert [float(v) for v in xmp["CameraExtrinsicsPosition"].split()] == pytest.approx(position)
        # The pair's content is SHIFT px (3.1 %) in front of the screen, beyond a VR headset's
        # comfortable crossed parallax: the adjustment pushes it back to that limit (measured in
        # whole pixels).
        limit = default_budget().crossed_pct / 100
        assert float(xmp["HorizontalDisparityAdjustment"]) == pytest.approx(SHIFT / w - limit, abs=1.5 / w)


def test_explicit_values_are_written(pillow_heif):
    left, right = pair()
    data = spatial_photo_bytes(left, right, horizontal_fov_deg=45.0, baseline_mm=20.5, disparity_adjustment=-0.0125)
    info = read_spatial_photo(data)
    xmp = info.xmp[info.right_id]
    assert (float(xmp["HorizontalFOV"]), float(xmp["Baseline"]), float(xmp["HorizontalDisparityAdjustment"])) == (45.0, 20.5, -0.0125)
    assert info.positions_um[info.right_id] == (20500, 0, 0)
    assert info.focal_x == pytest.approx(0.5 / math.tan(math.radians(22.5)), abs=1e-8)


# --- both eyes decode, left is left -------------------------------------------------------------

def test_both_eyes_decode_at_40_db_and_left_is_left(spatial, pillow_heif):
    left, right, data = spatial
    heif = pillow_heif.open_heif(io.BytesIO(data))
    assert len(heif) == 2 and heif.primary_index == 0
    decoded = [heif[i].to_pillow().convert("RGB") for i in range(2)]
    assert psnr(decoded[0], left) >= 40 and psnr(decoded[1], right) >= 40
    assert psnr(decoded[0], right) < 25 and psnr(decoded[1], left) < 25  # distinct eyes, not swapped
    # Pillow opens it as an ordinary HEIC: the primary image is the left one.
    pillow_heif.register_heif_opener()
    assert psnr(Image.open(io.BytesIO(data)).convert("RGB"), left) >= 40


def test_pillow_heif_reads_the_stereo_group(spatial, pillow_heif):
    _, _, data = spatial
    groups = pillow_heif.open_heif(io.BytesIO(data)).info.get("entity_groups")
    if groups is None:
        pytest.skip("this pillow-heif does not report entity groups (pillow-heif >= 1.2 with libheif >= 1.19 does)")
    (group,) = groups
    assert group["type"] == "ster" and group["images"] == [0, 1]


def test_detail_of_a_rendered_scene_survives_in_luma(pillow_heif):
    # Saturated colour textures of 16-pixel periods lose chroma to 4:2:0 (about 34 dB in RGB);
    # the luminance, what stereo vision matches, stays far above it.
    scene = layered_scene(64, 96)
    to_pil = lambda v: Image.fromarray((v.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))  # noqa: E731
    left, right = to_pil(scene.left), to_pil(scene.right)
    heif = pillow_heif.open_heif(io.BytesIO(spatial_photo_bytes(left, right)))
    for i, eye in enumerate((left, right)):
        assert psnr(heif[i].to_pillow().convert("L"), eye.convert("L")) >= 45


# --- an independent reader ----------------------------------------------------------------------

def _libheif_tool(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        warnings.warn(f"{name} (Debian: libheif-examples) not found: the independent reader check did NOT run")
        pytest.skip(f"{name} not found: install libheif-examples to check the file with an independent reader")
    return tool


def test_heif_info_accepts_the_file(spatial, tmp_path):
    tool = _libheif_tool("heif-info")
    _, _, data = spatial
    path = tmp_path / "pair_spatial.heic"
    path.write_bytes(data)
    listing = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("image: 96x64") == 2 and "primary" in listing.stdout
    dump = subprocess.run([tool, "-d", str(path)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    info = read_spatial_photo(data)
    if "group type: ster" in dump.stdout or "Box: ster" in dump.stdout:
        assert f"entity IDs: {info.left_id} {info.right_id}" in dump.stdout or (
            f"left image ID: {info.left_id}" in dump.stdout and f"right image ID: {info.right_id}" in dump.stdout
        )
    else:
        assert "grpl" in dump.stdout


def test_heif_convert_decodes_both_eyes(spatial, tmp_path):
    """A second decoder (the system's libheif with libde265) writes the two images in file order."""
    tool = _libheif_tool("heif-convert")
    left, right, data = spatial
    (tmp_path / "pair_spatial.heic").write_bytes(data)
    run = subprocess.run([tool, str(tmp_path / "pair_spatial.heic"), str(tmp_path / "eye.png")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    decoded = {p.name: Image.open(p).convert("RGB") for p in tmp_path.glob("eye*.png")}
    assert len(decoded) == 2, run.stdout
    # Each eye decodes; where the tool numbers the images (eye-1, eye-2), the left comes first.
    as_left = [name for name, image in decoded.items() if psnr(image, left) >= 40]
    as_right = [name for name, image in decoded.items() if psnr(image, right) >= 40]
    assert len(as_left) == len(as_right) == 1 and as_left != as_right
    if set(decoded) == {"eye-1.png", "eye-2.png"}:
        assert as_left == ["eye-1.png"]


# --- bad inputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"horizontal_fov_deg": 0.0}, "horizontal_fov_deg"),
    ({"horizontal_fov_deg": 180.0}, "horizontal_fov_deg"),
    ({"horizontal_fov_deg": math.nan}, "horizontal_fov_deg"),
    ({"baseline_mm": -1.0}, "baseline_mm"),
    ({"disparity_adjustment": 1.5}, "disparity_adjustment"),
    ({"quality": 0}, "quality"),
])
def test_bad_values_name_the_input(kwargs, match):
    left, right = pair(8, 8)
    with pytest.raises(ValueError, match=match):
        spatial_photo_bytes(left, right, **kwargs)


def test_odd_or_mismatched_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="left and right are 9x8.*even width and height"):
        spatial_photo_bytes(Image.new("RGB", (9, 8)), Image.new("RGB", (9, 8)))
    with pytest.raises(ValueError, match="same size"):
        spatial_photo_bytes(Image.new("RGB", (8, 8)), Image.new("RGB", (10, 8)))


# --- the parallax behind the disparity adjustment ------------------------------------------------

@pytest.mark.parametrize("divergence,convergence", [(6.0, 0.0), (4.0, 0.5), (3.0, 1.0)])
def test_parallax_range_of_a_rendered_scene(divergence, convergence):
    scene = layered_scene(96, 128, divergence=divergence, convergence=convergence)
    to_pil = lambda v: Image.fromarray((v.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))  # noqa: E731
    near, far = horizontal_parallax_range(to_pil(scene.left), to_pil(scene.right))
    s, step = divergence / 100, 1.5 / 128  # parallax of disparity D: -s (D - c); matching in whole pixels
    # The nearest: between the big near plane (D 0.8137) and the thin post (D 1); the farthest: the background (0.05).
    assert -s * (1.0 - convergence) - step <= near <= -s * (0.8137 - convergence) + step
    assert far == pytest.approx(-s * (0.05 - convergence), abs=step + 0.01)


@pytest.mark.parametrize("nearest,farthest,expected", [
    (-0.01, 0.01, 0.0),  # fits: the pair's own convergence stays
    (-0.05, -0.03, 0.03),  # in front beyond the crossed limit: pushed back to it
    (0.0, 0.04, -0.02),  # behind beyond the uncrossed limit: pulled forward to it
    (-0.05, 0.03, 0.01),  # wider than the budget: both sides overflow alike (the budget is symmetric)
])
def test_adjustment_moves_the_pair_into_the_budget_as_little_as_possible(nearest, farthest, expected):
    budget = ParallaxBudget(crossed_pct=2.0, uncrossed_pct=2.0)
    adjustment = adjustment_into_budget(nearest, farthest, budget)
    assert adjustment == pytest.approx(expected)
    near, far = nearest + adjustment, farthest + adjustment
    if farthest - nearest <= 0.04:
        assert -0.02 - 1e-12 <= near and far <= 0.02 + 1e-12
    else:
        assert near + 0.02 == pytest.approx(-(far - 0.02))
    assert adjustment_into_budget(-0.03, 0.01, ParallaxBudget(0.0, 0.0)) == pytest.approx(0.01)


def test_flat_pair_has_no_adjustment():
    flat = Image.new("RGB", (32, 32), (90, 120, 200))
    assert horizontal_parallax_range(flat, flat) is None
    assert pair_disparity_adjustment(flat, flat) == 0.0


# --- ISOBMFF editing on hand-made files ---------------------------------------------------------

def _tiny_heif(offset_size: int, base_offset_size: int, version: int, idat_item: bool, large_meta: bool = False) -> bytes:
    """ftyp, meta (hdlr, pitm, iloc, iinf, iprp, [idat]), mdat: item 1 in mdat, item 2 in idat or mdat."""
    ftyp = isobmff.box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")
    hdlr = isobmff.full_box(b"hdlr", 0, 0, b"\x00" * 4 + b"pict" + b"\x00" * 13)
    pitm = isobmff.full_box(b"pitm", 0, 0, struct.pack(">H", 1))
    infe = lambda i, t: isobmff.full_box(b"infe", 2, 0, struct.pack(">HH4s", i, 0, t) + b"\x00")  # noqa: E731
    iinf = isobmff.full_box(b"iinf", 0, 0, struct.pack(">H", 2) + infe(1, b"hvc1") + infe(2, b"Exif"))
    ispe = isobmff.full_box(b"ispe", 0, 0, struct.pack(">II", 2, 2))
    ipco = isobmff.box(b"ipco", ispe)
    ipma = isobmff.item_property_association_box(isobmff.ItemPropertyAssociationBox(0, 0, {1: ((False, 1),)}))
    iprp = isobmff.box(b"iprp", ipco + ipma)
    idat = isobmff.box(b"idat", b"IDATDATA") if idat_item else b""
    payload1, payload2 = b"FIRST-ITEM", b"SECOND-ITEM"

    def build(mdat_start: int) -> bytes:
        second = mdat_start + len(payload1)
        base1, base2 = (mdat_start, second) if base_offset_size else (0, 0)
        item2 = (isobmff.ItemLocation(2, 1, 0, 0, (isobmff.Extent(0, 4, 4),)) if idat_item
                 else isobmff.ItemLocation(2, 0, 0, base2, (isobmff.Extent(0, second - base2, len(payload2)),)))
        items = (isobmff.ItemLocation(1, 0, 0, base1, (isobmff.Extent(0, mdat_start - base1, len(payload1)),)), item2)
        iloc = isobmff.item_location_box(isobmff.ItemLocationBox(version, offset_size, 4, base_offset_size, 0, items))
        body = struct.pack(">I", 0) + hdlr + pitm + iloc + iinf + iprp + idat
        if large_meta:
            meta = struct.pack(">I4sQ", 1, b"meta", 16 + len(body)) + body
        else:
            meta = isobmff.box(b"meta", body)
        return ftyp + meta + isobmff.box(b"mdat", payload1 + payload2)

    first = build(0)
    return build(len(first) - len(payload1 + payload2))


def _item_bytes(data: bytes, item_id: int) -> bytes:
    (meta,) = isobmff.find_path(isobmff.parse_boxes(data), b"meta")
    iloc = isobmff.parse_item_location_box(data, meta.child(b"iloc"))
    item = next(i for i in iloc.items if i.item_id == item_id)
    if item.construction_method == 1:
        idat = meta.child(b"idat")
        return b"".join(data[idat.payload_start + e.offset:][:e.length] for e in item.extents)
    return b"".join(data[o:o + n] for o, n in isobmff.item_file_extents(iloc, item_id))


@pytest.mark.parametrize("offset_size,base_offset_size,version,idat_item,large_meta", [
    (4, 0, 0, False, False),
    (8, 0, 1, False, False),
    (4, 4, 1, True, False),
    (0, 8, 2, False, True),
])
def test_insert_moves_every_offset_past_the_inserted_bytes(offset_size, base_offset_size, version, idat_item, large_meta):
    data = _tiny_heif(offset_size, base_offset_size, version, idat_item, large_meta)
    before = {i: _item_bytes(data, i) for i in (1, 2)}
    assert before == {1: b"FIRST-ITEM", 2: b"DATA" if idat_item else b"SECOND-ITEM"}
    cmin = isobmff.camera_intrinsic_matrix_box(1.0, 0.5, 0.5)
    edited = isobmff.insert_into_meta(data, properties={1: [cmin]}, groups=[isobmff.stereo_pair_group_box(3, 1, 2)])
    top = isobmff.parse_boxes(edited)
    assert sum(b.size for b in top) == len(edited) == len(data) + len(cmin) + 1 + 8 + 28
    assert {i: _item_bytes(edited, i) for i in (1, 2)} == before
    meta = top[1]
    assert [p.type for p in isobmff.item_properties(edited, meta, 1)] == [b"ispe", b"cmin"]
    assert isobmff.parse_groups(edited, meta) == [isobmff.EntityGroup(b"ster", 3, (1, 2))]
    assert meta.header_size == (16 if large_meta else 8)


def test_ipma_switches_to_wide_indices_past_127():
    ipma = isobmff.ItemPropertyAssociationBox(0, 0, {1: ((True, 1), (False, 200))})
    data = isobmff.item_property_association_box(ipma)
    (parsed_box,) = isobmff.parse_boxes(data)
    parsed = isobmff.parse_item_property_association_box(data, parsed_box)
    assert parsed.flags & 1 and parsed.associations == ipma.associations


def test_offsets_that_no_longer_fit_are_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        isobmff.item_location_box(isobmff.ItemLocationBox(0, 4, 4, 0, 0, (
            isobmff.ItemLocation(1, 0, 0, 0, (isobmff.Extent(0, 1 << 32, 1),)),
        )))


def test_largesize_headers_parse():
    payload = b"x" * 5
    data = struct.pack(">I4sQ", 1, b"free", 16 + len(payload)) + payload + isobmff.box(b"skip", b"")
    boxes = isobmff.parse_boxes(data)
    assert [(b.type, b.size, b.header_size) for b in boxes] == [(b"free", 21, 16), (b"skip", 8, 8)]
    with pytest.raises(ValueError, match="outside its parent"):
        isobmff.parse_boxes(struct.pack(">I4s", 64, b"free"))


def test_an_item_keeps_its_one_ipma():
    ispe = isobmff.full_box(b"ispe", 0, 0, struct.pack(">II", 2, 2))
    first = isobmff.item_property_association_box(isobmff.ItemPropertyAssociationBox(0, 0, {1: ((True, 1),)}))
    second = isobmff.item_property_association_box(isobmff.ItemPropertyAssociationBox(1, 0, {2: ((True, 1),)}))
    meta = isobmff.full_box(b"meta", 0, 0, isobmff.box(b"iprp", isobmff.box(b"ipco", ispe) + first + second))
    data = isobmff.box(b"ftyp", b"heic\x00\x00\x00\x00") + meta
    edited = isobmff.insert_into_meta(data, properties={2: [isobmff.camera_extrinsic_matrix_box((5, 0, 0))]})
    (iprp,) = isobmff.find_path(isobmff.parse_boxes(edited), b"meta", b"iprp")[1:]
    ipmas = [isobmff.parse_item_property_association_box(edited, b) for b in iprp.children_of_type(b"ipma")]
    assert [i.associations for i in ipmas] == [{1: ((True, 1),)}, {2: ((True, 1), (False, 2))}]
    (meta_box,) = isobmff.find_path(isobmff.parse_boxes(edited), b"meta")
    (cmex,) = isobmff.item_properties(edited, meta_box, 2)[1:]
    assert isobmff.parse_camera_extrinsic_matrix_box(edited, cmex) == (5, 0, 0)
