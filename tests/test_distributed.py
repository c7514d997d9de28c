"""SpeechBrain DDP under ``torchrun --nproc_per_node=2`` with the gloo backend on CPU: teacher
training, the teacher-store dump split across the two processes, and blending.

With two processes each takes half of every batch (``batch_size`` 2 instead of 4, the same
examples per optimiser step), but DDP's sampler shuffles and shards differently from the
single-process sampler, so batches are composed differently: the runs agree statistically, not
bit for bit. The BLSTM teacher (no batch norm) measured differences of at most 0.01 in valid and
test loss on this 12-utterance, 2-epoch run: tolerance 0.05. The CNN's batch norm normalises
each process's 2 utterances on their own (there is no SyncBatchNorm on CPU), which shifts its
loss: measured 0.02-0.27 between one and two processes over seeds 1986, 1 and 2 (before and
after batch norm ignored padding), while one-process runs of different seeds differ by up to
0.55: tolerance 0.3, which a run that does not train (loss ln 31 = 3.43 against about 2.9) still
fails. Frame accuracy: 6 points. The store, computed per utterance, must be identical.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RECIPE, run_recipe, teacher_overrides

BLSTM_LOSS_TOLERANCE, CNN_LOSS_TOLERANCE, ACCURACY_TOLERANCE = 0.05, 0.3, 0.06


def torchrun(
    script: str, hparams_file: str, overrides: dict, log_dir: Path = None
) -> subprocess.CompletedProcess:
    """Run a recipe script on two processes; with ``log_dir``, each process's output goes to
    its own files there (``*/<rank>/stdout.log``, ``stderr.log``), not interleaved in one pipe."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    if log_dir is not None:
        args += [f"--log-dir={log_dir}", "--redirects=3"]
    args += [script, f"hparams/{hparams_file}", "--distributed_backend=gloo"]
    args += [f"--{key}={value}" for key, value in overrides.items()]
    result = subprocess.run(args, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def assert_close(two_processes: dict, one_process: dict, loss_tolerance: float) -> None:
    for split in ("valid", "test"):
        loss_gap = abs(two_processes[f"{split}_loss"] - one_process[f"{split}_loss"])
        accuracy_gap = abs(two_processes[f"{split}_frame_acc"] - one_process[f"{split}_frame_acc"])
        assert loss_gap <= loss_tolerance and accuracy_gap <= ACCURACY_TOLERANCE, (
            split,
            two_processes,
            one_process,
        )


def summary(folder):
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def blend_overrides(trained_teacher):
    root = trained_teacher.parent
    return {
        **teacher_overrides(root),
        "teacher_folder": trained_teacher,
        "teacher_store_shard_size": 2,
    }


def test_teacher_training_on_two_processes(trained_teacher, tmp_path):
    overrides = {
        **teacher_overrides(trained_teacher.parent),
        "batch_size": 2,
        "output_folder": tmp_path,
    }
    torchrun("train_teacher.py", "blstm.yaml", overrides)
    assert_close(summary(tmp_path), summary(trained_teacher), BLSTM_LOSS_TOLERANCE)


def test_store_dump_and_blending_on_two_processes(blend_overrides, tmp_path):
    one = {
        **blend_overrides,
        "output_folder": tmp_path / "one",
        "teacher_store": tmp_path / "store_one",
    }
    result = run_recipe("train_blend.py", "cnn_blend.yaml", one)
    assert result.returncode == 0, result.stderr[-3000:]
    two = {
        **blend_overrides,
        "batch_size": 2,
        "output_folder": tmp_path / "two",
        "teacher_store": tmp_path / "store_two",
    }
    torchrun("train_blend.py", "cnn_blend.yaml", two, log_dir=tmp_path / "logs")
    # 12 utterances in 6 shards: the main process wrote the even ones, the other the odd ones,
    # and together they wrote exactly the single-process store
    logs = {
        rank: "".join(
            log.read_text() for log in (tmp_path / "logs").glob(f"*/attempt_*/{rank}/*.log")
        )
        for rank in (0, 1)
    }
    written = {
        rank: re.findall(rf"Process {rank} wrote \S+/(shard_\d+)", logs[rank]) for rank in logs
    }
    assert written == {
        0: ["shard_00000", "shard_00002", "shard_00004"],
        1: ["shard_00001", "shard_00003", "shard_00005"],
    }
    metadata = [
        json.loads((tmp_path / s / "metadata.json").read_text()) for s in ("store_one", "store_two")
    ]
    assert metadata[0] == metadata[1]
    assert_close(summary(tmp_path / "two"), summary(tmp_path / "one"), CNN_LOSS_TOLERANCE)
