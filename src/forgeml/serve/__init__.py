"""HTTP inference server: FastAPI + ONNX Runtime with dynamic batching, metrics and a web page."""
