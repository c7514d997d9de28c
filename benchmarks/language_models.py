#!/usr/bin/env python3
"""The speechocean762 decoding graph's language models compared: the training transcripts'
bigram, pocketsphinx's generic English LM restricted to the vocabulary, and the two
interpolated (weight chosen on valid perplexity). For each: perplexity and OOV rate of the valid
and test transcripts, bigrams, graph states and arcs, build time, and the oracle WER: the test
set's own forced-alignment labels, as near-certain posteriors, decoded at the recipe's beam
(what the graph and LM alone lose).

Run from the recipe folder once the corpus is prepared (e.g. after ``bash run_demo.sh``):

    python ../../../benchmarks/language_models.py [--prepared results/prepared] \\
        [--self_loop_scale 1.0] [--output lm.json]

Prints a markdown table and writes JSON. Test text is only scored, never used to choose.
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from speechbrain.utils.metric_stats import ErrorRateStats

from blend_modules.alignment.labels import read_labels
from blend_modules.alignment.lexicon import normalize_words
from blend_modules.data.alignments import read_alignments
from blend_modules.hybrid.decoder import decode
from blend_modules.hybrid.graph_cache import graph_stats
from blend_modules.hybrid.language_model import LANGUAGE_MODELS, read_arpa
from blend_modules.hybrid.senone_graph import senone_graph


def oracle_wer(graph, words, alignments, references, num_labels, beam, max_active) -> float:
    """WER of the aligned label sequences decoded as near-certain posteriors."""
    stats = ErrorRateStats()
    for utt_id, labels in alignments.items():
        loglikes = np.full((len(labels), num_labels), -10.0, dtype=np.float32)
        loglikes[np.arange(len(labels)), labels] = 0.0
        best = decode(graph, loglikes, beam=beam, max_active=max_active)
        stats.append([utt_id], [[words[i - 1] for i in best["word_ids"]]], [references[utt_id]])
    return stats.summarize("error_rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, default=Path("results/prepared"))
    parser.add_argument("--lexicon", type=Path, default=Path("speechocean762/resource/lexicon.txt"))
    parser.add_argument("--self_loop_scale", type=float, default=1.0)
    parser.add_argument("--beam", type=float, default=9.0)
    parser.add_argument("--max_active", type=int, default=1500)
    parser.add_argument("--output", type=Path, default=Path("language_models.json"))
    args = parser.parse_args()
    prepared = args.prepared
    num_labels = len(read_labels(prepared / "labels.txt"))
    with open(prepared / "test.csv", newline="") as manifest:
        references = {  # as the graph's words: under the transcript rule
            row["ID"]: normalize_words(row["words"].split()) for row in csv.DictReader(manifest)
        }
    alignments = read_alignments(prepared / "test.ali", num_labels)
    alignments = {utt: labels for utt, labels in alignments.items() if utt in references}
    test_sentences = list(references.values())
    results = {}
    for kind in LANGUAGE_MODELS:
        start = time.perf_counter()
        graph, words, files = senone_graph(
            prepared / "labels.txt",
            args.lexicon,
            prepared / "train.csv",
            prepared / "train.ali",
            self_loop_scale=args.self_loop_scale,
            language_model=kind,
            valid_csv=prepared / "valid.csv",
        )
        seconds = time.perf_counter() - start
        stats = json.loads(files["lm.json"])
        arpa = args.output.with_name(f"{args.output.stem}_{kind}.arpa")
        arpa.write_text(files["lm.arpa"])
        test = read_arpa(arpa).perplexity(test_sentences)
        results[kind] = {
            "valid_perplexity": round(stats["valid"]["perplexity"], 1),
            "valid_oov_rate": stats["valid"]["oov_rate"],
            "test_perplexity": round(test["perplexity"], 1),
            "test_oov_rate": test["oov_rate"],
            "train_weight": stats.get("train_weight"),
            "bigrams": stats["bigrams"],
            "graph_states": graph.num_states,
            "graph_arcs": graph_stats(graph)["arcs"],
            "build_s": round(seconds, 1),
            "oracle_test_WER": round(
                oracle_wer(
                    graph, words, alignments, references, num_labels, args.beam, args.max_active
                ),
                2,
            ),
            "test_utterances": len(alignments),
        }
        print(kind, results[kind], flush=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(
        "| LM | valid ppl | test ppl | valid / test OOV | bigrams | arcs | build s | oracle WER |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, row in results.items():
        print(
            f"| {kind} | {row['valid_perplexity']} | {row['test_perplexity']} | "
            f"{100 * row['valid_oov_rate']:.1f}% / {100 * row['test_oov_rate']:.1f}% | "
            f"{row['bigrams']:,} | {row['graph_arcs']:,} | {row['build_s']} | "
            f"{row['oracle_test_WER']:.2f}% |"
        )


if __name__ == "__main__":
    main()
