"""The live loop, without HTTP and without SQL strings: accounts, projects, uploads, tasks,
answers, exports. Every function takes the ORM session it works in."""

from listenloop.engine.errors import (
    ConflictError,
    EngineError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TooLargeError,
    UnauthorizedError,
)
from listenloop.engine.live.tasks import Assignment, next_task, submit_answer

__all__ = [
    "Assignment",
    "ConflictError",
    "EngineError",
    "ForbiddenError",
    "InvalidError",
    "NotFoundError",
    "TooLargeError",
    "UnauthorizedError",
    "next_task",
    "submit_answer",
]
