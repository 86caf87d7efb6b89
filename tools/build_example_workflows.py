"""Write the shipped workflows in the frontend's format, into examples_workflows/ (the pack's
folder) and example_workflows/ (the folder ComfyUI's template browser reads), as identical files.

    python -m tools.build_example_workflows [--comfyui /path/to/ComfyUI] [KEY ...]

Each workflow is described below by its nodes, widget values by input name, links by output and
input name, and a layout by columns; widget order, input and output slots and types are read from
the node definitions of the running ComfyUI and this pack, so the files match the nodes they were
built with. The test suite rebuilds them in memory and fails when a file no longer matches.
The file name is the title the template browser shows (it has no other metadata for a custom
node's templates); the headless runner also accepts the short key (see headless.run_workflow).
Thumbnails: python -m tools.make_thumbnails.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any, Callable, NamedTuple

from headless import comfy_host

ROOT = comfy_host.PACK_DIR
# The pack's own folder (DESIGN.md) and the one the template browser lists; both are real folders
# with the same files, because a symlink becomes a plain file on Windows and in zip installs.
OUT_DIRS = (ROOT / "examples_workflows", ROOT / "example_workflows")

SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SDXL_CHECKPOINT = "sd_xl_base_1.0.safetensors"
DEPTH_MODEL = "depthanything/depth_anything_v2_vits.pth"
CONTROLNET_DEPTH = "control_v11f1p_sd15_depth.pth"
SD15_INPAINT_CHECKPOINT = "sd-v1-5-inpainting.ckpt"
VIDEO_DEPTH_MODEL = "depthanything/video_depth_anything_vits.pth"  # Apache-2.0, consistent over time
FLUX_UNET = "flux1-dev.safetensors"
FLUX_CLIP_L = "clip_l.safetensors"
FLUX_T5 = "t5xxl_fp16.safetensors"
FLUX_VAE = "ae.safetensors"
NEGATIVE = "blurry, lowres, deformed, watermark, text"

# LiteGraph geometry: a node's pos is the top-left corner of its body; the title bar sits above
# it, and the frontend draws the node's source badge (the pack's folder name) above the title.
TITLE_HEIGHT = 30
BADGE_HEIGHT = 24
GAP_X, GAP_Y = 40, 36
NODE_WIDTH = 280
# At load a workflow must be readable and whole in a 1600x1000 window on every supported frontend.
# This is the part of the canvas (in screen pixels from the canvas' top-left corner) that no
# frontend covers with its own bars: 1.27 puts the canvas right of the side toolbar and below the
# menu, 1.35 draws the canvas under floating bars; both show a minimap in the bottom-right corner.
VIEW = (70, 110, 1530, 900)  # left, top, right, bottom
MINIMAP = (1240, 650)  # nothing may reach right of and below this point
# Below this zoom LiteGraph draws nodes without their text ("low quality").
MIN_READABLE_SCALE = 0.62
# LiteGraph execution modes: 0 always, 2 never (muted), 4 bypass. Shipped nodes always run.
MODE_ALWAYS = 0


def _is_widget(kind: Any, options: dict) -> bool:
    if options.get("forceInput"):
        return False
    return isinstance(kind, (list, tuple)) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def _default(kind: Any, options: dict):
    if "default" in options:
        return options["default"]
    if isinstance(kind, (list, tuple)):
        return kind[0] if kind else ""
    if kind == "COMBO":
        return (options.get("options") or [""])[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind)


class Box:
    """Anything placed on the canvas: a node of the graph, a frontend-only node (Note, Primitive)."""

    id: int
    pos: list[float]
    size: list[float]

    def bounds(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 including the title bar and the badge above it."""
        x, y = self.pos
        return x, y - TITLE_HEIGHT - BADGE_HEIGHT, x + self.size[0], y + self.size[1]


class Node(Box):
    def __init__(self, graph: "Graph", node_id: int, type_: str, title, widgets, size):
        self.graph, self.id, self.type, self.title = graph, node_id, type_, title
        cls = graph.classes[type_]
        spec = cls.INPUT_TYPES()
        self.defs = [(n, d[0], d[1] if len(d) > 1 and isinstance(d[1], dict) else {})
                     for section in ("required", "optional") for n, d in (spec.get(section) or {}).items()]
        unknown = set(widgets) - {n for n, _, _ in self.defs}
        if unknown:
            raise KeyError(f"{type_} has no input(s) {sorted(unknown)}")
        self.widgets = widgets
        self.out_types = list(cls.RETURN_TYPES)
        names = getattr(cls, "RETURN_NAMES", None) or self.out_types
        self.out_names = [str(n) for n in names]
        self.links_in: dict[str, int] = {}
        self.links_out: dict[int, list[int]] = {}
        self.pos = [0, 0]
        self.size = list(size) if size else self._estimated_size()

    def _estimated_size(self) -> list[int]:
        """At least what the frontend computes for the node (slots 20 px, widgets 24 px a row)."""
        sockets = sum(1 for _, k, o in self.defs if not _is_widget(k, o))
        widgets = sum(1 for _, k, o in self.defs if _is_widget(k, o))
        widgets += sum(1 for _, k, o in self.defs if _is_widget(k, o) and o.get("control_after_generate"))
        return [NODE_WIDTH, 16 + 22 * max(sockets, len(self.out_types), 1) + 26 * widgets]

    def output_slot(self, output) -> int:
        if isinstance(output, int):
            return output
        if output in self.out_names:
            return self.out_names.index(output)
        return self.out_types.index(output)

    def input_kind(self, name: str):
        return next(k for n, k, _ in self.defs if n == name)

    def to_json(self, order: int) -> dict:
        inputs, widgets_values = [], []
        for name, kind, options in self.defs:
            widget = _is_widget(kind, options)
            if widget:
                value = self.widgets.get(name, _default(kind, options))
                widgets_values.append(value)
                if options.get("control_after_generate") or (kind == "INT" and name in ("seed", "noise_seed")):
                    widgets_values.append("fixed")
                if options.get("image_upload") or options.get("video_upload"):
                    widgets_values.append("image")
            if name in self.links_in or not widget:
                entry = {"name": name, "type": "COMBO" if isinstance(kind, (list, tuple)) else kind,
                         "link": self.links_in.get(name)}
                if widget:
                    entry["widget"] = {"name": name}
                inputs.append(entry)
        outputs = [{"name": n, "type": t, "links": self.links_out.get(i, []), "slot_index": i}
                   for i, (n, t) in enumerate(zip(self.out_names, self.out_types))]
        node = {"id": self.id, "type": self.type, "pos": list(self.pos), "size": list(self.size), "flags": {},
                "order": order, "mode": MODE_ALWAYS, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": self.type}, "widgets_values": widgets_values}
        if self.title:
            node["title"] = self.title
        return node


class Extra(Box):
    """A frontend-only node (Note, PrimitiveNode), kept as its JSON."""

    def __init__(self, data: dict):
        self.data, self.id = data, data["id"]
        self.pos, self.size = data["pos"], data["size"]

    def to_json(self) -> dict:
        return {**self.data, "pos": list(self.pos), "size": list(self.size)}


class Graph:
    def __init__(self, classes):
        self.classes = classes
        self.nodes: list[Node] = []
        self.extra_nodes: list[Extra] = []
        self.links: list[list] = []
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def node(self, type_: str, title=None, size=None, **widgets) -> Node:
        """A node with widget values by input name (any input, `mode` included, is a widget here:
        the node's execution mode is not a parameter, shipped nodes always run)."""
        node = Node(self, self._id(), type_, title, widgets, size)
        self.nodes.append(node)
        return node

    def link(self, src: Node, output, dst: Node, input_name: str) -> None:
        if input_name in dst.links_in:
            raise ValueError(f"{dst.type}.{input_name} is linked twice")
        dst.input_kind(input_name)  # raises on an unknown input
        slot = src.output_slot(output)
        link_id = len(self.links) + 1
        dst.links_in[input_name] = link_id
        src.links_out.setdefault(slot, []).append(link_id)
        # the target slot is filled in by to_json, from the inputs the node actually lists
        self.links.append([link_id, src.id, slot, dst.id, None, src.out_types[slot]])

    def primitive(self, value, targets: list[tuple[Node, str]], title="seed") -> Extra:
        """A frontend primitive node feeding the same value to several widgets (e.g. one seed)."""
        kind = targets[0][0].input_kind(targets[0][1])
        node_id = self._id()
        links = []
        for dst, name in targets:
            link_id = len(self.links) + 1
            dst.links_in[name] = link_id
            links.append(link_id)
            self.links.append([link_id, node_id, 0, dst.id, None, kind])
        extra = Extra({
            "id": node_id, "type": "PrimitiveNode", "pos": [0, 0], "size": [NODE_WIDTH, 82], "flags": {},
            "order": 0, "mode": MODE_ALWAYS, "inputs": [], "title": title,
            "outputs": [{"name": kind, "type": kind, "links": links, "slot_index": 0, "widget": {"name": targets[0][1]}}],
            "properties": {"Run widget replace on values": False}, "widgets_values": [value, "fixed"],
        })
        self.extra_nodes.append(extra)
        return extra

    def note(self, text, size=(NODE_WIDTH, 240)) -> Extra:
        extra = Extra({
            "id": self._id(), "type": "Note", "pos": [0, 0], "size": list(size), "flags": {}, "order": 0,
            "mode": MODE_ALWAYS, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [text],
            "color": "#432", "bgcolor": "#653",
        })
        self.extra_nodes.append(extra)
        return extra

    def columns(self, *columns: list[Box]) -> None:
        """Lay the boxes out in columns, left to right, each column stacked top-down; a column is
        as wide as its widest box. Heights come from the node definitions, so a node that gains
        widgets pushes the ones below it down instead of overlapping them."""
        x = 0
        for column in columns:
            y = TITLE_HEIGHT + BADGE_HEIGHT
            for box in column:
                box.pos = [x, y]
                y += box.size[1] + GAP_Y + TITLE_HEIGHT + BADGE_HEIGHT
            x += max(box.size[0] for box in column) + GAP_X

    def _order(self) -> list[Node]:
        done, ordered = set(n.id for n in self.extra_nodes), []
        pending = list(self.nodes)
        while pending:
            for node in pending:
                sources = {link[1] for link in self.links if link[3] == node.id}
                if sources <= done:
                    ordered.append(node)
                    done.add(node.id)
                    pending.remove(node)
                    break
            else:
                raise ValueError("cycle in the workflow")
        return ordered

    def _view(self) -> dict:
        """extra.ds: the zoom and offset at which the whole graph shows at load (see VIEW)."""
        boxes = [b.bounds() for b in [*self.nodes, *self.extra_nodes]]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        left, top, right, bottom = VIEW
        scale = min(1.0, (right - left) / (x1 - x0), (bottom - top) / (y1 - y0))
        # screen = (graph + offset) * scale, the graph's top-left corner at the view's
        while any((b[2] - x0) * scale + left > MINIMAP[0] and (b[3] - y0) * scale + top > MINIMAP[1] for b in boxes):
            scale -= 0.005
        if scale < MIN_READABLE_SCALE:
            raise ValueError(f"the layout ({x1 - x0:.0f} x {y1 - y0:.0f}) needs zoom {scale:.2f} to show whole; "
                             f"below {MIN_READABLE_SCALE} the frontend draws no text")
        scale = round(scale, 3)
        return {"scale": scale, "offset": [round(left / scale - x0, 1), round(top / scale - y0, 1)]}

    def to_json(self, name: str) -> dict:
        nodes = [e.to_json() for e in self.extra_nodes] + [n.to_json(i + 1) for i, n in enumerate(self._order())]
        nodes.sort(key=lambda n: n["id"])
        by_id = {n["id"]: n for n in nodes}
        for link in self.links:
            # the frontend finds a link's input by this index; it must be the input holding the link
            inputs = by_id[link[3]]["inputs"]
            link[4] = next(i for i, entry in enumerate(inputs) if entry["link"] == link[0])
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-stereodiffusion/{name}")),
            "revision": 0, "last_node_id": self.next_id - 1, "last_link_id": len(self.links),
            "nodes": nodes, "links": self.links, "groups": [], "config": {},
            "extra": {"ds": self._view()}, "version": 0.4,
        }


def _stereo_outputs(g: Graph, vae: Node, stereo_latent: Node, prefix: str,
                    refine_with: tuple[Node, int] | None = None) -> tuple[list[Box], list[Box]]:
    """Decode the stereo batch, compose it and save it: two columns (the nodes, the previews).

    With `refine_with` (the node and output of the disparity the pair was made with), Stereo Refine
    gives the right eye the full-resolution warp of the left one wherever both eyes see the scene.
    """
    decode = g.node("VAEDecode", title="Decode the stereo pair")
    g.link(stereo_latent, 0, decode, "samples")
    g.link(vae, "VAE", decode, "vae")
    nodes_out: list[Box] = [decode]
    pair = decode
    if refine_with is not None:
        pair = g.node("StereoRefine", title="Refine the right eye (full resolution)")
        g.link(decode, 0, pair, "stereo")
        g.link(refine_with[0], refine_with[1], pair, "disparity")
        nodes_out.append(pair)
    sbs = g.node("StereoSideBySide", layout="parallel")
    g.link(pair, 0, sbs, "stereo")
    preview_sbs = g.node("PreviewImage", title="Side by side (parallel)", size=[360, 280])
    g.link(sbs, 0, preview_sbs, "images")
    anaglyph = g.node("StereoAnaglyph", method="dubois")
    g.link(pair, 0, anaglyph, "stereo")
    preview_ana = g.node("PreviewImage", title="Anaglyph (red-cyan glasses)", size=[360, 280])
    g.link(anaglyph, 0, preview_ana, "images")
    # room for the stereo viewer the pack's frontend extension adds to the node
    save = g.node("StereoSaveImage", filename_prefix=prefix, layout="parallel", size=[NODE_WIDTH, 330])
    g.link(pair, 0, save, "stereo")
    return [*nodes_out, sbs, anaglyph, save], [preview_sbs, preview_ana]


def _display_target(g: Graph, *consumers: Node) -> Node:
    """One Stereo Display Target for the sampler and its Stereo Refine (or a Stereo Warp): the depth
    is set for a VR headset from the disparity present, and a refine given the same target and map
    warps with the geometry the pair was made with."""
    target = g.node("StereoDisplayTarget", title="Display (sets the depth)", preset="VR headset",
                    floating_window=True)
    for consumer in consumers:
        g.link(target, 0, consumer, "display")
    return target


def _shared_inversion_settings(g: Graph, inversion: Node, stereo: Node, steps: int, cfg: float) -> tuple[Extra, Extra]:
    """One steps and one cfg for the inversion and the sampler: the sampler retraces the inversion
    only with the same values, so the UI holds each once."""
    return (
        g.primitive(steps, [(inversion, "steps"), (stereo, "steps")], title="steps (inversion and sampler)"),
        g.primitive(cfg, [(inversion, "cfg"), (stereo, "cfg")], title="cfg (inversion and sampler)"),
    )


def _sampler_settings(steps=20, cfg=7.0):
    return dict(steps=steps, cfg=cfg, sampler_name="euler", scheduler="normal", denoise=1.0)


def _one_pass_stereo(g: Graph, model: Node, pos: Node, neg: Node, latent: Node, vae: Node, settings: dict):
    """The one-pass stereo sampler (disparity from its own prediction) with the attention patch and a
    preview of the disparity it used."""
    patch = g.node("StereoAttentionPatch", mode="unidirectional")
    g.link(model, 0 if model.type != "CheckpointLoaderSimple" else "MODEL", patch, "model")
    depth_model = g.node("StereoDisparityModelLoader", model_name=DEPTH_MODEL)
    stereo = g.node("StereoKSampler", **settings)
    for src, out, dst in ((patch, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (latent, 0, "latent_image"), (depth_model, 0, "disparity_model"), (vae, "VAE", "vae")):
        g.link(src, out, stereo, dst)
    as_image = g.node("MaskToImage", title="Disparity used")
    g.link(stereo, 1, as_image, "mask")
    preview_depth = g.node("PreviewImage", title="Disparity (near = white)", size=[NODE_WIDTH, 280])
    g.link(as_image, 0, preview_depth, "images")
    seed = g.primitive(42, [(stereo, "seed")], title="seed")
    return patch, depth_model, stereo, as_image, preview_depth, seed


def text_to_stereo(classes, checkpoint=SD15_CHECKPOINT, width=512, height=512, key="text_to_stereo",
                   heading="Text to stereo") -> dict:
    g = Graph(classes)
    note = g.note(
        f"{heading}\n\nOne Stereo KSampler makes the pair in one pass: it denoises left and right "
        "together from the same seed, and at the shift step it decodes its own prediction of the picture, "
        "estimates its disparity with the depth model, shifts the left view into the right one and lets "
        "the model fill the holes; the attention patch makes the right view look at the left one.\n\n"
        "Depth models go to models/depthanything or models/midas (Depth Anything V2 Small is downloaded "
        "there on first use). The Display node sets the depth for where you watch (VR headset, TV, "
        "phone); to set divergence and convergence by hand, disconnect it. To pick the disparity by hand, "
        "connect a map to the disparity input.",
        size=(NODE_WIDTH, 400))
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
    pos = g.node("CLIPTextEncode", title="Prompt", size=[340, 160],
                 text="a cozy reading corner with a leather armchair, plants and a warm lamp, detailed photograph")
    neg = g.node("CLIPTextEncode", title="Negative prompt", size=[340, 120], text=NEGATIVE)
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    latent = g.node("EmptyLatentImage", width=width, height=height, batch_size=1)
    patch, depth_model, stereo, as_image, preview_depth, seed = _one_pass_stereo(
        g, ckpt, pos, neg, latent, ckpt, _sampler_settings())
    outputs, previews = _stereo_outputs(g, ckpt, stereo, f"stereo/{key}", refine_with=(stereo, 1))
    display = _display_target(g, stereo, outputs[1])
    g.columns([note, ckpt, latent], [pos, neg, seed, display], [patch, depth_model, stereo],
              [as_image, preview_depth], outputs, previews)
    return g.to_json(key)


def sdxl_text_to_stereo(classes) -> dict:
    return text_to_stereo(classes, checkpoint=SDXL_CHECKPOINT, width=1024, height=1024, key="sdxl_text_to_stereo",
                          heading="SDXL text to stereo")


def photo_to_stereo(classes) -> dict:
    g = Graph(classes)
    note = g.note(
        "Photo to stereo\n\nThe photo becomes the left view: it is inverted (DDIM + null-text "
        "inversion) so that the Stereo KSampler reproduces it, and the right view is made from it "
        "with the disparity estimated from the photo.\n\nDescribe the photo in the prompt. The "
        "inversion and the Stereo KSampler must use the same prompts, steps and cfg (they share "
        "them here). The photo is scaled to 512 px wide first.", size=(NODE_WIDTH, 360))
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=SD15_CHECKPOINT)
    photo = g.node("LoadImage", image="example.png", size=[NODE_WIDTH, 360])
    scale = g.node("ImageScale", upscale_method="lanczos", width=512, height=0, crop="disabled")
    g.link(photo, "IMAGE", scale, "image")
    encode = g.node("VAEEncode")
    g.link(scale, 0, encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    pos = g.node("CLIPTextEncode", title="Prompt (describe the photo)", size=[340, 160], text="a photograph")
    neg = g.node("CLIPTextEncode", title="Negative prompt", size=[340, 120], text="")
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    inversion = g.node("StereoNullTextInversion", steps=50, cfg=7.5)
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent")):
        g.link(src, out, inversion, dst)
    depth_model = g.node("StereoDisparityModelLoader", model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity")
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    stereo = g.node("StereoKSampler", **_sampler_settings(steps=50, cfg=7.5))
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (encode, 0, "latent_image"), (disparity, 0, "disparity"),
                          (inversion, 0, "inversion")):
        g.link(src, out, stereo, dst)
    outputs, previews = _stereo_outputs(g, ckpt, stereo, "stereo/photo_to_stereo", refine_with=(disparity, 0))
    display = _display_target(g, stereo, outputs[1])
    steps, cfg = _shared_inversion_settings(g, inversion, stereo, steps=50, cfg=7.5)
    g.columns([note, ckpt, photo], [steps, cfg, pos, neg, scale, encode], [inversion, depth_model, disparity],
              [display, stereo], outputs, previews)
    return g.to_json("photo_to_stereo")


def depth_to_stereo(classes) -> dict:
    g = Graph(classes)
    note = g.note(
        "Depth map to stereo\n\nYour own depth map (from a 3D program, a depth camera or another "
        "node pack) is used twice: as ControlNet depth conditioning, so the picture follows its "
        "shapes, and as the disparity of the stereo shift. Check 'invert' on Stereo Depth To "
        "Disparity if near is dark in your map.\n\nChoose your depth map in 'Depth map': it starts on "
        "ComfyUI's example.png, which is a picture, not a depth map. Set the size once, in 'width' and "
        "'height'.\n\nControlNet models go to models/controlnet.",
        size=(NODE_WIDTH, 400))
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=SD15_CHECKPOINT)
    depth = g.node("LoadImage", title="Depth map (choose yours: near = bright)", image="example.png", size=[NODE_WIDTH, 360])
    # The depth map is scaled and cropped to the size of the empty latent, so both line up.
    scale = g.node("ImageScale", upscale_method="bilinear", width=512, height=512, crop="center")
    g.link(depth, "IMAGE", scale, "image")
    pos = g.node("CLIPTextEncode", title="Prompt", size=[340, 160],
                 text="a stone castle on a hill at sunset, detailed, photograph")
    neg = g.node("CLIPTextEncode", title="Negative prompt", size=[340, 120], text=NEGATIVE)
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    control = g.node("ControlNetLoader", control_net_name=CONTROLNET_DEPTH)
    apply = g.node("ControlNetApplyAdvanced", strength=0.8, start_percent=0.0, end_percent=1.0)
    for src, out, dst in ((pos, 0, "positive"), (neg, 0, "negative"), (control, 0, "control_net"), (scale, 0, "image")):
        g.link(src, out, apply, dst)
    to_disparity = g.node("StereoDepthToDisparity")
    g.link(scale, 0, to_disparity, "image")
    latent = g.node("EmptyLatentImage", width=512, height=512, batch_size=1)
    stereo = g.node("StereoKSampler", **_sampler_settings())
    for src, out, dst in ((ckpt, "MODEL", "model"), (apply, 0, "positive"), (apply, 1, "negative"),
                          (latent, 0, "latent_image"), (to_disparity, 0, "disparity")):
        g.link(src, out, stereo, dst)
    seed = g.primitive(42, [(stereo, "seed")], title="seed")
    display = _display_target(g, stereo)
    width = g.primitive(512, [(scale, "width"), (latent, "width")], title="width")
    height = g.primitive(512, [(scale, "height"), (latent, "height")], title="height")
    outputs, previews = _stereo_outputs(g, ckpt, stereo, "stereo/depth_to_stereo")
    g.columns([note, ckpt, depth], [width, height, pos, neg, scale, latent], [control, apply, to_disparity],
              [seed, display, stereo], outputs, previews)
    return g.to_json("depth_to_stereo")


def _flux_loaders(g: Graph) -> tuple[Node, Node, Node]:
    """Flux as its users load it: the diffusion model, the two text encoders and the VAE, each from its file."""
    unet = g.node("UNETLoader", unet_name=FLUX_UNET, weight_dtype="default")
    clip = g.node("DualCLIPLoader", clip_name1=FLUX_CLIP_L, clip_name2=FLUX_T5, type="flux")
    vae = g.node("VAELoader", vae_name=FLUX_VAE)
    return unet, clip, vae


def flux_text_to_stereo(classes) -> dict:
    """Text to stereo with Flux, loaded as Flux users load it (diffusion model, two text encoders, VAE)."""
    g = Graph(classes)
    note = g.note(
        "Flux text to stereo\n\nLike the SD1.5 text workflow (one pass: the Stereo KSampler estimates "
        "the disparity from its own prediction), with Flux.1 dev (or schnell, or a finetune) loaded from its "
        "separate files: models/diffusion_models, models/text_encoders (clip_l and t5xxl) and models/vae "
        "(ae.safetensors).\n\nFlux is guidance-distilled: cfg stays 1 (the negative prompt is then "
        "unused); Flux dev takes its guidance (default 3.5) from a FluxGuidance node after the prompt; "
        "schnell: 4 steps. The attention patch shares the image tokens of Flux's joint attention between "
        "the two eyes.", size=(NODE_WIDTH, 420))
    unet, clip, vae = _flux_loaders(g)
    pos = g.node("CLIPTextEncode", title="Prompt", size=[340, 160],
                 text="a cozy reading corner with a leather armchair, plants and a warm lamp, detailed photograph")
    neg = g.node("CLIPTextEncode", title="Negative prompt (unused at cfg 1)", size=[340, 100], text="")
    g.link(clip, 0, pos, "clip")
    g.link(clip, 0, neg, "clip")
    latent = g.node("EmptyLatentImage", width=1024, height=1024, batch_size=1)
    settings = dict(steps=20, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    patch, depth_model, stereo, as_image, preview_depth, seed = _one_pass_stereo(
        g, unet, pos, neg, latent, vae, settings)
    outputs, previews = _stereo_outputs(g, vae, stereo, "stereo/flux_text_to_stereo", refine_with=(stereo, 1))
    display = _display_target(g, stereo, outputs[1])
    g.columns([note, unet, clip, vae], [pos, neg, latent, seed, display], [patch, depth_model, stereo],
              [as_image, preview_depth], outputs, previews)
    return g.to_json("flux_text_to_stereo")


def flux_photo_to_stereo(classes) -> dict:
    """Photo to stereo with Flux: fixed-point inversion of its own flow ODE (null-text needs cfg > 1)."""
    g = Graph(classes)
    note = g.note(
        "Flux photo to stereo\n\nThe photo becomes the left view: Stereo Null-Text Inversion (method "
        "fixed_point, the exact inversion of Flux's own Euler steps) gives the start latent, and the Stereo "
        "KSampler retraces it with the same prompt, steps and cfg (1: Flux is guidance-distilled, so the "
        "null_text method does not apply). The right view is made from it with the disparity estimated from "
        "the photo.\n\nDescribe the photo in the prompt. The photo is scaled to 1024 px wide first.",
        size=(NODE_WIDTH, 420))
    unet, clip, vae = _flux_loaders(g)
    photo = g.node("LoadImage", image="example.png", size=[NODE_WIDTH, 300])
    scale = g.node("ImageScale", upscale_method="lanczos", width=1024, height=0, crop="disabled")
    g.link(photo, "IMAGE", scale, "image")
    encode = g.node("VAEEncode")
    g.link(scale, 0, encode, "pixels")
    g.link(vae, 0, encode, "vae")
    pos = g.node("CLIPTextEncode", title="Prompt (describe the photo)", size=[340, 140], text="a photograph")
    neg = g.node("CLIPTextEncode", title="Negative prompt (unused at cfg 1)", size=[340, 100], text="")
    g.link(clip, 0, pos, "clip")
    g.link(clip, 0, neg, "clip")
    inversion = g.node("StereoNullTextInversion", steps=20, cfg=1.0, method="fixed_point")
    for src, out, dst in ((unet, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent")):
        g.link(src, out, inversion, dst)
    depth_model = g.node("StereoDisparityModelLoader", model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity")
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    patch = g.node("StereoAttentionPatch", mode="unidirectional")
    g.link(unet, 0, patch, "model")
    stereo = g.node("StereoKSampler", steps=20, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    for src, out, dst in ((patch, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (encode, 0, "latent_image"), (disparity, 0, "disparity"), (inversion, 0, "inversion")):
        g.link(src, out, stereo, dst)
    outputs, previews = _stereo_outputs(g, vae, stereo, "stereo/flux_photo_to_stereo", refine_with=(disparity, 0))
    display = _display_target(g, stereo, outputs[1])
    steps, cfg = _shared_inversion_settings(g, inversion, stereo, steps=20, cfg=1.0)
    *decoded, save = outputs  # decode, refine, side by side, anaglyph
    # Stereo Save Image last in its column: its viewer grows the node downwards in the UI.
    g.columns([note, unet, clip, vae, steps], [photo, scale, encode, depth_model, patch],
              [pos, neg, inversion, previews[0]], [cfg, display, stereo], [disparity, *decoded], [previews[1], save])
    return g.to_json("flux_photo_to_stereo")


def photo_warp_inpaint(classes) -> dict:
    """Photo -> disparity -> StereoWarp -> the holes inpainted by the user's inpainting model."""
    name = "photo_warp_inpaint"
    g = Graph(classes)
    note = g.note(
        "Photo to stereo by warping and inpainting (fast, no inversion)\n\n1. A depth model estimates "
        "the disparity of the photo.\n2. Stereo Warp moves every pixel into the right view at full "
        "resolution; what no view shows (the disocclusions) comes back as a hole mask.\n3. Your "
        "inpainting checkpoint fills the holes (VAE Encode for Inpainting + KSampler), and only the "
        "holes are pasted back, so every other pixel of both eyes is the photo itself.\n\nSet the size "
        "on Upscale Image to your photo's aspect ratio (multiples of 8). Raise balance to split the "
        "parallax and the holes between both eyes.", size=(NODE_WIDTH, 460))
    ckpt = g.node("CheckpointLoaderSimple", title="Inpainting checkpoint", ckpt_name=SD15_INPAINT_CHECKPOINT)
    photo = g.node("LoadImage", image="example.png", size=[NODE_WIDTH, 360])
    scale = g.node("ImageScale", upscale_method="lanczos", width=768, height=512, crop="center")
    g.link(photo, "IMAGE", scale, "image")
    depth_model = g.node("StereoDisparityModelLoader", model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity")
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    warp = g.node("StereoWarp", grow_holes=2)
    g.link(scale, 0, warp, "image")
    g.link(disparity, 0, warp, "disparity")
    display = _display_target(g, warp)
    pos = g.node("CLIPTextEncode", title="Prompt (what lies behind things)", size=[340, 160],
                 text="background, seamless continuation of the scene, photograph")
    neg = g.node("CLIPTextEncode", title="Negative prompt", size=[340, 120], text=NEGATIVE)
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    encode = g.node("VAEEncodeForInpaint", grow_mask_by=6)
    g.link(warp, 0, encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    g.link(warp, 1, encode, "mask")
    sampler = g.node("KSampler", title="Inpaint the holes", seed=42, **_sampler_settings())
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent_image")):
        g.link(src, out, sampler, dst)
    decode = g.node("VAEDecode")
    g.link(sampler, 0, decode, "samples")
    g.link(ckpt, "VAE", decode, "vae")
    paste = g.node("ImageCompositeMasked", title="Paste only the holes back")
    g.link(warp, 0, paste, "destination")
    g.link(decode, 0, paste, "source")
    g.link(warp, 1, paste, "mask")
    holes = g.node("MaskToImage")
    g.link(warp, 1, holes, "mask")
    preview_holes = g.node("PreviewImage", title="Holes (white = inpainted)", size=[NODE_WIDTH, 280])
    g.link(holes, 0, preview_holes, "images")
    sbs = g.node("StereoSideBySide", layout="parallel")
    g.link(paste, 0, sbs, "stereo")
    preview_sbs = g.node("PreviewImage", title="Side by side (parallel)", size=[360, 280])
    g.link(sbs, 0, preview_sbs, "images")
    save = g.node("StereoSaveImage", filename_prefix=f"stereo/{name}", layout="parallel", size=[NODE_WIDTH, 330])
    g.link(paste, 0, save, "stereo")
    g.columns([note, ckpt, photo], [scale, depth_model, disparity, warp], [display, pos, neg, encode],
              [sampler, decode, paste], [holes, preview_holes, sbs, save], [preview_sbs])
    return g.to_json(name)


# Frames per model batch in the diffusion video workflow: 8 frames of 512x288 (16 latents with both
# eyes) fit a consumer GPU with SD1.5.
VIDEO_FRAME_CHUNK = 8


def video_to_stereo(classes) -> dict:
    """Every frame of a clip becomes a stereo pair (photo-to-stereo per frame), saved as a side by
    side video that players recognise (st3d and the player name), with the clip's rate and sound."""
    g = Graph(classes)
    note = g.note(
        "Video to stereo (side by side)\n\nEach frame is inverted (fixed-point inversion: one model call "
        "per step) so that the Stereo KSampler reproduces it as the left view and paints the right view "
        "from the disparity. Video Depth Anything (Small, Apache-2.0) predicts depth that is consistent over "
        "time; Estimate Disparity turns it into disparity with one scale per shot ('per batch', restarted at "
        "scene cuts), so the "
        "depth does not flicker.\n\nFrames go through in chunks of 8 (frame_chunk; lower it if memory runs "
        "out); temporal_holes keeps the right view's holes from flickering. Stereo Save Video writes "
        "video/video_to_stereo_00001_LRF_Full_SBS.mp4 with the clip's frame rate and sound, tagged as side by "
        "side (st3d) for YouTube and VR players; format 'VR180 MP4' shows it as a floating screen in a "
        "headset.", size=(NODE_WIDTH, 460))
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=SD15_CHECKPOINT)
    video = g.node("LoadVideo", file="example.mp4", size=[NODE_WIDTH, 360])
    parts = g.node("GetVideoComponents")
    g.link(video, 0, parts, "video")
    scale = g.node("ImageScale", upscale_method="lanczos", width=512, height=288, crop="center")
    g.link(parts, 0, scale, "image")
    encode = g.node("VAEEncode")
    g.link(scale, 0, encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    pos = g.node("CLIPTextEncode", title="Prompt (describe the video)", size=[340, 140], text="a video frame")
    neg = g.node("CLIPTextEncode", title="Negative prompt", size=[340, 120], text="")
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    settings = _sampler_settings(steps=20, cfg=7.5)
    inversion = g.node("StereoNullTextInversion", steps=settings["steps"], cfg=settings["cfg"], method="fixed_point",
                       frame_chunk=VIDEO_FRAME_CHUNK)
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent")):
        g.link(src, out, inversion, dst)
    depth_model = g.node("StereoDisparityModelLoader", model_name=VIDEO_DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", normalization="per batch", batch_size=4, scene_cuts=True)
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    stereo = g.node("StereoKSampler", **settings, frame_chunk=VIDEO_FRAME_CHUNK, temporal_holes=True)
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (encode, 0, "latent_image"), (disparity, 0, "disparity"), (inversion, 0, "inversion")):
        g.link(src, out, stereo, dst)
    display = _display_target(g, stereo)
    decode = g.node("VAEDecode", title="Decode the stereo frames")
    g.link(stereo, 0, decode, "samples")
    g.link(ckpt, "VAE", decode, "vae")
    save = g.node("StereoSaveVideo", filename_prefix="video/video_to_stereo", layout="parallel",
                  format="stereo MP4", size=[NODE_WIDTH, 420])
    g.link(decode, 0, save, "stereo")
    g.link(parts, 2, save, "frame_rate")  # the clip's own frame rate
    g.link(parts, 1, save, "audio")
    steps, cfg = _shared_inversion_settings(g, inversion, stereo, steps=settings["steps"], cfg=settings["cfg"])
    g.columns([note, ckpt, video], [parts, scale, encode, steps, cfg, depth_model], [pos, neg, display, inversion],
              [disparity, stereo], [decode, save])
    return g.to_json("video_to_stereo")


def video_to_stereo_fast(classes) -> dict:
    """Every frame warped at full resolution by its disparity, the holes filled from the other
    frames, saved as a side by side video: no diffusion model, any clip length."""
    g = Graph(classes)
    settings = dict(balance=0.5)
    note = g.note(
        "Video to stereo, fast (warp + temporal fill)\n\nNo diffusion model: a depth model estimates each "
        "frame's disparity (Video Depth Anything: consistent over time; one scale per shot, restarted at scene "
        "cuts), Stereo Warp moves "
        "every pixel into both eyes at full resolution, and Stereo Video Fill fills the disocclusions with the "
        "background that other frames of the shot saw, so the holes do not flicker. Every node works a chunk "
        "of frames at a time: memory beyond the frames themselves does not grow with the clip.\n\nOne "
        "display target sets the depth of Stereo Warp and Stereo Video Fill alike; keep balance equal on both. "
        "Stereo Save Video writes video/video_to_stereo_fast_00001_LRF_Full_SBS.mp4 with the clip's frame rate "
        "and sound, tagged as side by side (st3d) for YouTube and VR players.", size=(NODE_WIDTH, 460))
    video = g.node("LoadVideo", file="example.mp4", size=[NODE_WIDTH, 360])
    parts = g.node("GetVideoComponents")
    g.link(video, 0, parts, "video")
    depth_model = g.node("StereoDisparityModelLoader", model_name=VIDEO_DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", normalization="per batch", batch_size=4, scene_cuts=True)
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(parts, 0, disparity, "image")
    warp = g.node("StereoWarp", **settings)
    g.link(parts, 0, warp, "image")
    g.link(disparity, 0, warp, "disparity")
    fill = g.node("StereoVideoFill", title="Fill the holes from other frames", **settings)
    g.link(warp, 0, fill, "stereo")
    g.link(warp, 1, fill, "holes")
    g.link(disparity, 0, fill, "disparity")
    display = _display_target(g, warp, fill)
    save = g.node("StereoSaveVideo", filename_prefix="video/video_to_stereo_fast", layout="parallel",
                  format="stereo MP4", size=[NODE_WIDTH, 420])
    g.link(fill, 0, save, "stereo")
    g.link(parts, 2, save, "frame_rate")  # the clip's own frame rate
    g.link(parts, 1, save, "audio")
    g.columns([note, video], [parts, depth_model, disparity], [display, warp], [fill, save])
    return g.to_json("video_to_stereo_fast")


class Workflow(NamedTuple):
    key: str  # short name: the headless runner's argument, the saved files' prefix
    title: str  # file name, shown as the card's title in the template browser
    build: Callable[[Any], dict]


# The template browser shows a custom node's template by its file name only (no title or
# description field on the host versions we support), so the file names are the titles.
# headless.run_workflow.workflow_key turns each title back into its key.
WORKFLOWS = {w.key: w for w in (
    Workflow("text_to_stereo", "Text to stereo (SD1.5)", text_to_stereo),
    Workflow("sdxl_text_to_stereo", "SDXL text to stereo", sdxl_text_to_stereo),
    Workflow("photo_to_stereo", "Photo to stereo (null-text inversion)", photo_to_stereo),
    Workflow("depth_to_stereo", "Depth to stereo (ControlNet)", depth_to_stereo),
    Workflow("flux_text_to_stereo", "Flux text to stereo", flux_text_to_stereo),
    Workflow("flux_photo_to_stereo", "Flux photo to stereo (fixed-point inversion)", flux_photo_to_stereo),
    Workflow("photo_warp_inpaint", "Photo warp + inpaint (any inpainting model)", photo_warp_inpaint),
    Workflow("video_to_stereo", "Video to stereo (side by side)", video_to_stereo),
    Workflow("video_to_stereo_fast", "Video to stereo fast (warp + fill)", video_to_stereo_fast),
)}


def build_all(classes, keys=None) -> dict[str, dict]:
    """Workflow JSON by title (the file name without .json)."""
    return {w.title: w.build(classes) for w in WORKFLOWS.values() if keys is None or w.key in keys}


def dump(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui")
    parser.add_argument("keys", nargs="*", help=f"workflows to write (default: all): {', '.join(WORKFLOWS)}")
    args = parser.parse_args()
    comfy_host.start_comfyui(comfy_host.require_comfyui(args.comfyui), cpu=True, custom_nodes=False)
    import nodes

    titles = {w.title for w in WORKFLOWS.values()}
    for out_dir in OUT_DIRS:
        out_dir.mkdir(exist_ok=True)
        if not args.keys:  # a renamed workflow leaves no stale file behind
            for stale in out_dir.glob("*.json"):
                if stale.stem not in titles:
                    stale.unlink()
    for title, workflow in build_all(nodes.NODE_CLASS_MAPPINGS, args.keys or None).items():
        for out_dir in OUT_DIRS:
            path = out_dir / f"{title}.json"
            path.write_text(dump(workflow), encoding="utf-8")
            print(path)


if __name__ == "__main__":
    sys.exit(main())
