"""Export to ONNX and TorchScript with a parity check against PyTorch, and ONNX inference."""
