"""Switchboard's scale, checked in CI at tiny sizes so that the checks cannot rot between the
sessions that have a GPU: the GPU check (benchmarks/gpu_check.py) on CPU, and the data
pipeline's throughput (benchmarks/data_pipeline.py) on the miniature Switchboard's SPHERE
segments."""

import json
import subprocess
import sys

from conftest import REPO


def test_gpu_check_runs_on_cpu_at_tiny_sizes(tmp_path):
    output = tmp_path / "gpu_check.json"
    command = [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--tiny"]
    result = subprocess.run(
        [*command, "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert set(report["recipe"]) == {"cpu fp32", "cpu bf16"}
    for models in report["recipe"].values():
        assert set(models) == {"blstm", "cnn_blend"}
        assert all(run["ok"] and run["train_loss"] > 0 for run in models.values())
    assert report["recipe"]["cpu fp32"]["blstm"]["relative_difference"] == 0.0
    assert report["store_dump_frames_per_s"] > 0
    assert len(report["training_frames_per_s"]) == 4  # 2 models x 2 precisions x 1 batch size
    assert all(speed > 0 for speed in report["training_frames_per_s"].values())
    assert "| cpu bf16 | cnn_blend |" in result.stdout


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
