"""The training options of the 5-hour ablation (run_5h_ablation.sh): the fixed learning-rate
schedule against NewBob, the sampler's data order (seeded, reshuffled every epoch), and the
overrides of normalisation, dropout and weight decay reaching the objects they name."""

import shutil
import subprocess
import time

import pytest
import speechbrain as sb
import speechocean_corpus  # noqa: F401 - puts the recipe's prepare module on the path
import torch
from conftest import REPO
from speechbrain.dataio.dataset import DynamicItemDataset

from blend_modules.data.datasets import train_loader_kwargs
from blend_modules.data.hparams import load_hparams_file
from blend_modules.training.brains import TeacherBrain
from blend_modules.training.schedules import WarmupCosineDecay

RECIPE = REPO / "recipes" / "SpeechOcean762" / "Blend"


def recipe_hparams(tmp_path, yaml="cnn.yaml", **overrides):
    return load_hparams_file(
        RECIPE / "hparams" / yaml, {"results_folder": str(tmp_path), **overrides}
    )


def test_warmup_then_cosine_decay_to_the_final_fraction():
    schedule = WarmupCosineDecay(lr=0.002, epochs=12, warmup_epochs=1, final_lr_fraction=0.05)
    rates = [schedule.lr_at(step / 10) for step in range(121)]
    assert rates[0] == 0.0 and rates[5] == pytest.approx(0.001)  # linear warm-up
    assert rates[10] == pytest.approx(0.002) == max(rates)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then only down
    assert rates[-1] == pytest.approx(0.0001)  # 5% at the end of epoch 12
    assert schedule.lr_at(6.5) == pytest.approx(0.0001 + 0.0019 / 2)  # half-way: the mean


def test_a_run_as_short_as_its_warm_up_only_warms_up():
    schedule = WarmupCosineDecay(lr=1.0, epochs=1, warmup_epochs=1)  # e.g. a 1-epoch check
    assert [schedule.lr_at(p) for p in (0.5, 1.0)] == [0.5, 1.0]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": 3, "warmup_epochs": -1}, "warmup_epochs must be at least 0"),
        ({"epochs": 3, "final_lr_fraction": 1.5}, r"final_lr_fraction must lie in \[0, 1\]"),
    ],
)
def test_an_impossible_schedule_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosineDecay(lr=0.001, **options)


def utterances(count=40):
    data = {f"u{index:02d}": {"duration": 1.0 + (index % 7) * 0.5} for index in range(count)}
    return DynamicItemDataset(data, output_keys=["id", "duration"])


def brain_with(hparams):
    model = torch.nn.Linear(2, 2)
    return TeacherBrain(
        modules={"model": model, "normalize": hparams["normalize"]},
        opt_class=lambda params: torch.optim.SGD(params, lr=hparams["lr"]),
        hparams=hparams,
        run_opts={"device": "cpu"},
    )


def epoch_batches(brain, loader, epoch):
    brain.train_sampler.set_epoch(epoch)  # what Brain.fit does before every epoch
    return [tuple(batch.id) for batch in loader]


def test_dynamic_batches_change_every_epoch_and_with_the_seed(tmp_path):
    """Without the Brain calling ``set_epoch`` every epoch repeated the first one's batches;
    without the run's seed every seed had the same order (SpeechBrain's default seed)."""
    orders = {}
    for seed in (1986, 1987):
        hparams = recipe_hparams(tmp_path, seed=seed, dynamic_batch_sampler={"max_batch_length": 6})
        dataset = utterances()
        brain = brain_with(hparams)
        loader = brain.make_dataloader(
            dataset, sb.Stage.TRAIN, **train_loader_kwargs(dataset, hparams)
        )
        assert brain.train_sampler is loader.batch_sampler and brain.train_batches == len(loader)
        orders[seed] = [epoch_batches(brain, loader, epoch) for epoch in (1, 2, 1)]
        first, second, first_again = orders[seed]
        assert first != second and first == first_again  # reshuffled, and reproducibly
        assert sorted(sum(first, ())) == sorted(sum(second, ())) == sorted(dataset.data_ids)
    assert orders[1986][0] != orders[1987][0]


@pytest.mark.parametrize("fixed", [True, False])
def test_the_fixed_schedule_sets_every_step_and_newbob_stays_off(tmp_path, fixed):
    hparams = recipe_hparams(tmp_path, fixed_lr_schedule=fixed, number_of_epochs=4, lr=0.004)
    brain = brain_with(hparams)
    brain.init_optimizers()
    brain.train_batches = 10
    hparams["epoch_counter"].current = 3
    brain.step = 5  # the 5th of 10 steps of epoch 3: 2.5 epochs into training
    brain.on_fit_batch_start(batch=None, should_step=True)
    expected = hparams["lr_schedule"].lr_at(2.5) if fixed else 0.004
    assert brain.optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    if fixed:  # the decay of 4 epochs after one of warm-up, half-way through it
        assert expected == pytest.approx(0.004 * (0.02 + 0.98 * 0.5))


def dropouts(model):
    return {module.p for module in model.modules() if isinstance(module, torch.nn.Dropout)}


SENTENCE = {"normalize": {"norm_type": "sentence"}}
BLSTM_DROPOUT, CNN_DROPOUT = (
    {"architecture": {"dropout": 0.4}},
    {"architecture": {"model": {"dropout": 0.4}}},
)


@pytest.mark.parametrize(
    "yaml, overrides, check",
    [
        ("blstm.yaml", {}, lambda h: h["normalize"].norm_type == "global"),
        ("blstm.yaml", SENTENCE, lambda h: h["normalize"].norm_type == "sentence"),
        ("blstm.yaml", {}, lambda h: dropouts(h["model"]) == {0.2}),
        ("blstm.yaml", BLSTM_DROPOUT, lambda h: dropouts(h["model"]) == {0.4}),
        ("cnn.yaml", CNN_DROPOUT, lambda h: dropouts(h["model"]) == {0.4}),
        ("cnn.yaml", {}, lambda h: h["opt_class"].keywords["weight_decay"] == 0.0),
        (
            "cnn.yaml",
            {"weight_decay": 0.05},
            lambda h: h["opt_class"].keywords["weight_decay"] == 0.05,
        ),
    ],
)
def test_the_ablations_overrides_reach_their_objects(tmp_path, yaml, overrides, check):
    """Each remedy of run_5h_ablation.sh is an override; one that hyperpyyaml silently dropped
    would make its row of the table the baseline again."""
    assert check(recipe_hparams(tmp_path, yaml, **overrides))


def test_the_ablation_script_runs_each_condition_with_its_overrides_and_skips_finished_ones(
    tmp_path,
):
    """run_5h_ablation.sh with ``PYTHON=echo``: the commands it would run, from a copy of it
    (it works in its own folder)."""
    script = shutil.copy(RECIPE / "run_5h_ablation.sh", tmp_path)
    finished = tmp_path / "results" / "5h_16k" / "cnn_base" / "1986"
    finished.mkdir(parents=True)
    (finished / "summary.json").write_text("{}")

    def commands(model):
        run = subprocess.run(
            ["bash", script, "/data/so762", model],
            env={"PATH": "/usr/bin:/bin", "PYTHON": "echo"},
            capture_output=True,
            text=True,
            check=True,
        )
        return run.stdout.splitlines()

    teacher = [line for line in commands("teacher") if line.startswith("train_teacher.py")]
    assert len(teacher) == 6 and all("--number_of_epochs=12" in line for line in teacher)
    assert any(
        "--model_name=blstm_dropout_wd --seed=1986 --architecture={dropout: 0.4} --weight_decay=0.05"
        in line
        for line in teacher
    )
    labels = next(line for line in teacher if "blstm_labels1500" in line)
    assert (
        "senones_kept: 1380}" in labels
        and "--prepared_folder=results/5h_16k/prepared_1500" in labels
    )
    cnn = commands("cnn")
    assert "cnn_base seed 1986: done" in cnn
    assert not any("--model_name=cnn_base " in line for line in cnn)
    assert any("--architecture={model: {dropout: 0.4}}" in line for line in cnn)


def test_two_ablation_scripts_share_a_list_of_conditions(tmp_path):
    """Two invocations on one list (one per core): a run the other is training (its lock
    held) is skipped, so every condition trains once."""
    script = shutil.copy(RECIPE / "run_5h_ablation.sh", tmp_path)
    record = tmp_path / "runs.txt"
    stand_in = tmp_path / "stand_in.sh"
    stand_in.write_text(  # records the run, trains a second, writes its summary
        f'#!/bin/sh\necho "$@" >> {record}\nsleep 1\n'
        'run=results/5h_16k/$(echo "$@" | grep -o "model_name=[a-z_0-9]*" | cut -d= -f2)/1986\n'
        "mkdir -p $run && echo {} > $run/summary.json\n"
    )
    stand_in.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(stand_in)}
    command = ["bash", script, "/data/so762", "teacher", "uttnorm", "fixedlr"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    first.communicate(timeout=30)
    runs = [line.split("--model_name=")[1].split()[0] for line in record.read_text().splitlines()]
    assert sorted(runs) == ["blstm_fixedlr", "blstm_uttnorm"]
    assert "blstm_uttnorm seed 1986: training in another process" in second.stdout


def test_the_ablation_script_combines_remedies_and_runs_seeds(tmp_path):
    """A condition 'a+b' has the overrides (and corpus additions) of both; SEEDS runs each
    condition on each seed."""
    script = shutil.copy(RECIPE / "run_5h_ablation.sh", tmp_path)
    run = subprocess.run(
        ["bash", script, "/data/so762", "teacher", "specaug+labels1500"],
        env={"PATH": "/usr/bin:/bin", "PYTHON": "echo", "SEEDS": "1986 1 2"},
        capture_output=True,
        text=True,
        check=True,
    )
    commands = [line for line in run.stdout.splitlines() if line.startswith("train_teacher.py")]
    assert [line.split("--seed=")[1].split()[0] for line in commands] == ["1986", "1", "2"]
    for line in commands:
        assert "--model_name=blstm_specaug+labels1500" in line and "--spec_augment=True" in line
        assert "senones_kept: 1380}" in line and "prepared_1500" in line
