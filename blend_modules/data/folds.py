"""Speaker folds of a training manifest, for out-of-fold (cross-fitted) teachers: teacher i
trains on every fold but i, and labels the utterances of fold i's speakers, speech it has never
heard, for the student (``teacher_folds`` of a blend YAML,
:class:`blend_modules.training.teacher.OutOfFoldTeacher`).

    python -m blend_modules.data.folds TRAIN_CSV OUTPUT_FOLDER [--folds 3] [--seed 1986]

writes ``OUTPUT_FOLDER/folds.json`` (the speakers of each fold) and
``OUTPUT_FOLDER/train_without_fold_<i>.csv`` (teacher i's training manifest: ``--train_csv``).
Speakers are dealt to the folds in turn within each stratum (by default age group and gender,
where the manifest has them), in an order shuffled by the seed, so that each fold holds about
``1/folds`` of each stratum's speakers.
"""

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence

from blend_modules.data.atomic_files import write_atomically
from blend_modules.data.manifests import audio_path, write_rows

FOLDS_FILE = "folds.json"


def read_manifest(manifest) -> List[Dict[str, str]]:
    """The rows of a manifest CSV; ``ValueError`` naming it if it has no ``spk_id`` column."""
    with open(manifest, newline="") as csv_file:
        reader = csv.DictReader(csv_file)
        if "spk_id" not in (reader.fieldnames or []):
            raise ValueError(f"{manifest}: no spk_id column; speaker folds need it.")
        return list(reader)


def speaker_folds(
    rows: Sequence[Dict[str, str]],
    num_folds: int,
    seed: int,
    strata: Sequence[str] = ("age_group", "gender"),
) -> List[List[str]]:
    """The speakers of each of ``num_folds`` folds (sorted), dealt in turn within each stratum
    (the ``strata`` columns the rows have) in an order shuffled by ``seed``; ``ValueError`` if
    there are fewer speakers than folds."""
    columns = [column for column in strata if rows and column in rows[0]]
    stratum_of = {row["spk_id"]: tuple(row[column] for column in columns) for row in rows}
    if len(stratum_of) < num_folds:
        raise ValueError(f"{len(stratum_of)} speakers cannot fill {num_folds} folds.")
    by_stratum = defaultdict(list)
    for speaker in sorted(stratum_of):
        by_stratum[stratum_of[speaker]].append(speaker)
    rng = random.Random(seed)
    folds = [[] for _ in range(num_folds)]
    dealt = 0  # the next stratum continues where the last one stopped: sizes stay even
    for stratum in sorted(by_stratum):
        speakers = by_stratum[stratum]
        rng.shuffle(speakers)
        for speaker in speakers:
            folds[dealt % num_folds].append(speaker)
            dealt += 1
    return [sorted(fold) for fold in folds]


def write_folds(manifest, output_folder, num_folds: int = 3, seed: int = 1986) -> Path:
    """Write ``folds.json`` and each fold's complement as ``train_without_fold_<i>.csv`` (the
    manifest's columns and rows, less fold i's speakers, their ``wav`` paths resolved); returns
    the folds file."""
    rows = [  # wav paths resolved ($data_root): the manifests live elsewhere
        {**row, "wav": str(audio_path(row["wav"], Path(manifest)))}
        for row in read_manifest(manifest)
    ]
    folds = speaker_folds(rows, num_folds, seed)
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    for number, fold in enumerate(folds):
        kept = [row for row in rows if row["spk_id"] not in set(fold)]
        write_rows(output / f"train_without_fold_{number}.csv", list(rows[0]), kept)
    description = {"manifest": str(manifest), "seed": seed, "folds": folds}
    path = output / FOLDS_FILE
    write_atomically(path, lambda stream: stream.write(json.dumps(description, indent=1).encode()))
    return path


def read_folds(folds_file) -> Dict[str, int]:
    """Speaker -> fold number of a ``folds.json``; ``ValueError`` naming the file and the
    speaker if one is in two folds."""
    fold_of = {}
    for number, fold in enumerate(json.loads(Path(folds_file).read_text())["folds"]):
        for speaker in fold:
            if speaker in fold_of:
                raise ValueError(
                    f"{folds_file}: speaker {speaker} is in folds {fold_of[speaker]} and {number}."
                )
            fold_of[speaker] = number
    return fold_of


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", help="the training manifest (CSV with spk_id)")
    parser.add_argument("output_folder")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1986)
    arguments = parser.parse_args()
    print(write_folds(arguments.manifest, arguments.output_folder, arguments.folds, arguments.seed))
