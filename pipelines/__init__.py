"""Video sources (PyAV, GStreamer) that yield decoded frames.

Knows nothing of faces or Kafka.
"""
