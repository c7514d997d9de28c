#!/usr/bin/env python3
"""Export a trained model to TorchScript and ONNX (``<output_folder>/export/``), each checked
against PyTorch with onnxruntime; the run's inference folder gets ``hyperparams_onnx.yaml`` to
transcribe on the ONNX graph. Run with the command line the model trained with:
    python export_model.py hparams/cnn_blend.yaml [--key=value ...]
See blend_modules.deploy.onnx_export for the exported graph's inputs and outputs.
"""

import sys

from blend_modules.deploy.onnx_export import export_run
from blend_modules.experiment import load_hparams

if __name__ == "__main__":
    export_run(load_hparams(sys.argv[1:]).hparams)
