"""Hybrid decoding to words: label priors (unseen labels disabled), the connected-digit graph,
Kaldi's FasterDecoder through kaldi-decoder, and the acoustic scale chosen on valid."""

import functools

import kaldifst
import numpy as np
import pytest
import torch
from conftest import RECIPE
from fsdd_prepare import DIGIT_WORDS, digit_graph, label_names

from blend_modules.data.alignments import write_alignments
from blend_modules.hybrid import graph_cache
from blend_modules.hybrid.decoder import WordDecoder, decode, with_word_penalty
from blend_modules.hybrid.graph_cache import build_cached_graph
from blend_modules.hybrid.hmm_graphs import self_loop_probabilities, transition_costs
from blend_modules.hybrid.priors import DISABLED_LOG_PRIOR, log_priors, pseudo_log_likelihoods
from blend_modules.hybrid.scoring import HybridWordErrors, fix_acoustic_scale

NUM_LABELS = len(label_names())


def digit_frames(digits, rng, silence=(0, 12)):
    """Per-frame labels of a digit string: silence, then each digit's 3 states (3-8 frames
    each) followed by a pause of ``silence`` frames."""
    labels = [0] * int(rng.integers(5, 20))
    for digit in digits:
        for state in range(3):
            labels += [1 + 3 * digit + state] * int(rng.integers(3, 9))
        labels += [0] * int(rng.integers(*silence))
    return np.array(labels)


def noisy_log_posteriors(labels, rng, margin):
    """Log-softmax of Gaussian logits with ``margin`` added to the true label."""
    logits = rng.normal(size=(len(labels), NUM_LABELS))
    logits[np.arange(len(labels)), labels] += margin
    return torch.log_softmax(torch.from_numpy(logits), dim=-1).numpy()


def test_unseen_labels_are_disabled_not_boosted():
    counts = np.array([50, 0, 30, 20])
    priors = log_priors(counts)
    assert priors[1] == np.float32(DISABLED_LOG_PRIOR)
    assert np.allclose(priors[[0, 2, 3]], np.log([0.5, 0.3, 0.2]))
    # the unseen label has the highest posterior everywhere, yet never wins
    log_posteriors = np.log(np.tile([[0.1, 0.7, 0.1, 0.1]], (5, 1)))
    loglikes = pseudo_log_likelihoods(log_posteriors, priors, 0.1)
    assert (loglikes[:, 1] < -1e17).all() and (loglikes.argmax(1) != 1).all()
    with pytest.raises(ValueError, match="all zero"):
        log_priors(np.zeros(4))


def test_transition_probabilities_from_alignments():
    """Kaldi-style estimate: a label stays with probability 1 - runs / frames."""
    alignments = {"a": np.array([0, 0, 0, 1, 1, 0]), "b": np.array([1, 1, 1, 1])}
    stay = self_loop_probabilities(alignments, 3)
    assert np.allclose(stay, [1 - 2 / 4, 1 - 2 / 6, 0.5])  # label 2 never seen: 0.5


@pytest.mark.parametrize("digits", [[7], [3, 1, 4, 1, 5, 9, 2], [0, 0, 0]])
def test_digit_graph_recovers_the_digits(digits):
    """Synthetic posteriors of a known digit string decode to that string (any length, repeated
    digits), and the best path's labels are the true alignment where frames are clear."""
    rng = np.random.default_rng(len(digits))
    graph, words = digit_graph()
    assert words == DIGIT_WORDS
    labels = digit_frames(digits, rng)
    log_posteriors = noisy_log_posteriors(labels, rng, margin=8.0)
    priors = log_priors(np.ones(NUM_LABELS))  # the synthetic posteriors carry no prior
    best = decode(graph, pseudo_log_likelihoods(log_posteriors, priors, 1.0))
    assert best["reached_final"]
    assert [words[i - 1] for i in best["word_ids"]] == [DIGIT_WORDS[d] for d in digits]
    assert np.mean(np.array(best["labels"]) == labels) > 0.99


def test_decoding_beats_argmax_frames(tmp_path):
    """At low SNR the Viterbi path through the graph is more accurate than per-frame argmax,
    and strictly more so, over 20 utterances, with transition probabilities estimated from
    training alignments (durations that made no difference would fail it)."""
    rng = np.random.default_rng(0)
    training = {f"u{i}": digit_frames(rng.integers(0, 10, 4), rng) for i in range(20)}
    write_alignments(tmp_path / "train.ali", training)
    free, _ = digit_graph()
    timed, _ = digit_graph(tmp_path / "train.ali")
    correct = {"argmax": 0, "free": 0, "timed": 0}
    for _ in range(20):
        labels = digit_frames(rng.integers(0, 10, 5), rng)
        log_posteriors = noisy_log_posteriors(labels, rng, margin=2.5)
        loglikes = pseudo_log_likelihoods(log_posteriors, log_priors(np.ones(NUM_LABELS)), 1.0)
        correct["argmax"] += np.sum(log_posteriors.argmax(1) == labels)
        for name, graph in (("free", free), ("timed", timed)):
            correct[name] += np.sum(np.array(decode(graph, loglikes)["labels"]) == labels)
    assert correct["free"] > correct["argmax"] * 1.2
    assert correct["timed"] > correct["free"]


def test_self_loop_scale_scales_stay_and_leave_costs():
    """mkgraph.sh's --self-loop-scale: both HMM transition costs are multiplied by it."""
    stay = np.array([0.9, 0.5, 0.75])
    full = transition_costs([0, 2], stay)
    assert np.allclose(full, [-np.log(0.825), -np.log(0.175)])
    assert np.allclose(transition_costs([0, 2], stay, self_loop_scale=0.1), np.multiply(full, 0.1))
    assert transition_costs([0, 2], None, self_loop_scale=0.1) == (0.0, 0.0)


class Batch:
    def __init__(self, ids, words, groups=None):
        self.id, self.words, self.age_group = ids, words, groups


def test_acoustic_scale_is_chosen_on_valid_then_fixed(tmp_path):
    """The grid is decoded on valid and the scale with the lowest WER kept; a test set is then
    decoded at that scale only, whatever its own best scale would be."""
    decoder = WordDecoder(digit_graph, tmp_path / "graph", acoustic_scales=[0.01, 1.0])
    decoder.prepare(NUM_LABELS)
    assert (tmp_path / "graph" / "graph.fst").is_file()
    rng = np.random.default_rng(3)
    digits = [[1, 2], [3, 4, 5], [6], [7, 8, 9, 0]]
    utterances = [digit_frames(d, rng) for d in digits]
    decoder.label_log_priors = log_priors(np.ones(NUM_LABELS))

    def scored(margin):
        errors = HybridWordErrors(decoder, group_by="age_group")
        for index, (labels, d) in enumerate(zip(utterances, digits)):
            log_posteriors = noisy_log_posteriors(labels, rng, margin)
            batch = Batch([f"u{index}"], [" ".join(DIGIT_WORDS[x] for x in d)], ["child"])
            errors.append(torch.from_numpy(log_posteriors)[None], batch, [len(labels)])
        return errors.summarize()

    valid = scored(margin=6.0)
    # at scale 0.01 the uniform digit LM (log 10 per word) outweighs the acoustics: deletions
    assert valid["WER_at_scale_0.01"] > valid["WER_at_scale_1"] == 0.0
    assert valid["acoustic_scale"] == 1.0 and valid["WER"] == valid["WER_child"] == 0.0
    decoder.acoustic_scale = 0.01  # as if valid had chosen it: test must not choose again
    test = scored(margin=6.0)
    assert test["acoustic_scale"] == 0.01 and "WER_at_scale_1" not in test
    assert test["WER"] > 0  # at scale 1 it would have been 0


def test_graph_beyond_the_model_outputs_is_refused(tmp_path):
    """A graph built for more labels than the model has (e.g. another inventory) is refused
    naming the graph file, before anything trains."""
    decoder = WordDecoder(digit_graph, tmp_path / "graph")
    with pytest.raises(
        ValueError,
        match=r"graph.fst: the graph's input labels reach model label 30, but the model has 20 outputs",
    ):
        decoder.prepare(20)


def test_graph_cache_is_rebuilt_when_what_builds_it_changes(tmp_path, monkeypatch):
    """Keyword and positional arguments, a given file's content and the code's graph format
    each rebuild the cached graph; the same callable reuses it."""
    built = []

    def build(*args, **kwargs):
        built.append((args, kwargs))
        return digit_graph()

    alignments = tmp_path / "train.ali"
    write_alignments(alignments, {"u": digit_frames([1, 2], np.random.default_rng(0))})
    folder = tmp_path / "graph"
    build_cached_graph(functools.partial(build, 1, alignments=alignments), folder)
    build_cached_graph(functools.partial(build, 1, alignments=alignments), folder)
    assert len(built) == 1
    build_cached_graph(functools.partial(build, 2, alignments=alignments), folder)  # positional
    assert len(built) == 2
    build_cached_graph(functools.partial(build, 2, alignments=alignments, scale=0.1), folder)
    assert len(built) == 3
    write_alignments(alignments, {"u": digit_frames([3], np.random.default_rng(1))})  # content
    build_cached_graph(functools.partial(build, 2, alignments=alignments, scale=0.1), folder)
    assert len(built) == 4
    monkeypatch.setattr(graph_cache, "GRAPH_FORMAT", graph_cache.GRAPH_FORMAT + 1)
    build_cached_graph(functools.partial(build, 2, alignments=alignments, scale=0.1), folder)
    assert len(built) == 5
    assert graph_cache.describe_callable(build)["packages"]["pocketsphinx"] != "not installed"


def test_word_insertion_penalty_is_chosen_with_the_scale_and_costs_every_word(tmp_path):
    """A penalty adds its cost to each word the graph outputs; valid chooses the (scale,
    penalty) pair with the lowest WER, and test is decoded with that pair only."""
    graph, words = digit_graph()
    penalised = with_word_penalty(graph, 2.5, len(words))
    arcs = {}  # (input, output, cost) of every arc, states numbered as each graph numbers them
    for name, fst in (("plain", graph), ("penalised", penalised)):
        arcs[name] = sorted(
            (arc.ilabel, arc.olabel, round(arc.weight.value, 4))
            for state in kaldifst.StateIterator(fst)
            for arc in kaldifst.ArcIterator(fst, state)
        )
    assert penalised.num_states == graph.num_states
    expected = sorted(
        (ilabel, olabel, round(cost + (2.5 if olabel else 0.0), 4))
        for ilabel, olabel, cost in arcs["plain"]
    )
    assert arcs["penalised"] == expected
    scores = np.log(np.random.default_rng(0).dirichlet(np.ones(NUM_LABELS), size=40))
    plain, paid = decode(graph, scores), decode(penalised, scores)
    assert paid["cost"] >= plain["cost"]  # the same best path costs 2.5 a word more, or another
    assert paid["cost"] <= plain["cost"] + 2.5 * len(plain["word_ids"]) + 1e-3

    decoder = WordDecoder(
        digit_graph, tmp_path / "graph", acoustic_scales=[1.0], word_insertion_penalties=[0, 200]
    )
    decoder.prepare(NUM_LABELS)
    decoder.label_log_priors = log_priors(np.ones(NUM_LABELS))
    rng = np.random.default_rng(3)
    valid = HybridWordErrors(decoder)
    for index, digits in enumerate(([4, 2], [7, 7, 1])):
        labels = digit_frames(digits, rng)
        valid.add(
            f"v{index}", noisy_log_posteriors(labels, rng, 4.0), [DIGIT_WORDS[d] for d in digits]
        )
    stats = valid.summarize()
    assert stats["WER_at_scale_1_wip_0"] == 0.0 < stats["WER_at_scale_1_wip_200"]  # deletions
    assert stats["word_insertion_penalty"] == 0.0
    decoder.acoustic_scale, decoder.word_insertion_penalty = 1.0, 200.0  # as if valid chose it
    labels = digit_frames([5], rng)
    test = HybridWordErrors(decoder)
    test.add("t", noisy_log_posteriors(labels, rng, 4.0), [DIGIT_WORDS[5]])
    assert test.summarize()["word_insertion_penalty"] == 200.0


def test_valid_decoded_every_epoch_only_when_asked(tiny_hparams):
    """``valid_wer_every_epoch`` (learning curves in words): the valid metrics decode; by
    default only test does, as before. The flag reaches the targets as a nested override."""
    from speechbrain.core import Stage

    from blend_modules.data.hparams import load_hparams_file

    targets = tiny_hparams["targets"]
    assert targets.metrics(Stage.VALID).words is None
    assert targets.metrics(Stage.TEST).words is not None
    overrides = {key: tiny_hparams[key] for key in ("prepared_folder", "output_folder")}
    asked = load_hparams_file(
        RECIPE / "hparams" / "cnn.yaml", {**overrides, "targets": {"valid_wer_every_epoch": True}}
    )["targets"]
    assert asked.valid_wer_every_epoch and asked.metrics(Stage.VALID).words is not None


@pytest.mark.parametrize(
    "scales, penalties, chosen, expected",
    [
        ([0.05, 0.1, 0.2], [0.0], (0.1, 0.0), (False, False)),  # interior; one penalty: untuned
        ([0.05, 0.1, 0.2], [0.0, 1.0], (0.05, 1.0), (True, True)),  # both cut off by the grid
        ([0.05, 0.1, 0.2], [0.0, 0.5, 1.0], (0.2, 0.5), (True, False)),
        ([0.1], [0.0], (0.1, 0.0), (False, False)),  # a grid of one value is not searched
    ],
)
def test_a_choice_on_the_grid_edge_is_flagged_for_the_summary(
    tmp_path, caplog, scales, penalties, chosen, expected
):
    decoder = WordDecoder(
        digit_graph, tmp_path / "graph", acoustic_scales=scales, word_insertion_penalties=penalties
    )
    valid = {"acoustic_scale": chosen[0], "word_insertion_penalty": chosen[1]}
    flags = fix_acoustic_scale(decoder, valid)
    assert flags == {
        "acoustic_scale_at_grid_edge": expected[0],
        "word_insertion_penalty_at_grid_edge": expected[1],
    }
    assert (decoder.acoustic_scale, decoder.word_insertion_penalty) == chosen
    assert ("is at the edge of the grid" in caplog.text) == any(expected)


def test_the_grid_widens_past_an_edge_until_the_best_is_inside(tmp_path):
    """At low scales the digit LM outweighs the acoustics; from a grid of [0.03, 0.1] (its best
    on the upper edge, lower than inwards) the scale grid grows by its own factor (×3.33) until
    valid's WER stops falling: the best scale is then inside the grid, every scale tried is
    reported, and the summary's edge flag is off."""
    decoder = WordDecoder(
        digit_graph, tmp_path / "graph", acoustic_scales=[0.03, 0.1], grid_extensions=4
    )
    decoder.prepare(NUM_LABELS)
    decoder.label_log_priors = log_priors(np.ones(NUM_LABELS))
    rng = np.random.default_rng(3)
    valid = HybridWordErrors(decoder)
    for index, digits in enumerate(([1, 2], [3, 4, 5], [6], [7, 8, 9, 0])):
        labels = digit_frames(digits, rng)
        words = [DIGIT_WORDS[digit] for digit in digits]
        valid.add(f"v{index}", noisy_log_posteriors(labels, rng, 6.0), words)
    stats = valid.summarize()
    grid = decoder.acoustic_scales
    assert grid == [0.03, 0.1, 0.333]  # widened upwards once: 0.333 is no better, it stops
    assert stats["acoustic_scale"] == 0.1  # inside now
    assert stats["WER"] == 0.0 < stats["WER_at_scale_0.03"]
    assert {f"WER_at_scale_{scale:g}" for scale in grid} <= stats.keys()
    assert fix_acoustic_scale(decoder, stats)["acoustic_scale_at_grid_edge"] is False


@pytest.mark.parametrize(
    "extensions, best, expected_scales, expected_penalties",
    [
        (2, (0.05, 0.0), [0.0357, 0.05, 0.07, 0.1], [-0.5, 0.0, 0.5]),  # both low edges
        (2, (0.1, 0.5), [0.05, 0.07, 0.1, 0.143], [0.0, 0.5, 1.0]),  # both high edges
        (2, (0.07, 0.5), [0.05, 0.07, 0.1], [0.0, 0.5, 1.0]),  # the scale inside: unchanged
        (0, (0.05, 0.0), [0.05, 0.07, 0.1], [0.0, 0.5]),  # no extensions: the grid as given
    ],
)
def test_widening_steps_by_the_grids_own_factor_and_difference(
    extensions, best, expected_scales, expected_penalties
):
    decoder = WordDecoder(
        acoustic_scales=[0.05, 0.07, 0.1],
        word_insertion_penalties=[0.0, 0.5],
        grid_extensions=extensions,
    )

    def error_at(setting):  # the best is better than every other setting
        return 0.0 if setting == best else 1.0

    assert decoder.widen_grid(best, error_at) == bool(extensions)
    assert decoder.acoustic_scales == expected_scales
    assert decoder.word_insertion_penalties == expected_penalties


def test_the_grid_gains_at_most_grid_extensions_values_past_an_edge():
    """Later searches (valid decoded after every epoch) share the limit: the grid stops. A
    best on an edge that is no better than its inward neighbour (flat) widens nothing."""
    decoder = WordDecoder(acoustic_scales=[0.1, 0.2], grid_extensions=2)

    def falling_towards(edge):
        return lambda setting: 0.0 if setting == edge else 1.0

    assert not decoder.widen_grid((0.1, 0.0), lambda setting: 1.0)  # flat
    assert decoder.widen_grid((0.1, 0.0), falling_towards((0.1, 0.0)))
    assert decoder.widen_grid((0.05, 0.0), falling_towards((0.05, 0.0)))
    assert not decoder.widen_grid((0.025, 0.0), falling_towards((0.025, 0.0)))
    assert decoder.acoustic_scales == [0.025, 0.05, 0.1, 0.2]
    assert decoder.widen_grid((0.2, 0.0), falling_towards((0.2, 0.0)))  # that edge has its own
