"""The one exception type that the command line reports as a one-line error."""

__all__ = ["HwlenetError"]


class HwlenetError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The CLI prints ``Error: <message>`` and exits with status 1; library callers may catch it.
    """
