"""Converting one video file on several ComfyUI servers at once: a segment each, joined into one file.

The API prompt's Stereo Convert Video File node gets a frame range per segment; each server takes
the next waiting segment (POST /prompt), the runner polls /history for its result, downloads the
segment file (/view) and, when every segment is back, joins them in order without re-encoding
(`stereo_ops.video_join.join_segments`, which also writes the stereo metadata). The video is first
uploaded to every server's input folder (/upload/image, the endpoint the frontend uses for videos).
Only the standard library is used for HTTP.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

CONVERT_NODE = "StereoConvertVideoFile"


class SegmentError(RuntimeError):
    pass


def split_frames(total: int, parts: int) -> list[tuple[int, int]]:
    """(first_frame, frame_count) of `parts` nearly equal segments of `total` frames; the last
    segment's count is 0 (to the end), so frames the container's length missed are not lost."""
    if total < 1:
        raise SegmentError("the video's frame count is unknown or 0: cannot split it into segments")
    parts = max(1, min(parts, total))
    bounds = [round(i * total / parts) for i in range(parts + 1)]
    return [(a, (b - a) if i < parts - 1 else 0) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]


def convert_node_id(prompt: dict) -> str:
    ids = [k for k, node in prompt.items() if node.get("class_type") == CONVERT_NODE]
    if len(ids) != 1:
        raise SegmentError("--servers needs a workflow with exactly one Stereo Convert Video File node; "
                           f"found {len(ids)}")
    return ids[0]


class Server:
    def __init__(self, url: str, timeout: float = 30.0):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.client_id = uuid.uuid4().hex

    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:2000]
            raise SegmentError(f"{self.url}{path}: HTTP {exc.code}: {body}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise SegmentError(f"{self.url}: cannot reach the server ({exc})") from exc

    def json(self, path: str, payload: dict | None = None):
        data = None if payload is None else json.dumps(payload).encode()
        return json.loads(self._request(path, data, {"Content-Type": "application/json"}).decode())

    def upload(self, path: Path) -> str:
        """Put a file into the server's input folder; returns the name to give the node."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (("type", "input"), ("overwrite", "true")):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode())
        parts.append(path.read_bytes())
        parts.append(f"\r\n--{boundary}--\r\n".encode())
        answer = json.loads(self._request("/upload/image", b"".join(parts),
                                          {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def submit(self, prompt: dict) -> str:
        answer = self.json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if answer.get("node_errors"):
            raise SegmentError(f"{self.url} refused the prompt: {json.dumps(answer['node_errors'])[:2000]}")
        return answer["prompt_id"]

    def wait(self, prompt_id: str, poll: float = 1.0, timeout: float | None = None) -> dict:
        """The prompt's outputs once it has run; raises with the server's message if it failed."""
        started = time.monotonic()
        while True:
            entry = self.json(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None:
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    errors = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
                    message = errors[-1].get("exception_message", "").strip() if errors else "failed"
                    raise SegmentError(f"{self.url}: {message}")
                if status.get("completed", True):
                    return entry.get("outputs", {})
            if timeout is not None and time.monotonic() - started > timeout:
                raise SegmentError(f"{self.url}: no result after {timeout:.0f} s")
            time.sleep(poll)

    def download(self, saved: dict, dest: Path) -> Path:
        query = urllib.parse.urlencode({k: saved.get(k, "") for k in ("filename", "subfolder", "type")})
        dest.write_bytes(self._request(f"/view?{query}"))
        return dest


def convert_on_servers(
    prompt: dict, servers: Sequence[str], video: Path, out_path: Path, *, frames: int | None = None,
    segments: int | None = None, poll: float = 1.0, log: Callable[[str], None] = print,
) -> Path:
    """Convert `video` with the prompt's Stereo Convert Video File node, one segment per server
    (or `segments` segments shared among them), and join the results into `out_path`."""
    from stereo_pack.stereo_ops.video_file import probe
    from stereo_pack.stereo_ops.video_join import join_segments

    node = convert_node_id(prompt)
    if not servers:
        raise SegmentError("--servers: give at least one server address")
    total = frames if frames is not None else probe(video, "video").frames
    ranges = split_frames(total, segments or len(servers))
    clients = [Server(url) for url in servers]
    names = {}
    for client in clients:
        names[client.url] = client.upload(video)
    waiting: queue.Queue = queue.Queue()
    for index, frame_range in enumerate(ranges):
        waiting.put((index, frame_range))
    results: dict[int, Path] = {}
    failures: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="segments-", dir=out_path.parent))

    def worker(client: Server) -> None:
        while not failures:
            try:
                index, (first, count) = waiting.get_nowait()
            except queue.Empty:
                return
            job = copy.deepcopy(prompt)
            job[node]["inputs"].update(video=names[client.url], first_frame=first, frame_count=count)
            try:
                log(f"segment {index + 1}/{len(ranges)} (frames {first}..{first + count - 1 if count else 'end'}) "
                    f"-> {client.url}")
                outputs = client.wait(client.submit(job), poll)
                saved = outputs[node]["images"][0]
                results[index] = client.download(saved, folder / f"{index:04}.mp4")
                log(f"segment {index + 1}/{len(ranges)} done on {client.url}")
            except (SegmentError, KeyError, IndexError) as exc:
                failures.append(f"segment {index + 1} on {client.url}: {exc}")

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        if failures:
            raise SegmentError("; ".join(failures))
        return Path(join_segments([results[i] for i in range(len(ranges))], out_path))
    finally:
        for path in results.values():
            path.unlink(missing_ok=True)
        os.rmdir(folder)
