"""One exception family. The CLI turns these into one clear line and exit code 2."""


class EdgeFerError(Exception):
    """Base class for every error that is the user's input, not a bug. Its message is redacted
    (:func:`edge_fer.redact.redact`): a camera URL's password never reaches the terminal or a log."""

    exit_code = 2

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

    exit_code = 74


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
