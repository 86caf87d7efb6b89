"""A real ComfyUI server with this pack installed, and a headless Chromium page on its frontend.

Use from a test module:

    from browser_harness import comfy_page          # noqa: F401  (the fixture)

    @pytest.mark.browser
    def test_something(comfy_page):
        page, base_url = comfy_page.page, comfy_page.base_url
        prompt_id = comfy_page.queue(api_prompt)      # POST /prompt, as the page's client
        comfy_page.wait_done(prompt_id)

The server runs from the host checkout with --cpu and --base-directory pointing at a temporary
folder whose custom_nodes/ holds a symlink to this pack, so the host's own custom_nodes, models,
input, output and user folders are left alone. Needs Debian's chromium (/usr/bin/chromium, or
CHROMIUM_PATH) and the PyPI playwright package; without them the tests skip with one loud line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from headless import comfy_host

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 120
# Settings a first-time user would click away (welcome templates dialog, tutorials). Everything
# else, workflow validation included, stays at the frontend's defaults.
FIRST_RUN_SETTINGS = {
    "Comfy.TutorialCompleted": True,
}


def browser_unavailable_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; no browser download needed)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, payload: dict | None = None, timeout: float = 10.0):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode())


@dataclass
class ComfyServer:
    base_url: str
    base_dir: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServerEnvironmentError(RuntimeError):
    """The host's server cannot start in this Python environment (not a fault of the pack)."""


# Log lines of known ways a host's server fails on an environment set up for another host
# version: the workflow-templates package changed layout between host releases.
ENVIRONMENT_FAILURES = ("comfyui_workflow_templates/templates' does not exist",)


def start_server(host: Path, base_dir: Path, link_pack: bool = True, extra_args: tuple[str, ...] = ()) -> ComfyServer:
    """Start `python main.py --cpu` of the host with this pack as its only custom node (linked
    into base_dir/custom_nodes, or whatever the caller put there with link_pack=False)."""
    custom_nodes = base_dir / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    link = custom_nodes / comfy_host.PACK_DIR.name
    if link_pack and not link.exists():
        link.symlink_to(comfy_host.PACK_DIR, target_is_directory=True)
    settings = base_dir / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(FIRST_RUN_SETTINGS))

    port = free_port()
    log_path = base_dir / "server.log"
    cmd = [
        sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--base-directory", str(base_dir), "--disable-auto-launch", *extra_args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=host, stdout=log, stderr=subprocess.STDOUT)
    server = ComfyServer(f"http://127.0.0.1:{port}", base_dir, process, log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = server.log()
            known = [f for f in ENVIRONMENT_FAILURES if f in log_text]
            if known:
                raise ServerEnvironmentError(
                    f"the server of {host} cannot start in this environment ({known[0]}); install "
                    "that host's own requirements.txt to run the browser tests against it"
                )
            raise RuntimeError(f"ComfyUI exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            http_json(f"{server.base_url}/system_stats", timeout=2)
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"ComfyUI did not answer within {SERVER_START_TIMEOUT_S}s:\n{server.log()[-4000:]}")


def stop_server(server: ComfyServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@dataclass
class ComfyPage:
    """A loaded frontend page plus what a test needs to drive the server behind it."""

    page: object
    server: ComfyServer
    console: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def client_id(self) -> str | None:
        return self.page.evaluate(
            "() => { const api = window.comfyAPI?.api?.api ?? window.app?.api;"
            " return api?.clientId ?? api?.initialClientId ?? null; }"
        )

    def queue(self, prompt: dict) -> str:
        """POST /prompt on behalf of the page's client, as the frontend's Queue button does."""
        reply = http_json(f"{self.base_url}/prompt", {"prompt": prompt, "client_id": self.client_id()})
        if reply.get("node_errors"):
            raise AssertionError(f"prompt rejected: {reply}")
        return reply["prompt_id"]

    def wait_done(self, prompt_id: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = http_json(f"{self.base_url}/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise AssertionError(f"prompt failed: {status}")
                return entry
            time.sleep(0.2)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.server.log()[-3000:]}")

    def errors_mentioning(self, *needles: str) -> list[str]:
        texts = [m for kind, m in self.console if kind == "error"] + list(self.page_errors)
        return [t for t in texts if any(n.lower() in t.lower() for n in needles)]


@pytest.fixture(scope="module")
def comfy_server(host, tmp_path_factory):
    reason = browser_unavailable_reason()
    if reason:
        pytest.skip(f"!!! browser tests SKIPPED: {reason} !!!")
    try:
        server = start_server(Path(host), tmp_path_factory.mktemp("comfy-base"))
    except ServerEnvironmentError as exc:
        pytest.skip(f"!!! browser tests SKIPPED: {exc} !!!")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def comfy_page(comfy_server):
    """A headless Chromium page on the server's frontend, once the app has finished loading."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            harness = ComfyPage(page, comfy_server)
            page.on("console", lambda m: harness.console.append((m.type, f"{m.text} @ {m.location}")))
            page.on("pageerror", lambda e: harness.page_errors.append(str(e)))
            page.goto(comfy_server.base_url, wait_until="load")
            page.wait_for_function(
                "() => window.app?.graph && window.app.extensionManager !== undefined"
                " || (window.app?.graph && window.app?.canvas)",
                timeout=60_000,
            )
            yield harness
        finally:
            browser.close()


__all__ = ["ComfyPage", "ComfyServer", "ServerEnvironmentError", "comfy_page", "comfy_server", "start_server", "stop_server"]
