#!/usr/bin/env python3
"""An anchor no one here trained: pocketsphinx's en-us acoustic model (the forced aligner's own,
trained on far more adult native speech than any model of this repository) recognising a
recipe's test utterances (their 16 kHz audio), with the recipe's language model and
pronunciations, and with pocketsphinx's own default LM and dictionary. Prints, for each LM,
WER overall and per age group, insertions / deletions / substitutions and the real-time factor
(decoding seconds / audio seconds, one process, one thread); writes JSON.

Run from the speechocean762 recipe folder once a model's decoding graph is built (its LM is
``<prepared>/graph/lm.arpa``), e.g. for the 2.9-hour configuration:

    python ../../../benchmarks/pocketsphinx_anchor.py --prepared results/2.9h/prepared \\
        --lexicon /path/to/speechocean762/resource/lexicon.txt --output anchor.json

References and hypotheses are scored under the recipe's transcript rule (lower case, no edge
punctuation), as the recipe's models are.
"""

import argparse
import csv
import json
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List

import numpy as np
import soundfile as sf
from speechbrain.utils.metric_stats import ErrorRateStats

from blend_modules.alignment.aligner import SAMPLE_RATE
from blend_modules.alignment.lexicon import normalize_words, read_lexicon
from blend_modules.hybrid.language_model import read_arpa
from blend_modules.hybrid.senone_graph import default_dictionary_path


def write_dictionary(words: Iterable[str], lexicon, path: Path) -> int:
    """A pocketsphinx dictionary of ``words``: the aligner's pronunciations where it has the
    word, else the corpus lexicon's, alternatives as ``word(2)``; returns the words written
    (those with neither are left out: the LM's words all have one)."""
    aligner_dictionary = read_lexicon(default_dictionary_path(), normalize=False)
    corpus_lexicon = read_lexicon(lexicon) if lexicon else {}
    lines = []
    for word in sorted(words):
        pronunciations = aligner_dictionary.get(word) or corpus_lexicon.get(word, [])
        for number, phones in enumerate(pronunciations, start=1):
            lines.append(f"{word if number == 1 else f'{word}({number})'} {phones}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len({line.split()[0].split("(")[0] for line in lines})


def recognise(manifest: Path, decoder_options: Dict) -> Dict:
    """Decode every utterance of a 16 kHz manifest (``wav``, ``words``, optional
    ``age_group``); WER overall and per group, error counts, real-time factor."""
    from pocketsphinx import Decoder  # imported here: the benchmark's only pocketsphinx use

    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **decoder_options)
    by_group, audio_s, decoding_s = defaultdict(ErrorRateStats), 0.0, 0.0
    with open(manifest, newline="") as csv_file:
        rows = list(csv.DictReader(csv_file))
    for row in rows:
        samples, rate = sf.read(row["wav"].replace("$data_root", str(manifest.parent)))
        if rate != SAMPLE_RATE:
            raise ValueError(f"{manifest}: {row['wav']} is at {rate} Hz, expected {SAMPLE_RATE}.")
        pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16).tobytes()
        start = time.perf_counter()
        decoder.reinit_feat()  # each utterance on its own, as the aligner's
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp().hypstr if decoder.hyp() is not None else ""
        decoding_s += time.perf_counter() - start
        audio_s += len(samples) / SAMPLE_RATE
        words = normalize_words(re.sub(r"\(\d+\)", "", hypothesis).split())
        reference = normalize_words(row["words"].split())
        for group in {None, row.get("age_group")}:
            by_group[group].append([row["ID"]], [words], [reference])
    overall = by_group[None].summarize()
    result = {
        "utterances": len(rows),
        "WER": overall["WER"],
        "insertions": overall["insertions"],
        "deletions": overall["deletions"],
        "substitutions": overall["substitutions"],
        "reference_words": overall["num_scored_tokens"],
        "real_time_factor": round(decoding_s / audio_s, 4),
    }
    for group in sorted(key for key in by_group if key is not None):
        result[f"WER_{group}"] = by_group[group].summarize("error_rate")
    return result


def markdown(results: Dict[str, Dict]) -> List[str]:
    groups = sorted({key for r in results.values() for key in r if key.startswith("WER_")})
    head = ["LM", "WER", *groups, "ins / del / sub", "RTF"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        counts = f"{r['insertions']} / {r['deletions']} / {r['substitutions']}"
        cells = [name, f"{r['WER']:.2f}", *(f"{r[g]:.2f}" for g in groups), counts]
        lines.append("| " + " | ".join([*cells, f"{r['real_time_factor']:.3f}"]) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, default=Path("results/prepared"))
    parser.add_argument("--lexicon", type=Path, default=Path("speechocean762/resource/lexicon.txt"))
    parser.add_argument("--manifest", default="align_test.csv", help="in --prepared, 16 kHz")
    parser.add_argument("--output", type=Path, default=Path("pocketsphinx_anchor.json"))
    args = parser.parse_args()
    arpa = args.prepared / "graph" / "lm.arpa"
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        dictionary = Path(folder) / "recipe.dict"
        written = write_dictionary(read_arpa(arpa).words[:-1], args.lexicon, dictionary)
        print(f"{written} words in the recipe's dictionary")
        results["recipe LM (lm.arpa)"] = recognise(
            args.prepared / args.manifest, {"lm": str(arpa), "dict": str(dictionary)}
        )
    results["pocketsphinx's en-us LM"] = recognise(args.prepared / args.manifest, {})
    print("\n".join(markdown(results)))
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
