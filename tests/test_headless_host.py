"""Tiny checkpoint files through the host's ordinary loaders, and whole UI-format graphs through
the headless runner's conversion and the host's executor (validate_prompt + PromptExecutor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from headless import prompt_execution, workflow_to_api
from testkit import tiny_checkpoints, tiny_models
from testkit.host_folders import host_folders


def _link(i, a, a_slot, b, b_slot, kind):
    return [i, a, a_slot, b, b_slot, kind]


def img2img_workflow(ckpt: str, control: str | None = None) -> dict:
    """A photo-to-image graph in the frontend's format: CheckpointLoaderSimple, LoadImage, VAEEncode,
    two CLIPTextEncode, KSampler, VAEDecode, SaveImage; with `control`, a ControlNet branch too."""
    nodes = [
        {"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "order": 0, "inputs": [],
         "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}, {"name": "CLIP", "type": "CLIP", "links": [2, 3]},
                     {"name": "VAE", "type": "VAE", "links": [4, 5]}], "widgets_values": [ckpt]},
        {"id": 2, "type": "LoadImage", "mode": 0, "order": 1, "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [6, 12]}, {"name": "MASK", "type": "MASK", "links": []}],
         "widgets_values": ["photo.png", "image"]},
        {"id": 3, "type": "CLIPTextEncode", "mode": 0, "order": 2, "title": "Positive",
         "inputs": [{"name": "clip", "type": "CLIP", "link": 2}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [7]}], "widgets_values": ["a red house"]},
        {"id": 4, "type": "CLIPTextEncode", "mode": 0, "order": 3,
         "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [8]}], "widgets_values": ["blurry"]},
        {"id": 5, "type": "VAEEncode", "mode": 0, "order": 4,
         "inputs": [{"name": "pixels", "type": "IMAGE", "link": 6}, {"name": "vae", "type": "VAE", "link": 4}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [9]}]},
        {"id": 6, "type": "KSampler", "mode": 0, "order": 6,
         "inputs": [{"name": "model", "type": "MODEL", "link": 1}, {"name": "positive", "type": "CONDITIONING", "link": 7},
                    {"name": "negative", "type": "CONDITIONING", "link": 8}, {"name": "latent_image", "type": "LATENT", "link": 9}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [10]}],
         "widgets_values": [5, "fixed", 3, 4.0, "euler", "normal", 0.8]},
        {"id": 7, "type": "VAEDecode", "mode": 0, "order": 7,
         "inputs": [{"name": "samples", "type": "LATENT", "link": 10}, {"name": "vae", "type": "VAE", "link": 5}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [11]}]},
        {"id": 8, "type": "SaveImage", "mode": 0, "order": 8,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 11}], "outputs": [], "widgets_values": ["tiny"]},
    ]
    links = [
        _link(1, 1, 0, 6, 0, "MODEL"), _link(2, 1, 1, 3, 0, "CLIP"), _link(3, 1, 1, 4, 0, "CLIP"),
        _link(4, 1, 2, 5, 1, "VAE"), _link(5, 1, 2, 7, 1, "VAE"), _link(6, 2, 0, 5, 0, "IMAGE"),
        _link(7, 3, 0, 6, 1, "CONDITIONING"), _link(8, 4, 0, 6, 2, "CONDITIONING"), _link(9, 5, 0, 6, 3, "LATENT"),
        _link(10, 6, 0, 7, 0, "LATENT"), _link(11, 7, 0, 8, 0, "IMAGE"),
    ]
    if control:
        # ControlNetLoader -> ControlNetApplyAdvanced between the prompts and the sampler, hint = the photo.
        nodes += [
            {"id": 9, "type": "ControlNetLoader", "mode": 0, "order": 5, "inputs": [],
             "outputs": [{"name": "CONTROL_NET", "type": "CONTROL_NET", "links": [13]}], "widgets_values": [control]},
            {"id": 10, "type": "ControlNetApplyAdvanced", "mode": 0, "order": 5,
             "inputs": [{"name": "positive", "type": "CONDITIONING", "link": 14}, {"name": "negative", "type": "CONDITIONING", "link": 15},
                        {"name": "control_net", "type": "CONTROL_NET", "link": 13}, {"name": "image", "type": "IMAGE", "link": 12},
                        {"name": "vae", "type": "VAE", "link": None}],
             "outputs": [{"name": "positive", "type": "CONDITIONING", "links": [7]}, {"name": "negative", "type": "CONDITIONING", "links": [8]}],
             "widgets_values": [1.0, 0.0, 1.0]},
        ]
        links = [l for l in links if l[0] not in (7, 8)] + [
            _link(7, 10, 0, 6, 1, "CONDITIONING"), _link(8, 10, 1, 6, 2, "CONDITIONING"),
            _link(12, 2, 0, 10, 3, "IMAGE"), _link(13, 9, 0, 10, 2, "CONTROL_NET"),
            _link(14, 3, 0, 10, 0, "CONDITIONING"), _link(15, 4, 0, 10, 1, "CONDITIONING"),
        ]
        nodes[2]["outputs"][0]["links"] = [14]
        nodes[3]["outputs"][0]["links"] = [15]
    return {"nodes": nodes, "links": links, "version": 0.4}


@pytest.fixture(scope="module")
def headless(pack):
    return prompt_execution, workflow_to_api


@pytest.fixture(scope="module")
def models(host):
    yield tiny_checkpoints.tiny_models()


@pytest.fixture(scope="module")
def executor(headless):
    return headless[0].new_executor()


@pytest.fixture(scope="module")
def io_dirs(host, tmp_path_factory):
    """One input and output folder for the module: the shared executor may answer from its cache."""
    tmp_path = tmp_path_factory.mktemp("io")
    with host_folders(tmp_path):
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "in" / "photo.png")
        yield tmp_path


def test_tiny_checkpoints_load_through_the_ordinary_loaders_as_sd15_and_sdxl(models):
    import comfy.model_base
    import comfy.supported_models as sm
    import nodes

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(models.sd15)
    assert type(model.model.model_config) is sm.SD15 and type(model.model) is comfy.model_base.BaseModel
    cond = nodes.CLIPTextEncode().encode(clip, "a red house")[0]
    assert cond[0][0].shape == (1, 77, 768)
    other = nodes.CLIPTextEncode().encode(clip, "a blue car")[0]
    assert not torch.allclose(cond[0][0], other[0][0])  # the text encoder really reads the prompt
    image = vae.decode(torch.randn(1, 4, 8, 12))
    assert image.shape[-3:] == (64, 96, 3)

    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(models.sdxl)
    assert isinstance(model.model.model_config, sm.SDXL) and type(model.model) is comfy.model_base.SDXL
    cond = nodes.CLIPTextEncode().encode(clip, "a red house")[0]
    assert cond[0][0].shape == (1, 77, tiny_models.TINY_CONTEXT_DIM)
    assert cond[0][1]["pooled_output"].shape == (1, tiny_models.TINY_POOLED_DIM)

    control = nodes.ControlNetLoader().load_controlnet(models.controlnet)[0]
    assert type(control).__name__ == "ControlNet"


def _saved(execution, outputs) -> list[Path]:
    files = execution.saved_files(outputs)
    assert files and all(f.is_file() for f in files)
    return files


def test_ui_workflow_runs_in_the_host_executor(headless, models, executor, io_dirs):
    import nodes

    execution, converter = headless
    for ckpt in (models.sd15, models.sdxl):
        prompt = converter.workflow_to_api(img2img_workflow(ckpt), nodes.NODE_CLASS_MAPPINGS)
        assert prompt["6"]["inputs"]["seed"] == 5 and prompt["6"]["inputs"]["denoise"] == 0.8
        (saved,) = _saved(execution, execution.run_prompt(prompt, executor))
        assert Image.open(saved).size == (96, 64)


def test_controlnet_changes_the_result(headless, models, executor, io_dirs):
    import nodes

    execution, converter = headless
    images = []
    for strength in (0.0, 1.0):
        graph = img2img_workflow(models.sd15, control=models.controlnet)
        next(n for n in graph["nodes"] if n["id"] == 10)["widgets_values"][0] = strength
        prompt = converter.workflow_to_api(graph, nodes.NODE_CLASS_MAPPINGS)
        (saved,) = _saved(execution, execution.run_prompt(prompt, executor))
        images.append(np.asarray(Image.open(saved), dtype=np.float32))
    assert np.abs(images[0] - images[1]).mean() > 1.0


def test_validation_errors_are_reported_with_the_node(headless, models, io_dirs):
    import nodes

    execution, converter = headless
    prompt = converter.workflow_to_api(img2img_workflow("no_such_model.safetensors"), nodes.NODE_CLASS_MAPPINGS)
    with pytest.raises(execution.PromptError, match=r"node 1 \(CheckpointLoaderSimple\).*no_such_model"):
        execution.run_prompt(prompt)
