"""A decoding graph built once and kept on disk: ``graph.fst`` and ``words.txt`` in a cache
folder, rebuilt whenever what builds them changes (the building function, its positional and
keyword arguments, files among them by content, the graph format of this code and the versions
of the packages that build graphs), and never left half-written by a killed build."""

import importlib.metadata
import json
import logging
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import kaldifst

from blend_modules.data.atomic_files import file_sha256
from blend_modules.data.prepare_once import finish_preparation, is_prepared, start_preparation

logger = logging.getLogger(__name__)

GRAPH_FILE, WORDS_FILE, GRAPH_OPTIONS_FILE = "graph.fst", "words.txt", "graph_options.json"
STATS_FILE = "graph_stats.json"
# Raise it whenever the code changes the graphs it builds from the same inputs: a cached graph
# of another format is rebuilt. 2: HMM costs times a self-loop scale, L∘G determinized in the
# log semiring. 3: graph_stats.json holds the largest input label. 4: senone graphs' words under
# the transcript rule (lower case), pocketsphinx's silence-context back-off for triphones.
GRAPH_FORMAT = 4
# The packages graphs are built with (pocketsphinx: the aligner's model, mdef and dictionary)
GRAPH_PACKAGES = ("kaldifst", "kaldilm", "pocketsphinx")

# (graph, words) or (graph, words, {file name: text kept beside the graph, e.g. its ARPA LM})
GraphBuilder = Callable[[], Tuple]


def describe_argument(value) -> str:
    """An argument as a cache key: a file by its content (SHA-256), anything else by repr."""
    is_file = isinstance(value, (str, Path)) and Path(value).is_file()
    return file_sha256(value) if is_file else repr(value)


def describe_callable(function: Callable) -> Dict:
    """A callable's name and arguments (a ``functools.partial``'s positional and keyword ones,
    files among them by content), with the graph format and the graph packages' versions."""
    target = getattr(function, "func", function)
    return {
        "function": f"{target.__module__}.{target.__qualname__}",
        "positional": [describe_argument(value) for value in getattr(function, "args", ())],
        "arguments": {
            name: describe_argument(value)
            for name, value in getattr(function, "keywords", {}).items()
        },
        "graph_format": GRAPH_FORMAT,
        "packages": {name: package_version(name) for name in GRAPH_PACKAGES},
    }


def package_version(name: str) -> str:
    """An installed package's version, or ``not installed``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def build_cached_graph(build_graph: GraphBuilder, folder) -> None:
    """Call ``build_graph`` and write its ``(graph, words[, files])`` into ``folder``, with its
    :func:`graph_stats` and build time in ``graph_stats.json``, unless the folder already holds
    what this very callable built."""
    folder, options = Path(folder), {"graph": describe_callable(build_graph)}
    if is_prepared(folder, options, GRAPH_OPTIONS_FILE):
        return
    start_preparation(folder, GRAPH_OPTIONS_FILE)
    start = time.perf_counter()
    graph, words, *files = build_graph()
    seconds = time.perf_counter() - start
    graph.write(str(folder / GRAPH_FILE))
    (folder / WORDS_FILE).write_text("".join(f"{word}\n" for word in words))
    for name, text in (files[0] if files else {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    stats = {"build_s": round(seconds, 1), **graph_stats(graph)}
    (folder / STATS_FILE).write_text(json.dumps(stats))
    logger.info("Decoding graph in %s: %d states, %d words.", folder, graph.num_states, len(words))
    finish_preparation(folder, options, GRAPH_OPTIONS_FILE)


def graph_stats(graph: kaldifst.StdVectorFst) -> Dict[str, int]:
    """A graph's states, arcs and largest input label, in one pass over its arcs (seconds for
    millions of arcs from Python: done once, when the graph is built)."""
    arcs, largest = 0, 0
    for state in kaldifst.StateIterator(graph):
        for arc in kaldifst.ArcIterator(graph, state):
            arcs, largest = arcs + 1, max(largest, arc.ilabel)
    return {"states": graph.num_states, "arcs": arcs, "largest_input_label": largest}


def read_cached_graph(folder) -> Tuple[kaldifst.StdVectorFst, List[str], Dict]:
    """The ``(graph, words, stats)`` that :func:`build_cached_graph` wrote into ``folder``."""
    folder = Path(folder)
    graph = kaldifst.StdVectorFst.read(str(folder / GRAPH_FILE))
    words = (folder / WORDS_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    return graph, words, json.loads((folder / STATS_FILE).read_text())
