"""The pack as Windows users and zip installs get it: a checkout without symlinks, in a real
ComfyUI. Such checkouts turn a symlink into a small text file, and ComfyUI, which serves
example_workflows/ as a folder, then dies at start-up ("... is not a directory")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from headless import comfy_host
from browser_harness import ServerEnvironmentError, http_json, start_server, stop_server

PACK_NAME = "ComfyUI-StereoDiffusion"


@pytest.fixture(scope="module")
def install(host, tmp_path_factory):
    """A ComfyUI base folder whose custom_nodes/ holds a `core.symlinks=false` clone of the
    committed HEAD of this repository."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=comfy_host.PACK_DIR,
                            capture_output=True, text=True)
    if inside.returncode != 0:
        pytest.skip("the pack is not a git checkout: nothing to clone")
    base = tmp_path_factory.mktemp("comfy-no-symlinks")
    clone = base / "custom_nodes" / PACK_NAME
    subprocess.run(["git", "-c", "core.symlinks=false", "clone", "--quiet", str(comfy_host.PACK_DIR), str(clone)],
                   check=True, capture_output=True, text=True)
    return base, clone


def test_comfyui_starts_with_the_pack_checked_out_without_symlinks(host, install):
    base, clone = install
    assert (clone / "example_workflows").is_dir()
    result = subprocess.run(
        [sys.executable, "main.py", "--cpu", "--quick-test-for-ci", "--base-directory", str(base)],
        cwd=host, capture_output=True, text=True, timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    imported = [line for line in log.splitlines() if line.rstrip().endswith(PACK_NAME) and "seconds" in line]
    assert imported and "IMPORT FAILED" not in imported[0], log[-4000:]


def test_the_server_lists_and_serves_the_templates_of_that_checkout(host, install):
    base, clone = install
    try:
        server = start_server(host, base, link_pack=False)
    except ServerEnvironmentError as exc:
        pytest.skip(f"!!! server test SKIPPED: {exc} !!!")
    try:
        titles = sorted(p.stem for p in (clone / "examples_workflows").glob("*.json"))
        listed = http_json(f"{server.base_url}/api/workflow_templates")
        assert sorted(listed.get(PACK_NAME, [])) == titles, listed
        for title in titles:
            url = f"{server.base_url}/api/workflow_templates/{PACK_NAME}/{urllib.parse.quote(title)}"
            assert http_json(f"{url}.json") == json.loads((clone / "example_workflows" / f"{title}.json").read_text())
            with urllib.request.urlopen(f"{url}.jpg", timeout=10) as reply:
                assert reply.headers["Content-Type"] == "image/jpeg"
    finally:
        stop_server(server)
