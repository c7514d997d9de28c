"""Reading back what ``export_loglikes.py`` wrote, with its manifest's words and each
segment's conversation side (for the CTM that ``decode_loglikes.py`` writes)."""

import csv
from pathlib import Path
from typing import Dict

import kaldiio


def read_exported(scp, manifest, num_pdfs: int) -> Dict:
    """Utterance ID -> (pseudo-log-likelihoods, reference words, (recording, channel, start))
    of an export and its manifest (a side ``<recording>-<channel>`` as Kaldi's
    ``reco2file_and_channel``, else channel 1); ``ValueError`` naming the file for a missing
    export, utterance or a pdf count that is not the graph's."""
    if not Path(scp).is_file():
        raise FileNotFoundError(f"{scp}: no export; run export_loglikes.py first.")
    loglikes = kaldiio.load_scp(str(scp))
    segments = {}
    with open(manifest, newline="") as csv_file:
        for row in csv.DictReader(csv_file):
            if row["ID"] not in loglikes:
                raise ValueError(f"{scp}: no pseudo-log-likelihoods of {row['ID']} ({manifest}).")
            matrix = loglikes[row["ID"]]
            if matrix.shape[1] != num_pdfs:
                raise ValueError(
                    f"{scp}: {row['ID']} has {matrix.shape[1]} pdfs, the graph's model {num_pdfs}."
                )
            recording, _, channel = row["spk_id"].rpartition("-")
            side = (recording, channel) if recording else (row["spk_id"], "1")
            segments[row["ID"]] = (matrix, row["words"].split(), (*side, float(row["start"])))
    return segments
