"""The project's errors: what tells a mistake in the input or the environment from a bug.

* :class:`InputError` (a ValueError, so callers' ``except ValueError`` keeps working): the input is wrong; the
  message says what was expected and what came. The command line prints it as one line and exits with status 2.
* :class:`MissingDependencyError` (an ImportError): an optional package is missing; the message says how to install
  it. Also one line, status 2.

Any other exception is a bug: the command line says so in one line, exits with status 1, and shows the traceback
under ``-v``.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a value, a file, a folder): the message says what was expected and what came."""


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says how to install it."""
