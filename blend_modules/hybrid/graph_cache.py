"""A decoding graph built once and kept on disk: ``graph.fst`` and ``words.txt`` in a cache
folder, rebuilt only when what builds them changes (the building function or its arguments,
files among them by content), and never left half-written by a killed build."""

import logging
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import kaldifst

from blend_modules.data.atomic_files import file_sha256
from blend_modules.data.prepare_once import finish_preparation, is_prepared, start_preparation

logger = logging.getLogger(__name__)

GRAPH_FILE, WORDS_FILE, GRAPH_OPTIONS_FILE = "graph.fst", "words.txt", "graph_options.json"

GraphBuilder = Callable[[], Tuple[kaldifst.StdVectorFst, List[str]]]


def describe_callable(function: Callable) -> Dict:
    """A callable's name and arguments, files among them by content (SHA-256)."""
    arguments = {}
    for name, value in getattr(function, "keywords", {}).items():
        is_file = isinstance(value, (str, Path)) and Path(value).is_file()
        arguments[name] = file_sha256(value) if is_file else repr(value)
    target = getattr(function, "func", function)
    return {"function": f"{target.__module__}.{target.__qualname__}", "arguments": arguments}


def build_cached_graph(build_graph: GraphBuilder, folder) -> None:
    """Call ``build_graph`` and write its ``(graph, words)`` into ``folder``, unless the folder
    already holds what this very callable built."""
    folder, options = Path(folder), {"graph": describe_callable(build_graph)}
    if is_prepared(folder, options, GRAPH_OPTIONS_FILE):
        return
    start_preparation(folder, GRAPH_OPTIONS_FILE)
    graph, words = build_graph()
    graph.write(str(folder / GRAPH_FILE))
    (folder / WORDS_FILE).write_text("".join(f"{word}\n" for word in words))
    logger.info("Decoding graph in %s: %d states, %d words.", folder, graph.num_states, len(words))
    finish_preparation(folder, options, GRAPH_OPTIONS_FILE)


def read_cached_graph(folder) -> Tuple[kaldifst.StdVectorFst, List[str]]:
    """The ``(graph, words)`` that :func:`build_cached_graph` wrote into ``folder``."""
    folder = Path(folder)
    graph = kaldifst.StdVectorFst.read(str(folder / GRAPH_FILE))
    words = (folder / WORDS_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    return graph, words
