"""Joining the segment files of one stereo conversion into one file, without re-encoding.

The packets of every segment are copied in order (PyAV remux), each segment's timestamps moved to
follow the previous segment's end, stream by stream; then the stereo metadata of the first segment
(st3d, and sv3d for VR180) is written into the joined file, since a remux does not carry it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .spherical_video import inject_spherical_metadata, spherical_boxes
from .stereo_video import _import_av


def _signature(container) -> list[tuple]:
    return [(s.type, s.codec_context.name, getattr(s.codec_context, "width", None),
             getattr(s.codec_context, "height", None)) for s in container.streams if s.type in ("video", "audio")]


def join_segments(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> str:
    """Concatenate segment MP4s of the same conversion (same streams, sizes and codecs) into
    `out_path`; returns it."""
    if not paths:
        raise ValueError("segments: no files to join")
    av = _import_av()
    out_path = os.fspath(out_path)
    with av.open(os.fspath(paths[0])) as first:
        signature = _signature(first)
        with av.open(out_path, mode="w", format="mp4") as out:
            streams = [s for s in first.streams if s.type in ("video", "audio")]
            targets = [out.add_stream_from_template(s) for s in streams]
            offsets: list[int | None] = [None] * len(streams)  # each stream's end so far, in its time base
            for path in paths:
                with av.open(os.fspath(path)) as segment:
                    if _signature(segment) != signature:
                        raise ValueError(f"segments: {os.path.basename(os.fspath(path))} has other streams or "
                                         f"sizes than {os.path.basename(os.fspath(paths[0]))}; join segments "
                                         "of one conversion only")
                    inputs = [s for s in segment.streams if s.type in ("video", "audio")]
                    ends = list(offsets)
                    shifts: list[int | None] = [None] * len(inputs)
                    for packet in segment.demux(inputs):
                        if packet.dts is None and packet.pts is None:
                            continue  # the demuxer's flush packets
                        k = inputs.index(packet.stream)
                        if shifts[k] is None:
                            # The segment's first packet (AAC's priming one starts before 0) goes
                            # where the previous segment ended.
                            first = packet.dts if packet.dts is not None else packet.pts
                            shifts[k] = 0 if offsets[k] is None else offsets[k] - first
                        shift = shifts[k]
                        if packet.pts is not None:
                            packet.pts += shift
                        if packet.dts is not None:
                            packet.dts += shift
                        ends[k] = max(ends[k] or 0, (packet.pts if packet.pts is not None else packet.dts)
                                      + (packet.duration or 0))
                        packet.stream = targets[k]
                        out.mux(packet)
                    offsets = ends
    boxes = spherical_boxes(paths[0])
    if boxes:
        inject_spherical_metadata(out_path, boxes)
    return out_path
