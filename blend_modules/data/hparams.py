"""Loading a recipe's hyperpyyaml: shared YAML found from any folder, overrides type-checked.

A recipe YAML includes the repository's shared YAML (``hparams/``) as
``!include:$blend_hparams/models/vgg_small.yaml``: ``$blend_hparams`` stands for that folder, so
a recipe works at any depth (a copied recipe folder too). Other ``!include:`` paths stay
relative to the including file, as in hyperpyyaml.
"""

import io
from datetime import date
from pathlib import Path
from typing import Dict, Union

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references

SHARED_HPARAMS = Path(__file__).resolve().parents[2] / "hparams"  # the repository's hparams/


SHARED_PLACEHOLDER = "$blend_hparams/"


def yaml_stream(hparams_file: Union[str, Path]) -> io.StringIO:
    """The YAML text with ``$blend_hparams/`` resolved, as a stream that hyperpyyaml reads as
    the file itself (named after it, so relative includes still resolve from its folder)."""
    text = Path(hparams_file).read_text(encoding="utf-8")
    if SHARED_PLACEHOLDER in text and not SHARED_HPARAMS.is_dir():
        raise FileNotFoundError(
            f"{hparams_file} includes {SHARED_PLACEHOLDER}..., but {SHARED_HPARAMS} does not "
            "exist: install blend from its repository (pip install -e .)."
        )
    stream = io.StringIO(text.replace(SHARED_PLACEHOLDER, f"{SHARED_HPARAMS}/"))
    stream.name = str(hparams_file)
    return stream


def load_hparams_file(hparams_file: Union[str, Path], overrides: Union[str, Dict] = None) -> Dict:
    """``load_hyperpyyaml`` of a recipe YAML (with ``$blend_hparams``), after checking that
    every override has the type of the value it replaces."""
    check_override_types(hparams_file, overrides)
    return load_hyperpyyaml(yaml_stream(hparams_file), overrides)


def write_resolved_hparams(hparams_file: Union[str, Path], overrides, path: Path) -> None:
    """Write the YAML with overrides applied and references resolved (what SpeechBrain saves
    as an experiment's ``hyperparams.yaml``)."""
    resolved = resolve_references(yaml_stream(hparams_file), overrides)
    header = f"# Generated {date.today()} from:\n# {Path(hparams_file).resolve()}\n"
    path.write_text(header + "# yamllint disable\n" + resolved.getvalue(), encoding="utf-8")


def check_override_types(hparams_file: Union[str, Path], overrides: Union[str, Dict]) -> None:
    """Raise ``ValueError`` naming the key for an override whose type differs from the YAML's
    plain value (e.g. ``--top_k=2.5`` where the YAML has ``top_k: 5``): an integer where an
    integer is, a number where a float is, a boolean, string, list or mapping where one is.
    Values the YAML computes (``!ref``, ``!new``, ...) or leaves ``null`` take any override;
    the keys of an ``!include``d file (``--corpus="{valid_speakers: 6}"``) are checked against
    that file's values."""
    if not overrides:
        return
    yaml = ruamel.yaml.YAML()
    if isinstance(overrides, str):
        overrides = yaml.load(overrides) or {}
    defaults = yaml.load(Path(hparams_file).read_text(encoding="utf-8"))
    _check_types(defaults, overrides, hparams_file, prefix="")


def _check_types(defaults, overrides, hparams_file, prefix: str) -> None:
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if key not in defaults:
            continue  # hyperpyyaml refuses an override of a key the YAML lacks, naming it
        default = defaults[key]
        if _tag(value) and _tag(value) != _tag(default):
            # hyperpyyaml would merge the value's keys into the node and keep the YAML's tag:
            # e.g. an !include of another file would silently build the YAML's own model
            raise ValueError(
                f"--{name}: a {_tag(value)} value cannot replace {name} "
                f"({_tag(default) or 'a plain value'}) in {hparams_file} from the command line; "
                "edit the YAML, or override the keys inside it (e.g. "
                f'--{name}="{{model: {{channels: [...]}}}}").'
            )
        if _tag(default).startswith("!include:") and isinstance(value, dict):
            # keys of an included file (e.g. a recipe's corpus.yaml), checked against its values
            target = _tag(default)[len("!include:") :]
            if target.startswith(SHARED_PLACEHOLDER):
                included = SHARED_HPARAMS / target[len(SHARED_PLACEHOLDER) :]
            else:
                included = Path(hparams_file).parent / target
            included_defaults = ruamel.yaml.YAML().load(included.read_text(encoding="utf-8"))
            _check_types(included_defaults, value, included, prefix=f"{name}.")
            continue
        if _tag(default):
            continue  # computed by the YAML
        if isinstance(default, dict) and isinstance(value, dict):
            _check_types(default, value, hparams_file, prefix=f"{name}.")
        elif not _same_kind(default, value):
            raise ValueError(
                f"--{name}={value!r}: {name} is {_kind(default)} in {hparams_file} "
                f"({default!r}), not {_kind(value)}."
            )


def _tag(node) -> str:
    """The YAML tag of a node (e.g. ``!include:...``, ``!new:...``), or ``""``."""
    tag = getattr(node, "tag", None)
    return (getattr(tag, "value", None) or "") if tag is not None else ""


def model_override(model_yaml: Union[str, Path]) -> str:
    """The ``--architecture`` override that makes a recipe whose ``architecture`` includes a
    shared model YAML build the model of ``model_yaml`` instead (a model of the same class):
    ``{key: value, ..., model: {...}}`` with ``model_yaml``'s plain keys and arguments but the
    recipe's features and labels.

        python train_blend.py hparams/cnn.yaml --architecture="$(python -m blend_modules.data.hparams
            ../../../hparams/models/vgg_narrow.yaml)"
    """
    yaml = ruamel.yaml.YAML()
    document = yaml.load(Path(model_yaml).read_text(encoding="utf-8"))
    # the YAML's own plain keys (e.g. a BLSTM's hidden_size, which its model refers to), then
    # the model's plain arguments (e.g. a CNN's channels); placeholders and objects stay the
    # recipe's
    override = {key: value for key, value in document.items() if key != "model" and not _tag(value)}
    arguments = {key: value for key, value in document["model"].items() if not _tag(value)}
    if arguments:
        override["model"] = arguments
    stream = io.StringIO()
    yaml.default_flow_style, yaml.width = True, 4096  # one line, for a command line
    yaml.dump(override, stream)
    return stream.getvalue().strip()


def _kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _same_kind(default, value) -> bool:
    if default is None or value is None:
        return True  # null: unset, or any value the YAML's user gives it
    if isinstance(default, float) and not isinstance(default, bool):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return _kind(default) == _kind(value)


if __name__ == "__main__":
    import sys

    print(model_override(sys.argv[1]))
