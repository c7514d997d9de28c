"""The device and the precisions a run uses, resolved as SpeechBrain's ``Brain`` resolves them
(command line, then YAML, then SpeechBrain's default), and checked before anything is prepared
or written: a precision the machine cannot run is refused with the reason, not met hours later
as a oneDNN or CUDA error inside the first training step.

On a CPU without AVX-512, oneDNN has no bf16 kernels: PyTorch's bf16 LSTM cannot run at all
("could not create a primitive descriptor for the LSTM forward propagation primitive"), while
convolutions fall back to slower kernels and run. So bf16 there is tried on the run's own model
(one forward pass of a few frames) and refused only if that fails."""

import logging
from typing import Optional

import torch
from speechbrain.utils.distributed import infer_device

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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


def cpu_lacks_bf16_kernels() -> bool:
    """Whether this CPU lacks oneDNN's bf16 kernels (AVX-512 or AMX)."""
    return not torch.ops.mkldnn._is_mkldnn_bf16_supported()


def unsupported_precision(precision: str, device: str) -> Optional[str]:
    """Why ``device`` cannot run every model of this package (the BLSTM included) in
    ``precision``, or None if it can."""
    if precision not in PRECISIONS:
        return f"unknown precision (choose one of {', '.join(PRECISIONS)})"
    if precision == "fp32":
        return None
    if device.startswith("cuda"):
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            name = torch.cuda.get_device_name(device)
            return f"{name} has no bf16 (it needs compute capability 8.0)"
        return None
    if precision == "fp16":
        return "SpeechBrain runs fp16 only on CUDA devices"
    if precision == "bf16" and cpu_lacks_bf16_kernels():
        return (
            f"this CPU (ATen capability {torch.backends.cpu.get_cpu_capability()}) lacks the "
            "AVX-512 instructions of oneDNN's bf16 kernels, which PyTorch's LSTM needs"
        )
    return None


def forward_error(module: torch.nn.Module, num_features: int, precision: str) -> Optional[str]:
    """The error that one forward pass of ``module`` (``module(features, lengths)``, in eval
    mode, without gradients: nothing in it changes) on a one-utterance CPU batch of 8 frames
    raises under autocast in ``precision``, or None if it runs."""
    was_training = module.training
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=AUTOCAST_DTYPES[precision]):
            module.eval()(torch.zeros(1, 8, num_features), torch.ones(1))
    except RuntimeError as error:
        return str(error).splitlines()[0]
    finally:
        module.train(was_training)
    return None


def check_precision(
    precision: str, device: str, module: Optional[torch.nn.Module], num_features: int, what: str
) -> None:
    """Refuse ``precision`` (``what`` names the option) if ``device`` cannot run ``module`` in
    it: on a CPU without bf16 kernels the module is tried (refused without one to try)."""
    reason = unsupported_precision(precision, device)
    if reason is not None and precision == "bf16" and not device.startswith("cuda"):
        error = forward_error(module, num_features, precision) if module is not None else ""
        if error is None:
            logger.warning("%s=bf16 on %s: %s; the model runs, slowly.", what, device, reason)
            return
        reason = f"{reason}: {error}" if error else reason
    if reason is not None:
        raise ValueError(
            f"{what}={precision} cannot run on {device}: {reason}. Use another {what} (fp32 "
            "runs everywhere); nothing was prepared or written."
        )


def check_precisions(run_opts, hparams: dict, device: str) -> None:
    """Refuse a ``precision`` or ``eval_precision`` that ``device`` cannot run the YAML's
    ``model`` in, naming it and the reason."""
    model = hparams.get("modules", {}).get("model")
    for name in ("precision", "eval_precision"):
        precision = run_option(run_opts, hparams, name)
        check_precision(precision, device, model, hparams["features"]["n_mels"], f"--{name}")
