"""benchmarks/cnn_training_speedups.py at tiny sizes: every variant's first training step equals
eager's (the script raises otherwise), and each variant is either timed or reported as failed."""

import json
import subprocess
import sys

from conftest import REPO


def test_training_speedups_benchmark_checks_and_times_every_variant(tmp_path):
    output = tmp_path / "cnn_training_speedups.json"
    command = [sys.executable, "cnn_training_speedups.py", "--pairs", "fsdd", "--rounds", "1"]
    command += ["--utterances", "16", "--json", str(output)]
    result = subprocess.run(
        command, cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(output.read_text())["pairs"]["fsdd"]
    timed, failed = measured["training_frames_per_s"], measured["failed"]
    assert timed["eager"]["median"] > 0
    assert set(timed) | set(failed) == {
        "eager",
        "channels_last",
        "compiled",
        "compiled_channels_last",
    }
