"""The blending options (λ ``hard_weight``, ``top_k``, ``temperature``, ``teacher_mode``,
``soft_loss``), checked together before anything runs, so that a bad value fails in seconds
with the key named."""

from typing import Optional

TEACHER_MODES = ("online", "offline")


SOFT_LOSSES = ("frames", "nonblank_frames", "ctc_best_path")


CTC_SOFT_LOSSES = ("nonblank_frames", "ctc_best_path")  # they need a blank


def check_blend_options(
    hard_weight: float,
    top_k: int,
    num_labels: int,
    temperature: float,
    teacher_mode: str,
    store_top_k: int = None,
    soft_loss: str = "frames",
    blank_index: Optional[int] = None,
):
    """Raise ``ValueError`` naming the YAML key for λ outside [0, 1], k not an integer in
    [1, labels], T not a number > 0, an unknown teacher mode, (offline) a k above the
    ``store_top_k`` labels per frame the teacher store keeps, an unknown ``soft_loss`` or a
    CTC one without a blank (frame targets)."""
    if soft_loss not in SOFT_LOSSES:
        raise ValueError(f"soft_loss must be one of {SOFT_LOSSES}, got {soft_loss!r}.")
    if soft_loss in CTC_SOFT_LOSSES and blank_index is None:
        raise ValueError(f"soft_loss {soft_loss!r} needs CTC targets (a blank); these have none.")
    if not _is_number(hard_weight) or not 0.0 <= hard_weight <= 1.0:
        raise ValueError(f"hard_weight (λ) must be a number in [0, 1], got {hard_weight!r}.")
    if not _is_integer(top_k) or not 1 <= top_k <= num_labels:
        raise ValueError(
            f"top_k must be an integer in [1, num_labels={num_labels}], got {top_k!r}."
        )
    if not _is_number(temperature) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}.")
    if teacher_mode not in TEACHER_MODES:
        raise ValueError(f"teacher_mode must be one of {TEACHER_MODES}, got {teacher_mode!r}.")
    if teacher_mode == "offline" and not (_is_integer(store_top_k) and top_k <= store_top_k):
        raise ValueError(
            f"top_k {top_k} exceeds teacher_store_top_k {store_top_k}, the labels per frame the "
            "teacher store keeps (an integer >= top_k)."
        )


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
