"""headless/comfy_host.py, the one way to find ComfyUI, import it and load the pack: which
checkout it picks, one module name (and one copy of each module) for the pack, and benchmarks
that run as modules without touching sys.path."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from headless import comfy_host


def _fake_host(path: Path) -> Path:
    (path / "comfy").mkdir(parents=True)
    (path / "comfy" / "model_management.py").write_text("")
    (path / "nodes.py").write_text("")
    return path.resolve()


def test_the_host_is_found_by_argument_then_environment_then_folder(tmp_path, monkeypatch):
    given, env, here = (_fake_host(tmp_path / name) for name in ("given", "env", "here"))
    monkeypatch.setattr(comfy_host, "CACHED_HOST", tmp_path / "no-cache")
    monkeypatch.setenv("COMFYUI_PATH", str(env))
    monkeypatch.chdir(here)
    assert comfy_host.find_comfyui(given) == given
    assert comfy_host.find_comfyui() == env
    monkeypatch.delenv("COMFYUI_PATH")
    assert comfy_host.find_comfyui() == here
    monkeypatch.chdir(tmp_path)
    assert comfy_host.find_comfyui() is None
    with pytest.raises(SystemExit, match="ComfyUI not found: pass --comfyui"):
        comfy_host.require_comfyui()
    monkeypatch.setattr(comfy_host, "CACHED_HOST", env)
    assert comfy_host.find_comfyui() == env


def test_a_named_folder_that_is_not_comfyui_is_refused_by_its_origin(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match=r"--comfyui=.*not a ComfyUI folder"):
        comfy_host.find_comfyui(tmp_path)
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    with pytest.raises(SystemExit, match=r"COMFYUI_PATH=.*not a ComfyUI folder"):
        comfy_host.find_comfyui()


def test_stereo_pack_is_a_synonym_that_keeps_the_package_exports():
    real = importlib.import_module(comfy_host.pack_module_name() + ".stereo_ops")
    assert importlib.import_module("stereo_pack.stereo_ops") is real
    anaglyph_module = importlib.import_module("stereo_pack.stereo_ops.anaglyph")  # the submodule
    from stereo_pack.stereo_ops import anaglyph  # the function the package re-exports

    assert isinstance(anaglyph_module, ModuleType)
    assert not isinstance(anaglyph, ModuleType) and anaglyph is anaglyph_module.anaglyph


def test_the_host_loads_the_pack_once_under_the_one_name(pack):
    import nodes

    assert comfy_host.load_pack() is pack and pack.__name__ == comfy_host.pack_module_name()
    sampler_module = sys.modules[nodes.NODE_CLASS_MAPPINGS["StereoKSampler"].__module__]
    assert sampler_module.__name__.startswith(pack.__name__ + ".")
    assert importlib.import_module("stereo_pack.nodes.sampling") is sampler_module
    assert comfy_host.pack_module("nodes.sampling") is sampler_module
    # One copy of each pack module in the process, whoever imported it first and by which name.
    files = [Path(m.__file__).resolve() for m in list(sys.modules.values())
             if isinstance(m, ModuleType) and getattr(m, "__file__", None)]
    ops = comfy_host.PACK_DIR / "stereo_ops"
    for name in ("sampling.py", "pixel_shift.py", "anaglyph.py", "__init__.py"):
        copies = {id(m) for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and Path(m.__file__).resolve() == ops / name}
        assert len(copies) == 1, (name, copies)
    assert ops / "sampling.py" in files


def test_bench_and_tools_leave_sys_path_alone():
    for folder in ("bench", "tools"):
        for path in (comfy_host.PACK_DIR / folder).glob("*.py"):
            assert "sys.path" not in path.read_text(encoding="utf-8"), path


def test_a_benchmark_runs_as_a_module_from_the_pack_folder():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "bench.bench_pixel_shift", "--sizes", "8", "--batch", "1"],
                            cwd=comfy_host.PACK_DIR, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 8x8 |" in result.stdout, result.stdout
