"""ONNX export of trained runs."""
