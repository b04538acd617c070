#!/usr/bin/env bash
# Sets up everything fqm needs on a Debian/Ubuntu machine; safe to run again (it only does
# what is missing). Steps: system packages (apt, needs root or sudo), uv, the project's
# virtualenv at .venv from requirements.lock, the Kafka jars, the model files and test media.
#
#   scripts/bootstrap.sh            everything
#   FQM_SKIP_APT=1 scripts/...      do not touch system packages (GStreamer parts will be absent)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/common.sh
mkdir -p "$FQM_CACHE"
t0=$(date +%s)

# --- 1. system packages --------------------------------------------------------------------
APT_PACKAGES=(
  ffmpeg                                    # making benchmark clips, probing media
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-libav
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0
  libgirepository1.0-dev libcairo2-dev pkg-config   # to build PyGObject
  default-jre-headless maven                # the test Kafka broker
  chromium                                  # renders fqm report's HTML in its test (headless)
)
if [[ "${FQM_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $EUID -eq 0 ]]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
      die "missing system packages: ${missing[*]}
  install them with:  sudo apt-get install --no-install-recommends ${missing[*]}
  or rerun with FQM_SKIP_APT=1 to go on without them (GStreamer tests will skip)."
    fi
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      "${SUDO[@]}" apt-get update -qq
      "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
  fi
fi

# --- 2. uv (fast, cached installs) -----------------------------------------------------------
UV="$FQM_CACHE/tools/uv-$FQM_UV_VERSION/bin/uv"
if [[ ! -x "$UV" ]]; then
  log "installing uv $FQM_UV_VERSION into $FQM_CACHE/tools"
  python3 -m venv "$FQM_CACHE/tools/uv-$FQM_UV_VERSION"
  "$FQM_CACHE/tools/uv-$FQM_UV_VERSION/bin/pip" install -q "uv==$FQM_UV_VERSION"
fi

# --- 3. the virtualenv -------------------------------------------------------------------------
# uv hard-links from its cache, so a fresh .venv costs about a second once the cache is warm.
[[ -x .venv/bin/python ]] || "$UV" venv -q --python python3 .venv
reqs=(requirements.lock)
if pkg-config --exists gobject-introspection-1.0 cairo 2>/dev/null; then
  reqs+=(requirements-gst.lock)
else
  log "GObject introspection headers absent: PyGObject (GStreamer sources) not installed"
fi
log "syncing .venv with ${reqs[*]}"
"$UV" pip sync -q --python .venv/bin/python "${reqs[@]}"
"$UV" pip install -q --python .venv/bin/python --no-deps -e .

# --- 4. Kafka jars (for the test broker) -------------------------------------------------------
if command -v mvn >/dev/null && command -v java >/dev/null; then
  scripts/kafka/fetch-jars.sh >/dev/null  # prints the jar folder; the tests find it themselves
else
  log "java/maven absent: the test Kafka broker cannot run (set FQM_KAFKA_BOOTSTRAP to use another)"
fi

# --- 5. model files and test media (checksummed) -----------------------------------------------
.venv/bin/fqm assets fetch

log "ready in $(($(date +%s) - t0)) s (cache: $FQM_CACHE)"
