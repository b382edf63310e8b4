"""The backend registry: backends by kind and name, extensible by third-party packages.

Two kinds, each an entry-point group (the built-in backends register there too, in p2g3d's own ``pyproject.toml``):

* ``p2g3d.reconstruction`` (:data:`RECONSTRUCTION`): multi-view reconstruction, ``reconstruct(views) ->
  trimesh.Trimesh`` (:class:`~p2g3d.integrations.base.Reconstructor`);
* ``p2g3d.image_to_3d`` (:data:`IMAGE_TO_3D`): one object image to a mesh and its input camera,
  ``generate(source) -> ImageTo3DResult`` (:class:`~p2g3d.integrations.image_to_3d.ImageTo3D`).

An entry point names a factory (usually a class) whose keyword arguments are the backend's options; backends
registered at run time with :func:`register_backend` come first. A third-party package registers its adapters in
its own ``pyproject.toml``::

    [project.entry-points."p2g3d.reconstruction"]
    my-backend = "my_package.p2g3d_adapter:MyReconstructor"

    [project.entry-points."p2g3d.image_to_3d"]
    my-image-to-3d = "my_package.p2g3d_adapter:MyImageTo3D"

The group was called ``p2g3d.backends`` before 0.2; entry points still registered there are read as reconstruction
backends, with a DeprecationWarning, until the next release.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from p2g3d.errors import InputError

if TYPE_CHECKING:
    from .base import Reconstructor
    from .image_to_3d import ImageTo3D

RECONSTRUCTION = "p2g3d.reconstruction"
DEPRECATED_GROUPS = {RECONSTRUCTION: "p2g3d.backends"}  # old group name -> read until the next release
IMAGE_TO_3D = "p2g3d.image_to_3d"
KINDS = (RECONSTRUCTION, IMAGE_TO_3D)
_runtime_backends: dict[str, dict[str, Callable]] = {kind: {} for kind in KINDS}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"kind must be one of {KINDS}, got {kind!r}")


def register_backend(name: str, factory: Callable, kind: str = RECONSTRUCTION) -> None:
    """Register ``factory`` under ``name`` for this process (an entry point does the same for an installed package)."""
    _check_kind(kind)
    if not isinstance(name, str) or not name:
        raise InputError(f"a backend name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"backend {name!r}: the factory must be callable, got {type(factory).__name__}")
    _runtime_backends[kind][name] = factory


def unregister_backend(name: str, kind: str = RECONSTRUCTION) -> None:
    """Remove a run-time registration of :func:`register_backend` (entry points of installed packages stay)."""
    _check_kind(kind)
    if name not in _runtime_backends[kind]:
        raise InputError(
            f"no backend {name!r} was registered at run time; registered: {sorted(_runtime_backends[kind])}"
        )
    del _runtime_backends[kind][name]


def _entry_points(kind: str) -> list:
    """The entry points of ``kind``, then those still in its deprecated group (with a warning) under names not
    taken in the new one."""
    found = list(entry_points(group=kind))
    old_group = DEPRECATED_GROUPS.get(kind)
    if old_group is not None:
        names = {entry.name for entry in found}
        old = [entry for entry in entry_points(group=old_group) if entry.name not in names]
        if old:
            warnings.warn(
                f"entry-point group {old_group!r} is deprecated: register {', '.join(e.name for e in old)} under "
                f"{kind!r} (read from the old group until the next release)",
                DeprecationWarning,
                stacklevel=3,
            )
        found += old
    return found


def available_backends(kind: str = RECONSTRUCTION) -> list[str]:
    """Names of every backend of ``kind``: entry points of installed packages and run-time registrations."""
    _check_kind(kind)
    return sorted({entry.name for entry in _entry_points(kind)} | set(_runtime_backends[kind]))


def backend_factory(name: str, kind: str = RECONSTRUCTION) -> Callable:
    """The factory registered under ``name`` (run-time registrations first, then entry points)."""
    _check_kind(kind)
    if name in _runtime_backends[kind]:
        return _runtime_backends[kind][name]
    for entry in _entry_points(kind):
        if entry.name == name:
            return entry.load()
    raise InputError(f"unknown backend {name!r}; available: {', '.join(available_backends(kind)) or 'none'}")


def _protocol(kind: str) -> tuple[type, str]:
    if kind == IMAGE_TO_3D:
        from .image_to_3d import ImageTo3D

        return ImageTo3D, "generate(source)"
    from .base import Reconstructor

    return Reconstructor, "reconstruct(views)"


def create_backend(name: str, kind: str = RECONSTRUCTION, **options) -> Reconstructor | ImageTo3D:
    """Build backend ``name`` of ``kind`` with ``options``; an option the backend does not take is a ValueError, not
    ignored, and so is an object without the kind's method."""
    factory = backend_factory(name, kind)
    parameters = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(options) - set(parameters)) if not takes_any else []
    if unknown:
        accepted = sorted(k for k, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL)
        raise InputError(f"backend {name!r} does not take {', '.join(unknown)}; its options: {', '.join(accepted)}")
    backend = factory(**options)
    protocol, method = _protocol(kind)
    if not isinstance(backend, protocol):
        raise TypeError(f"backend {name!r} built a {type(backend).__name__}, which has no {method} method")
    return backend
