"""Mistakes on the command line, found before absl and ml_collections parse the flags.

Left to them, a typo in a key is a 30-line traceback from inside ml_collections, a
missing config file is blamed on the workdir, and a config's own error about its
argument is a traceback inside absl's. Here each is one `error:` line naming the flag,
the key or the file (main.py prints it and exits with code 2), before anything is
computed or written:

- `--config=FILE[:ARG]`: FILE must exist and load; get_config(ARG)'s own error is kept
  as its text (configs name the arguments they accept).
- `--config.KEY=VALUE`: KEY must be a key of that config, with the closest known keys
  suggested; a value that cannot be read as the key's type names the key and the type.
- `--helpconfig` prints a config's arguments (its docstring's "Arguments after the
  colon") and every key it sets to a value other than base_config()'s.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from typing import Any, Iterator

import ml_collections
from absl import flags

from jaxtickets.config_values import value_at

CONFIG_FLAG = "config"
ARGUMENTS_HEADING = "Arguments after the colon:"


class CommandLineError(Exception):
    """A mistake in the command line; the message names the flag, key or file."""


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def config_spec(argv: list[str]) -> str | None:
    """The value of --config (FILE or FILE:ARG) in `argv`; None if it is not given."""
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{CONFIG_FLAG}="):
            return arg.split("=", 1)[1]
        if arg == f"--{CONFIG_FLAG}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def overrides(argv: list[str]) -> Iterator[tuple[str, str | None]]:
    """(dotted key, value or None) of every --config.KEY[=VALUE] in `argv`."""
    for arg in argv:
        match = re.match(rf"^--(?:no)?{CONFIG_FLAG}\.([^=]+)(=(.*))?$", arg, re.DOTALL)
        if match:
            yield match.group(1), match.group(3)


def load_module(path: str):
    """The config file `path` as a module (as ml_collections loads it)."""
    if not os.path.isfile(path):
        raise CommandLineError(f"--{CONFIG_FLAG}: no config file {path!r}")
    try:
        spec = importlib.util.spec_from_file_location("jaxtickets_user_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as err:  # a config is user code: any failure is the file's
        raise CommandLineError(f"--{CONFIG_FLAG}: cannot load {path}: "
                               f"{type(err).__name__}: {one_line(err)}") from err
    if not callable(getattr(module, "get_config", None)):
        raise CommandLineError(f"--{CONFIG_FLAG}: {path} defines no get_config(arg)")
    return module


def load_config(spec: str) -> tuple[Any, ml_collections.ConfigDict]:
    """(module, config) of `spec` = FILE[:ARG]; the config's own errors, one line each."""
    path, *arg = spec.split(":", 1)
    module = load_module(path)
    try:
        config = module.get_config(*arg)
    except Exception as err:
        raise CommandLineError(f"--{CONFIG_FLAG}={spec}: {one_line(err)}") from err
    if not isinstance(config, ml_collections.ConfigDict):
        raise CommandLineError(f"--{CONFIG_FLAG}={spec}: get_config returned "
                               f"{type(config).__name__}, not a ConfigDict")
    return module, config


def dotted_keys(config: Any, prefix: str = "") -> list[str]:
    """Every key of `config`, groups included, as dotted names."""
    out = []
    for key in config.keys():
        name = prefix + key
        out.append(name)
        if isinstance(config[key], ml_collections.ConfigDict):
            out.extend(dotted_keys(config[key], name + "."))
    return out


def check_key(config: ml_collections.ConfigDict, dotted: str) -> type:
    """The type of key `dotted` of `config`; CommandLineError if there is no such key."""
    node: Any = config
    holder, leaf = config, dotted
    for part in dotted.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            known = dotted_keys(config)
            close = difflib.get_close_matches(dotted, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CommandLineError(f"--{CONFIG_FLAG}.{dotted}: unknown config key{hint}")
        holder, leaf, node = node, part, node[part]
    return holder.get_type(leaf)


# How ml_collections reads a value of these types from the command line.
_PARSERS = {int: flags.IntegerParser(), float: flags.FloatParser(),
            bool: flags.BooleanParser()}


def check_value(dotted: str, kind: type, value: str) -> None:
    """A value that cannot be read as the key's type names the key and the type."""
    parser = _PARSERS.get(kind)
    if parser is None:
        return
    try:
        parser.parse(value)
    except (TypeError, ValueError) as err:
        raise CommandLineError(f"--{CONFIG_FLAG}.{dotted}: expected {kind.__name__}, got "
                               f"{value!r}") from err


def check(argv: list[str]) -> tuple[Any, ml_collections.ConfigDict] | None:
    """The command line's config file, argument and override keys; raises
    CommandLineError for the first mistake. Returns the loaded (module, config), None
    without --config (absl reports the missing required flag)."""
    spec = config_spec(argv)
    if spec is None:
        return None
    module, config = load_config(spec)
    for dotted, value in overrides(argv):
        kind = check_key(config, dotted)
        if value is not None:
            check_value(dotted, kind, value)
    return module, config


def arguments_text(module) -> str:
    """The config's docstring section that lists its arguments ('' if it has none)."""
    doc = module.__doc__ or ""
    start = doc.find(ARGUMENTS_HEADING)
    if start < 0:
        return ""
    section = doc[start:].split("\n\n", 1)[0]
    return section.rstrip()


def changed_keys(config: ml_collections.ConfigDict) -> list[tuple[str, Any]]:
    """(dotted key, value) of every key the config sets to other than base_config()'s
    (every key of a ticket source other than source_defaults()'s)."""
    from jaxtickets.config_schema import default_of

    out = []
    for name in dotted_keys(config):
        value = value_at(config, name)
        if isinstance(value, ml_collections.ConfigDict):
            continue
        try:
            changed = value != default_of(name)
        except (KeyError, TypeError):  # a key the schema lacks (validate refuses it)
            changed = True
        if changed:
            out.append((name, value))
    return out


def help_config(spec: str, module, config: ml_collections.ConfigDict) -> str:
    """What --helpconfig prints for `spec` (loaded as `module`, giving `config`): the
    arguments and the keys set."""
    lines = [f"{spec}: {one_line((module.__doc__ or '').strip().splitlines()[0])}"
             if module.__doc__ else spec, ""]
    arguments = arguments_text(module)
    if arguments:
        lines += [arguments, ""]
    lines.append("Keys set (other than base_config()'s defaults; override any with "
                 "--config.KEY=VALUE):")
    lines += [f"  {name} = {value!r}" for name, value in changed_keys(config)]
    return "\n".join(lines)
