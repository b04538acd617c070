"""Face-quality models (DSL-FIQA), their export and their runtimes (torch, ONNX Runtime, TensorRT).

Knows nothing of video or Kafka: it scores face images.
"""
