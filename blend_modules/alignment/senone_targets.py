"""Senone frame targets for any corpus with English transcripts, from a real forced aligner.

pocketsphinx's bundled en-us model (16 kHz, 10 ms frames, 3-state HMMs, 5,126 senones tied
across triphones) aligns each utterance's ``words`` at the state level; each frame's label is
the senone of its state. :func:`prepare_senone_targets` runs the stage in two steps:

1. ``aligner.align_manifest`` aligns every utterance of a manifest once and keeps the state
   sequence (senone, base phone, state position, frames) in a JSON-lines file, appended
   utterance by utterance, so a killed run resumes where it stopped. An utterance that fails
   alignment is retried with the widest beams, then left out and recorded with the reason; one
   with a word neither in the aligner's dictionary nor in the corpus lexicon is left out and
   recorded too.
2. ``labels.write_frame_targets`` turns the aligned states into the model's labels, a coarser
   inventory than the 5,126 senones (which a small corpus cannot train): the ``senones_kept``
   senones with the most training frames keep a label of their own, every other senone backs
   off to its context-independent state (base phone + state position). It writes Kaldi text
   alignments (what :class:`blend_modules.targets.frame.FrameTargets` reads), ``labels.txt``
   (label id, name, the senone ids it stands for: the decoder's map back to the aligner's
   senones) and statistics.

pocketsphinx labels frame i with the 25.6 ms window starting at sample 160 · i, so an utterance
of n samples gets ``(n - 90) // 160`` labels, 1-2 fewer than SpeechBrain's centred STFT
(``n // 160 + 1``); frame j + 1 of the STFT is centred within 3 ms of label j, so
``FrameTargets(frame_tolerance=2)`` maps them exactly (first label repeated once, last label
padded), as for Kaldi's snip-edges alignments. 8 kHz features of the downsampled audio have the
same frame count, so the same targets serve them."""

import json
import logging
from pathlib import Path
from typing import Dict, Mapping

from blend_modules.alignment.aligner import SenoneAligner, align_manifest
from blend_modules.alignment.labels import write_frame_targets
from blend_modules.alignment.lexicon import read_lexicon
from blend_modules.data.atomic_files import file_sha256
from blend_modules.data.prepare_once import finish_preparation, is_prepared, start_preparation

logger = logging.getLogger(__name__)

STATS_FILE = "senone_alignment.json"


TARGETS_OPTIONS_FILE = "senone_targets_options.json"


def prepare_senone_targets(
    manifests: Mapping[str, str], save_folder, senones_kept: int, lexicon=None
) -> Dict:
    """Senone frame targets for any corpus: align each split's manifest (16 kHz audio, English
    ``words``) and write ``<split>.ali``, ``labels.txt`` and ``senone_alignment.json`` (alignment
    counts and target statistics) into ``save_folder``; usable as a recipe's ``prepare``.

    Alignments are cached in ``save_folder/aligned/<split>.jsonl`` (resumable; an utterance is
    aligned again only if its words or audio changed), so another ``senones_kept`` only rewrites
    the targets. Skipped when done with the same manifests (by content) and options.

    Arguments
    ---------
    manifests : mapping
        Split name -> manifest; ``train`` chooses the label inventory.
    save_folder : path
        Where targets and the cache go.
    senones_kept : int
        Senones with a label of their own (the others back off to their CI state).
    lexicon : path
        A CMU-phone lexicon for words the aligner's dictionary lacks (optional).
    """
    save_folder = Path(save_folder)
    options = {
        "manifests": {split: file_sha256(manifest) for split, manifest in manifests.items()},
        "senones_kept": senones_kept,
        "lexicon": file_sha256(lexicon) if lexicon else None,
    }
    if is_prepared(save_folder, options, TARGETS_OPTIONS_FILE):
        logger.info("Senone targets already in %s, skipping.", save_folder)
        return json.loads((save_folder / STATS_FILE).read_text())
    start_preparation(save_folder, TARGETS_OPTIONS_FILE)
    cache = save_folder / "aligned"
    cache.mkdir(exist_ok=True)
    aligner = SenoneAligner(read_lexicon(lexicon) if lexicon else None)
    aligned, counts = {}, {}
    for split, manifest in manifests.items():
        counts[split], aligned[split] = align_manifest(manifest, cache / f"{split}.jsonl", aligner)
    stats = {"alignment": counts, **write_frame_targets(aligned, save_folder, senones_kept)}
    (save_folder / STATS_FILE).write_text(json.dumps(stats, indent=2))
    logger.info("Senone targets in %s: %s", save_folder, json.dumps(stats))
    finish_preparation(save_folder, options, TARGETS_OPTIONS_FILE)
    return stats
