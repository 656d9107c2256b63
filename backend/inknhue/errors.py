"""Errors that reach the user as one clear line (the CLI prints them, the server returns them)."""


class InknhueError(Exception):
    """Base class: the message is complete and meant for the user."""

    #: a stable machine-readable code (used by the server's error replies)
    code = "error"


class InputError(InknhueError, ValueError):
    """Bad input from the user: an unreadable image, a ratio out of range, mismatched sizes."""

    code = "bad_input"


class WeightsError(InknhueError):
    """Weights missing, truncated, corrupt or not the released ones."""

    code = "weights"


class DeviceError(InknhueError):
    """The requested device is unavailable, or ran out of memory."""

    code = "device"


class Cancelled(Exception):
    """The job was cancelled while it ran (not an error: nothing is said to the user)."""
