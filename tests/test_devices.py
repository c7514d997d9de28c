"""The run's device and precisions: resolved as SpeechBrain's Brain resolves them, and a
precision the machine cannot run refused before anything is prepared or written."""

import os
import subprocess
import sys

import pytest
import speechbrain as sb
from conftest import RECIPE, REPO, run_recipe, tiny_overrides

from blend_modules.experiment import load_hparams
from blend_modules.training import devices

# oneDNN limited to AVX2, as on a CPU without AVX-512: its bf16 LSTM cannot be created there
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def run_options(*arguments):
    return sb.parse_arguments(["x.yaml", *arguments])[1]


def test_device_comes_from_command_line_then_yaml_then_speechbrains_guess(monkeypatch):
    monkeypatch.setattr(devices, "infer_device", lambda: "cuda:3")  # a torchrun process's GPU
    assert devices.run_device(run_options(), {}) == "cuda:3"
    assert devices.run_device(run_options(), {"device": "cpu"}) == "cpu"
    assert devices.run_device(run_options("--device=cuda:1"), {"device": "cpu"}) == "cuda:1"


def test_experiment_carries_the_resolved_device(monkeypatch):
    monkeypatch.setattr(devices, "infer_device", lambda: "cuda:3")
    experiment = load_hparams([str(RECIPE / "hparams" / "cnn.yaml")])
    assert experiment.device == "cuda:3"  # what the offline store dump and the export use


@pytest.mark.parametrize(
    "arguments, yaml, message",
    [
        (["--precision=fp16"], {}, "--precision=fp16 cannot run on cpu: SpeechBrain runs fp16"),
        (["--eval_precision=fp16"], {}, "--eval_precision=fp16 cannot run on cpu"),
        ([], {"precision": "fp8"}, "--precision=fp8 cannot run on cpu: unknown precision"),
    ],
)
def test_precisions_no_cpu_runs_are_refused(arguments, yaml, message):
    features = {"features": {"n_mels": 40}}
    with pytest.raises(ValueError, match=message):
        devices.check_precisions(run_options(*arguments), {**features, **yaml}, "cpu")
    devices.check_precisions(run_options(), features, "cpu")  # fp32 runs everywhere


def test_bf16_on_a_cpu_without_avx512_is_refused_before_preparing(tmp_path):
    overrides = tiny_overrides(tmp_path / "prepared", tmp_path / "out")
    result = run_recipe(
        "train_teacher.py", "blstm.yaml", {**overrides, "precision": "bf16"}, env=AVX2_ONLY
    )
    assert result.returncode != 0
    assert "--precision=bf16 cannot run on cpu: this CPU" in result.stderr
    assert "lacks the AVX-512 instructions of oneDNN's bf16 kernels" in result.stderr
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "out").exists()


PROBE = """
import sys
from hyperpyyaml import load_hyperpyyaml
from blend_modules.training.devices import cpu_lacks_bf16_kernels, forward_error
print(cpu_lacks_bf16_kernels())
for name in ("blstm_small", "vgg_small"):
    with open(f"hparams/models/{name}.yaml") as yaml:
        model = load_hyperpyyaml(yaml, {"num_features": 40, "num_labels": 31})["model"]
    print(forward_error(model, 40, "bf16"))
"""


def test_on_a_cpu_without_bf16_kernels_the_cnn_runs_in_bf16_and_the_blstm_does_not():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **AVX2_ONLY},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lacks, blstm_error, vgg_error = result.stdout.splitlines()
    assert lacks == "True"
    assert "LSTM" in blstm_error and vgg_error == "None"
