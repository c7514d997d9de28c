"""The paper's studies declared as data: one :class:`Condition` per row, saying which script and
YAML it runs, on which seeds, with which overrides, which runs it learns from or averages, and
which conditions it is compared with in the tables. :mod:`blend_modules.study.runner` runs a
plan (resumable, two runs at once where nothing orders them) and
:mod:`blend_modules.analysis.study` writes its tables from the comparisons declared here.

Blending settings chosen on valid (the sweeps' best λ, k and T) are :class:`Chosen` values: a
condition that holds one runs once its :class:`Decision` is made, i.e. once every candidate of
that decision has finished on the seeds they share. A blend's name is formatted from its
settings (``blend_l{hard_weight}_k{top_k}_T{temperature}``), so a sweep at a chosen λ is named
by the λ that was chosen.
"""

from dataclasses import dataclass, field, replace
from typing import List, Mapping, Sequence, Tuple, Union

ALL, FIRST = "all", "first"  # a condition's seeds: every seed, or the first


BLEND_NAME = "blend_l{hard_weight}_k{top_k}_T{temperature}"


SETTINGS = ("hard_weight", "top_k", "temperature")


STORE_TOP_K = "store_top_k"  # a decision's store size for its k: None (the YAML's) or all labels


YAML_STORE_TOP_K = 64  # speechocean762's cnn_blend.yaml keeps 64 labels per frame (FSDD: all)


@dataclass(frozen=True)
class Chosen:
    """The value of a blending setting (``hard_weight``, ``top_k``, ``temperature``) of the best
    candidate of ``decision``."""

    decision: str
    parameter: str


@dataclass(frozen=True)
class Decision:
    """The best of ``candidates`` (condition names, formatted like a condition's) on valid WER,
    on the seeds they all ran (:func:`blend_modules.analysis.study.best_blend`)."""

    name: str
    candidates: Tuple[str, ...]


Value = Union[str, int, float, Chosen]


@dataclass(frozen=True)
class Condition:
    """One condition of a study: ``script hparams/<hparams> --model_name=<name> --seed=<seed>``
    with ``args`` (``--key=value``; values may be :class:`Chosen`, and hold ``{prepared}`` or
    ``{study}`` for those folders) after the study's own overrides (or in place of the
    ``replace_overrides`` keys of them).

    ``teachers``: the conditions whose runs teach it (``--teacher_folder``; several: the
    average of their posteriors, or with ``teacher_folds`` in ``args`` out-of-fold teachers),
    of the same seed, or of the first with ``teacher_seeds=FIRST`` (one set of teachers for
    every student seed); ``members``: an ensemble's (same seed); ``after``: the
    :class:`Step` s that must have run first. ``store``: the folder of its teacher store when not
    the teacher's own (formatted with ``study`` and ``seed``); runs that share a store wait for
    the first of them, which writes it. ``compare``: the baselines it is paired with in the
    tables (condition names, or a decision's name: its best candidate). A run is done when its
    ``summary.json`` exists."""

    name: str
    script: str
    hparams: str
    seeds: str = ALL
    args: Mapping[str, Value] = field(default_factory=dict)
    teachers: Tuple[str, ...] = ()
    teacher_seeds: str = "same"
    members: Tuple[str, ...] = ()
    after: Tuple[str, ...] = ()
    store: str = None
    compare: Tuple[str, ...] = ()
    replace_overrides: Mapping[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """A preparation run once, before the conditions that name it in ``after``:
    ``python <command>`` in the recipe folder (``{prepared}`` and ``{study}`` formatted), the
    study's overrides appended if ``overrides`` (a recipe script that loads its YAML); done
    when its ``outputs`` exist."""

    name: str
    command: Tuple[str, ...]
    outputs: Tuple[str, ...]
    overrides: bool = False


@dataclass
class Study:
    """The conditions (in the order they are started when several could be), the decisions
    their chosen settings come from, and the label count (the k axis; None for CTC)."""

    conditions: List[Union[Condition, Step]]
    decisions: List[Decision] = field(default_factory=list)
    num_labels: int = None

    def without(self, names: Sequence[str]) -> "Study":
        """The study less the conditions ``names`` (a budget's cut), their pairings dropped;
        ``ValueError`` for a name not in the plan or one a kept condition learns from."""
        skipped = set(names)
        unknown = sorted(skipped - {condition.name for condition in self.conditions})
        if unknown:
            raise ValueError(f"not conditions of the study: {', '.join(unknown)}")
        kept = []
        for condition in self.conditions:
            if condition.name in skipped:
                continue
            if isinstance(condition, Condition):
                needed = skipped & set(condition.teachers + condition.members + condition.after)
                if needed:
                    raise ValueError(
                        f"{condition.name!r} needs {', '.join(sorted(needed))}: skip it too"
                    )
                compare = tuple(other for other in condition.compare if other not in skipped)
                condition = replace(condition, compare=compare)
            kept.append(condition)
        return Study(kept, self.decisions, self.num_labels)


def blend_name(settings: Mapping[str, Value]) -> str:
    """A blend's condition name from its λ, k and T (a :class:`Chosen` one formatted later)."""
    return BLEND_NAME.format(
        **{
            key: "{" + key + "}" if isinstance(value, Chosen) else value
            for key, value in settings.items()
        }
    )


def blend(
    hard_weight: Value, top_k: Value, temperature: Value, seeds: str = ALL, **options
) -> Condition:
    """The CNN blended from the BLSTM teacher at λ, k, T (``options``: the rest of its
    :class:`Condition`, ``args`` added to the settings)."""
    settings = {"hard_weight": hard_weight, "top_k": top_k, "temperature": temperature}
    return Condition(
        blend_name(settings),
        "train_blend.py",
        "cnn_blend.yaml",
        seeds,
        {**settings, **options.pop("args", {})},
        teachers=("blstm",),
        **options,
    )


def headline(suffix: str = "") -> List[Condition]:
    """Teacher, CNN and their ensemble (``suffix``: ``_ctc`` for CTC targets' YAMLs)."""
    return [
        Condition("blstm", "train_teacher.py", f"blstm{suffix}.yaml"),
        Condition("cnn", "train_blend.py", f"cnn{suffix}.yaml", compare=("blstm",)),
        Condition(
            "ensemble",
            "evaluate_ensemble.py",
            f"cnn{suffix}_blend.yaml",
            members=("blstm", "cnn"),
            compare=("blstm", "cnn"),
        ),
    ]


def default_top_ks(num_labels: int) -> List[int]:
    """k from one label to all of them, log-spaced, with the largest k under 1% of them."""
    return sorted(
        {k for k in (1, 3, -(-num_labels // 100), 30, 100, num_labels) if k <= num_labels}
    )


def frame_study(
    num_labels: int,
    top_ks: Sequence[int] = None,
    temperatures: Sequence[float] = (2.0, 4.0),
    remedies: Sequence[str] = ("small", "longer"),
    model_overrides: Mapping[str, str] = None,
    perturbed_epochs: int = None,
) -> Study:
    """The paper's study with frame targets: the headline (teacher, CNN, ensemble, the blended
    CNN at λ 0.5, k 10, T 1) on every seed; at the first seed λ ∈ {0, 0.25, 0.75}, then k
    (``top_ks``) at the best λ, T (``temperatures``) at the best λ and k, each chosen on valid
    (λ 1 is the CNN); the chosen setting on every seed; then the ``remedies`` (:data:`REMEDIES`)
    in order. ``model_overrides``: the ``--architecture`` values of the remedies' networks by
    model YAML name (``vgg_narrow``, ``blstm_large``:
    :func:`blend_modules.data.hparams.model_override`); ``perturbed_epochs``: the epochs of the
    runs on speed-perturbed copies (3 copies of the audio per epoch)."""
    top_ks = list(top_ks) if top_ks is not None else default_top_ks(num_labels)

    def whole(weight: Value, temperature: Value = 1.0) -> Tuple[str]:
        """Claim 3's baseline of a blend: the blend at its λ and T on every label (where the k
        sweep ran one)."""
        return (
            blend_name({"hard_weight": weight, "top_k": num_labels, "temperature": temperature}),
        )

    conditions = headline() + [blend(0.5, 10, 1.0, compare=("cnn", "blstm") + whole(0.5))]
    candidates = [conditions[-1].name]
    decisions = []

    def sweep(decision: str, points: List[Condition]) -> None:
        conditions.extend(points)
        candidates.extend(point.name for point in points)
        decisions.append(Decision(decision, tuple(candidates)))

    every_label = {"teacher_store_top_k": num_labels}  # one store of the whole distribution
    weights = (0.0, 0.25, 0.75)
    sweep("hard_weight", [blend(w, 10, 1.0, FIRST, compare=whole(w)) for w in weights])
    weight = Chosen("hard_weight", "hard_weight")
    sweep(
        "top_k",
        [
            blend(
                weight,
                k,
                1.0,
                FIRST,
                args=every_label,
                compare=whole(weight) if k < num_labels else (),
            )
            for k in top_ks
        ],
    )
    weight, top_k = Chosen("top_k", "hard_weight"), Chosen("top_k", "top_k")
    sweep("temperature", [blend(weight, top_k, t, FIRST, args=every_label) for t in temperatures])
    chosen = {key: Chosen("temperature", key) for key in SETTINGS}
    conditions.append(
        blend(
            **chosen,
            args={"teacher_store_top_k": Chosen("temperature", STORE_TOP_K)},
            compare=("cnn", "blstm", "ensemble")
            + whole(chosen["hard_weight"], chosen["temperature"]),
        )
    )
    for remedy in remedies:
        if remedy not in REMEDIES:
            raise ValueError(f"unknown remedy {remedy!r}: one of {sorted(REMEDIES)}")
        conditions.extend(REMEDIES[remedy](chosen, model_overrides or {}, perturbed_epochs))
    return Study(conditions, decisions, num_labels)


def small(chosen, models, perturbed_epochs) -> List[Condition]:
    """A student of about a sixth of the teacher's FLOPs, hard and blended, first seed."""
    narrow = {"architecture": models["vgg_narrow"]}
    return [
        Condition("small_cnn", "train_blend.py", "cnn.yaml", FIRST, narrow, compare=("blstm",)),
        Condition(
            "small_blend",
            "train_blend.py",
            "cnn_blend.yaml",
            FIRST,
            {**narrow, **chosen},
            teachers=("blstm",),
            compare=("blstm", "small_cnn"),
        ),
    ]


REMEDY_BASELINES = ("cnn", "blstm")  # every remedy faces the headline's models


def remedy_blend_baselines(*family: str) -> Tuple[str, ...]:
    """A remedy blend faces the headline's models, their ensemble (claim 2), the chosen
    setting (what the remedy adds to it) and the remedies of its own family."""
    return REMEDY_BASELINES + ("ensemble", "temperature") + family


def longer(chosen, models, perturbed_epochs) -> List[Condition]:
    """Teacher, CNN, ensemble and blended CNN trained 16 epochs, and the 8-epoch student of
    the 16-epoch teacher, every seed."""
    epochs = {"number_of_epochs": 16}
    family = ("remedy_cnn_16ep", "remedy_ensemble_16ep", "remedy_teacher_16ep")
    return [
        Condition(
            "remedy_teacher_16ep",
            "train_teacher.py",
            "blstm.yaml",
            ALL,
            epochs,
            compare=REMEDY_BASELINES,
        ),
        Condition(
            "remedy_cnn_16ep",
            "train_blend.py",
            "cnn.yaml",
            ALL,
            epochs,
            compare=REMEDY_BASELINES + ("remedy_ensemble_16ep", "remedy_teacher_16ep"),
        ),
        Condition(
            "remedy_blend_16ep_teacher_16ep",
            "train_blend.py",
            "cnn_blend.yaml",
            ALL,
            epochs,
            teachers=("remedy_teacher_16ep",),
            compare=remedy_blend_baselines(*family),
        ),
        Condition(
            "remedy_blend_teacher_16ep",
            "train_blend.py",
            "cnn_blend.yaml",
            teachers=("remedy_teacher_16ep",),
            compare=remedy_blend_baselines(*family),
        ),
        Condition(
            "remedy_ensemble_16ep",
            "evaluate_ensemble.py",
            "cnn_blend.yaml",
            members=("remedy_teacher_16ep", "remedy_cnn_16ep"),
            compare=REMEDY_BASELINES + ("remedy_teacher_16ep",),
        ),
    ]


ENSEMBLE_STORE = "{study}/remedy_blend_from_ensemble/{seed}/store"


def ensemble(chosen, models, perturbed_epochs) -> List[Condition]:
    """The CNN blended from the average of the teacher's and the CNN's posteriors."""
    return [
        Condition(
            "remedy_blend_from_ensemble",
            "train_blend.py",
            "cnn_blend.yaml",
            ALL,
            chosen,
            teachers=("blstm", "cnn"),
            store=ENSEMBLE_STORE,
            compare=remedy_blend_baselines(),
        )
    ]


COPIES = "{prepared}/speed_perturbed"


def perturbed(chosen, models, perturbed_epochs) -> List[Condition]:
    """Speed-perturbed copies (0.9, 1.1) of the training set: the CNN blended with the
    teacher's soft labels on them against the hard-label control on their stretched
    alignments, every seed."""
    epochs = {"number_of_epochs": perturbed_epochs} if perturbed_epochs else {}
    copies = {"train_csv": f"{COPIES}/train.csv"}
    return [
        Step(
            "perturb",
            ("perturb.py", "hparams/cnn.yaml", "--prepared_folder={prepared}"),
            (f"{COPIES}/train.csv", f"{COPIES}/stretched.ali"),
            overrides=True,
        ),
        Condition(
            "remedy_cnn_perturbed",
            "train_blend.py",
            "cnn.yaml",
            ALL,
            {**copies, "train_alignments": f"{COPIES}/stretched.ali"},
            after=("perturb",),
            replace_overrides=epochs,
            compare=REMEDY_BASELINES,
        ),
        Condition(
            "remedy_blend_perturbed",
            "train_blend.py",
            "cnn_blend.yaml",
            ALL,
            {**chosen, **copies, "targets": "{soft_only_unaligned: True}"},
            teachers=("blstm",),
            after=("perturb",),
            store="{study}/remedy_blend_perturbed/{seed}/store",
            replace_overrides=epochs,
            compare=remedy_blend_baselines("remedy_cnn_perturbed"),
        ),
    ]


def small_ensemble(chosen, models, perturbed_epochs) -> List[Condition]:
    """The small student (``vgg_narrow``), hard and blended from the ensemble, every seed."""
    narrow = {"architecture": models["vgg_narrow"]}
    return [
        Condition(
            "remedy_cnn_small",
            "train_blend.py",
            "cnn.yaml",
            ALL,
            narrow,
            compare=REMEDY_BASELINES,
        ),
        Condition(
            "remedy_blend_small_from_ensemble",
            "train_blend.py",
            "cnn_blend.yaml",
            ALL,
            {**narrow, **chosen},
            teachers=("blstm", "cnn"),
            store=ENSEMBLE_STORE,
            compare=remedy_blend_baselines("remedy_cnn_small"),
        ),
    ]


def larger(chosen, models, perturbed_epochs) -> List[Condition]:
    """A larger teacher (``blstm_large``) and the CNN blended from it, first seed."""
    return [
        Condition(
            "remedy_teacher_large",
            "train_teacher.py",
            "blstm.yaml",
            FIRST,
            {"architecture": models["blstm_large"]},
            compare=REMEDY_BASELINES,
        ),
        Condition(
            "remedy_blend_large_teacher",
            "train_blend.py",
            "cnn_blend.yaml",
            FIRST,
            chosen,
            teachers=("remedy_teacher_large",),
            compare=remedy_blend_baselines("remedy_teacher_large"),
        ),
    ]


REMEDIES = {
    "small": small,
    "longer": longer,
    "ensemble": ensemble,
    "perturbed": perturbed,
    "small_ensemble": small_ensemble,
    "larger": larger,
}


MODEL_YAMLS = ("vgg_narrow", "blstm_large")  # the remedies' networks, under hparams/models/


SETTING_AT_2_9_HOURS = {"hard_weight": 0.25, "top_k": 6, "temperature": 1.0}  # chosen on valid


def honest_labels_study(
    models: Mapping[str, str],
    setting: Mapping[str, Value] = SETTING_AT_2_9_HOURS,
    num_folds: int = 3,
    longer_epochs: int = 16,
    remedy_seeds: Mapping[str, str] = None,
) -> Study:
    """The study where the teacher's labels are said of speech it has not fitted (issue 38):
    the headline (teacher, CNN, ensemble, the CNN blended at ``setting``) on every seed, and
    (a) ``oof_blend``: the same student from out-of-fold teachers (``num_folds`` speaker folds,
    :mod:`blend_modules.data.folds`; one set of fold teachers, the first seed's, for every
    student seed) against the in-sample teacher's; (b) ``consistent_blend``: the online teacher
    labelling the student's SpecAugmented input, ``longer_epochs`` epochs, against
    ``clean_labels_blend``, the same masked student with the stored labels of the clean input;
    (c) ``oof_unlabelled_blend``: the out-of-fold labels on the training set and the corpus's
    unlabelled recordings (soft labels only there) against ``oof_blend``; (d) the larger teacher
    (``blstm_large``) and its same-size student; (e) the small student (``vgg_narrow``) from
    it against the small CNN. ``remedy_seeds``: ``ALL`` or ``FIRST`` per remedy letter (default:
    a on every seed, the others on the first: the CPU budget of docs/STUDY.md). The conditions
    are in the budget's order of priority (headline, a, c, b, e, d's blend last), the order in
    which the runner starts them."""
    seeds = {"a": ALL, "b": FIRST, "c": FIRST, "d": FIRST, "e": FIRST, **(remedy_seeds or {})}
    headline_blend = blend(**setting, compare=("cnn", "blstm", "ensemble"))
    baselines = ("cnn", "blstm", "ensemble", headline_blend.name)
    folds = "{study}/folds"
    fold_teachers = tuple(f"oof_teacher_fold{number}" for number in range(num_folds))
    out_of_fold = {**setting, "teacher_folds": f"{folds}/folds.json"}
    longer = {"number_of_epochs": longer_epochs}
    narrow = {"architecture": models["vgg_narrow"]}
    conditions = headline() + [headline_blend]
    conditions += [
        Step(
            "folds",
            (
                "-m",
                "blend_modules.data.folds",
                "{prepared}/train.csv",
                folds,
                "--folds",
                str(num_folds),
            ),
            (f"{folds}/folds.json",)
            + tuple(f"{folds}/train_without_fold_{n}.csv" for n in range(num_folds)),
        ),
        *(
            Condition(
                teacher,
                "train_teacher.py",
                "blstm.yaml",
                FIRST,
                {"train_csv": f"{folds}/train_without_fold_{number}.csv"},
                after=("folds",),
            )
            for number, teacher in enumerate(fold_teachers)
        ),
        Condition(
            "oof_blend",
            "train_blend.py",
            "cnn_blend.yaml",
            seeds["a"],
            out_of_fold,
            teachers=fold_teachers,
            teacher_seeds=FIRST,
            store="{study}/oof_blend/{seed}/store",
            compare=baselines,
        ),
        Step(
            "transfer",
            (
                "-m",
                "blend_modules.data.manifests",
                "{study}/transfer.csv",
                "{prepared}/train.csv",
                "{prepared}/unlabelled.csv",
            ),
            ("{study}/transfer.csv",),
        ),
        Condition(
            "oof_unlabelled_blend",
            "train_blend.py",
            "cnn_blend.yaml",
            seeds["c"],
            {
                **out_of_fold,
                "train_csv": "{study}/transfer.csv",
                "targets": "{soft_only_unaligned: True}",
            },
            teachers=fold_teachers,
            teacher_seeds=FIRST,
            after=("transfer",),
            store="{study}/oof_unlabelled_blend/{seed}/store",
            compare=baselines + ("oof_blend",),
        ),
        Condition(
            "clean_labels_blend",
            "train_blend.py",
            "cnn_blend.yaml",
            seeds["b"],
            {**setting, "spec_augment": True},
            teachers=("blstm",),
            replace_overrides=longer,
            compare=baselines,
        ),
        Condition(
            "consistent_blend",
            "train_blend.py",
            "cnn_blend.yaml",
            seeds["b"],
            {
                **setting,
                "spec_augment": True,
                "teacher_mode": "online",
                "consistent_augmentation": True,
            },
            teachers=("blstm",),
            replace_overrides=longer,
            compare=baselines + ("clean_labels_blend",),
        ),
        Condition(
            "teacher_large",
            "train_teacher.py",
            "blstm.yaml",
            seeds["d"],
            {"architecture": models["blstm_large"]},
            compare=("blstm", "cnn"),
        ),
        Condition(
            "small_cnn", "train_blend.py", "cnn.yaml", seeds["e"], narrow, compare=("blstm",)
        ),
        Condition(
            "small_large_teacher_blend",
            "train_blend.py",
            "cnn_blend.yaml",
            seeds["e"],
            {**narrow, **setting},
            teachers=("teacher_large",),
            compare=("small_cnn", "teacher_large"),
        ),
        Condition(
            "large_teacher_blend",
            "train_blend.py",
            "cnn_blend.yaml",
            seeds["d"],
            setting,
            teachers=("teacher_large",),
            compare=baselines + ("teacher_large",),
        ),
    ]
    return Study(conditions)


def ctc_study() -> Study:
    """The study with CTC targets: the headline and one blended CNN per soft term (frames, the
    paper's; nonblank frames; the CTC best path) at the YAML's λ, k, T, every seed."""
    conditions = headline("_ctc")
    for soft_loss in ("frames", "nonblank_frames", "ctc_best_path"):
        conditions.append(
            Condition(
                f"blend_{soft_loss}",
                "train_blend.py",
                "cnn_ctc_blend.yaml",
                ALL,
                {"soft_loss": soft_loss},
                teachers=("blstm",),
                compare=("cnn", "blstm", "ensemble"),
            )
        )
    return Study(conditions)
