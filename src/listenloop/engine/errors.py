"""Errors of the live loop; the server maps each to one HTTP status, the CLI to one line."""

from __future__ import annotations

from typing import Any

from listenloop.errors import ListenloopError


class EngineError(ListenloopError):
    """Base of the errors below (never raised itself)."""


class NotFoundError(EngineError):
    """What was asked for does not exist, or the caller may not know it exists (404)."""


class ForbiddenError(EngineError):
    """The caller's role or ownership does not allow this (403)."""


class ConflictError(EngineError):
    """The state does not allow it: a task already answered or expired, a name taken (409)."""


class InvalidError(EngineError):
    """The request is well-formed but its content is wrong: an unknown class, a bad file (422)."""


class ProblemsError(InvalidError):
    """Several problems of one request, each `{loc, field, msg, type}` (422 with all of them)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{p['field'] or 'body'}: {p['msg']}" for p in problems))
        self.problems = problems


class UnauthorizedError(EngineError):
    """No valid credentials (401)."""


class TooLargeError(EngineError):
    """An upload over the size limit (413)."""
