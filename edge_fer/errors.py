"""One exception family. The CLI turns these into one clear line and the exit code of its class.

Every command exits with a code from one table (sysexits.h where it has one):

==  ============================================================================
0   ok
1   a check failed (``bench --fail-under``, ``doctor``, convert's accuracy gate, ...)
2   usage or input error (a bad flag, a missing or unreadable file, an invalid config)
69  network unavailable (``models pull``)
70  internal error (a bug: a traceback, shown with ``--debug``)
74  output I/O error (a full disk, a closed pipe, a sink that cannot write)
==  ============================================================================
"""

import errno

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_INTERNAL = 70
EXIT_IOERR = 74

#: errors of a write that are the output's fault, not the user's input (exit 74): a full disk or quota,
#: a file-size limit, a read-only file system, an I/O error, a closed pipe
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EPIPE})


class EdgeFerError(Exception):
    """Base class for every error that is the user's input, not a bug. Its message is redacted
    (:func:`edge_fer.redact.redact`): a camera URL's password never reaches the terminal or a log."""

    exit_code = EXIT_USAGE

    def __str__(self) -> str:
        from edge_fer.redact import redact

        return redact(super().__str__())


class DataError(EdgeFerError):
    """A dataset that cannot be read: wrong columns, wrong pixel count, no images, ..."""


class ModelError(EdgeFerError):
    """A model file or bundle that cannot be used, with the reason."""


class SourceError(EdgeFerError):
    """A frame source that cannot be opened or read."""


class ConfigError(EdgeFerError):
    """An invalid configuration key or value."""


class OutputError(EdgeFerError):
    """An output (events file, stdout) that cannot be written any more: full disk, closed pipe.
    Not the user's input, so its own exit code (EX_IOERR from sysexits.h)."""

    exit_code = EXIT_IOERR


def write_error(message: str, e: OSError, kind: type[EdgeFerError] = EdgeFerError) -> EdgeFerError:
    """``message`` as the error of a write that failed with ``e``: an :class:`OutputError` (exit 74)
    for a full or read-only disk (:data:`OUTPUT_ERRNOS`), else ``kind`` (a wrong path: exit 2)."""
    return (OutputError if e.errno in OUTPUT_ERRNOS else kind)(message)


class MissingDependencyError(EdgeFerError):
    """A dependency that no edge-fer extra provides is missing (a system package, a specific build);
    the message says how to install it."""

    def __init__(self, what: str, how: str):
        super().__init__(f"{what}: {how}")


class MissingExtraError(EdgeFerError):
    """An optional dependency is not installed; the message says which extra to install."""

    def __init__(self, what: str, extra: str, module: str | None = None):
        mod = f" ({module} is not installed)" if module else ""
        super().__init__(f"{what} needs the '{extra}' extra{mod}: pip install 'edge-fer[{extra}]'")
        self.extra = extra


class CheckFailed(EdgeFerError):
    """A check the user asked for did not pass (an accuracy gate, a latency budget, a doctor verdict)."""

    exit_code = EXIT_CHECK_FAILED


class NetworkError(EdgeFerError):
    """A server or mirror that cannot be reached or stalls (EX_UNAVAILABLE)."""

    exit_code = EXIT_UNAVAILABLE
