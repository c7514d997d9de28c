"""The results table printed by ``python -m blend_modules.analysis.report``: columns by kind of
run."""

import json

from blend_modules.analysis.curves import best_epochs, main, run_labels
from blend_modules.analysis.report import results_table


def write_summary(folder, model, seed, **metrics):
    run = folder / model / str(seed)
    run.mkdir(parents=True)
    summary = {"model": model, "seed": seed, "parameters": 1000, "train_time_s": 10.0, **metrics}
    (run / "summary.json").write_text(json.dumps(summary))


def test_frame_runs_with_words_and_groups(tmp_path):
    """Frame accuracy as a fraction, WER in percent, groups after; blended - hard per seed."""
    for model, accuracy, wer in (("cnn", 0.80, 20.0), ("cnn_blend", 0.82, 15.0)):
        for seed in (1, 2):
            metrics = {
                "valid_frame_acc": accuracy,
                "test_frame_acc": accuracy,
                "test_frame_acc_child": accuracy - 0.1,
                "valid_WER": wer,
                "test_WER": wer,
                "test_WER_child": wer + 5,
                "valid_WER_at_scale_0.1": wer,
            }
            write_summary(tmp_path, model, seed, **metrics)
    table = results_table(tmp_path)
    header = table.splitlines()[0]
    assert header == (
        "| model | seed | params | valid frame acc | test frame acc | valid WER | test WER | "
        "test frame acc child | test WER child | train time (s) | s / epoch |"
    )
    assert (
        "| cnn_blend | 1 | 1,000 | 82.00% | 82.00% | 15.00% | 15.00% | 72.00% | 20.00% | 10 | — |"
        in table
    )
    assert "cnn_blend - cnn, test WER over seeds [1, 2]: -5.00 ± 0.00 points" in table


def test_a_wer_decoded_at_the_grid_edge_is_marked(tmp_path):
    for model, at_edge in (("blstm", True), ("cnn", False)):
        write_summary(
            tmp_path,
            model,
            1,
            valid_frame_acc=0.5,
            test_frame_acc=0.5,
            valid_WER=70.0,
            test_WER=60.0,
            valid_acoustic_scale_at_grid_edge=at_edge,
            valid_word_insertion_penalty_at_grid_edge=False,
        )
    table = results_table(tmp_path)
    assert (
        "| blstm | 1 | 1,000 | 50.00% | 50.00% | 70.00% (edge) | 60.00% (edge) | 10 | — |" in table
    )
    assert "| cnn | 1 | 1,000 | 50.00% | 50.00% | 70.00% | 60.00% | 10 | — |" in table
    assert "(edge) decoded at an edge of the acoustic-scale or penalty grid" in table


def test_ctc_runs(tmp_path):
    write_summary(tmp_path, "cnn_ctc", 1, valid_WER=30.0, test_WER=25.0, test_CER=12.5)
    header = results_table(tmp_path).splitlines()[0]
    assert header == (
        "| model | seed | params | valid WER | test WER | test CER | train time (s) | s / epoch |"
    )


def test_the_training_fit_and_the_epoch_time_where_the_summary_has_them(tmp_path):
    history = [{"epoch": e, "time_s": t} for e, t in ((1, 300.0), (2, 200.0), (3, 210.0))]
    write_summary(
        tmp_path,
        "blstm",
        1,
        train_eval_frame_acc=0.6,
        valid_frame_acc=0.45,
        test_frame_acc=0.47,
        history=history,
    )
    table = results_table(tmp_path)
    assert table.splitlines()[0].startswith("| model | seed | params | train eval frame acc |")
    assert "| blstm | 1 | 1,000 | 60.00% | 45.00% | 47.00% | 10 | 210 |" in table


def test_learning_curves_from_the_history(tmp_path, capsys):
    """``python -m blend_modules.analysis.curves``: the best epochs by valid frame accuracy and
    by valid WER (decoded every epoch) differ here, and both are reported; the plot is written."""
    history = [
        {"epoch": e, "lr": lr, "train": {"frame_acc": acc + 0.05}, "valid": valid}
        for e, lr, acc, valid in [
            (1, 0.001, 0.30, {"frame_acc": 0.30, "WER": 90.0}),
            (2, 0.001, 0.35, {"frame_acc": 0.35, "WER": 80.0}),
            (3, 0.0005, 0.36, {"frame_acc": 0.36, "WER": 82.0}),
        ]
    ]
    run = tmp_path / "blstm" / "1986"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"history": history}))
    assert best_epochs(history) == {"frame_acc": 3, "WER": 2}
    main(tmp_path / "curves.png", [run])
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    assert "best epoch {'frame_acc': 3, 'WER': 2}, learning rate lowered at [3]" in (
        capsys.readouterr().out
    )


def test_learning_curves_keep_two_runs_of_one_model_and_seed(tmp_path):
    """The same model and seed in two results folders (e.g. 8 and 16 kHz) are two lines, not
    one overwritten by the other."""
    runs = [tmp_path / "2.9h" / "blstm" / "1986", tmp_path / "2.9h_16k" / "blstm" / "1986"]
    runs.append(tmp_path / "2.9h" / "cnn" / "1986")
    assert run_labels(runs) == [
        "2.9h/blstm (seed 1986)",
        "2.9h_16k/blstm (seed 1986)",
        "cnn (seed 1986)",
    ]
