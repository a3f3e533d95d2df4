"""One registry per kind of pluggable thing.

A registry maps a name to a factory. Plug-ins live one per file in a
subpackage; the registry imports every module of that subpackage the first
time it is asked for a name, so adding a backend, text encoder, sampler or
reconstruction method is one new file with a ``@REGISTRY.register("name")``
decorator and nothing else to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Dict, Generic, List, Optional, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind (VAE backends, sparse methods, ...).

    ``names()`` lists them, ``describe()`` gives ``{name: one-line
    description}``, ``name in registry`` tests one, ``get(name)`` returns the
    factory and ``create(name, *args, **kwargs)`` calls it. Unknown names
    raise :class:`ConfigError` listing the known ones. Plug-ins add
    themselves with the ``@registry.register("name")`` decorator.
    """

    def __init__(self, kind: str, package: Optional[str] = None) -> None:
        self.kind = kind
        self._package = package
        self._factories: Dict[str, Callable[..., T]] = {}
        self._descriptions: Dict[str, str] = {}
        self._discovered = package is None

    def register(self, name: str, description: str = "") -> Callable:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            doc = (factory.__doc__ or "").strip().splitlines()
            self._descriptions[name] = description or (doc[0] if doc else "")
            return factory

        return decorator

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self._package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def names(self) -> List[str]:
        self._discover()
        return sorted(self._factories)

    def describe(self) -> Dict[str, str]:
        self._discover()
        return {name: self._descriptions[name] for name in sorted(self._factories)}

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._factories

    def get(self, name: str) -> Callable[..., T]:
        self._discover()
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known: {known}"
            ) from None

    def create(self, name: str, *args, **kwargs) -> T:
        return self.get(name)(*args, **kwargs)
