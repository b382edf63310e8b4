"""Errors that mean "the user's input or environment is wrong", as opposed to a bug.

The command line prints these as one line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says how to install it."""
