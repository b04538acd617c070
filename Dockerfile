# syntax=docker/dockerfile:1
# fqm service image. CPU by default; the gpu profile in docker-compose.yml builds it on
# NVIDIA's TensorRT image instead (BASE=nvcr.io/nvidia/tensorrt:<tag>-py3), whose system
# Python already has TensorRT, hence the venv with --system-site-packages.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG UV_VERSION=0.13.9
ENV DEBIAN_FRONTEND=noninteractive \
    FQM_CACHE=/var/cache/fqm \
    VIRTUAL_ENV=/opt/fqm/venv \
    PATH=/opt/fqm/venv/bin:$PATH \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates python3 python3-pip ffmpeg \
      gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
      gstreamer1.0-plugins-bad gstreamer1.0-libav \
      gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 \
      libgirepository1.0-dev libcairo2-dev pkg-config gcc \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fqm
RUN python3 -m pip install --no-cache-dir --break-system-packages "uv==${UV_VERSION}" \
 && uv venv --system-site-packages --python python3 "$VIRTUAL_ENV"
COPY requirements.lock requirements-gst.lock ./
RUN uv pip install --no-cache -r requirements.lock -r requirements-gst.lock
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY engines ./engines
COPY pipelines ./pipelines
# Model files are fetched at build time and checksummed; the service never downloads at run time.
RUN uv pip install --no-cache --no-deps . && fqm assets fetch --kind model \
 && mkdir -p /var/lib/fqm/media && fqm assets fetch franck.mp4 \
 && cp "$(fqm assets path franck.mp4)" /var/lib/fqm/media/

RUN mkdir -p /var/lib/fqm/output/spool
VOLUME ["/var/lib/fqm/output"]
EXPOSE 9108
ENTRYPOINT ["fqm"]
CMD ["doctor"]
