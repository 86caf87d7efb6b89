"""The headless runner as a user meets it: `python -m headless.run_workflow` in a subprocess, on
the real host with tiny models loaded by the host's ordinary loaders; and its parts (overrides,
settings checks, console progress, the embedded workflow) on their own."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headless import comfy_host
from headless import prompt_checks as checks
from headless import prompt_overrides as overrides
from headless import run_workflow as runner
from headless.console_progress import ConsoleProgress
from headless.workflow_to_api import set_widget_values, workflow_to_api
from testkit import tiny_checkpoints

SIZE = 64


# ---------------------------------------------------------------------------------------------
# The parts, without the host


def photo_prompt(sampler_latent=("5", 0), **sampler) -> dict:
    """LoadImage -> ImageScale -> VAEEncode -> inversion -> Stereo KSampler, in API format."""
    return {
        "3": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}, "_meta": {"title": "LoadImage"}},
        "4": {"class_type": "ImageScale", "inputs": {"image": ["3", 0], "width": 512, "height": 0},
              "_meta": {"title": "ImageScale"}},
        "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0]}, "_meta": {"title": "VAEEncode"}},
        "8": {"class_type": "StereoNullTextInversion", "inputs": {"latent": ["5", 0], "steps": 50, "cfg": 7.5},
              "_meta": {"title": "StereoNullTextInversion"}},
        "9": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1},
              "_meta": {"title": "EmptyLatentImage"}},
        "11": {"class_type": "StereoKSampler", "_meta": {"title": "My sampler"}, "inputs": {
            "inversion": ["8", 0], "latent_image": list(sampler_latent), "steps": 50, "cfg": 7.5,
            "sampler_name": "euler", **sampler}},
    }


NAMES = {"StereoNullTextInversion": "Stereo Null-Text Inversion", "StereoKSampler": "Stereo KSampler"}


def test_settings_that_do_not_fit_the_inversion_are_named_with_the_fix():
    ok = photo_prompt()
    assert checks.inversion_problems(ok, lambda name: (1024, 768), NAMES, ("euler", "ddim")) == []

    bad = photo_prompt(steps=30, cfg=5.0, sampler_name="dpmpp_2m")
    problems = checks.inversion_problems(bad, None, NAMES, ("euler", "ddim"))
    assert problems == [
        "My sampler (node 11) has steps 30 but Stereo Null-Text Inversion (node 8) uses steps 50; they must "
        "match: --set 11.steps=50 or --set 8.steps=30",
        "My sampler (node 11) has cfg 5.0 but Stereo Null-Text Inversion (node 8) uses cfg 7.5; they must "
        "match: --set 11.cfg=7.5 or --set 8.cfg=5.0",
        "My sampler (node 11) has sampler_name dpmpp_2m, which cannot retrace the inversion of Stereo "
        "Null-Text Inversion (node 8); use euler or ddim: --set 11.sampler_name=euler",
    ]


def test_latent_sizes_are_compared_where_they_can_be_read_from_the_prompt():
    # The photo is 1024x768: scaled to width 512 it is 512x384, the empty latent is 512x768.
    prompt = photo_prompt(sampler_latent=("9", 0))
    (problem,) = checks.inversion_problems(prompt, lambda name: (1024, 768), NAMES)
    assert "gets a 512x768 latent_image but Stereo Null-Text Inversion (node 8) inverts a 512x384 one" in problem
    # An image whose size is unknown (file missing) is left to the node.
    assert checks.inversion_problems(prompt, lambda name: None, NAMES) == []
    # A photo that scales to the same latent grid passes (1000x1500 -> 512x768).
    assert checks.inversion_problems(prompt, lambda name: (1000, 1500), NAMES) == []


def test_set_accepts_ids_titles_displayed_names_and_types():
    prompt = photo_prompt()
    inputs = {"StereoNullTextInversion": ["steps", "cfg", "latent"], "StereoKSampler": ["steps", "cfg", "seed"]}
    out = overrides.apply(prompt, sets=["Stereo Null-Text Inversion.steps=10", "My sampler.steps=10",
                                        "stereoksampler.cfg=4", "8.cfg=4"], display_names=NAMES, input_names=inputs)
    assert (out["8"]["inputs"]["steps"], out["11"]["inputs"]["steps"]) == (10, 10)
    assert (out["8"]["inputs"]["cfg"], out["11"]["inputs"]["cfg"]) == (4, 4)

    with pytest.raises(overrides.OverrideError, match=r"no input 'step'; its inputs: steps, cfg, latent"):
        overrides.apply(prompt, sets=["Stereo Null-Text Inversion.step=10"], display_names=NAMES, input_names=inputs)
    with pytest.raises(overrides.OverrideError, match=r"no node with id, title or name 'Sampler'.*11: My sampler"):
        overrides.apply(prompt, sets=["Sampler.steps=3"], display_names=NAMES)
    twice = {**prompt, "12": {**prompt["11"], "_meta": {"title": "StereoKSampler"}}}
    with pytest.raises(overrides.OverrideError, match=r"2 nodes are called 'Stereo KSampler' \(ids 11, 12\)"):
        overrides.apply(twice, sets=["Stereo KSampler.steps=3"], display_names=NAMES)


def test_output_prefixes_lose_their_folder_and_the_embedded_workflow_shows_what_ran():
    prompt = {"1": {"class_type": "Save", "inputs": {"filename_prefix": "stereo/photo"}},
              "2": {"class_type": "Save", "inputs": {"filename_prefix": "a\\b\\c"}}}
    overrides.flatten_filename_prefixes(prompt)
    assert [n["inputs"]["filename_prefix"] for n in prompt.values()] == ["photo", "c"]

    classes = {"Sampler": {"required": {"seed": ("INT", {}), "steps": ("INT", {}), "model": ("MODEL",)}}}
    workflow = {"nodes": [{"id": 4, "type": "Sampler", "mode": 0, "inputs": [], "outputs": [],
                           "widgets_values": [1, "fixed", 20]}], "links": []}
    base = workflow_to_api(workflow, classes)
    ran = overrides.apply(base, seed=9, sets=["4.steps=5"])
    embedded = set_widget_values(workflow, overrides.changed_inputs(base, ran), classes)
    assert embedded["nodes"][0]["widgets_values"] == [9, "fixed", 5]
    assert workflow["nodes"][0]["widgets_values"] == [1, "fixed", 20]  # the loaded workflow is left alone
    assert workflow_to_api(embedded, classes)["4"]["inputs"] == ran["4"]["inputs"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_console_progress_names_the_node_and_logs_every_tenth_when_not_on_a_terminal():
    stream, clock = io.StringIO(), FakeClock()
    progress = ConsoleProgress(stream, current_node=lambda: "8", clock=clock, interactive=False)
    progress.labels = {"8": "Stereo Null-Text Inversion (node 8)"}
    for step in range(1, 101):
        clock.now = step * 2.0
        progress(step, 100, None)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10, lines
    # Times count from the node's first report (step 1, at 2 s).
    assert lines[0] == "Stereo Null-Text Inversion (node 8): 10/100 (10%), 18s, about 2m42s left"
    assert lines[-1] == "Stereo Null-Text Inversion (node 8): 100/100 (100%), 3m18s"

    # On a terminal the line is redrawn in place and ended when the node is done.
    stream = io.StringIO()
    progress = ConsoleProgress(stream, clock=clock, interactive=True)
    for step in (1, 2, 3):
        clock.now += 1
        progress(step, 3, None, node_id="11")
    assert stream.getvalue().count("\r") == 3 and stream.getvalue().endswith("node 11: 3/3 (100%), 2s\n")


# ---------------------------------------------------------------------------------------------
# The command line, on the real host


@pytest.fixture(scope="module")
def models(host):
    return tiny_checkpoints.tiny_models()


@pytest.fixture()
def photo(tmp_path) -> Path:
    y, x = np.mgrid[0:96, 0:128]
    image = np.stack([x * 2.0, y * 2.5, (x + y) * 1.1], -1).clip(0, 255).astype(np.uint8)
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(image).save(path)
    return path


def tiny_settings(models) -> list[str]:
    """The photo workflow made small, every node named as the UI shows it."""
    sets = [
        "Stereo Null-Text Inversion.steps=3", "Stereo Null-Text Inversion.inner_steps=1", "Stereo KSampler.steps=3",
        f"Load Disparity Model.model_name={models.depth_model_name}", "Load Disparity Model.download_if_missing=false",
        "Estimate Disparity.resolution=56", f"ImageScale.width={SIZE}",
    ]
    return [arg for s in sets for arg in ("--set", s)]


def run_cli(host, models, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "headless.run_workflow", "photo_to_stereo", "--comfyui", str(host),
           "--models", str(models.root), "--no-custom-nodes", *args]
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # the machine a user runs this on may have no GPU at all
    return subprocess.run(cmd, cwd=comfy_host.PACK_DIR, capture_output=True, text=True, timeout=600, env=env)


def only_host_import_tracebacks(stderr: str) -> bool:
    """Tracebacks other than the host's own, printed while it imports its optional extras (e.g.
    without torchaudio): a failure of the run must never show one."""
    blocks = stderr.split("Traceback (most recent call last):")[1:]
    return all("comfy_extras" in block.split("\n\n")[0] for block in blocks)


def test_runner_falls_back_to_the_cpu_shows_progress_and_writes_where_output_says(host, models, photo, tmp_path):
    out = tmp_path / "out"
    result = run_cli(host, models, "--image", str(photo), "--output", str(out), "--checkpoint", models.sd15,
                     "--seed", "4", *tiny_settings(models))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    err = result.stderr.splitlines()
    assert [line for line in err if "GPU" in line] == [
        "No usable GPU found: running on the CPU, which is slow (see the README's 'Try it in a minute'); "
        "pass --cpu to skip this check."
    ]
    # Progress of the long stages, named as the nodes are named in the UI (log form: not a terminal).
    assert "Stereo Null-Text Inversion (node 8): " in result.stderr
    assert any(line.startswith("Stereo KSampler (node 11): 3/3 (100%)") for line in err), result.stderr[-3000:]
    assert any(line.startswith("Estimate Disparity (node 10): 1/1 (100%)") for line in err)

    # Exactly in --output, named as documented: <prefix>_<input stem>_<counter>_<layout>.png.
    assert sorted(p.name for p in out.iterdir()) == ["photo_to_stereo_photo_00001_LRF_Full_SBS.png"]
    saved = out / "photo_to_stereo_photo_00001_LRF_Full_SBS.png"
    assert result.stdout.strip() == f"photo.png -> {saved}"
    with Image.open(saved) as image:
        assert image.size == (2 * SIZE, SIZE * 96 // 128)
        workflow, prompt = json.loads(image.text["workflow"]), json.loads(image.text["prompt"])
    # The embedded workflow is the UI graph, with the values that ran: drag it onto ComfyUI to redo it.
    inversion = next(n for n in workflow["nodes"] if n["type"] == "StereoNullTextInversion")
    assert inversion["widgets_values"][:1] == [3] and prompt[str(inversion["id"])]["inputs"]["steps"] == 3
    save = next(n for n in workflow["nodes"] if n["type"] == "StereoSaveImage")
    assert save["widgets_values"][0] == "photo_to_stereo_photo" and "links" in workflow


def test_mismatched_steps_stop_the_runner_before_any_model_with_one_message(host, models, photo, tmp_path):
    # The checkpoint does not exist either: the settings are checked before anything is loaded.
    result = run_cli(host, models, "--image", str(photo), "--output", str(tmp_path / "out"),
                     "--set", "Stereo Null-Text Inversion.steps=10")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "cannot run photo_to_stereo: Stereo KSampler (node 11) has steps 50 but Stereo Null-Text Inversion "
        "(node 8) uses steps 10; they must match: --set 11.steps=10 or --set 8.steps=50"
    )
    assert only_host_import_tracebacks(result.stderr), result.stderr[-3000:]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_dry_run_prints_the_checked_prompt_and_runs_nothing(host, models, photo, tmp_path):
    out = tmp_path / "out"
    result = run_cli(host, models, "--image", str(photo), "--output", str(out), "--checkpoint", models.sd15,
                     "--dry-run", "--set", "Stereo KSampler.seed=5", *tiny_settings(models))
    assert result.returncode == 0, result.stderr[-3000:]
    prompt = json.loads(result.stdout)
    assert prompt["11"]["inputs"]["seed"] == 5 and prompt["3"]["inputs"]["image"] == "photo.png"
    (save,) = [node for node in prompt.values() if node["class_type"] == "StereoSaveImage"]
    assert save["inputs"]["filename_prefix"] == "photo_to_stereo_photo"
    assert result.stderr.splitlines()[-1] == "dry run: 1 prompt(s) checked, nothing was run"
    assert list(out.iterdir()) == []

    # The host's own validation is part of the check: a missing checkpoint is reported, still without running.
    result = run_cli(host, models, "--image", str(photo), "--dry-run", "--checkpoint", "missing.safetensors")
    assert result.returncode == 1 and json.loads(result.stdout)["2"]["inputs"]["ckpt_name"] == "missing.safetensors"
    assert "missing.safetensors" in result.stderr.splitlines()[-1] or "missing.safetensors" in result.stderr


def test_the_runner_also_runs_as_a_script_from_comfyuis_folder(host, models, photo):
    """`python custom_nodes/<pack>/headless/run_workflow.py` from ComfyUI's folder: the host is the
    current folder, and the pack's nodes are there to check the prompt against."""
    cmd = [sys.executable, str(comfy_host.PACK_DIR / "headless" / "run_workflow.py"), "photo_to_stereo",
           "--models", str(models.root), "--no-custom-nodes", "--cpu", "--image", str(photo), "--dry-run",
           "--checkpoint", models.sd15, *tiny_settings(models)]
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    result = subprocess.run(cmd, cwd=host, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.splitlines()[-1] == "dry run: 1 prompt(s) checked, nothing was run"
    assert '"class_type": "StereoKSampler"' in result.stdout


def test_a_failing_node_is_one_readable_line_and_a_non_zero_exit(host, models, photo, tmp_path):
    sets = tiny_settings(models) + ["--set", "Load Disparity Model.model_name=depthanything/depth_anything_v2_vitl.pth"]
    result = run_cli(host, models, "--image", str(photo), "--output", str(tmp_path / "out"), "--cpu",
                     "--checkpoint", models.sd15, *sets)
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert failed == [
        f"FAILED photo.png: node 9 (Load Disparity Model) failed: depth model file 'depth_anything_v2_vitl.pth' "
        "is missing and downloading is off. Get it from https://huggingface.co/depth-anything/Depth-Anything-V2-Large/"
        "resolve/main/depth_anything_v2_vitl.pth (licence CC-BY-NC-4.0). Put it in "
        + failed[0].split("Put it in ", 1)[-1]
    ]
    assert only_host_import_tracebacks(result.stderr), result.stderr[-3000:]
    assert "No usable GPU" not in result.stderr  # --cpu: no check, no line


def test_input_image_size_follows_the_exif_orientation_as_load_image_does(pack, tmp_path, monkeypatch):
    import folder_paths

    image = Image.new("RGB", (40, 24))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees for display
    image.save(tmp_path / "turned.jpg", exif=exif)
    image.save(tmp_path / "plain.png")
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path))
    assert runner._image_size("turned.jpg") == (24, 40)
    assert runner._image_size("plain.png") == (40, 24)
    assert runner._image_size("missing.png") is None
