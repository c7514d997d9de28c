"""Deployment: the inference folder that transcribes audio, and TorchScript/ONNX export."""
