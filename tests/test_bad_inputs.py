"""Bad inputs through the real host: every node refuses each one with a message naming the input.

Each row of BAD is (node, input, bad value, expected message). The row's prompt is the node with
its GOOD inputs, one of them replaced by the bad value, validated and executed by the host's own
`execution.validate_prompt` and `PromptExecutor` (headless.prompt_execution), so the message
checked is the one a user sees. Widgets left out of GOOD take their defaults.

Values that no widget can carry (tensors, models, conditioning, a Python list) are wrapped in
`Make(build)`: `build(kit)` makes the value once, and a test-only source node of the input's type
hands it to the node under test. `kit` holds the tiny models, shared by the whole module.

To add a node: put its working inputs in GOOD (test_good_inputs_run proves they run) and one row
per bad input in BAD. A row whose `expect` is None must run without error (a correct result).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import torch

from headless import prompt_execution
from testkit.tiny_models import tiny_conditioning, tiny_model

SOURCE_PREFIX = "BadInputSource_"
SINK_PREFIX = "BadInputSink_"
OMIT = object()  # in ROW_INPUTS: leave this GOOD input unconnected
_VALUES: dict[str, Any] = {}


@dataclass(frozen=True)
class Make:
    """A value built from the kit, passed through a source node of the input's socket type."""

    build: Callable[[SimpleNamespace], Any]
    label: str = ""

    def __repr__(self) -> str:
        return self.label or "Make"


@dataclass(frozen=True)
class Late:
    """A widget value known only once the pack is loaded: `get()` is put into the prompt as it is."""

    get: Callable[[], Any]
    label: str = ""

    def __repr__(self) -> str:
        return self.label or "Late"


@dataclass(frozen=True)
class Bad:
    node: str
    input: str
    value: Any
    expect: str | None  # a regex the message must contain; None: the node must run
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.node}.{self.input}:{self.note or repr(self.value)[:30]}"


def images(*shape, fill: float | None = None) -> Make:
    def build(_kit):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
        if fill is not None:
            x.view(-1)[0] = fill
        return x

    return Make(build, f"images{shape}" + ("" if fill is None else f"+{fill}"))


def latent(*shape, fill: float | None = None) -> Make:
    def build(_kit):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        if fill is not None:
            x.view(-1)[0] = fill
        return {"samples": x}

    return Make(build, f"latent{shape}" + ("" if fill is None else f"+{fill}"))


def kit_value(name: str) -> Make:
    return Make(lambda kit: getattr(kit, name), name)


def nan_conditioning(kit):
    cond = tiny_conditioning("sd15", seed=1)
    cond[0][0][0, 0, 0] = float("nan")
    return cond


NAN = float("nan")
SD15 = {"model": kit_value("sd15"), "positive": kit_value("positive"), "negative": kit_value("negative")}
STEREO_8x8 = images(2, 8, 8, 3)

GOOD: dict[str, dict[str, Any]] = {
    "StereoWarp": {"image": images(1, 8, 8, 3), "disparity": images(1, 8, 8)},
    "StereoRefine": {"stereo": STEREO_8x8, "disparity": images(1, 8, 8)},
    "StereoSplit": {"stereo": STEREO_8x8},
    "StereoJoin": {"left": images(1, 8, 8, 3), "right": images(1, 8, 8, 3)},
    "StereoSideBySide": {"stereo": STEREO_8x8},
    "StereoAnaglyph": {"stereo": STEREO_8x8},
    "StereoDepthToDisparity": {"image": images(1, 8, 8, 3)},
    "StereoSaveImage": {"stereo": STEREO_8x8, "filename_prefix": "bad_inputs/pair"},
    "StereoKSampler": {**SD15, "latent_image": latent(1, 4, 8, 8), "disparity": images(1, 64, 64), "steps": 2},
    "StereoNullTextInversion": {**SD15, "latent": latent(1, 4, 8, 8), "steps": 2, "method": "ddim"},
    "StereoSamplerDisparity": {"sampler": kit_value("sampled_sampler"), "stereo_latent": kit_value("sampled_latent")},
    "StereoEstimateDisparity": {"disparity_model": kit_value("depth_model"), "image": images(1, 16, 16, 3)},
    "StereoDisparityModelLoader": {"model_name": "depthanything/bad_inputs_depth.safetensors", "download_if_missing": False},
    "StereoCheck": {"stereo": images(2, 48, 48, 3)},
    "StereoDisplayTarget": {"preset": "custom"},
    "StereoVideoFill": {"stereo": images(4, 8, 8, 3), "holes": images(4, 8, 8), "disparity": images(2, 8, 8)},
    "StereoSaveVideo": {"stereo": images(2, 8, 8, 3), "filename_prefix": "bad_inputs/clip"},
    "StereoConvertVideoFile": {
        "video": "bad_inputs_clip.mp4", "disparity_model": kit_value("depth_model"), "filename_prefix": "bad_inputs/file",
        "audio": False,
    },
}


def _download_label():
    from stereo_pack.nodes.depth_model_files import DOWNLOAD_LABEL

    return DOWNLOAD_LABEL

BAD: list[Bad] = [
    # Images: empty, non-finite, not a tensor, wrong rank.
    Bad("StereoWarp", "image", images(0, 8, 8, 3), r"image is empty", "empty batch"),
    Bad("StereoWarp", "image", images(1, 8, 8, 3, fill=NAN), r"image contains 1 NaN"),
    Bad("StereoWarp", "image", Make(lambda _k: [[0.5, 0.5]], "list"), r"image: expected an IMAGE batch"),
    Bad("StereoWarp", "image", images(8, 8, 3), r"image must be an IMAGE batch", "3-D"),
    Bad("StereoWarp", "disparity", images(1, 8, 8, fill=NAN), r"disparity contains NaN"),
    Bad("StereoRefine", "stereo", images(2, 8, 8, 3, fill=float("inf")), r"stereo contains 1 NaN or infinite"),
    Bad("StereoRefine", "stereo", images(0, 8, 8, 3), r"stereo is empty"),
    Bad("StereoSplit", "stereo", images(2, 8, 3), r"stereo must be an IMAGE batch", "3-D"),
    Bad("StereoSplit", "stereo", images(3, 8, 8, 3), r"stereo must be a stereo batch of even size"),
    Bad("StereoJoin", "right", images(1, 8, 8, 3, fill=NAN), r"right contains"),
    Bad("StereoSideBySide", "stereo", images(2, 8, 8, 3, fill=NAN), r"stereo contains"),
    Bad("StereoAnaglyph", "stereo", images(2, 8, 8, 3, fill=NAN), r"stereo contains"),
    Bad("StereoDepthToDisparity", "image", images(1, 8, 8, 3, fill=NAN), r"image contains"),
    Bad("StereoEstimateDisparity", "image", images(1, 16, 16, 3, fill=NAN), r"image contains NaN"),
    # Depth to Disparity reads a (B, 1, H, W) mask as one map per image, as Stereo Warp does.
    Bad("StereoDepthToDisparity", "mask", images(1, 1, 8, 8), None, "B1HW mask"),
    # Saving: names that leave the output folder or that no file system takes.
    Bad("StereoSaveImage", "filename_prefix", "../escape", r"filename_prefix '../escape' climbs out"),
    Bad("StereoSaveImage", "filename_prefix", "/tmp/absolute", r"filename_prefix '/tmp/absolute' is an absolute"),
    Bad("StereoSaveImage", "filename_prefix", "C:\\Users\\x", r"filename_prefix .* is an absolute", "drive"),
    Bad("StereoSaveImage", "filename_prefix", "a\\..\\..\\b", r"filename_prefix .* climbs out", "backslashes"),
    Bad("StereoSaveImage", "filename_prefix", "nul\x00byte", r"filename_prefix contains a NUL"),
    Bad("StereoSaveImage", "filename_prefix", "x" * 300, r"filename_prefix has a part of 300 bytes"),
    Bad("StereoSaveImage", "stereo", images(2, 8, 8, 3, fill=NAN), r"stereo contains", "NaN (not a black PNG)"),
    Bad("StereoSaveImage", "format", "spatial photo (HEIC)", r"stereo: each eye is 8x7, but a spatial photo", "odd size"),
    # The sampler: latents, conditioning, seeds.
    Bad("StereoKSampler", "latent_image", latent(0, 4, 8, 8), r"latent_image is empty"),
    Bad("StereoKSampler", "latent_image", latent(1, 3, 8, 8), r"latent_image has 3 channels but .* 4-channel"),
    Bad("StereoKSampler", "latent_image", latent(1, 4, 8, 8, fill=NAN), r"latent_image contains 1 NaN"),
    Bad("StereoKSampler", "positive", Make(lambda _k: [], "[]"), r"positive: the conditioning is empty"),
    Bad("StereoKSampler", "positive", Make(nan_conditioning, "NaN cond"), r"positive contains 1 NaN"),
    Bad("StereoKSampler", "model", kit_value("sdxl"), r"positive: the conditioning has no 'pooled_output'",
        "SDXL with SD1.5 conditioning"),
    Bad("StereoKSampler", "seed", 2**64 - 1, None, "largest seed with deblur"),
    Bad("StereoKSampler", "latent_image", kit_value("other_photo"), r"latent_image: it is not the photo the inversion",
        "inversion of another photo"),
    # The inversion.
    Bad("StereoNullTextInversion", "latent", latent(0, 4, 8, 8), r"latent is empty"),
    Bad("StereoNullTextInversion", "latent", latent(1, 4, 1, 1), r"latent is 1x1 latent pixels; .* at least 2x2"),
    Bad("StereoNullTextInversion", "latent", latent(1, 3, 8, 8), r"latent has 3 channels"),
    Bad("StereoNullTextInversion", "latent", latent(1, 4, 8, 8, fill=NAN), r"latent contains 1 NaN"),
    Bad("StereoNullTextInversion", "positive", Make(lambda _k: [], "[]"), r"positive: the conditioning is empty"),
    Bad("StereoNullTextInversion", "negative", Make(nan_conditioning, "NaN cond"), r"negative contains 1 NaN"),
    # Model lists: the separator label and names that are not in the list, refused before the run.
    Bad("StereoDisparityModelLoader", "model_name", Late(_download_label, "separator"),
        r"Custom validation failed.*model_name: the chosen entry is the label"),
    Bad("StereoDisparityModelLoader", "model_name", "depthanything/absent.pth", r"model_name: 'depthanything/absent.pth' is not in the list"),
    # The disparity a Stereo Sampler used: only for the latent it made.
    Bad("StereoSamplerDisparity", "sampler", kit_value("fresh_sampler"), r"stereo_latent: the Stereo Sampler has not sampled"),
    Bad("StereoSamplerDisparity", "stereo_latent", latent(2, 4, 16, 16), r"stereo_latent has shape \(2, 4, 16, 16\), but"),
    # Stereo Check: pairs it cannot measure, maps that do not fit.
    Bad("StereoCheck", "stereo", images(2, 48, 48, 3, fill=NAN), r"stereo contains NaN"),
    Bad("StereoCheck", "stereo", images(2, 8, 8, 3), r"stereo images are 8x8; Stereo Check needs at least"),
    Bad("StereoCheck", "stereo", images(3, 48, 48, 3), r"stereo must be a stereo batch of even size"),
    Bad("StereoCheck", "disparity", images(3, 48, 48), r"disparity has 3 maps for 1 pairs"),
    # Stereo Video Fill: the holes of another batch, non-finite frames.
    Bad("StereoVideoFill", "holes", images(3, 8, 8), r"holes \(3, 8, 8\) must match the stereo batch"),
    Bad("StereoVideoFill", "stereo", images(4, 8, 8, 3, fill=NAN), r"stereo contains 1 NaN"),
    # Stereo Save Video: names outside the output folder, non-finite frames, a missing encoder.
    Bad("StereoSaveVideo", "filename_prefix", "../escape", r"filename_prefix '../escape' climbs out"),
    Bad("StereoSaveVideo", "stereo", images(2, 8, 8, 3, fill=NAN), r"stereo contains 1 NaN"),
    Bad("StereoSaveVideo", "format", "Apple spatial video (MV-HEVC)", r"format: .*MV-HEVC", "no encoder here"),
    # Stereo Convert Video File: names outside the output folder, a range past the end.
    Bad("StereoConvertVideoFile", "filename_prefix", "../escape", r"filename_prefix '../escape' climbs out"),
    Bad("StereoConvertVideoFile", "first_frame", 1000, r"first_frame 1000 is past the end of the video \(4 frames\)"),
]

# Inputs whose GOOD value depends on the row (an inversion for the mismatch row).
ROW_INPUTS: dict[str, dict[str, Any]] = {
    "StereoKSampler.latent_image:inversion of another photo": {
        "inversion": kit_value("inversion"), "sampler_name": "euler", "steps": 2, "cfg": 2.0,
    },
    "StereoDepthToDisparity.mask:B1HW mask": {"image": OMIT},
    "StereoSaveImage.format:odd size": {"stereo": images(2, 7, 8, 3)},
}


# ---------------------------------------------------------------------------------------------
# The host side: source nodes, the prompt of a row, running it


def _source_class(kind: str) -> type:
    class Source:
        RETURN_TYPES = (kind,)
        FUNCTION = "make"
        CATEGORY = "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"key": ("STRING", {"default": ""})}}

        def make(self, key):
            return (_VALUES[key],)

    return Source


def _sink_class(kind: str) -> type:
    class Sink:
        RETURN_TYPES = ()
        FUNCTION = "take"
        OUTPUT_NODE = True
        CATEGORY = "testing"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": (kind,)}}

        def take(self, value):
            return {}

    return Sink


def _node_class(node_id: str):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


def _definitions(node_id: str) -> dict[str, tuple]:
    types = _node_class(node_id).INPUT_TYPES()
    return {**types.get("required", {}), **types.get("optional", {})}


def _default(spec: tuple):
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, list):
        return options.get("default", kind[0] if kind else None)
    if kind == "COMBO":
        return options.get("default", (options.get("options") or [None])[0])
    return options.get("default")


def _kit_build(kit: SimpleNamespace, make: Make):
    return make.build(kit)


def build_prompt(kit, row_key: str, node_id: str, inputs: dict) -> dict:
    import nodes

    definitions = _definitions(node_id)
    required = _node_class(node_id).INPUT_TYPES().get("required", {})
    prompt: dict[str, dict] = {}
    node_inputs: dict[str, Any] = {}
    for name, spec in required.items():
        if name not in inputs:
            value = _default(spec)
            if value is None:
                raise AssertionError(f"GOOD[{node_id!r}] lacks the socket {name!r}")
            node_inputs[name] = value
    for name, value in inputs.items():
        if value is OMIT:
            continue
        if isinstance(value, Late):
            value = value.get()
        if name not in definitions:
            raise AssertionError(f"{node_id} has no input {name!r}")
        if isinstance(value, Make):
            kind = definitions[name][0]
            source = SOURCE_PREFIX + re.sub(r"\W", "_", str(kind))
            if source not in nodes.NODE_CLASS_MAPPINGS:
                nodes.NODE_CLASS_MAPPINGS[source] = _source_class(kind)
            key = f"{row_key}/{name}"
            _VALUES[key] = _kit_build(kit, value)
            source_id = f"src_{len(prompt)}"
            prompt[source_id] = {"class_type": source, "inputs": {"key": key}}
            node_inputs[name] = [source_id, 0]
        else:
            node_inputs[name] = value
    prompt["node"] = {"class_type": node_id, "inputs": node_inputs}
    node_class = _node_class(node_id)
    if not getattr(node_class, "OUTPUT_NODE", False):  # the host runs only what reaches an output
        kind = node_class.RETURN_TYPES[0]
        sink = SINK_PREFIX + re.sub(r"\W", "_", str(kind))
        if sink not in nodes.NODE_CLASS_MAPPINGS:
            nodes.NODE_CLASS_MAPPINGS[sink] = _sink_class(kind)
        prompt["out"] = {"class_type": sink, "inputs": {"value": ["node", 0]}}
    return prompt


def _write_tiny_clip(path, frames: int = 4) -> None:
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 18, "yuv420p"
        for t in range(frames):
            rgb = torch.rand(18, 32, 3, generator=torch.Generator().manual_seed(t)).mul(255).byte().numpy()
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def kit(pack, tmp_path_factory):
    """The tiny models and the objects some rows need, built once."""
    import comfy.sample
    import comfy.samplers
    import folder_paths

    out_dir = tmp_path_factory.mktemp("bad_inputs_out")
    old = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(out_dir))
    k = SimpleNamespace(out_dir=out_dir)
    k.sd15, k.sdxl = tiny_model("sd15"), tiny_model("sdxl")
    k.positive, k.negative = tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)

    photo = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 5
    inversion = _node_class("StereoNullTextInversion").execute(
        model=k.sd15, positive=k.positive, negative=k.negative, latent={"samples": photo}, steps=2, cfg=2.0,
        method="ddim",
    ).result[0]
    k.inversion = inversion
    k.other_photo = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4)) * 5}

    def stereo_sampler():
        return _node_class("StereoSampler").execute(
            sampler_name="euler", disparity=torch.rand(1, 64, 64), divergence=8.0, convergence=0.0, subpixel=True,
            balance=0.0, shift_at=0.2, spsmd=True, spsmd_interval=0.2, deblur=True,
        ).result[0]

    k.new_stereo_sampler = stereo_sampler
    k.fresh_sampler = stereo_sampler()
    k.sampled_sampler = stereo_sampler()
    sigmas = comfy.samplers.calculate_sigmas(k.sd15.get_model_object("model_sampling"), "normal", 3)
    start = torch.zeros(1, 4, 8, 8)
    k.sampled_latent = {"samples": comfy.sample.sample_custom(
        k.sd15, torch.randn_like(start), 1.0, k.sampled_sampler, sigmas, k.positive, k.negative, start, seed=0,
    )}

    from stereo_pack.nodes.depth import DisparityModel, build_and_load
    from testkit.tiny_depth import tiny_depth_anything

    import comfy.model_patcher

    from testkit.tiny_depth import write_tiny_depth_anything
    from headless.comfy_host import add_models_folder

    models = tmp_path_factory.mktemp("bad_inputs_models")
    write_tiny_depth_anything(models / "depthanything" / "bad_inputs_depth.safetensors")
    add_models_folder(models)
    depth, arch = build_and_load(tiny_depth_anything(2).state_dict())
    cpu = torch.device("cpu")
    k.depth_model = DisparityModel(
        comfy.model_patcher.ModelPatcher(depth, load_device=cpu, offload_device=cpu), arch, torch.float32, "tiny"
    )
    # A clip in a test input folder, for the file converter.
    in_dir = tmp_path_factory.mktemp("bad_inputs_in")
    old_input = folder_paths.get_input_directory()
    folder_paths.set_input_directory(str(in_dir))
    _write_tiny_clip(in_dir / "bad_inputs_clip.mp4")
    k.executor = prompt_execution.new_executor()
    yield k
    folder_paths.set_input_directory(old_input)
    folder_paths.set_output_directory(old)
    for name in [n for n in __import__("nodes").NODE_CLASS_MAPPINGS if n.startswith((SOURCE_PREFIX, SINK_PREFIX))]:
        del __import__("nodes").NODE_CLASS_MAPPINGS[name]
    _VALUES.clear()


def run(kit, row_key: str, node_id: str, inputs: dict) -> dict:
    return prompt_execution.run_prompt(build_prompt(kit, row_key, node_id, inputs), kit.executor)


# ---------------------------------------------------------------------------------------------
# The tests


def test_every_row_names_a_node_with_good_inputs():
    assert {row.node for row in BAD} <= set(GOOD), "add GOOD inputs for every node in BAD"
    assert len({row.id for row in BAD}) == len(BAD), "row ids must be unique"


@pytest.mark.parametrize("node_id", sorted(GOOD))
def test_good_inputs_run(kit, node_id):
    """The baseline of every row: with GOOD inputs the node runs, so a row fails for its bad value."""
    run(kit, f"good/{node_id}", node_id, GOOD[node_id])


@pytest.mark.parametrize("row", BAD, ids=lambda row: row.id)
def test_bad_input_is_refused_by_name(kit, row):
    inputs = {**GOOD[row.node], **ROW_INPUTS.get(row.id, {}), row.input: row.value}
    if row.expect is None:
        run(kit, row.id, row.node, inputs)
        return
    with pytest.raises(prompt_execution.PromptError) as info:
        run(kit, row.id, row.node, inputs)
    message = str(info.value)
    assert re.search(row.expect, message), message
    assert "Traceback" not in message


# ---------------------------------------------------------------------------------------------
# The headless runner: bad files and arguments are refused before the host starts (no host here)

RUNNER_BAD_WORKFLOWS = [
    ("list", "[1, 2, 3]", r"holds a JSON list, not an object"),
    ("nodes not a list", '{"nodes": {"1": {}}, "links": []}', r"'nodes' must be a list of nodes"),
    ("node without type", '{"nodes": [{"id": 1}], "links": []}', r"'nodes' must be a list of nodes"),
    ("links not a list", '{"nodes": [], "links": 5}', r"'links' must be a list"),
    ("neither", '{"a": 1}', r"neither 'nodes' and 'links' nor API-format"),
]


@pytest.mark.parametrize("text, expect", [r[1:] for r in RUNNER_BAD_WORKFLOWS], ids=[r[0] for r in RUNNER_BAD_WORKFLOWS])
def test_runner_refuses_a_file_that_is_not_a_workflow(tmp_path, text, expect):
    from headless import run_workflow

    path = tmp_path / "workflow.json"
    path.write_text(text)
    with pytest.raises(SystemExit) as info:
        run_workflow.load_workflow(str(path))
    assert re.search(expect, str(info.value)) and str(path) in str(info.value)


def test_runner_refuses_an_image_file_that_is_not_an_image_before_the_host_starts(tmp_path, monkeypatch):
    from headless import comfy_host, run_workflow

    fake = tmp_path / "photo.png"
    fake.write_text("not a picture")
    monkeypatch.setattr(comfy_host, "require_comfyui", lambda *_: pytest.fail("the host was started"))
    args = run_workflow.parse_args(["photo_to_stereo", "--image", str(fake), "--dry-run"])
    with pytest.raises(SystemExit, match=r"--image .*photo.png: not an image that can be read"):
        run_workflow.run(args)
    folder = tmp_path / "many"
    folder.mkdir()
    (folder / "b.jpg").write_text("nor this")
    with pytest.raises(SystemExit, match=r"--images .*b.jpg: not an image"):
        run_workflow.run(run_workflow.parse_args(["photo_to_stereo", "--images", str(folder)]))


@pytest.mark.parametrize("assignment", ["steps=3", "KSampler.steps", ".steps=3", "KSampler.=3"])
def test_runner_checks_set_syntax_before_the_host_starts(assignment, capsys):
    from headless import run_workflow

    with pytest.raises(SystemExit) as info:
        run_workflow.parse_args(["photo_to_stereo", "--set", assignment])
    assert info.value.code == 2
    assert "expected NODE.INPUT=VALUE" in capsys.readouterr().err


def test_runner_depth_model_shortcut_sets_every_depth_loader_only():
    from headless import prompt_overrides

    prompt = {
        "1": {"class_type": "StereoDisparityModelLoader", "inputs": {"model_name": "depthanything/a.safetensors"}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x.pth"}},
    }
    out = prompt_overrides.apply(prompt, depth_model="midas/dpt_large_384.pt")
    assert out["1"]["inputs"]["model_name"] == "midas/dpt_large_384.pt"
    assert out["2"]["inputs"]["model_name"] == "4x.pth"
    with pytest.raises(prompt_overrides.OverrideError, match="--depth-model: the workflow has no Load Disparity Model"):
        prompt_overrides.apply({"2": prompt["2"]}, depth_model="x")


# ---------------------------------------------------------------------------------------------
# Correct results where an input was read wrongly before


def test_depth_to_disparity_reads_a_b1hw_mask_as_one_map_per_image(pack):
    mask = torch.linspace(0, 1, 64).view(1, 1, 8, 8).repeat(2, 1, 1, 1)
    (out,) = _node_class("StereoDepthToDisparity").execute(
        invert=False, normalization="per image", gamma=1.0, blur=0.0, width=0, height=0, mask=mask,
    ).result
    assert out.shape == (2, 8, 8) and torch.allclose(out, mask[:, 0])


def test_sub_seeds_wrap_into_the_64_bit_range():
    from stereo_pack.stereo_ops.sampling import derived_seed

    assert derived_seed(2**64 - 1, 0xDEB) == 0xDEA
    assert derived_seed(None, 5) == 5 and derived_seed(7, 0) == 7


def test_stereo_sampler_refuses_a_non_finite_latent_inside_samplercustom(kit):
    import comfy.sample
    import comfy.samplers

    sigmas = comfy.samplers.calculate_sigmas(kit.sd15.get_model_object("model_sampling"), "normal", 3)
    start = torch.zeros(1, 4, 8, 8)
    start[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"latent_image contains 1 NaN"):
        comfy.sample.sample_custom(
            kit.sd15, torch.zeros_like(start), 1.0, kit.new_stereo_sampler(), sigmas, kit.positive, kit.negative, start, seed=0,
        )


def test_non_finite_values_are_counted_without_false_alarms():
    from stereo_pack.stereo_ops.checks import count_non_finite

    x = torch.ones(3, 4)
    assert count_non_finite(x) == 0 and count_non_finite(x.t()) == 0
    x[1, 2], x[2, 0] = float("nan"), float("inf")
    assert count_non_finite(x) == 2
    assert count_non_finite(torch.tensor(float("-inf"))) == 1
    # A sum that overflows (half precision) is no NaN: the values are counted one by one then.
    assert count_non_finite(torch.full((2,), 60000.0, dtype=torch.float16)) == 0
