"""Stereo Save Video's writer: encoding time per frame, flat and VR180, and what tagging the finished
file costs (st3d/sv3d inserted after PyAV closed it), with the movie box last (FFmpeg's default:
only the movie box is rewritten) or first (faststart: the whole file is copied).

    python -m bench.bench_video [--frames 24] [--width 512] [--height 288] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from bench.bench_common import interleaved  # registers stereo_pack
from stereo_pack.stereo_ops import spherical_video as sv
from stereo_pack.stereo_ops.stereo_video import StereoVideoWriter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    # smooth random content: noise would measure the entropy coder, not a picture
    small = torch.rand(args.frames, 3, args.height // 8, args.width // 8, generator=gen)
    left = torch.nn.functional.interpolate(small, size=(args.height, args.width), mode="bilinear").movedim(1, -1)
    right = left.roll(4, dims=2)
    folder = tempfile.mkdtemp()

    def write(projection: str, name: str) -> str:
        path = os.path.join(folder, name)
        with StereoVideoWriter(path, fps=24, layout="parallel", projection=projection, preset="medium") as writer:
            for start in range(0, args.frames, 16):
                writer.write_pairs(left[start:start + 16], right[start:start + 16])
        return path

    times = interleaved({
        "flat": lambda: write("flat", "flat.mp4"),
        "VR180": lambda: write("VR180", "vr180.mp4"),
    }, args.repeats)
    vr180_size = os.path.getsize(os.path.join(folder, "vr180.mp4"))
    print(f"{args.frames} pairs of {args.width}x{args.height}, libx264 preset medium crf 18, {args.threads} thread(s)")
    for name, seconds in times.items():
        print(f"  {name:6s} {1000 * seconds / args.frames:8.1f} ms per frame")

    # Tagging: the same file with the movie box last and first.
    import av

    last = os.path.join(folder, "flat.mp4")
    first = os.path.join(folder, "faststart.mp4")
    with av.open(last) as src, av.open(first, "w", format="mp4", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    tag = {
        "moov last": lambda: sv.inject_spherical_metadata(last, sv.vr180_boxes("left-right")),
        "moov first": lambda: sv.inject_spherical_metadata(first, sv.vr180_boxes("left-right")),
    }
    tag_times = interleaved(tag, args.repeats)
    for name, seconds in tag_times.items():
        print(f"  tagging, {name:10s} {1000 * seconds:8.2f} ms for a {os.path.getsize(last) / 1e6:.2f} MB file")
    print(f"  VR180 file {vr180_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
