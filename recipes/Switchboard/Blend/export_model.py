#!/usr/bin/env python3
"""Switchboard: export a trained model to TorchScript and ONNX (``<output_folder>/export/``),
each checked against PyTorch with onnxruntime. Run with the command line the model trained with:
    python export_model.py hparams/cnn_blend.yaml [--key=value ...]
See blend_modules.export for the exported graph's inputs and outputs."""

import sys

from blend_modules.scripts import export_trained_model

if __name__ == "__main__":
    export_trained_model(sys.argv[1:])
