"""Errors that reach users as one clear line (what and where), never a traceback."""


class ListenloopError(Exception):
    """A problem with the user's input or set-up; the CLI prints it as `error: ...`."""


class AudioError(ListenloopError):
    """A file that cannot be decoded as audio, or decodes to nothing."""
