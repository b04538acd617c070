"""One realistic, fixed example of each event kind: for docs/events.md, tests and consumers.

The JSON examples in docs/events.md are generated from these; regenerate them after a
change to the events with::

    python -m monitor.events.examples docs/events.md

which rewrites each block between ``<!-- example: <kind> -->`` and ``<!-- /example -->``
(``--check`` reports stale blocks instead, exiting 1).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from monitor.events.codec import to_dict
from monitor.events.model import (
    BestFrame,
    BestFrameEvent,
    CropRef,
    CurvePoint,
    Event,
    FaceObservationEvent,
    FaceSignals,
    QualityCurve,
    QualityScore,
    StreamStatusEvent,
    TrackSummaryEvent,
)

_BLOCK = re.compile(r"(<!-- example: (\w+) -->\n)```json\n.*?```\n(?=<!-- /example -->)", re.S)


def examples() -> dict[str, Event]:
    """``{kind: event}``, the same every call."""
    t0 = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
    stream, producer = "lobby-cam-1", "edge-07:4121"
    quality = QualityScore(score=0.7841, variant="dslfiqa", mode="official", backend="torch")
    crop = CropRef(
        crop_id=UUID("5f1c2a9e-8d3b-4c7e-9a61-0b2f4e6d8c10"),
        delivery="inline",
        uri=None,
        width=512,
        height=512,
        size_bytes=91430,
        jpeg_quality=90,
        sha256="3b0c4f5e8a1d2c6b9e7f0a4d1c8b5e2f6a9d3c7b0e4f1a8d5c2b9e6f3a0d7c4b",
    )
    box = (812.5, 240.0, 948.0, 411.25)
    points = [
        CurvePoint(frame_index=1500, pts=60.0, score=0.52),
        CurvePoint(frame_index=1505, pts=60.2, score=0.66),
        CurvePoint(frame_index=1515, pts=60.6, score=0.7841),
        CurvePoint(frame_index=1525, pts=61.0, score=0.71),
    ]
    best = BestFrame(
        frame_index=1515, pts=60.6, bbox=box, detection_score=0.962, quality=quality, crop=crop
    )
    return {
        "face_observation": FaceObservationEvent(
            event_id=UUID("0b7e3f52-6a1d-4c8e-b2f9-71d4a5c3e608"),
            stream_id=stream,
            producer=producer,
            wall_time=t0,
            track_id=17,
            frame_index=1515,
            pts=60.6,
            bbox=box,
            detection_score=0.962,
            quality=quality,
            signals=FaceSignals(
                face_size=135.5,
                interocular=88.2,
                yaw=-6.4,
                pitch=3.1,
                roll=1.7,
                sharpness=412.9,
                brightness=131.4,
                contrast=48.6,
            ),
        ),
        "best_frame": BestFrameEvent(
            event_id=UUID("c41d9a7e-2b5f-4e13-8c0a-9f6e1d3b7a25"),
            stream_id=stream,
            producer=producer,
            wall_time=t0,
            track_id=17,
            frame_index=1515,
            pts=60.6,
            bbox=box,
            detection_score=0.962,
            quality=quality,
            previous_score=0.66,
            crop=crop,
        ),
        "track_summary": TrackSummaryEvent(
            event_id=UUID("8e2a6c14-5d9b-4f07-a3e1-6b0c9d2f4e87"),
            stream_id=stream,
            producer=producer,
            wall_time=t0 + timedelta(seconds=2.1),
            track_id=17,
            first_frame=1496,
            last_frame=1527,
            start_pts=59.84,
            end_pts=61.08,
            start_wall_time=t0 - timedelta(seconds=0.76),
            end_wall_time=t0 + timedelta(seconds=0.48),
            frames_seen=30,
            observations_scored=4,
            best=best,
            curve=QualityCurve.from_points(points),
        ),
        "stream_status": StreamStatusEvent(
            event_id=UUID("2d6f8b31-9c4e-4a75-b1d0-e3a7c5f9b246"),
            stream_id=stream,
            producer=producer,
            wall_time=t0 + timedelta(seconds=30),
            state="reconnecting",
            reason="no frame for 10.0 s (stall timeout)",
            fps=None,
            frames_decoded=45210,
            frames_dropped=12,
            corrupt_packets=3,
        ),
    }


def render(event: Event) -> str:
    """The event's JSON as docs/events.md shows it (indented, envelope first)."""
    return json.dumps(to_dict(event), indent=2, ensure_ascii=False) + "\n"


def update_markdown(text: str) -> str:
    """``text`` with every example block regenerated."""
    found = examples()

    def block(match: re.Match[str]) -> str:
        kind = match[2]
        if kind not in found:
            raise ValueError(f"docs example for unknown kind {kind!r}")
        return f"{match[1]}```json\n{render(found[kind])}```\n"

    return _BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("markdown", type=Path, help="the file to update (docs/events.md)")
    parser.add_argument("--check", action="store_true", help="only report stale examples")
    args = parser.parse_args(argv)
    text = args.markdown.read_text()
    new = update_markdown(text)
    if args.check:
        if new != text:
            print(f"{args.markdown}: examples are stale; run without --check", file=sys.stderr)
            return 1
        return 0
    args.markdown.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
