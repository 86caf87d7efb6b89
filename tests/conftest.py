"""Shared fixtures: the pack's stereo_ops for unit tests, and the real ComfyUI host for host tests."""

from __future__ import annotations

import pytest
import torch

from headless import comfy_host
from testkit import tiny_models

# The test models are tiny: one thread is as fast, and it avoids the heavy slow-down of
# oversubscribed OpenMP threads when other work shares the machine.
torch.set_num_threads(1)


_HOST = comfy_host.find_comfyui()
_HOST_STATUS = {"ran": 0, "skipped": 0}


def pytest_configure(config):
    config.addinivalue_line("markers", "host: needs a real ComfyUI checkout (found as headless/comfy_host.py says)")


def pytest_report_header(config):
    if _HOST is None:
        return (
            "!!! ComfyUI host NOT FOUND: host tests will be SKIPPED. Set COMFYUI_PATH to a ComfyUI "
            "checkout (or place it at ~/.cache/comfyui-stereodiffusion/ComfyUI) to run them. !!!"
        )
    return f"ComfyUI host: {_HOST} (version {comfy_host.host_version(_HOST)})"


def pytest_runtest_logreport(report):
    if report.when == "call" and "host" in report.keywords:
        _HOST_STATUS["ran"] += 1
    elif report.when == "setup" and report.skipped and "host" in report.keywords:
        _HOST_STATUS["skipped"] += 1


def pytest_terminal_summary(terminalreporter):
    where = f"{_HOST} (version {comfy_host.host_version(_HOST)})" if _HOST else "no host found"
    terminalreporter.write_line(
        f"host tests: {_HOST_STATUS['ran']} ran, {_HOST_STATUS['skipped']} skipped; host: {where}"
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "host" in item.fixturenames or "pack" in item.fixturenames:
            item.add_marker(pytest.mark.host)


@pytest.fixture(scope="session")
def host():
    if _HOST is None:
        pytest.skip("ComfyUI host not found: set COMFYUI_PATH to run host tests")
    comfy_host.import_comfyui(_HOST, cpu=True)
    return _HOST


@pytest.fixture(scope="session")
def pack(host):
    return comfy_host.load_pack()


@pytest.fixture(scope="session")
def tiny_sd15(host):
    return tiny_models.tiny_model("sd15")


@pytest.fixture(scope="session")
def tiny_sdxl(host):
    return tiny_models.tiny_model("sdxl")
