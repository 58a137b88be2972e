"""Ctrl-C (SIGINT) that is never lost while a model is trained or written.

Python raises :class:`KeyboardInterrupt` wherever the main thread is when the signal is handled. When
that is a garbage-collection callback or a destructor (Keras's saving code and h5py run such
callbacks), CPython prints "Exception ignored" and drops the exception: the run went on, or was written
whole and the command exited 0, although the user had stopped it.

:func:`watch_interrupts` notes every SIGINT, so that :meth:`InterruptWatch.check` can raise it again at
a safe point: at the end of each training batch and epoch (:func:`keras_callbacks`), between two files
being written, and when the watched block ends. With ``at_once`` the handler also raises at once, as
Python's own does (a training loop stops within the batch), except while the watch is held: Keras
writes its checkpoints at the end of an epoch straight into their files, and a Ctrl-C in the middle
of one left a file that ``--resume`` could not read (an internal error, exit 70), so the end of an
epoch is held and the interrupt raised once its files are written. Without ``at_once``, only
``check()`` raises (a sequence of files is written whole or not at all). Outside the main thread
nothing changes (signals are only handled there), nor where SIGINT is ignored (a background job).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class InterruptWatch:
    """The SIGINTs seen while a :func:`watch_interrupts` block ran."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.held = False  # noted, not raised, until check(): files are being written

    def check(self) -> None:
        """Raise :class:`KeyboardInterrupt` if a SIGINT came (again, if its first raise was lost)."""
        if self.signals:
            raise KeyboardInterrupt


@contextlib.contextmanager
def watch_interrupts(at_once: bool = True) -> Iterator[InterruptWatch]:
    watch = InterruptWatch()

    def note(signum: int, _frame: Any) -> None:
        watch.signals.append(signum)
        if at_once and not watch.held:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a command started in the background (``nohup edge-fer train ... &``) ignores Ctrl-C, as
        # Python itself leaves it: it stays ignored
        yield watch
        return
    previous = signal.signal(signal.SIGINT, note)
    try:
        yield watch
    finally:
        signal.signal(signal.SIGINT, previous)
    watch.check()  # one that came after the last check, or whose raise was lost


def keras_callbacks(watch: InterruptWatch) -> tuple[Any, Any]:
    """Two Keras callbacks: the first holds the watch at the start of each epoch's end (put it before
    the callbacks that write files), the second releases it and raises a noted SIGINT (put it last);
    the second also raises one at the end of every batch."""
    import keras

    class HoldInterrupts(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            watch.held = False

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            watch.held = True

    class RaiseInterrupts(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            watch.check()

        def on_test_batch_end(self, batch: int, logs: Any = None) -> None:
            watch.check()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            watch.held = False
            watch.check()

    return HoldInterrupts(), RaiseInterrupts()
