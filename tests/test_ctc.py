"""CTC targets: tokenizer, CTC blend loss, decoding, bad transcripts, an end-to-end run and
the inference folder."""

import csv
import functools
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import run_recipe, tiny_overrides, topk_targets
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.decoders.ctc import CTCBeamSearcher
from speechbrain.nnet.losses import ctc_loss
from speechbrain.tokenizers.SentencePiece import SentencePiece

from blend_modules.data.manifests import check_manifest, segment_lengths
from blend_modules.targets.ctc import CTCTargets
from blend_modules.targets.metrics import WordErrorRates
from blend_modules.training.losses import blend_loss

DIGITS = "zero one two three four five six seven eight nine".split()


def make_targets(train_csv, model_dir, **options) -> CTCTargets:
    tokenizer = functools.partial(
        SentencePiece,
        model_dir=str(model_dir),
        vocab_size=27,
        annotation_train=str(train_csv),
        annotation_read="words",
        model_type="unigram",
        character_coverage=1.0,
    )
    targets = CTCTargets(tokenizer, 0, functools.partial(CTCBeamSearcher, beam_size=5), **options)
    targets.prepare()
    return targets


@pytest.fixture(scope="module")
def targets(tiny_hparams, tmp_path_factory):
    return make_targets(tiny_hparams["train_csv"], tmp_path_factory.mktemp("tok"))


def test_tokenizer_is_deterministic(tiny_hparams, targets, tmp_path):
    again = make_targets(tiny_hparams["train_csv"], tmp_path)
    assert again.outputs() == targets.outputs()

    def scored_pieces(t):  # the model file also records its training paths, so compare these
        return [(t.tokenizer.id_to_piece(i), t.tokenizer.get_score(i)) for i in range(t.num_labels)]

    assert scored_pieces(again) == scored_pieces(targets)
    units = targets.outputs()["units"]
    assert units[0] == "<blank>" and len(units) == targets.num_labels == 27


def spiky_logits(targets, text, frames_per_unit=4):
    """Logits whose argmax spells ``text`` with blanks between the units."""
    path = []
    for unit in targets.tokenizer.encode_as_ids(text):
        path += [unit] + [0] * (frames_per_unit - 1)
    logits = torch.full((1, len(path), targets.num_labels), -10.0)
    logits[0, torch.arange(len(path)), torch.tensor(path)] = 10.0
    return logits, torch.tensor([len(path)])


@pytest.mark.parametrize("text", ["seven one", "three three nine zero", "five"])
def test_decoding_a_known_posterior(targets, text):
    logits, lengths = spiky_logits(targets, text)
    assert targets.decode(logits, lengths) == [text.split()]
    assert targets.decode(logits, lengths, targets.searcher) == [text.split()]


def batch_of(targets, texts, frames=60):
    ids = [torch.tensor(targets.tokenizer.encode_as_ids(t)) for t in texts]
    return PaddedBatch(
        [{"id": str(i), "tokens": t, "words": w} for i, (t, w) in enumerate(zip(ids, texts))]
    )


def test_ctc_blend_with_hard_weight_one_is_speechbrain_ctc(targets):
    torch.manual_seed(0)
    batch = batch_of(targets, ["seven one", "two", "nine nine zero"])
    logits = torch.randn(3, 50, targets.num_labels, requires_grad=True)
    lengths = torch.tensor([50, 31, 44])
    hard = targets.hard_loss(logits, batch, lengths)
    tokens, token_lens = batch.tokens
    expected = ctc_loss(torch.log_softmax(logits, -1), tokens, lengths / 50, token_lens, 0)
    assert torch.allclose(hard, expected)
    ids, probs = topk_targets(torch.randn(3, 50, targets.num_labels), 4)
    assert torch.allclose(
        blend_loss(hard, logits, lengths, ids, probs, hard_weight=1.0).total, expected
    )
    mixed = blend_loss(hard, logits, lengths, ids, probs, hard_weight=0.5)
    assert torch.allclose(mixed.total, 0.5 * mixed.hard + 0.5 * mixed.soft)
    mixed.total.backward()
    assert logits.grad[1, 31:].abs().sum() == 0 and logits.grad[1, :31].abs().sum() > 0


def teacher_spikes(num_frames: int, num_units: int, spikes: dict) -> torch.Tensor:
    """Teacher logits whose top unit is the blank (0) except at ``spikes`` (frame -> unit)."""
    logits = torch.randn(num_frames, num_units)
    top = torch.zeros(num_frames, dtype=torch.long)
    for frame, unit in spikes.items():
        top[frame] = unit
    logits[torch.arange(num_frames), top] += 20.0
    return logits


def test_nonblank_blending_ignores_the_teachers_blank_frames(targets):
    torch.manual_seed(0)
    spikes = {3: 5, 4: 5, 9: 2, 20: 7}  # 5 5 -> one unit, then 2, 7
    teacher = teacher_spikes(30, targets.num_labels, spikes)[None]
    ids, probs = topk_targets(teacher, 4)
    student = torch.randn(1, 30, targets.num_labels, requires_grad=True)
    lengths = torch.tensor([30])
    loss = blend_loss(
        torch.tensor(0.0), student, lengths, ids, probs, 0.0, 1.0, "nonblank_frames", 0
    )
    frames = sorted(spikes)
    log_probs = torch.log_softmax(student[0, frames], -1)
    expected = -(log_probs.gather(-1, ids[0, frames]) * probs[0, frames]).sum(-1).mean()
    assert torch.allclose(loss.soft, expected)
    loss.total.backward()
    blank_frames = [t for t in range(30) if t not in spikes]
    assert student.grad[0, blank_frames].abs().sum() == 0
    assert student.grad[0, frames].abs().sum() > 0


def test_best_path_blending_is_ctc_to_the_teachers_greedy_path(targets):
    torch.manual_seed(0)
    teachers = [
        teacher_spikes(30, targets.num_labels, {3: 5, 4: 5, 9: 2, 20: 7}),
        teacher_spikes(30, targets.num_labels, {2: 4, 6: 4, 7: 1}),  # 4, 4 apart: twice
    ]
    ids, probs = topk_targets(torch.stack(teachers), 1)  # the top unit is all it needs
    student = torch.randn(2, 30, targets.num_labels)
    lengths = torch.tensor([30, 12])
    loss = blend_loss(torch.tensor(0.0), student, lengths, ids, probs, 0.0, 1.0, "ctc_best_path", 0)
    paths = torch.tensor([[5, 2, 7], [4, 4, 1]])
    expected = torch.nn.functional.ctc_loss(
        torch.log_softmax(student, -1).transpose(0, 1), paths, lengths, torch.tensor([3, 3])
    )
    assert torch.allclose(loss.soft, expected)


def test_teacher_with_another_frame_rate_is_refused(targets):
    logits, lengths = torch.randn(2, 40, 27), torch.tensor([40, 30])
    ids, probs = topk_targets(torch.randn(2, 20, 27), 3)  # a teacher that halves the frame rate
    with pytest.raises(ValueError, match=r"one output per feature frame"):
        blend_loss(torch.tensor(1.0), logits, lengths, ids, probs, hard_weight=0.5)


def corpus_with(tiny_hparams, tmp_path, words_of_first):
    source = Path(tiny_hparams["valid_csv"])
    rows = list(csv.DictReader(open(source)))
    rows[0]["words"] = words_of_first
    for row in rows:
        row["wav"] = row["wav"].replace("$data_root", str(source.parent))
    manifest = tmp_path / "valid.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest, rows[0]["ID"]


@pytest.mark.parametrize(
    "words, message",
    [
        ("", "has an empty transcript"),
        ("seven éleven", r"has characters outside the tokenizer: \['l', 'é'\]"),
    ],
)
def test_bad_transcripts_are_refused(tiny_hparams, targets, tmp_path, words, message):
    manifest, utt_id = corpus_with(tiny_hparams, tmp_path, words)
    num_samples = segment_lengths(check_manifest(manifest, 8000))
    dataset = DynamicItemDataset.from_csv(str(manifest))
    with pytest.raises(ValueError, match=rf"valid.csv: utterance '{utt_id}' {message}"):
        targets.add_to_dataset(dataset, "valid", manifest, num_samples, 80)


def test_ctc_recipe_end_to_end_and_inference(tiny_hparams, tmp_path):
    root = Path(tiny_hparams["prepared_folder"]).parent
    common = tiny_overrides(root / "prepared", tmp_path)
    del common["output_folder"]  # each run goes to <results_folder>/<model_name>/<seed>
    common.update(number_of_epochs=2, results_folder=tmp_path)
    result = run_recipe("train_teacher.py", "blstm_ctc.yaml", common)
    assert result.returncode == 0, result.stderr[-3000:]
    teacher = tmp_path / "blstm_ctc" / "1986"
    result = run_recipe("train_blend.py", "cnn_ctc_blend.yaml", common)
    assert result.returncode == 0, result.stderr[-3000:]
    student = tmp_path / "cnn_ctc_blend" / "1986"
    summary = json.loads((student / "summary.json").read_text())
    assert summary["model"] == "cnn_ctc_blend" and "test_WER" in summary and "test_CER" in summary
    assert summary["history"][-1]["train"]["loss"] < summary["history"][0]["train"]["loss"]
    assert "soft_loss" in summary["history"][0]["train"]
    assert (
        json.loads((teacher / "store_top27" / "metadata.json").read_text())["outputs"]["kind"]
        == "ctc"
    )
    wer_lines = (student / "wer_test.txt").read_text()
    assert "%WER" in wer_lines and "test_yweweler" in wer_lines

    # the ensemble of the teacher with itself decodes as the teacher
    overrides = dict(common, model_name="ensemble", ensemble_members=f"[{teacher}, {teacher}]")
    result = run_recipe("evaluate_ensemble.py", "cnn_ctc_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    ensemble = json.loads((tmp_path / "ensemble" / "1986" / "summary.json").read_text())
    alone = json.loads((teacher / "summary.json").read_text())
    assert ensemble["test_WER"] == alone["test_WER"] and ensemble["test_CER"] == alone["test_CER"]

    # the sequence-level remedy: CTC against the teacher's best path
    overrides = dict(common, model_name="cnn_ctc_bestpath", soft_loss="ctc_best_path")
    result = run_recipe("train_blend.py", "cnn_ctc_blend.yaml", overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "cnn_ctc_bestpath" / "1986" / "summary.json").read_text())
    assert summary["soft_loss"] == "ctc_best_path" and "test_WER" in summary
    first, last = summary["history"][0]["train"], summary["history"][-1]["train"]
    assert last["soft_loss"] < first["soft_loss"]

    # a student with another vocabulary cannot learn from this teacher
    overrides = dict(
        common, output_folder=tmp_path / "other_vocab", token_type="char", vocab_size=17
    )
    result = run_recipe("train_blend.py", "cnn_ctc_blend.yaml", overrides)
    assert result.returncode != 0
    assert (
        "predicts other outputs than the student: ctc targets with 27 outputs"
        in result.stdout + result.stderr
    )

    check_inference_folder(student, tmp_path)

    # EncoderASR on the exported ONNX graph transcribes as on PyTorch
    result = run_recipe("export_model.py", "cnn_ctc_blend.yaml", common)
    assert result.returncode == 0, result.stderr[-3000:]
    from speechbrain.inference.ASR import EncoderASR

    on_torch = EncoderASR.from_hparams(
        source=str(student / "inference"), savedir=str(tmp_path / "t")
    )
    on_onnx = EncoderASR.from_hparams(
        source=str(student / "inference"),
        hparams_file="hyperparams_onnx.yaml",
        savedir=str(tmp_path / "o"),
    )
    for wav in sorted(Path(tiny_hparams["prepared_folder"], "wav").glob("test_*.wav"))[:3]:
        assert on_onnx.transcribe_file(str(wav)) == on_torch.transcribe_file(str(wav))


def check_inference_folder(run_folder, tmp_path):
    """EncoderASR transcribes a test wav exactly as the trained model decodes it greedily."""
    from speechbrain.inference.ASR import EncoderASR

    asr = EncoderASR.from_hparams(
        source=str(run_folder / "inference"), savedir=str(tmp_path / "asr")
    )
    hparams_file = run_folder / "hyperparams.yaml"
    with open(hparams_file) as fin:
        hparams = load_hyperpyyaml(fin)
    hparams["targets"].prepare()
    hparams["checkpointer"].recover_if_possible(min_key="WER")
    model, normalize = hparams["model"].eval(), hparams["normalize"].eval()
    manifest = Path(hparams["test_csv"])
    row = next(csv.DictReader(open(manifest)))
    wav = row["wav"].replace("$data_root", str(manifest.parent))
    signal = asr.load_audio(wav)
    assert signal.shape[0] == sf.info(wav).frames  # read at the model's rate, not resampled
    with torch.no_grad():
        features = normalize(hparams["features"]["compute_features"](signal[None]), torch.ones(1))
        logits = model(features)
    expected = " ".join(hparams["targets"].decode(logits, torch.tensor([logits.shape[1]]))[0])
    transcript = asr.transcribe_file(wav)
    assert transcript == expected
    assert all(word in DIGITS for word in transcript.split())


def test_word_error_rate_per_group():
    """With ``group_by``, WER is also reported per value of that batch item."""
    hypotheses = [["a", "b"], ["c"], ["x", "y", "z"]]
    batch = type("Batch", (), {})()
    batch.id, batch.age_group = ["u1", "u2", "u3"], ["child", "adult", "child"]
    batch.words = ["a b", "c d", "x q z"]  # child: 1 error in 5 words; adult: 1 in 2
    metrics = WordErrorRates(lambda logits, lengths: hypotheses, group_by="age_group")
    metrics.append(torch.zeros(3, 4, 5), batch, torch.ones(3))
    stats = metrics.summarize()
    assert stats["WER"] == pytest.approx(100 * 2 / 7)
    assert stats["WER_child"] == pytest.approx(100 * 1 / 5)
    assert stats["WER_adult"] == pytest.approx(100 * 1 / 2)
