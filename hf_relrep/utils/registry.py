"""One mechanism for every named choice of the library: poolings, normalizations, similarities, anchor strategies,
translation methods, adapters, heads, modalities, topology backends.

A `Registry` maps names to entries in the order they were registered. Registering a taken name raises (two plugins
cannot silently replace each other's entry), looking up an unknown name raises a `ConfigurationError` that lists the
registered names, and configuration validation reads the same names, so a new entry is accepted everywhere at once.

Example:
    >>> from hf_relrep.utils.registry import Registry
    >>> GREETINGS = Registry("greeting")
    >>> @GREETINGS.register("hello")
    ... def hello(name):
    ...     return f"hello {name}"
    >>> GREETINGS["hello"]("you")
    'hello you'
    >>> GREETINGS.names()
    ('hello',)
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from ..errors import ConfigurationError


T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind (`kind` names it in error messages: ``"pooling"``, ``"similarity"``, …).

    A read-only `Mapping` (``name in registry``, ``registry[name]``, iteration in registration order); entries are
    added only through `register`.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """Add `entry` under `name`; without `entry`, a decorator that registers what it decorates.

        Raises:
            ConfigurationError: `name` is not a non-empty string, or is taken.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        if name in self._entries:
            raise ConfigurationError(
                f"A {self.kind} named {name!r} is already registered ({self._entries[name]!r}); choose another name."
            )

        def add(value: T) -> T:
            if name in self._entries:
                raise ConfigurationError(f"A {self.kind} named {name!r} is already registered; choose another name.")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> T:
        """Remove the entry registered under `name` and return it (for tests, or a plugin that unloads).

        Raises:
            ConfigurationError: `name` is not registered, listing the registered names.
        """
        self.check(name)
        return self._entries.pop(name)

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def check(self, name: object, *, what: str | None = None) -> str:
        """Return `name` if it is registered, else raise a `ConfigurationError` listing the choices.

        Args:
            name: the value to check (e.g. a config field).
            what: how the message calls the value (default: the registry's kind).
        """
        if isinstance(name, str) and name in self._entries:
            return name
        raise ConfigurationError(f"Unknown {what or self.kind} {name!r}; choose one of {self.choices()}.")

    def choices(self) -> str:
        """The names as a message lists them: ``'a', 'b', 'c'``."""
        return ", ".join(repr(name) for name in self._entries)

    def __getitem__(self, name: str) -> T:
        """The entry of `name`; a `ConfigurationError` listing the choices for a name that is not registered."""
        return self._entries[self.check(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def get(self, name: str, default: T | None = None) -> T | None:
        """The entry of `name`, or `default` when it is not registered."""
        return self._entries.get(name, default) if isinstance(name, str) else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {self.choices()})"


__all__ = ["Registry"]
