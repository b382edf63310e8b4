"""The backend registry: reconstruction backends by name, extensible by third-party packages.

Backends are found through the entry-point group ``p2g3d.backends`` (the built-in ones register there too, in
p2g3d's own ``pyproject.toml``), plus any registered at run time with :func:`register_backend`. An entry point
names a factory (usually a class) whose keyword arguments are the backend's options; the object it returns has
``reconstruct(views) -> trimesh.Trimesh`` (:class:`~p2g3d.integrations.base.Reconstructor`). A third-party
package registers its backend in its own ``pyproject.toml``::

    [project.entry-points."p2g3d.backends"]
    my-backend = "my_package.p2g3d_adapter:MyReconstructor"
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Reconstructor

ENTRY_POINT_GROUP = "p2g3d.backends"
_runtime_backends: dict[str, Callable[..., Reconstructor]] = {}


def register_backend(name: str, factory: Callable[..., Reconstructor]) -> None:
    """Register ``factory`` under ``name`` for this process (an entry point does the same for an installed package)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a backend name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"backend {name!r}: the factory must be callable, got {type(factory).__name__}")
    _runtime_backends[name] = factory


def available_backends() -> list[str]:
    """Names of every backend: entry points of installed packages and run-time registrations."""
    return sorted({entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)} | set(_runtime_backends))


def backend_factory(name: str) -> Callable[..., Reconstructor]:
    """The factory registered under ``name`` (run-time registrations first, then entry points)."""
    if name in _runtime_backends:
        return _runtime_backends[name]
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return entry.load()
    raise ValueError(f"unknown backend {name!r}; available: {', '.join(available_backends()) or 'none'}")


def create_backend(name: str, **options) -> Reconstructor:
    """Build backend ``name`` with ``options``; an option the backend does not take is a ValueError, not ignored."""
    from .base import Reconstructor

    factory = backend_factory(name)
    parameters = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(options) - set(parameters)) if not takes_any else []
    if unknown:
        accepted = sorted(k for k, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
        raise ValueError(f"backend {name!r} does not take {', '.join(unknown)}; its options: {', '.join(accepted)}")
    backend = factory(**options)
    if not isinstance(backend, Reconstructor):
        raise TypeError(f"backend {name!r} built a {type(backend).__name__}, which has no reconstruct(views) method")
    return backend
