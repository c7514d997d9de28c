"""The device and the precisions a run uses, resolved as SpeechBrain's ``Brain`` resolves them
(command line, then YAML, then SpeechBrain's default), and checked before anything is prepared
or written: a precision the machine cannot run is refused with the reason, not met hours later
as a oneDNN or CUDA error inside the first training step."""

from typing import Optional

import torch
from speechbrain.utils.distributed import infer_device

PRECISIONS = ("fp32", "fp16", "bf16")


def run_option(run_opts, hparams: dict, name: str):
    """The value ``Brain.__init__`` gives the run option ``name``: the command line's if it was
    given there, else the YAML's, else SpeechBrain's default."""
    if name in run_opts.overridden_args or name not in hparams:
        return run_opts[name]
    return hparams[name]


def run_device(run_opts, hparams: dict) -> str:
    """The device the run's Brain will use (without ``--device`` or a YAML ``device``,
    SpeechBrain's guess: the local rank's GPU if there is one, else the CPU)."""
    return run_option(run_opts, hparams, "device") or infer_device()


def unsupported_precision(precision: str, device: str) -> Optional[str]:
    """Why ``device`` cannot train or evaluate in ``precision``, or None if it can."""
    if precision not in PRECISIONS:
        return f"unknown precision (choose one of {', '.join(PRECISIONS)})"
    if precision == "fp32":
        return None
    if device.startswith("cuda"):
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(device)} has no bf16 (needs compute capability 8.0)"
        return None
    if precision == "fp16":
        return "SpeechBrain runs fp16 only on CUDA devices"
    # PyTorch's CPU LSTM in bf16 is oneDNN's, whose bf16 kernels need AVX-512 (or AMX): on an
    # AVX2-only CPU it fails in its first step ("could not create a primitive descriptor").
    if precision == "bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return (
            f"this CPU (ATen capability {torch.backends.cpu.get_cpu_capability()}) lacks the "
            "AVX-512 instructions of oneDNN's bf16 kernels"
        )
    return None


def check_precisions(run_opts, hparams: dict, device: str) -> None:
    """Refuse a ``precision`` or ``eval_precision`` that ``device`` cannot run, naming it and
    the reason."""
    for name in ("precision", "eval_precision"):
        precision = run_option(run_opts, hparams, name)
        reason = unsupported_precision(precision, device)
        if reason is not None:
            raise ValueError(
                f"--{name}={precision} cannot run on {device}: {reason}. Use another "
                f"--{name} (fp32 runs everywhere); nothing was prepared or written."
            )
