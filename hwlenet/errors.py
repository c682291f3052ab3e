"""The one exception type that the command line reports as a one-line error, and exit codes."""

__all__ = ["EXIT_INPUT_ERROR", "EXIT_MISMATCH", "EXIT_OK", "HwlenetError"]

#: The command did what was asked and every check passed.
EXIT_OK = 0
#: A verification found the design wrong: a co-simulation mismatch (or a fault the bench
#: missed). Only a verdict on the design exits with this status.
EXIT_MISMATCH = 1
#: Bad usage or input, a missing tool, an unwritable output, or an interrupted run: one line
#: ``Error: ...`` on stderr names the file or option.
EXIT_INPUT_ERROR = 2


class HwlenetError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The CLI prints ``Error: <message>`` on stderr and exits with :data:`EXIT_INPUT_ERROR`
    (2); library callers may catch it.
    """
