"""Objects a config names by import path, 'package.module:attr' (attr may be dotted).

`model.name` and `data.dataset` (and a source's `dataset`) take either a registered
name or an import path to the user's own code (docs/extending.md). Importing a module
runs it, which is no more than reading a config does: config files are Python already.
The path string is the key's value, so it is what the config's identity hashes; the
code behind it is not.
"""

from __future__ import annotations

import importlib
from typing import Any

from jaxtickets.errors import ConfigError

SEPARATOR = ":"
FORM = "'package.module:attr'"


def is_import_path(value: Any) -> bool:
    """Whether a config value names an object by import path (it holds a ':'; no
    registered name does)."""
    return isinstance(value, str) and SEPARATOR in value


def looks_dotted(value: Any) -> bool:
    """A value that reads like an import path without its ':' ('pkg.mod.Net'): no
    registered name holds a '.'."""
    return isinstance(value, str) and "." in value and SEPARATOR not in value


def failure(key: str, path: str, reason: str) -> ConfigError:
    """The one form of every import-path error: `key: cannot import 'path': reason`."""
    return ConfigError(f"{key}: cannot import {path!r}: {reason}")


def missing_colon(key: str, value: str, names: Any) -> ConfigError:
    return failure(key, value, f"no ':' between the module and the attribute (an import "
                               f"path is {FORM}), and it is no registered name either "
                               f"({', '.join(map(str, names))})")


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def resolve(path: str, key: str) -> Any:
    """The object `path` names, imported; a ConfigError naming `key` if it cannot be."""
    module_name, _, attr = path.partition(SEPARATOR)
    if not _dotted(module_name) or not _dotted(attr):
        raise failure(key, path, f"expected {FORM}: dotted Python names either side of "
                                 "one ':'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise failure(key, path, f"no module named {err.name!r} (is its directory on "
                                     "the Python path?)") from None
        raise failure(key, path, f"importing {module_name!r} raised "
                                 f"ModuleNotFoundError: {err}") from err
    except Exception as err:  # the user's module failed while it ran
        raise failure(key, path, f"importing {module_name!r} raised "
                                 f"{type(err).__name__}: {err}") from err
    obj = module
    parts = attr.split(".")
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = module_name if i == 0 else f"{module_name}:{'.'.join(parts[:i])}"
            raise failure(key, path, f"{where!r} has no attribute {part!r}") from None
    return obj
