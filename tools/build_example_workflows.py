"""Write the shipped workflows (examples_workflows/*.json) in the frontend's format.

    python tools/build_example_workflows.py [--comfyui /path/to/ComfyUI]

Each workflow is described below by its nodes, widget values by input name, and links by output
and input name; widget order, output slots and types are read from the node definitions of the
running ComfyUI and this pack, so the files match the nodes they were built with. The test suite
rebuilds them in memory and fails when a file no longer matches (a node gained or lost a widget).
Thumbnails: tools/make_thumbnails.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "examples_workflows"

SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SDXL_CHECKPOINT = "sd_xl_base_1.0.safetensors"
DEPTH_MODEL = "depthanything/depth_anything_v2_vits.pth"
CONTROLNET_DEPTH = "control_v11f1p_sd15_depth.pth"
SD15_INPAINT_CHECKPOINT = "sd-v1-5-inpainting.ckpt"
NEGATIVE = "blurry, lowres, deformed, watermark, text"


def _import_pack_module(name: str):
    """A pack module by file, without putting the pack root (with its `nodes` package) on sys.path."""
    path = ROOT / Path(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    spec = importlib.util.spec_from_file_location(f"stereo_tools_{name.replace('.', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


class Node:
    def __init__(self, graph: "Graph", node_id: int, type_: str, pos, title, widgets, size, mode):
        self.graph, self.id, self.type, self.pos, self.title, self.mode = graph, node_id, type_, pos, title, mode
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
        self.size = size

    def output_slot(self, output) -> int:
        if isinstance(output, int):
            return output
        if output in self.out_names:
            return self.out_names.index(output)
        return self.out_types.index(output)

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
        n_widgets = sum(_is_widget(k, o) for _, k, o in self.defs)
        size = self.size or [320, 46 + 22 * max(len([i for i in inputs if "widget" not in i]), len(outputs)) + 26 * n_widgets]
        node = {"id": self.id, "type": self.type, "pos": list(self.pos), "size": size, "flags": {},
                "order": order, "mode": self.mode, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": self.type}, "widgets_values": widgets_values}
        if self.title:
            node["title"] = self.title
        return node


class Graph:
    def __init__(self, classes):
        self.classes = classes
        self.nodes: list[Node] = []
        self.extra_nodes: list[dict] = []
        self.links: list[list] = []
        self.groups: list[dict] = []
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def node(self, type_: str, pos, title=None, size=None, mode=0, **widgets) -> Node:
        node = Node(self, self._id(), type_, pos, title, widgets, size, mode)
        self.nodes.append(node)
        return node

    def link(self, src: Node, output, dst: Node, input_name: str) -> None:
        slot = src.output_slot(output)
        kind = src.out_types[slot]
        link_id = len(self.links) + 1
        target_slot = len(dst.links_in)
        dst.links_in[input_name] = link_id
        src.links_out.setdefault(slot, []).append(link_id)
        self.links.append([link_id, src.id, slot, dst.id, target_slot, kind])

    def primitive(self, pos, value, targets: list[tuple[Node, str]], title="seed") -> None:
        """A frontend primitive node feeding the same value to several widgets (e.g. one seed)."""
        node_id = self._id()
        kind = next(k for n, k, _ in targets[0][0].defs if n == targets[0][1])
        links = []
        for dst, name in targets:
            link_id = len(self.links) + 1
            dst.links_in[name] = link_id
            links.append(link_id)
            self.links.append([link_id, node_id, 0, dst.id, 0, kind])
        self.extra_nodes.append({
            "id": node_id, "type": "PrimitiveNode", "pos": list(pos), "size": [260, 82], "flags": {}, "order": 0,
            "mode": 0, "inputs": [], "title": title,
            "outputs": [{"name": kind, "type": kind, "links": links, "slot_index": 0, "widget": {"name": targets[0][1]}}],
            "properties": {"Run widget replace on values": False}, "widgets_values": [value, "fixed"],
        })

    def note(self, pos, text, size=(400, 200)) -> None:
        self.extra_nodes.append({
            "id": self._id(), "type": "Note", "pos": list(pos), "size": list(size), "flags": {}, "order": 0,
            "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [text],
            "color": "#432", "bgcolor": "#653",
        })

    def group(self, title, x, y, w, h, color="#3f789e") -> None:
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": [x, y, w, h],
                            "color": color, "font_size": 24, "flags": {}})

    def _order(self) -> list[Node]:
        done, ordered = set(n["id"] for n in self.extra_nodes), []
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

    def to_json(self, name: str) -> dict:
        nodes = list(self.extra_nodes) + [n.to_json(i + 1) for i, n in enumerate(self._order())]
        nodes.sort(key=lambda n: n["id"])
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-stereodiffusion/{name}")),
            "revision": 0, "last_node_id": self.next_id - 1, "last_link_id": len(self.links),
            "nodes": nodes, "links": self.links, "groups": self.groups, "config": {},
            "extra": {"ds": {"scale": 0.6, "offset": [40, 40]}}, "version": 0.4,
        }


def _stereo_outputs(g: Graph, vae: Node, stereo_latent: Node, x: int, y: int, prefix: str) -> None:
    decode = g.node("VAEDecode", (x, y), title="Decode the stereo pair")
    g.link(stereo_latent, 0, decode, "samples")
    g.link(vae, "VAE", decode, "vae")
    sbs = g.node("StereoSideBySide", (x + 360, y), layout="parallel")
    g.link(decode, 0, sbs, "stereo")
    preview_sbs = g.node("PreviewImage", (x + 720, y), title="Side by side (parallel)", size=[420, 300])
    g.link(sbs, 0, preview_sbs, "images")
    anaglyph = g.node("StereoAnaglyph", (x + 360, y + 240), method="dubois")
    g.link(decode, 0, anaglyph, "stereo")
    preview_ana = g.node("PreviewImage", (x + 720, y + 340), title="Anaglyph (red-cyan glasses)", size=[420, 300])
    g.link(anaglyph, 0, preview_ana, "images")
    save = g.node("StereoSaveImage", (x + 360, y + 420), filename_prefix=prefix, layout="parallel")
    g.link(decode, 0, save, "stereo")


def _sampler_settings(steps=20, cfg=7.0):
    return dict(steps=steps, cfg=cfg, sampler_name="euler", scheduler="normal", denoise=1.0)


def text_to_stereo(classes, checkpoint=SD15_CHECKPOINT, width=512, height=512, name="text_to_stereo") -> dict:
    g = Graph(classes)
    g.note((0, -260), (
        "Text to stereo\n\n1. The checkpoint renders the left view (KSampler).\n"
        "2. A depth model estimates the disparity of that render.\n"
        "3. The Stereo KSampler denoises left and right together from the same seed, shifts the left "
        "view by the disparity into the right one and lets the model fill the holes; the attention "
        "patch makes the right view look at the left one.\n\n"
        "Depth models go to models/depthanything or models/midas (Depth Anything V2 Small is "
        "downloaded there on first use). More depth: raise divergence on the Stereo KSampler."),
        size=(520, 240))
    ckpt = g.node("CheckpointLoaderSimple", (0, 0), ckpt_name=checkpoint)
    pos = g.node("CLIPTextEncode", (360, 0), title="Prompt", size=[400, 160],
                 text="a cozy reading corner with a leather armchair, plants and a warm lamp, detailed photograph")
    neg = g.node("CLIPTextEncode", (360, 200), title="Negative prompt", size=[400, 120], text=NEGATIVE)
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    latent = g.node("EmptyLatentImage", (0, 200), width=width, height=height, batch_size=1)
    left = g.node("KSampler", (820, 0), title="Left view", **_sampler_settings())
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"), (latent, 0, "latent_image")):
        g.link(src, out, left, dst)
    left_img = g.node("VAEDecode", (1180, 0), title="Decode the left view")
    g.link(left, 0, left_img, "samples")
    g.link(ckpt, "VAE", left_img, "vae")
    depth_model = g.node("StereoDisparityModelLoader", (820, 360), model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", (1180, 200))
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(left_img, 0, disparity, "image")
    preview_depth = g.node("PreviewImage", (1540, 0), title="Disparity (near = white)", size=[300, 300])
    g.link(disparity, 1, preview_depth, "images")  # the disparity as an image
    patch = g.node("StereoAttentionPatch", (0, 420), mode="unidirectional")
    g.link(ckpt, "MODEL", patch, "model")
    stereo = g.node("StereoKSampler", (820, 560), **_sampler_settings())
    for src, out, dst in ((patch, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (latent, 0, "latent_image"), (disparity, 0, "disparity")):
        g.link(src, out, stereo, dst)
    g.primitive((420, 380), 42, [(left, "seed"), (stereo, "seed")], title="seed (same for both samplers)")
    _stereo_outputs(g, ckpt, stereo, 1180, 560, f"stereo/{name}")
    return g.to_json(name)


def sdxl_text_to_stereo(classes) -> dict:
    return text_to_stereo(classes, checkpoint=SDXL_CHECKPOINT, width=1024, height=1024, name="sdxl_text_to_stereo")


def photo_to_stereo(classes) -> dict:
    g = Graph(classes)
    g.note((0, -260), (
        "Photo to stereo\n\nThe photo becomes the left view: it is inverted (DDIM + null-text "
        "inversion) so that the Stereo KSampler reproduces it, and the right view is made from it "
        "with the disparity estimated from the photo.\n\nDescribe the photo in the prompt. The "
        "inversion and the Stereo KSampler must use the same prompts, steps and cfg (they share "
        "them here). The photo is scaled to 512 px wide first."), size=(520, 240))
    ckpt = g.node("CheckpointLoaderSimple", (0, 0), ckpt_name=SD15_CHECKPOINT)
    photo = g.node("LoadImage", (0, 160), image="example.png", size=[320, 360])
    scale = g.node("ImageScale", (360, 360), upscale_method="lanczos", width=512, height=0, crop="disabled")
    g.link(photo, "IMAGE", scale, "image")
    encode = g.node("VAEEncode", (720, 360))
    g.link(scale, 0, encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    pos = g.node("CLIPTextEncode", (360, 0), title="Prompt (describe the photo)", size=[400, 160],
                 text="a photograph")
    neg = g.node("CLIPTextEncode", (360, 200), title="Negative prompt", size=[400, 120], text="")
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    inversion = g.node("StereoNullTextInversion", (820, 0), steps=50, cfg=7.5)
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent")):
        g.link(src, out, inversion, dst)
    depth_model = g.node("StereoDisparityModelLoader", (360, 560), model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", (720, 560))
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    stereo = g.node("StereoKSampler", (1180, 0), **_sampler_settings(steps=50, cfg=7.5))
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (encode, 0, "latent_image"), (disparity, 0, "disparity"),
                          (inversion, 0, "inversion")):
        g.link(src, out, stereo, dst)
    _stereo_outputs(g, ckpt, stereo, 1540, 0, "stereo/photo_to_stereo")
    return g.to_json("photo_to_stereo")


def depth_to_stereo(classes) -> dict:
    g = Graph(classes)
    g.note((0, -260), (
        "Depth map to stereo\n\nYour own depth map (from a 3D program, a depth camera or another "
        "node pack) is used twice: as ControlNet depth conditioning, so the picture follows its "
        "shapes, and as the disparity of the stereo shift. Check 'invert' on Stereo Depth To "
        "Disparity if near is dark in your map.\n\nControlNet models go to models/controlnet."),
        size=(520, 220))
    ckpt = g.node("CheckpointLoaderSimple", (0, 0), ckpt_name=SD15_CHECKPOINT)
    depth = g.node("LoadImage", (0, 160), title="Depth map", image="example.png", size=[320, 360])
    # The depth map is scaled and cropped to the size of the empty latent, so both line up.
    scale = g.node("ImageScale", (360, 420), upscale_method="bilinear", width=512, height=512, crop="center")
    g.link(depth, "IMAGE", scale, "image")
    pos = g.node("CLIPTextEncode", (360, 0), title="Prompt", size=[400, 160],
                 text="a stone castle on a hill at sunset, detailed, photograph")
    neg = g.node("CLIPTextEncode", (360, 200), title="Negative prompt", size=[400, 120], text=NEGATIVE)
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    control = g.node("ControlNetLoader", (820, 360), control_net_name=CONTROLNET_DEPTH)
    apply = g.node("ControlNetApplyAdvanced", (820, 0), strength=0.8, start_percent=0.0, end_percent=1.0)
    for src, out, dst in ((pos, 0, "positive"), (neg, 0, "negative"), (control, 0, "control_net"), (scale, 0, "image")):
        g.link(src, out, apply, dst)
    to_disparity = g.node("StereoDepthToDisparity", (820, 500))
    g.link(scale, 0, to_disparity, "image")
    latent = g.node("EmptyLatentImage", (360, 620), width=512, height=512, batch_size=1)
    stereo = g.node("StereoKSampler", (1180, 0), **_sampler_settings())
    for src, out, dst in ((ckpt, "MODEL", "model"), (apply, 0, "positive"), (apply, 1, "negative"),
                          (latent, 0, "latent_image"), (to_disparity, 0, "disparity")):
        g.link(src, out, stereo, dst)
    g.primitive((1180, -140), 42, [(stereo, "seed")], title="seed")
    _stereo_outputs(g, ckpt, stereo, 1540, 0, "stereo/depth_to_stereo")
    return g.to_json("depth_to_stereo")


FLUX_UNET = "flux1-dev.safetensors"
FLUX_CLIP_L = "clip_l.safetensors"
FLUX_T5 = "t5xxl_fp16.safetensors"
FLUX_VAE = "ae.safetensors"


def flux_text_to_stereo(classes) -> dict:
    """Text to stereo with Flux, loaded as Flux users load it (diffusion model, two text encoders, VAE)."""
    g = Graph(classes)
    g.note((0, -280), (
        "Text to stereo with Flux\n\nLike text_to_stereo, with Flux.1 dev (or schnell, or a finetune) "
        "loaded from its separate files: models/diffusion_models, models/text_encoders (clip_l and "
        "t5xxl) and models/vae (ae.safetensors).\n\nFlux is guidance-distilled: cfg stays 1 on both "
        "samplers (the negative prompt is then unused). Flux dev takes its guidance (default 3.5) from "
        "a FluxGuidance node after the prompt; schnell: 4 steps. The attention patch shares the image "
        "tokens of Flux's joint attention between the two eyes."), size=(520, 260))
    unet = g.node("UNETLoader", (0, 0), unet_name=FLUX_UNET, weight_dtype="default")
    clip = g.node("DualCLIPLoader", (0, 140), clip_name1=FLUX_CLIP_L, clip_name2=FLUX_T5, type="flux")
    vae = g.node("VAELoader", (0, 320), vae_name=FLUX_VAE)
    pos = g.node("CLIPTextEncode", (360, 0), title="Prompt", size=[400, 160],
                 text="a cozy reading corner with a leather armchair, plants and a warm lamp, detailed photograph")
    neg = g.node("CLIPTextEncode", (360, 200), title="Negative prompt (unused at cfg 1)", size=[400, 100], text="")
    g.link(clip, 0, pos, "clip")
    g.link(clip, 0, neg, "clip")
    latent = g.node("EmptyLatentImage", (0, 440), width=1024, height=1024, batch_size=1)
    settings = dict(steps=20, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    left = g.node("KSampler", (820, 0), title="Left view", **settings)
    for src, out, dst in ((unet, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"), (latent, 0, "latent_image")):
        g.link(src, out, left, dst)
    left_img = g.node("VAEDecode", (1180, 0), title="Decode the left view")
    g.link(left, 0, left_img, "samples")
    g.link(vae, 0, left_img, "vae")
    depth_model = g.node("StereoDisparityModelLoader", (820, 360), model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", (1180, 200))
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(left_img, 0, disparity, "image")
    preview_depth = g.node("PreviewImage", (1540, 0), title="Disparity (near = white)", size=[300, 300])
    g.link(disparity, 1, preview_depth, "images")
    patch = g.node("StereoAttentionPatch", (360, 420), mode="unidirectional")
    g.link(unet, 0, patch, "model")
    stereo = g.node("StereoKSampler", (820, 560), **settings)
    for src, out, dst in ((patch, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (latent, 0, "latent_image"), (disparity, 0, "disparity")):
        g.link(src, out, stereo, dst)
    g.primitive((420, 620), 42, [(left, "seed"), (stereo, "seed")], title="seed (same for both samplers)")
    _stereo_outputs(g, vae, stereo, 1180, 560, "stereo/flux_text_to_stereo")
    return g.to_json("flux_text_to_stereo")


def flux_photo_to_stereo(classes) -> dict:
    """Photo to stereo with Flux: fixed-point inversion of its own flow ODE (null-text needs cfg > 1)."""
    g = Graph(classes)
    g.note((0, -280), (
        "Photo to stereo with Flux\n\nThe photo becomes the left view: Stereo Null-Text Inversion "
        "(method fixed_point, the exact inversion of Flux's own Euler steps) gives the start latent, and "
        "the Stereo KSampler retraces it with the same prompt, steps and cfg (1: Flux is "
        "guidance-distilled, so the null_text method does not apply). The right view is made from it with "
        "the disparity estimated from the photo.\n\nDescribe the photo in the prompt. The photo is "
        "scaled to 1024 px wide first."), size=(520, 260))
    unet = g.node("UNETLoader", (0, 0), unet_name=FLUX_UNET, weight_dtype="default")
    clip = g.node("DualCLIPLoader", (0, 140), clip_name1=FLUX_CLIP_L, clip_name2=FLUX_T5, type="flux")
    vae = g.node("VAELoader", (0, 320), vae_name=FLUX_VAE)
    photo = g.node("LoadImage", (0, 440), image="example.png", size=[320, 360])
    scale = g.node("ImageScale", (360, 440), upscale_method="lanczos", width=1024, height=0, crop="disabled")
    g.link(photo, "IMAGE", scale, "image")
    encode = g.node("VAEEncode", (720, 440))
    g.link(scale, 0, encode, "pixels")
    g.link(vae, 0, encode, "vae")
    pos = g.node("CLIPTextEncode", (360, 0), title="Prompt (describe the photo)", size=[400, 160], text="a photograph")
    neg = g.node("CLIPTextEncode", (360, 200), title="Negative prompt (unused at cfg 1)", size=[400, 100], text="")
    g.link(clip, 0, pos, "clip")
    g.link(clip, 0, neg, "clip")
    inversion = g.node("StereoNullTextInversion", (820, 0), steps=20, cfg=1.0, method="fixed_point")
    for src, out, dst in ((unet, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent")):
        g.link(src, out, inversion, dst)
    depth_model = g.node("StereoDisparityModelLoader", (360, 640), model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", (720, 640))
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    patch = g.node("StereoAttentionPatch", (820, 360), mode="unidirectional")
    g.link(unet, 0, patch, "model")
    stereo = g.node("StereoKSampler", (1180, 0), steps=20, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    for src, out, dst in ((patch, 0, "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (encode, 0, "latent_image"), (disparity, 0, "disparity"), (inversion, 0, "inversion")):
        g.link(src, out, stereo, dst)
    _stereo_outputs(g, vae, stereo, 1540, 0, "stereo/flux_photo_to_stereo")
    return g.to_json("flux_photo_to_stereo")


def video_to_stereo(classes) -> dict:
    """Every frame of a clip becomes a stereo pair (photo-to-stereo per frame), saved as a side by
    side video named for VR players. Self-contained: it shares only the Graph helpers."""
    g = Graph(classes)
    g.note((0, -300), (
        "Video to stereo (side by side)\n\nEach frame is inverted (fixed-point inversion: one model call "
        "per step) so that the Stereo KSampler reproduces it as the left view and paints the right view "
        "from the disparity. Depth Anything 3 Mono predicts depth; Estimate Disparity turns it into "
        "disparity (1/Z) with one scale for the whole clip ('per batch') and temporal smoothing, so the "
        "depth does not flicker.\n\nThe video is saved as video/video_to_stereo_LRF_Full_SBS_00001_.mp4: "
        "VR players read 'LRF_Full_SBS' as a full-width parallel side-by-side video. All frames are "
        "sampled as one batch: start with a short clip."), size=(560, 260))
    ckpt = g.node("CheckpointLoaderSimple", (0, 0), ckpt_name=SD15_CHECKPOINT)
    video = g.node("LoadVideo", (0, 160), file="example.mp4", size=[320, 360])
    parts = g.node("GetVideoComponents", (360, 160))
    g.link(video, 0, parts, "video")
    scale = g.node("ImageScale", (360, 360), upscale_method="lanczos", width=512, height=288, crop="center")
    g.link(parts, 0, scale, "image")
    encode = g.node("VAEEncode", (720, 360))
    g.link(scale, 0, encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    pos = g.node("CLIPTextEncode", (360, -40), title="Prompt (describe the video)", size=[400, 140], text="a video frame")
    neg = g.node("CLIPTextEncode", (720, -40), title="Negative prompt", size=[320, 120], text="")
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    settings = _sampler_settings(steps=20, cfg=7.5)
    inversion = g.node("StereoNullTextInversion", (1080, 0), steps=settings["steps"], cfg=settings["cfg"],
                       method="fixed_point")
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent")):
        g.link(src, out, inversion, dst)
    depth_model = g.node("StereoDisparityModelLoader", (360, 560), model_name=VIDEO_DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", (720, 560), normalization="per batch", batch_size=4,
                       temporal_smoothing=0.5)
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    stereo = g.node("StereoKSampler", (1440, 0), **settings)
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"),
                          (encode, 0, "latent_image"), (disparity, 0, "disparity"), (inversion, 0, "inversion")):
        g.link(src, out, stereo, dst)
    decode = g.node("VAEDecode", (1800, 0), title="Decode the stereo frames")
    g.link(stereo, 0, decode, "samples")
    g.link(ckpt, "VAE", decode, "vae")
    sbs = g.node("StereoSideBySide", (1800, 160), layout="parallel")
    g.link(decode, 0, sbs, "stereo")
    create = g.node("CreateVideo", (2160, 0))
    g.link(sbs, 0, create, "images")
    g.link(parts, 2, create, "fps")  # the clip's own frame rate
    g.link(parts, 1, create, "audio")
    save = g.node("SaveVideo", (2160, 200), filename_prefix="video/video_to_stereo_LRF_Full_SBS", size=[420, 360])
    g.link(create, 0, save, "video")
    return g.to_json("video_to_stereo")


VIDEO_DEPTH_MODEL = "depthanything/DA3MONO-LARGE/model.safetensors"

def photo_warp_inpaint(classes) -> dict:
    """Photo -> disparity -> StereoWarp -> the holes inpainted by the user's inpainting model."""
    name = "photo_warp_inpaint"
    g = Graph(classes)
    g.note((0, -280), (
        "Photo to stereo by warping and inpainting (fast, no inversion)\n\n1. A depth model estimates "
        "the disparity of the photo.\n2. Stereo Warp moves every pixel into the right view at full "
        "resolution; what no view shows (the disocclusions) comes back as a hole mask.\n3. Your "
        "inpainting checkpoint fills the holes (VAE Encode for Inpainting + KSampler), and only the "
        "holes are pasted back, so every other pixel of both eyes is the photo itself.\n\nSet the size "
        "on Upscale Image to your photo's aspect ratio (multiples of 8). Raise balance to split the "
        "parallax and the holes between both eyes."), size=(520, 260))
    ckpt = g.node("CheckpointLoaderSimple", (0, 0), title="Inpainting checkpoint", ckpt_name=SD15_INPAINT_CHECKPOINT)
    photo = g.node("LoadImage", (0, 160), image="example.png", size=[320, 360])
    scale = g.node("ImageScale", (360, 400), upscale_method="lanczos", width=768, height=512, crop="center")
    g.link(photo, "IMAGE", scale, "image")
    depth_model = g.node("StereoDisparityModelLoader", (360, 600), model_name=DEPTH_MODEL)
    disparity = g.node("StereoEstimateDisparity", (720, 560))
    g.link(depth_model, 0, disparity, "disparity_model")
    g.link(scale, 0, disparity, "image")
    warp = g.node("StereoWarp", (720, 360), divergence=5.0, grow_holes=2)
    g.link(scale, 0, warp, "image")
    g.link(disparity, 0, warp, "disparity")
    pos = g.node("CLIPTextEncode", (360, 0), title="Prompt (what lies behind things)", size=[400, 160],
                 text="background, seamless continuation of the scene, photograph")
    neg = g.node("CLIPTextEncode", (360, 200), title="Negative prompt", size=[400, 120], text=NEGATIVE)
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(ckpt, "CLIP", neg, "clip")
    encode = g.node("VAEEncodeForInpaint", (1080, 360), grow_mask_by=6)
    g.link(warp, 0, encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    g.link(warp, 1, encode, "mask")
    sampler = g.node("KSampler", (1080, 0), title="Inpaint the holes", seed=42, **_sampler_settings())
    for src, out, dst in ((ckpt, "MODEL", "model"), (pos, 0, "positive"), (neg, 0, "negative"), (encode, 0, "latent_image")):
        g.link(src, out, sampler, dst)
    decode = g.node("VAEDecode", (1440, 0))
    g.link(sampler, 0, decode, "samples")
    g.link(ckpt, "VAE", decode, "vae")
    paste = g.node("ImageCompositeMasked", (1440, 160), title="Paste only the holes back")
    g.link(warp, 0, paste, "destination")
    g.link(decode, 0, paste, "source")
    g.link(warp, 1, paste, "mask")
    holes = g.node("MaskToImage", (1080, 600))
    g.link(warp, 1, holes, "mask")
    preview_holes = g.node("PreviewImage", (1440, 600), title="Holes (white = inpainted)", size=[300, 300])
    g.link(holes, 0, preview_holes, "images")
    sbs = g.node("StereoSideBySide", (1800, 0), layout="parallel")
    g.link(paste, 0, sbs, "stereo")
    preview_sbs = g.node("PreviewImage", (2160, 0), title="Side by side (parallel)", size=[420, 300])
    g.link(sbs, 0, preview_sbs, "images")
    save = g.node("StereoSaveImage", (1800, 360), filename_prefix=f"stereo/{name}", layout="parallel")
    g.link(paste, 0, save, "stereo")
    return g.to_json(name)


WORKFLOWS = {
    "text_to_stereo": text_to_stereo,
    "photo_to_stereo": photo_to_stereo,
    "depth_to_stereo": depth_to_stereo,
    "sdxl_text_to_stereo": sdxl_text_to_stereo,
    "flux_text_to_stereo": flux_text_to_stereo,
    "flux_photo_to_stereo": flux_photo_to_stereo,
    "video_to_stereo": video_to_stereo,
    "photo_warp_inpaint": photo_warp_inpaint,
}


def build_all(classes, names=None) -> dict[str, dict]:
    return {name: make(classes) for name, make in WORKFLOWS.items() if names is None or name in names}


def dump(workflow: dict) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui")
    parser.add_argument("names", nargs="*", help="workflows to write (default: all)")
    args = parser.parse_args()
    comfy_host = _import_pack_module("headless.comfy_host")
    comfy_host.start_comfyui(comfy_host.find_comfyui(args.comfyui), cpu=True, custom_nodes=False)
    import nodes

    for name, workflow in build_all(nodes.NODE_CLASS_MAPPINGS, args.names or None).items():
        path = OUT_DIR / f"{name}.json"
        path.write_text(dump(workflow))
        print(path)


if __name__ == "__main__":
    sys.exit(main())
