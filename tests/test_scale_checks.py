"""Switchboard's scale, checked in CI at tiny sizes so that the checks cannot rot between the
sessions that have a GPU: the GPU check (benchmarks/gpu_check.py) on CPU, and the data
pipeline's throughput (benchmarks/data_pipeline.py) on the miniature Switchboard's SPHERE
segments."""

import json
import subprocess
import sys

import torch
from conftest import REPO

CPU_BF16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()


def test_gpu_check_runs_on_cpu_at_tiny_sizes(tmp_path):
    output = tmp_path / "gpu_check.json"
    command = [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny"]
    result = subprocess.run(
        [*command, "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    checked = {"fp32", "bf16"} if CPU_BF16 else {"fp32"}
    assert set(report["recipe"]) == {f"cpu {precision}" for precision in checked}
    assert set(report["left_out"]) == {"fp16", "bf16"} - checked  # and said so
    for precision in report["left_out"]:
        assert f"left out: {precision} (" in result.stdout
    for models in report["recipe"].values():
        assert set(models) == {"blstm", "cnn_blend"}
        assert all(run["ok"] and run["train_loss"] > 0 for run in models.values())
    # a second CPU fp32 process (same seed, same batches) reproduces the reference exactly
    assert all(run["relative_difference"] == 0.0 for run in report["recipe"]["cpu fp32"].values())
    assert report["store_dump_frames_per_s"] > 0
    assert len(report["training_frames_per_s"]) == 2 * len(checked)  # 2 models x 1 batch size
    assert all(speed > 0 for speed in report["training_frames_per_s"].values())
    for precision in checked:
        assert f"| cpu {precision} | cnn_blend |" in result.stdout


def test_data_pipeline_benchmark_reads_sphere_segments(tmp_path):
    output = tmp_path / "data_pipeline.json"
    command = [sys.executable, "benchmarks/data_pipeline.py", "--switchboard_miniature"]
    command += ["--conversation_seconds", "12", "--workers", "0", "1", "--epochs", "1"]
    command += ["--output", str(output)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(output.read_text())["rows"]
    assert [row["workers"] for row in rows] == [0, 1]
    assert all(
        row["audio_frames_per_s"] > 0 and row["audio_and_fbank_frames_per_s"] > 0 for row in rows
    )
