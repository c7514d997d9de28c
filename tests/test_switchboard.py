"""The Switchboard recipe on a miniature corpus in the real LDC/ISIP layout (see
``switchboard_tree``): SPHERE reading, manifests, text normalisation, eval2000 parsing and GLM
scoring, Kaldi alignments, priors and pseudo-log-likelihood export, and end-to-end runs."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
from kaldi_system import write_final_mdl, write_graph
from switchboard_tree import (
    SW2001A_EXPECTED,
    conversation_audio,
    make_switchboard_tree,
    write_sphere,
)

from blend_modules.data.alignments import read_alignments, write_alignments
from blend_modules.data.audio import read_segment, readable_audio, sphere_header
from blend_modules.data.frames import num_frames
from blend_modules.data.manifests import check_manifest

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "Switchboard" / "Blend"
sys.path.insert(0, str(RECIPE))

from swbd_text import GLMNormalizer, map_word, normalize_transcript  # noqa: E402
from switchboard_prepare import (  # noqa: E402
    cap_duplicates,
    extend_segments,
    kaldi_eval2000_id,
    prepare_switchboard,
)

NUM_PDFS = 12
KALDI_WINDOW, HOP = 200, 80  # 25 ms / 10 ms at 8 kHz


@pytest.fixture(scope="module")
def swbd_tree(tmp_path_factory):
    """The miniature corpus: the recipe's data paths (as strings)."""
    root = tmp_path_factory.mktemp("swbd")
    return {key: str(path) for key, path in make_switchboard_tree(root).items()}


def prepare(tree, save_folder, **options):
    prepare_switchboard(**tree, save_folder=str(save_folder), dev_utterances=5, **options)
    return {name: list(csv.DictReader(open(save_folder / f"{name}.csv"))) for name in MANIFESTS}


MANIFESTS = ("train", "dev", "eval2000_swbd", "eval2000_callhome")


def test_sphere_pcm_and_ulaw_are_read_per_channel(tmp_path):
    audio = conversation_audio(np.random.default_rng(1), 1.0)
    for coding in ("pcm", "ulaw"):
        path = tmp_path / f"{coding}.sph"
        write_sphere(path, audio, coding)
        header = sphere_header(path)
        assert (header["channel_count"], header["sample_count"]) == (2, 8000)
        assert readable_audio(path, tmp_path / "cache") == path  # read in place
        segment = read_segment(path, 800, 1600, channel=1).numpy()
        expected = audio[800:1600, 1] / 32768
        tolerance = 1e-6 if coding == "pcm" else 0.02  # µ-law keeps ~8 bits
        assert np.abs(segment - expected).max() < tolerance


def test_shorten_is_detected_and_needs_sph2pipe(tmp_path):
    path = tmp_path / "sw02001.sph"
    write_sphere(
        path, conversation_audio(np.random.default_rng(1), 1.0), "ulaw,embedded-shorten-v2.00"
    )
    with pytest.raises(RuntimeError, match=r"sw02001.sph is shorten-compressed.*Install sph2pipe"):
        readable_audio(path, tmp_path / "cache", sph2pipe="no-such-sph2pipe")


def test_shorten_is_decoded_once_and_cached(tmp_path):
    """With a decoder on hand, the file is converted once and the cache used afterwards. The
    stand-in decoder writes a known WAV (no shorten encoder is packaged to make a real file)."""
    audio = conversation_audio(np.random.default_rng(1), 1.0)
    path = tmp_path / "sw02001.sph"
    write_sphere(path, audio, "ulaw,embedded-shorten-v2.00")
    sf.write(tmp_path / "decoded.wav", audio, 8000, subtype="PCM_16")
    decoder = tmp_path / "sph2pipe"
    decoder.write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\ncp {tmp_path}/decoded.wav "$5"\n'
    )
    decoder.chmod(0o755)
    for _ in range(2):
        cached = readable_audio(path, tmp_path / "cache", sph2pipe=str(decoder))
    assert cached == tmp_path / "cache" / "sw02001.flac"
    assert (tmp_path / "calls").read_text().split() == [
        "-f",
        "wav",
        "-p",
        str(path),
        str(cached.with_suffix(".decoding.wav")),
    ]
    assert np.array_equal(sf.read(cached, dtype="int16")[0], audio)


def test_unsupported_sphere_coding(tmp_path):
    path = tmp_path / "odd.sph"
    write_sphere(path, conversation_audio(np.random.default_rng(1), 0.1), "pculaw")
    with pytest.raises(ValueError, match=r"odd.sph: unsupported SPHERE sample_coding 'pculaw'"):
        readable_audio(path, tmp_path)


def test_word_mapping_follows_kaldi_s5c():
    assert map_word("[laughter-yes]") == ["yes"]
    assert map_word("[bocket/bucket]") == ["bocket"]
    assert map_word("[lem[guini]-/linguini]") == ["lem-"]
    assert map_word("ab[solute]-") == ["ab-"]
    assert map_word("-[an]y") == ["-y"]
    assert map_word("{yuppiedom}") == ["yuppiedom"]
    assert map_word("them_1") == ["them"]
    assert map_word("i_b_m's") == ["i", "b", "m's"]
    assert map_word("[silence]") == [] and map_word("<b_aside>") == []
    words = "uh [noise] [laughter] [vocalized-noise] okay".split()
    assert normalize_transcript(words, keep_noise=False) == ["uh", "okay"]
    assert normalize_transcript(words, keep_noise=True) == words


def test_manifests(swbd_tree, tmp_path):
    manifests = prepare(swbd_tree, tmp_path, keep_noise=True)
    dev = {row["ID"]: row for row in manifests["dev"]}
    assert {k: dev[k]["words"] for k in SW2001A_EXPECTED} == SW2001A_EXPECTED
    row = dev["sw02001-A_000098-000250"]
    assert (row["start"], row["stop"], row["channel"]) == ("0.980000", "2.500000", "0")
    assert row["wav"].endswith("swb1_d1/data/sw02001.sph") and row["spk_id"] == "sw02001-A"
    assert all(r["channel"] == "1" for r in manifests["dev"] if r["spk_id"].endswith("-B"))
    # dev: whole conversations, the first in ID order; train: the others
    assert {r["spk_id"][:7] for r in manifests["dev"]} == {"sw02001"}
    assert {r["spk_id"][:7] for r in manifests["train"]} == {"sw02005", "sw02010", "sw02023"}
    # the µ-law conversation is read like the PCM ones, segment by segment
    segments = check_manifest(tmp_path / "train.csv", 8000)
    first = manifests["train"][0]
    assert segments[first["ID"]].num_samples == round(float(first["duration"]) * 8000)

    swbd = {row["ID"]: row["words"] for row in manifests["eval2000_swbd"]}
    assert swbd == {
        "sw_4390-A_000030-000180": "oh yeah i'm gonna go",
        "sw_4390-A_000210-000360": "all right we kinda know",
        "sw_4390-A_000570-000720": "yeah i think so",
        "sw_4390-B_000030-000180": "oh yeah i'm gonna go",
        "sw_4390-B_000210-000360": "all right we kinda know",
        "sw_4390-B_000570-000720": "yeah i think so",
    }  # (%HESITATION), (UH) dropped; the IGNORE_TIME_SEGMENT_IN_SCORING segment left out
    assert {row["spk_id"][:7] for row in manifests["eval2000_callhome"]} == {"en_4156"}

    without_noise = prepare(swbd_tree, tmp_path / "no_noise", keep_noise=False)
    dev = {row["ID"]: row["words"] for row in without_noise["dev"]}
    assert dev["sw02001-A_000098-000250"] == "uh-huh yes i b m's"
    assert "sw02001-A_000500-000640" not in dev  # only [vocalized-noise]: dropped


def test_duplicate_cap_and_idempotence(swbd_tree, tmp_path):
    rows = [{"words": w} for w in ["uh-huh", "yeah", "uh-huh", "uh-huh", "yeah"]]
    assert [r["words"] for r in cap_duplicates(rows, 2)] == ["uh-huh", "yeah", "uh-huh", "yeah"]
    prepare(swbd_tree, tmp_path)
    stamp = (tmp_path / "train.csv").stat().st_mtime_ns
    prepare(swbd_tree, tmp_path)
    assert (tmp_path / "train.csv").stat().st_mtime_ns == stamp  # same options: skipped


def test_glm_normaliser(tmp_path):
    glm = GLMNormalizer(
        str(
            Path(make_switchboard_tree(tmp_path)["eval2000_reference_folder"])
            / "reference"
            / "en20000405_hub5.glm"
        )
    )
    assert (
        glm("uh i'm gonna [laughter] go all right um".split()) == "i'm going to go alright".split()
    )
    assert glm("i wanna".split()) == ["i", "wanna"]  # rule with a context: skipped


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_folder", r"transcripts_folder .*nowhere is not a folder"),
        ("no_transcript", r"sw02010.sph: no ms98 transcript for side\(s\) \['B'\]"),
        ("beyond_audio", r"sw2005A-ms98-a-trans.text:3: segment ends at 99.0 s, after the end"),
        ("bad_line", r"sw2005A-ms98-a-trans.text:2: expected 'segment-id start end words"),
        ("mono", r"sw02023.sph: 1 channel\(s\), expected 2"),
        ("stm_differs", r"segments of .*hub5e_00.pem and .*\.stm differ \(e.g. en_4156-A_000030"),
    ],
)
def test_bad_corpus_is_refused(tmp_path, damage, message):
    tree = make_switchboard_tree(tmp_path / "corpus")
    transcripts = tree["transcripts_folder"] / "20"
    if damage == "missing_folder":
        tree["transcripts_folder"] = tmp_path / "nowhere"
    elif damage == "no_transcript":
        (transcripts / "2010" / "sw2010B-ms98-a-trans.text").unlink()
    elif damage == "stm_differs":  # a segment of the pem missing from the stm
        stm = next(tree["eval2000_reference_folder"].rglob("*.stm"))
        lines = stm.read_text().splitlines()
        stm.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    elif damage in ("beyond_audio", "bad_line"):
        path = transcripts / "2005" / "sw2005A-ms98-a-trans.text"
        lines = path.read_text().splitlines()
        if damage == "beyond_audio":
            lines[2] = "sw2005A-ms98-a-0003 11.0 99.0 too long"
        else:
            lines[1] = "sw2005A-ms98-a-0002 some words"
        path.write_text("\n".join(lines) + "\n")
    else:
        write_sphere(
            next(tree["data_folder"].rglob("sw02023.sph")),
            conversation_audio(np.random.default_rng(0))[:, :1],
            "pcm",
        )
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare({k: str(v) for k, v in tree.items()}, tmp_path / "prepared")


def test_eval2000_segments_as_kaldi_writes_them():
    """IDs by eval2000_data_prep.sh's awk rule (truncated: 1.15 s -> 000114), then times widened
    as local/extend_segments.pl 0.1 does; its own documented examples (at 1.0 s) included."""
    assert kaldi_eval2000_id("sw_4390", "A", 0.29, 1.15) == "sw_4390-A_000028-000114"
    assert kaldi_eval2000_id("en_4156", "B", 301.85, 302.48) == "en_4156-B_030185-030248"
    segments = {
        "a1": ("r", "A", 0.0, 1.0),
        "a2": ("r", "A", 3.0, 4.0),
        "b1": ("r", "B", 0.0, 1.0),
        "b2": ("r", "B", 2.0, 3.0),
        "c1": ("s", "A", 0.0, 2.0),  # c1, c2 overlap: left as they are
        "c2": ("s", "A", 1.0, 3.0),
        "d1": ("t", "A", 0.0, 2.0),  # out of order in the file
        "d2": ("t", "A", 5.0, 6.0),
        "d3": ("t", "A", 3.0, 4.0),
    }
    extended = {u: times[2:] for u, times in extend_segments(segments, 1.0).items()}
    assert extended == {
        "a1": (0.0, 2.0),
        "a2": (2.0, 5.0),
        "b1": (0.0, 1.5),
        "b2": (1.5, 4.0),
        "c1": (0.0, 2.0),
        "c2": (1.0, 4.0),
        "d1": (0.0, 2.5),
        "d2": (4.5, 7.0),
        "d3": (2.5, 4.5),
    }
    close = {"e1": ("r", "A", 0.05, 1.15), "e2": ("r", "A", 1.2, 2.3)}  # a 0.05 s gap
    assert extend_segments(close, 0.1) == {
        "e1": ("r", "A", 0.0, 1.17),  # 1.1749999999999998 in doubles: perl prints 1.17 too
        "e2": ("r", "A", 1.17, 2.4),
    }


def test_eval2000_manifest_times_are_kaldis(swbd_tree, tmp_path):
    manifests = prepare(swbd_tree, tmp_path)
    rows = {row["ID"]: row for row in manifests["eval2000_swbd"]}
    first, second = rows["sw_4390-A_000030-000180"], rows["sw_4390-A_000210-000360"]
    assert (first["start"], first["stop"]) == ("0.200000", "1.900000")  # 0.30-1.80 widened
    assert (second["start"], second["stop"]) == ("2.000000", "3.700000")


def kaldi_alignments(manifests, drop):
    """Per-segment pdf ids with Kaldi's snip-edges frame count (2-3 fewer than ours)."""
    rng = np.random.default_rng(0)
    alignments = {}
    for row in manifests["train"] + manifests["dev"]:
        samples = round(float(row["stop"]) * 8000) - round(float(row["start"]) * 8000)
        frames = 1 + (samples - KALDI_WINDOW) // HOP
        alignments[row["ID"]] = np.repeat(rng.integers(0, NUM_PDFS, frames // 10 + 1), 10)[:frames]
    del alignments[drop]
    return alignments


def small_yaml(name: str, folder: Path) -> Path:
    """The recipe's YAML, copied elsewhere, with the laptop-size architectures swapped in (the
    paper-scale ones would take minutes per step on a CPU); everything else is the recipe's."""
    text = (RECIPE / "hparams" / f"{name}.yaml").read_text()
    text = text.replace("blstm_paper.yaml", "blstm_small.yaml").replace(
        "vgg_paper.yaml", "vgg_small.yaml"
    )
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def run_recipe(script, hparams_file, overrides):
    args = [sys.executable, script, str(hparams_file)] + [
        f"--{k}={v}" for k, v in overrides.items()
    ]
    result = subprocess.run(args, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result


def tiny_run_overrides(tree, results):
    return {
        **tree,
        "results_folder": results,
        "dev_utterances": 5,
        "number_of_epochs": 1,
        "precision": "fp32",
        "eval_dataloader_opts": "{batch_size: 4}",
        "train_dataloader_opts": "{batch_size: 4}",
        "dynamic_batch_sampler": "{max_batch_length: 20, num_buckets: 2, shuffle: True, batch_ordering: random}",
    }


def test_dev_without_alignments_is_refused_naming_the_alignment_file(swbd_tree, tmp_path):
    """s5c aligns train_nodup only: a dev of (almost) no aligned segments was left out
    silently, and frame accuracy and the checkpoint choice rested on a handful of segments."""
    overrides = tiny_run_overrides(swbd_tree, tmp_path / "results")
    manifests = prepare(swbd_tree, tmp_path / "results" / "prepared_keep_noise")
    alignments = kaldi_alignments(manifests, drop=manifests["train"][3]["ID"])
    for row in manifests["dev"][1:]:  # one dev segment aligned, as if by chance
        del alignments[row["ID"]]
    write_alignments(tmp_path / "pdf_ali.txt", alignments)
    overrides.update(alignments=tmp_path / "pdf_ali.txt", num_labels=NUM_PDFS)
    args = [sys.executable, "train_teacher.py", str(small_yaml("blstm", tmp_path))]
    args += [f"--{key}={value}" for key, value in overrides.items()]
    result = subprocess.run(args, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    dev_size = len(manifests["dev"])
    assert f"dev.csv: only 1 of its {dev_size} utterances have an alignment in " in result.stderr
    assert f"{tmp_path / 'pdf_ali.txt'}: valid frame accuracy" in result.stderr
    assert not (tmp_path / "results" / "blstm").exists()


def test_hybrid_recipe_end_to_end(swbd_tree, tmp_path):
    """Teacher, offline store and blended student for one epoch each on Kaldi-style
    alignments (one unaligned segment, snip-edges frame counts), then the Kaldi export."""
    overrides = tiny_run_overrides(swbd_tree, tmp_path / "results")
    manifests = prepare(swbd_tree, tmp_path / "results" / "prepared_keep_noise")
    unaligned = manifests["train"][3]["ID"]
    alignments = kaldi_alignments(manifests, drop=unaligned)
    write_alignments(tmp_path / "pdf_ali.txt", alignments)
    overrides.update(alignments=tmp_path / "pdf_ali.txt", num_labels=NUM_PDFS)

    teacher = run_recipe("train_teacher.py", small_yaml("blstm", tmp_path), overrides)
    train_size = len(manifests["train"])
    assert f"1 of {train_size} utterances without alignment" in teacher.stdout + teacher.stderr
    blend_yaml = small_yaml("cnn_blend", tmp_path)
    run_recipe("train_blend.py", blend_yaml, {**overrides, "top_k": 3, "precision": "bf16"})
    student = tmp_path / "results" / "cnn_blend" / "1986"
    summary = json.loads((student / "summary.json").read_text())
    assert summary["history"][0]["train"]["soft_loss"] > 0
    assert summary["valid_frame_acc"] == summary["history"][0]["valid"]["frame_acc"]  # 1 epoch
    store = json.loads(
        next((tmp_path / "results" / "blstm" / "1986").glob("store_*/metadata.json")).read_text()
    )
    assert len(store["utterances"]) == train_size - 1 and unaligned not in store["utterances"]

    run_recipe("export_loglikes.py", blend_yaml, overrides)
    counts_text = (student / "kaldi" / "train_pdf.counts").read_text()
    counts = np.array(counts_text.strip("[] \n").split(), dtype=np.int64)
    train_ids = [row["ID"] for row in manifests["train"] if row["ID"] != unaligned]
    expected = np.bincount(np.concatenate([alignments[u] for u in train_ids]), minlength=NUM_PDFS)
    assert counts.tolist() == expected.tolist()
    seen = counts > 0
    log_prior = np.log(counts[seen] / counts.sum())
    loglikes = kaldiio.load_scp(str(student / "kaldi" / "eval2000_swbd" / "loglikes.scp"))
    rows = {row["ID"]: row for row in manifests["eval2000_swbd"]}
    assert set(loglikes) == set(rows)
    for utt_id, matrix in loglikes.items():
        samples = round(float(rows[utt_id]["stop"]) * 8000) - round(
            float(rows[utt_id]["start"]) * 8000
        )
        assert matrix.shape == (num_frames(samples, HOP), NUM_PDFS)
        assert (matrix[:, ~seen] < -1e18).all()  # labels unseen in training are disabled
        posteriors = np.exp(matrix[:, seen] + log_prior)  # undo the prior
        assert (posteriors.sum(axis=1) <= 1 + 1e-4).all() and (posteriors.sum(axis=1) > 0).all()

    # decoded in Python with a Kaldi system's graph and final.mdl (synthetic, Kaldi's formats)
    vocabulary = {
        w
        for name in ("dev", "eval2000_swbd", "eval2000_callhome")
        for row in manifests[name]
        for w in row["words"].split()
    }
    lexicon = {word: [1 + sum(map(ord, word)) % 4, 1 + len(word) % 4] for word in vocabulary}
    write_graph(tmp_path / "graph", lexicon)
    write_final_mdl(tmp_path / "final.mdl", num_phones=4, num_pdfs=NUM_PDFS)
    graph = {"kaldi_graph_folder": tmp_path / "graph", "kaldi_model": tmp_path / "final.mdl"}
    run_recipe("decode_loglikes.py", blend_yaml, {**overrides, **graph})
    decoded = json.loads((student / "kaldi" / "decode_summary.json").read_text())
    assert decoded["dev_acoustic_scale"] in (0.05, 0.06, 0.08, 0.1, 0.12, 0.15)  # the YAML's grid
    assert "dev_WER_at_scale_0.1" in decoded and "eval2000_swbd_WER_at_scale_0.1" not in decoded
    for subset in ("eval2000_swbd", "eval2000_callhome"):
        assert decoded[f"{subset}_acoustic_scale"] == decoded["dev_acoustic_scale"]
        text = (student / "kaldi" / subset / "text").read_text().splitlines()
        assert [line.split()[0] for line in text] == sorted(row["ID"] for row in manifests[subset])
        hypotheses = {line.split()[0]: line.split()[1:] for line in text}
        assert all(set(words) <= vocabulary for words in hypotheses.values())
        ctm = [
            line.split() for line in (student / "kaldi" / subset / "ctm").read_text().splitlines()
        ]
        assert len(ctm) == sum(len(words) for words in hypotheses.values())
        assert {(line[0], line[1]) for line in ctm} <= {
            tuple(row["spk_id"].split("-")) for row in manifests[subset]
        }
        report = (student / "kaldi" / f"wer_{subset}.txt").read_text()
        assert re.match(rf"%WER {decoded[f'{subset}_WER']:.2f} ", report)

    write_final_mdl(tmp_path / "other.mdl", num_phones=5, num_pdfs=15)
    mismatch = {**overrides, **graph, "kaldi_model": tmp_path / "other.mdl"}
    args = [sys.executable, "decode_loglikes.py", str(blend_yaml)]
    args += [f"--{k}={v}" for k, v in mismatch.items()]
    result = subprocess.run(args, cwd=RECIPE, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert f"{tmp_path / 'other.mdl'}: its transition model has 15 pdfs" in result.stderr


def test_ctc_recipe_end_to_end(swbd_tree, tmp_path):
    """The CTC teacher for one epoch with BPE units, scored on eval2000 SWB and CallHome."""
    overrides = {**tiny_run_overrides(swbd_tree, tmp_path), "vocab_size": 40}
    run_recipe("train_teacher.py", small_yaml("blstm_ctc", tmp_path), overrides)
    run_folder = tmp_path / "blstm_ctc" / "1986"
    summary = json.loads((run_folder / "summary.json").read_text())
    for subset in ("swbd", "callhome"):
        # the pipeline's own consistency: a hypothesis for every segment of the manifest, and
        # the WER file's counts give the summary's WER
        with open(tmp_path / "prepared" / f"eval2000_{subset}.csv", newline="") as manifest:
            segments = {row["ID"] for row in csv.DictReader(manifest)}
        report = (run_folder / f"wer_{subset}.txt").read_text()
        header = re.match(r"%WER (\S+) \[ (\d+) / (\d+),", report)
        wer, errors, words = float(header[1]), int(header[2]), int(header[3])
        assert f"Scored {len(segments)} sentences, 0 not present in hyp." in report
        scored = set(re.findall(r"^(\S+), %WER", report, flags=re.MULTILINE))
        assert scored == segments
        assert words > 0 and wer == round(100 * errors / words, 2)
        assert abs(summary[f"test_{subset}_WER"] - wer) < 0.005
    tokenizer = next((tmp_path / "prepared").glob("tokenizer_bpe40/*.model"))
    assert tokenizer.is_file()


def test_alignment_import_with_kaldi_frame_counts(tmp_path):
    """A Kaldi text alignment read with kaldiio, matched to our frame count within tolerance."""
    from blend_modules.data.alignments import match_length

    write_alignments(tmp_path / "a.txt", {"u": np.array([3, 3, 4, 5, 5])})
    labels = read_alignments(tmp_path / "a.txt", NUM_PDFS)["u"]
    assert match_length(labels, 8).tolist() == [3, 3, 3, 4, 5, 5, 5, 5]
    assert match_length(labels, 4).tolist() == [3, 3, 4, 5]
    assert torch.equal(torch.from_numpy(match_length(labels, 5)), torch.tensor([3, 3, 4, 5, 5]))


def test_cost_benchmark_runs():
    """benchmarks/per_frame_cost.py on the small models (the README's numbers use the paper's)."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "per_frame_cost.py"),
            "--models",
            "blstm_small",
            "vgg_small",
            "--num-labels",
            "31",
            "--batch",
            "2",
            "--frames",
            "50",
            "--steps",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()[1:]]
    assert [row["model"] for row in rows] == ["blstm_small", "vgg_small"]
    assert all(row["train_ms_per_1k_frames"] > 0 for row in rows)
