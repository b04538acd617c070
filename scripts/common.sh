# Shared settings for the setup scripts. Sourced, never executed.
# Everything expensive lives in FQM_CACHE, outside the clone, so a fresh clone (or CI)
# reuses the wheels, the Kafka jars and the test media fetched by an earlier run.
FQM_CACHE="${FQM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fqm}"
export FQM_CACHE
export UV_CACHE_DIR="${UV_CACHE_DIR:-$FQM_CACHE/uv}"
# Trust the system CA store (corporate proxies, mirrors) rather than uv's bundled roots.
export UV_NATIVE_TLS="${UV_NATIVE_TLS:-1}"
export UV_PYTHON_DOWNLOADS=never
FQM_UV_VERSION="0.13.9"
FQM_KAFKA_VERSION="${FQM_KAFKA_VERSION:-4.4.0}"

log() { printf '\033[1m[fqm setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[fqm setup] error:\033[0m %s\n' "$*" >&2; exit 1; }
