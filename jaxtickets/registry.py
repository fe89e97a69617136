"""Named entries of one kind: models, control branches, source tasks, mask criteria and
mask-1/mask-0 actions each keep one `Registry`.

A config names an entry by a string; the registry is the one place that refuses a taken
name when an entry is added, lists the names in the order they were added, and turns an
unknown name into a ConfigError that names the config key and the choices. Adding an
entry is one `add` call in the entry's module or in a user's own code
(docs/extending.md).
"""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from jaxtickets.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in the order they were added. `kind` names an entry in errors
    ('model', 'mask criterion')."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a name, got {name!r}")
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} exists already")
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Drops `name` if present (tests that add a toy entry clean up so)."""
        self._entries.pop(name, None)

    def get(self, name: str, key: str) -> T:
        """The entry `name`, which config key `key` gave."""
        if name not in self._entries:
            raise ConfigError(f"{key}: unknown {self.kind} {name!r}; choose one of "
                              f"{self.names()}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def values(self):
        return self._entries.values()
