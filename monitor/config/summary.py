"""A fleet as plain, printable data: what ``fqm validate-config`` shows, every secret masked."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from monitor.config.model import FleetConfig, KafkaSinkConfig
from pipelines.urls import mask_url, source_kind


def describe(fleet: FleetConfig) -> dict[str, Any]:
    """The fleet as JSON-able data: sources masked, the SASL password as ``***``."""
    from monitor.events import Topics

    sink = fleet.sink
    if isinstance(sink, KafkaSinkConfig):
        prefix = sink.topics_prefix
        topics = Topics() if prefix is None else Topics.prefixed(prefix)
        sink_info: dict[str, Any] = {
            "type": "kafka",
            "bootstrap": str(sink.to_bootstrap()),
            "topics": [getattr(topics, f.name) for f in fields(topics)],
            "replication": sink.replication,
        }
    else:
        sink_info = {"type": "jsonl", "folder": str(fleet.out)}
    model = fleet.model.model_dump(mode="json")
    return {
        "version": fleet.version,
        "producer": fleet.producer,
        "out": str(fleet.out),
        "model": model,
        "sink": sink_info,
        "batch": fleet.batch.model_dump(mode="json"),
        "metrics": fleet.metrics.model_dump(mode="json"),
        "torch_threads": fleet.torch_threads,
        "shutdown_deadline_s": fleet.shutdown_deadline_s,
        "cameras": [
            {
                "id": cid,
                "source": mask_url(cam.source),
                "kind": source_kind(cam.source).value,
                "live": cam.is_live,
                "enabled": cam.enabled,
                "max_frames": cam.max_frames,
                "analyse_fps": cam.analyse_fps,
                "min_face_size": cam.min_face_size,
                "rescore_interval_s": cam.rescore_interval_s,
            }
            for cid, cam in fleet.cameras.items()
        ],
    }


def summary_lines(fleet: FleetConfig, source: str) -> list[str]:
    """A few lines for a person: the cameras (masked), the sink, the model, out, metrics."""
    info = describe(fleet)
    cams = info["cameras"]
    enabled = sum(c["enabled"] for c in cams)
    lines = [f"{source}: valid; {len(cams)} cameras ({enabled} enabled)"]
    width = max(len(c["id"]) for c in cams)
    for c in cams:
        notes = [c["kind"], "live" if c["live"] else "not live"]
        if c["analyse_fps"] is not None:
            notes.append(f"analysed at {c['analyse_fps']:g} fps")
        if c["max_frames"] is not None:
            notes.append(f"max {c['max_frames']} frames")
        if not c["enabled"]:
            notes.append("DISABLED")
        lines.append(f"  {c['id']:<{width}}  {c['source']}  ({', '.join(notes)})")
    sink = info["sink"]
    if sink["type"] == "kafka":
        prefix = sink["topics"][0].rsplit(".", 1)[0]
        lines.append(
            f"sink: kafka {sink['bootstrap']} (topics {prefix}.*, replication "
            f"{sink['replication']}); spool in {info['out']}"
        )
    else:
        lines.append(f"sink: JSONL files in {info['out']}")
    m = info["model"]
    weights = m["weights"] or "$FQM_WEIGHTS, else random weights"
    variant = f"{m['variant']}, " if m["variant"] else ""
    lines.append(f"model: {variant}{m['backend']}, {m['mode']} mode, {m['device']}; {weights}")
    b = info["batch"]
    lines.append(
        f"batch: {b['max_batch']} faces, queue {b['max_queue']}, wait {b['max_wait_ms']} ms; "
        f"shutdown deadline {info['shutdown_deadline_s']} s"
    )
    met = info["metrics"]
    lines.append(
        f"metrics: http://{met['host']}:{met['port']}/metrics" if met["enabled"] else "metrics: off"
    )
    return [mask_url(line) for line in lines]
