"""Runs a study (:mod:`blend_modules.study.plans`) in a recipe folder, resumable: a run whose
``summary.json`` exists is skipped, a killed run resumes from its checkpoints when the command
is run again. At most ``--jobs`` runs at once (``OMP_NUM_THREADS=1`` and ``--jobs 2``: one per
core), started in the plan's order as soon as nothing orders them: the first run alone (it
prepares the data and the decoding graph the others share), a student after its teachers, an
ensemble after its members, a run with a chosen setting after its decision, and runs that share
a teacher store after the first of them (which writes it). A failed run stops the study (the
runs in progress end first). Then the study's CSV, tables and plots
(:mod:`blend_modules.analysis.study`, its comparisons from the plan, ``plan.json``).

    python -m blend_modules.study.runner RECIPE frame --num_labels 620 [options] [--key=value ...]
    python -m blend_modules.study.runner RECIPE ctc [options] [--key=value ...]
    python -m blend_modules.study.runner RECIPE honest_labels [options] [--key=value ...]

e.g. ``python -m blend_modules.study.runner recipes/SpeechOcean762/Blend frame --num_labels 620
--jobs 2``. Runs go to ``<recipe>/<study>/<condition>/<seed>/`` (default ``results/study[_ctc|_honest_labels]``;
logs in ``<study>/logs/``), sharing the prepared data (``--prepared``, default
``results/prepared``); the outputs to ``--docs`` (default ``docs/study/<corpus>[_ctc|_honest_labels]``). Every
``--key=value`` the runner does not know goes to every run (e.g. the 2.9-hour corpus).
``--skip NAME ...`` leaves conditions out (a budget's cut; refused for one that a kept condition
learns from).
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from blend_modules.analysis import study as study_outputs
from blend_modules.data.hparams import SHARED_HPARAMS, model_override
from blend_modules.study.plans import (
    FIRST,
    MODEL_YAMLS,
    SETTINGS,
    STORE_TOP_K,
    YAML_STORE_TOP_K,
    Chosen,
    Condition,
    Step,
    Study,
    ctc_study,
    frame_study,
    honest_labels_study,
)

REPO = SHARED_HPARAMS.parent


@dataclass(frozen=True)
class Run:
    """One run of a condition, its chosen settings resolved."""

    name: str
    seed: Optional[int]  # None: a step without seeds
    command: Tuple[str, ...]  # after the python command
    needs: Tuple[Tuple[str, Optional[int]], ...]  # (name, seed) of runs to finish first
    store: Optional[Tuple]  # runs with the same store key share a teacher store
    compare: Tuple[str, ...]


class StudyFailed(RuntimeError):
    """A run of the study exited with an error."""


class StudyRunner:
    """The study's runs in ``recipe`` (see the module's doc), each command
    ``python SCRIPT hparams/YAML --results_folder=STUDY --prepared_folder=PREPARED
    --model_name=NAME --seed=SEED [the teachers, members, store] [the condition's args]
    [the overrides]``."""

    def __init__(
        self,
        study: Study,
        recipe,
        study_folder: str,
        prepared: str,
        seeds: Sequence[int],
        overrides: Sequence[str] = (),
        python: Sequence[str] = (sys.executable,),
        jobs: int = 1,
        poll_s: float = 1.0,
    ):
        self.study, self.recipe = study, Path(recipe)
        self.study_folder, self.prepared = study_folder, prepared
        self.seeds, self.overrides = list(seeds), list(overrides)
        self.python, self.jobs, self.poll_s = list(python), jobs, poll_s
        self.decisions = {decision.name: decision for decision in study.decisions}
        self.decided: Dict[str, Dict] = {}
        self.items = [  # (condition, seed) in the plan's order
            (condition, seed) for condition in study.conditions for seed in self.seeds_of(condition)
        ]

    def seeds_of(self, condition: Union[Condition, Step]) -> List[Optional[int]]:
        """The seeds a condition runs on (``[None]`` for a step)."""
        if isinstance(condition, Step):
            return [None]
        return self.seeds[:1] if condition.seeds == FIRST else self.seeds

    def folder(self, name: str, seed: Optional[int]) -> str:
        """A run's folder, relative to the recipe."""
        return f"{self.study_folder}/{name}/{seed}"

    def formatted(self, text: str) -> str:
        """``text`` with ``{prepared}`` and ``{study}`` replaced by the folders (nothing else:
        an override may hold braces of its own)."""
        return text.replace("{prepared}", self.prepared).replace("{study}", self.study_folder)

    def done(self, run: Run) -> bool:
        """Whether a run has finished: its ``summary.json``, or a step's outputs."""
        if run.seed is None:
            step = next(c for c in self.study.conditions if c.name == run.name)
            outputs = [self.recipe / self.formatted(output) for output in step.outputs]
            return all(output.is_file() for output in outputs)
        return (self.recipe / self.folder(run.name, run.seed) / "summary.json").is_file()

    def decide(self, name: str) -> Optional[Dict]:
        """A decision's settings (λ, k, T, the store size its k needs, and ``condition``, the
        best candidate's name) once every candidate has finished on its seeds, else None."""
        if name in self.decided:
            return self.decided[name]
        candidates = set()
        for condition, seed in self.items:
            if condition.name not in self.decisions[name].candidates:
                continue
            run = self.resolve(condition, seed)  # needs earlier decisions only
            if run is None or not self.done(run):
                return None
            candidates.add(run.name)
        rows = study_outputs.collect(self.recipe / self.study_folder)
        best = study_outputs.best_blend([row for row in rows if row["condition"] in candidates])
        if best is None:
            raise ValueError(f"decision {name!r}: no candidate in the plan")
        condition, settings = best[0], {key: best[1][key] for key in SETTINGS}
        too_many = settings["top_k"] > YAML_STORE_TOP_K
        settings[STORE_TOP_K] = self.study.num_labels if too_many else None
        print(f"chosen   {name}: {condition}", flush=True)
        self.decided[name] = {**settings, "condition": condition}
        return self.decided[name]

    def resolve(self, condition: Union[Condition, Step], seed: Optional[int]) -> Optional[Run]:
        """The run of ``condition`` at ``seed``, or None while a decision it takes a setting
        from is not made."""
        if isinstance(condition, Step):
            command = [self.formatted(part) for part in condition.command]
            command += self.overrides if condition.overrides else []
            return Run(condition.name, None, tuple(command), (), None, ())
        args = {}
        for key, value in condition.args.items():
            if isinstance(value, Chosen):
                settings = self.decide(value.decision)
                if settings is None:
                    return None
                value = settings[value.parameter]
            args[key] = value
        name = condition.name.format(**args)
        teacher_seed = self.seeds[0] if condition.teacher_seeds == FIRST else seed
        needs = [(teacher, teacher_seed) for teacher in condition.teachers]
        needs += [(member, seed) for member in condition.members]
        needs += [(step, None) for step in condition.after]
        extra, teachers = [], [self.folder(teacher, teacher_seed) for teacher in condition.teachers]
        if teachers:
            extra.append(f"--teacher_folder={listed(teachers)}")
        if condition.members:
            members = [self.folder(member, seed) for member in condition.members]
            extra.append(f"--ensemble_members={listed(members)}")
        store = None
        if condition.store:
            store = condition.store.format(study=self.study_folder, seed=seed)
            extra.append(f"--teacher_store={store}")
        if teachers:
            store = (store or tuple(teachers), args.get("teacher_store_top_k"))
        command = [
            condition.script,
            f"hparams/{condition.hparams}",
            f"--results_folder={self.study_folder}",
            f"--prepared_folder={self.prepared}",
            f"--model_name={name}",
            f"--seed={seed}",
            *extra,
        ]
        command += [
            self.formatted(f"--{key}={value}") for key, value in args.items() if value is not None
        ]
        replaced = condition.replace_overrides
        command += [o for o in self.overrides if o[2:].split("=", 1)[0] not in replaced]
        command += [f"--{key}={value}" for key, value in replaced.items()]
        compare = tuple(self.baseline(other, args) for other in condition.compare)
        return Run(name, seed, tuple(command), tuple(needs), store, compare)

    def baseline(self, other: str, args: Dict) -> Optional[str]:
        """A compared condition's name: a decision's best candidate, or a name formatted with
        the comparing condition's settings; None while a decision is not made."""
        if other in self.decisions:
            settings = self.decide(other)
            return None if settings is None else settings["condition"]
        return other.format(**args)

    def comparisons(self) -> List[Tuple[str, str]]:
        """(condition, baseline) of every resolved run, in the plan's order, without repeats."""
        pairs = []
        for condition, seed in self.items:
            run = self.resolve(condition, seed)
            for baseline in run.compare if run else ():
                if baseline and baseline != run.name and (run.name, baseline) not in pairs:
                    pairs.append((run.name, baseline))
        return pairs

    def run(self) -> None:
        """Every run of the study, resumable (see the module's doc); ``StudyFailed`` naming the
        log of a run that failed."""
        logs = self.recipe / self.study_folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        running: Dict[Tuple[str, Optional[int]], Tuple[subprocess.Popen, Run]] = {}
        failed = None
        first = self.resolve(*self.items[0])
        while True:
            for key, (process, run) in list(running.items()):
                if process.poll() is not None:
                    del running[key]
                    if process.returncode != 0 or not self.done(run):  # no summary: failed too
                        failed = failed or run
            if failed:
                for process, _ in running.values():
                    process.wait()
                raise StudyFailed(
                    f"a run failed: its log is in {self.study_folder}/logs/ ({log_name(failed)})"
                )
            started, waiting = False, False
            resolved = {}  # (name, seed) -> run: a later condition that resolves to an
            for condition, seed in self.items:  # earlier one's name is that run
                run = self.resolve(condition, seed)
                if run is None:
                    waiting = True
                    continue
                key = (run.name, run.seed)
                if key in resolved:
                    continue
                resolved[key] = run
                if key in running or self.done(run):
                    continue
                waiting = True
                if len(running) >= self.jobs or not self.can_start(run, first, resolved):
                    continue
                print(
                    f"{time.strftime('%T')} running {run.name} seed {run.seed} "
                    f"(log: {self.study_folder}/logs/{log_name(run)})",
                    flush=True,
                )
                with open(logs / log_name(run), "w") as log:
                    process = subprocess.Popen(
                        self.python + list(run.command),
                        cwd=self.recipe,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                running[key] = (process, run)
                started = True
            if not running and not waiting:
                return
            if not running and not started:
                raise RuntimeError("the study's plan has runs that nothing can start")
            time.sleep(self.poll_s)

    def can_start(self, run: Run, first: Run, resolved: Dict) -> bool:
        """Whether nothing orders ``run`` after a run that has not finished."""
        if run != first and not self.done(first):
            return False
        by_key = {(r.name, r.seed): r for r in resolved.values()}
        for need in run.needs:
            other = by_key.get(need) or Run(need[0], need[1], (), (), None, ())
            if not self.done(other):
                return False
        if run.store is not None:  # the first run of a store writes it; the others wait
            writer = next(r for r in resolved.values() if r.store == run.store)
            return writer is run or self.done(writer)
        return True


def listed(folders: Sequence[str]) -> str:
    """One folder, or a YAML list of them."""
    return folders[0] if len(folders) == 1 else "[" + ", ".join(folders) + "]"


def log_name(run: Run) -> str:
    """A run's log file name."""
    return f"{run.name}.log" if run.seed is None else f"{run.name}.{run.seed}.log"


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("recipe", help="the recipe folder, e.g. recipes/SpeechOcean762/Blend")
    parser.add_argument(
        "targets",
        choices=("frame", "ctc", "honest_labels"),
        help="the paper's study with frame or CTC targets, or the out-of-fold one (frame)",
    )
    parser.add_argument("--num_labels", type=int, help="frame targets: the label set's size")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1986, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument(
        "--top_ks", type=int, nargs="+", help="k of the sweep (default: log-spaced)"
    )
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="*",
        default=[2.0, 4.0],
        help="T of the sweep (none: no T sweep)",
    )
    parser.add_argument("--remedies", nargs="*", default=["small", "longer"])
    parser.add_argument("--perturbed_epochs", type=int, help="epochs of the perturbed remedy")
    parser.add_argument("--skip", nargs="*", default=[], help="conditions not run (a budget's cut)")
    parser.add_argument("--study", help="the study folder, relative to the recipe")
    parser.add_argument("--prepared", default="results/prepared")
    parser.add_argument("--docs", help="where the CSV, tables and plots go")
    parser.add_argument("--python", default=sys.executable, help="the command that runs a script")
    parser.add_argument("--poll_s", type=float, default=1.0, help="seconds between checks")
    arguments, overrides = parser.parse_known_args(argv)
    for override in overrides:
        if not (override.startswith("--") and "=" in override):
            parser.error(f"{override!r} is neither an option nor a --key=value override")
    suffix = {"frame": "", "ctc": "_ctc", "honest_labels": "_honest_labels"}[arguments.targets]
    models = {
        name: model_override(SHARED_HPARAMS / "models" / f"{name}.yaml") for name in MODEL_YAMLS
    }
    if arguments.targets == "honest_labels":
        study = honest_labels_study(models)
    elif arguments.targets == "frame":
        if arguments.num_labels is None:
            parser.error("frame targets need --num_labels")
        study = frame_study(
            arguments.num_labels,
            arguments.top_ks,
            arguments.temperatures,
            arguments.remedies,
            models,
            arguments.perturbed_epochs,
        )
    else:
        study = ctc_study()
    try:
        study = study.without(arguments.skip)
    except ValueError as error:
        parser.error(str(error))
    recipe = Path(arguments.recipe).resolve()
    study_folder = arguments.study or f"results/study{suffix}"
    corpus = recipe.parent.name
    docs = Path(arguments.docs or REPO / "docs" / "study" / f"{corpus}{suffix}")
    runner = StudyRunner(
        study,
        recipe,
        study_folder,
        arguments.prepared,
        arguments.seeds,
        overrides,
        shlex.split(arguments.python),
        arguments.jobs,
        arguments.poll_s,
    )
    try:
        runner.run()
    except StudyFailed as failure:
        sys.exit(str(failure))
    plan = {"comparisons": runner.comparisons(), "num_labels": study.num_labels}
    (recipe / study_folder / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    study_outputs.main(
        recipe / study_folder, docs, study.num_labels, recipe / arguments.prepared / "test.csv"
    )
    print(f"Study outputs in {docs}/")


if __name__ == "__main__":
    main()
