"""Ctrl-C during training and writing is never lost (edge_fer.train.interrupts)."""

from __future__ import annotations

import gc
import os
import signal

import pytest
from edge_fer.train.interrupts import watch_interrupts


@pytest.fixture(autouse=True)
def _ctrl_c_as_from_a_terminal():
    """Python's own SIGINT handler, whatever this test run inherited (a background job ignores it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _InterruptedDestructor:
    """SIGINT handled inside a destructor, as it can be inside Keras's and h5py's saving code:
    CPython prints "Exception ignored" and drops the KeyboardInterrupt."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the next bytecode boundary of the main thread
            pass


def _lose_an_interrupt() -> None:
    obj = _InterruptedDestructor()
    del obj
    gc.collect()


def test_python_drops_an_interrupt_raised_in_a_destructor():
    """What the watch is for: without it, the program just goes on."""
    _lose_an_interrupt()  # no KeyboardInterrupt comes out


def test_an_interrupt_lost_in_a_destructor_is_raised_at_the_next_check():
    with pytest.raises(KeyboardInterrupt):
        with watch_interrupts() as watch:
            _lose_an_interrupt()
            assert watch.signals == [signal.SIGINT]
            watch.check()
            pytest.fail("check() did not raise")  # pragma: no cover


def test_an_interrupt_lost_after_the_last_check_is_raised_when_the_block_ends():
    with pytest.raises(KeyboardInterrupt):
        with watch_interrupts():
            _lose_an_interrupt()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_an_ignored_ctrl_c_stays_ignored():
    """``nohup edge-fer train ... &`` ignores SIGINT, as Python leaves it; the watch must not undo that."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with watch_interrupts() as watch:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    assert watch.signals == []


def test_between_steps_an_interrupt_waits_for_the_check():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with watch_interrupts(at_once=False) as watch:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
            done.append("the step went on to its end")
            watch.check()
    assert done == ["the step went on to its end"]


def test_no_interrupt_no_raise():
    with watch_interrupts() as watch:
        watch.check()
    assert watch.signals == []


@pytest.mark.train
def test_the_training_callbacks_raise_a_lost_interrupt_at_the_next_batch():
    from edge_fer.train.interrupts import keras_callbacks

    with pytest.raises(KeyboardInterrupt):
        with watch_interrupts() as watch:
            _, release = keras_callbacks(watch)
            release.on_train_batch_end(0)  # nothing noted yet
            _lose_an_interrupt()
            release.on_train_batch_end(1)
            pytest.fail("the callback did not raise")  # pragma: no cover


@pytest.mark.train
def test_an_interrupt_at_the_end_of_an_epoch_waits_until_its_files_are_written():
    from edge_fer.train.interrupts import keras_callbacks

    written = []
    with pytest.raises(KeyboardInterrupt):
        with watch_interrupts() as watch:
            hold, release = keras_callbacks(watch)
            hold.on_epoch_begin(0)
            hold.on_epoch_end(0)
            os.kill(os.getpid(), signal.SIGINT)  # while a checkpoint is written
            for _ in range(1000):
                pass
            written.append("checkpoint")
            release.on_epoch_end(0)
            pytest.fail("release did not raise")  # pragma: no cover
    assert written == ["checkpoint"]


@pytest.mark.train
def test_ctrl_c_stops_edge_fer_train_with_exit_130_and_resume_finishes(tmp_path):
    """Through the installed command: SIGINT during fine-tuning stops the run (exit 130, one line),
    keeps the finished stages, and ``--resume`` finishes it."""
    import json

    from tests.cli import run_cli, signal_when
    from tests.datasets import write_csv

    data = write_csv(tmp_path / "fer2013.csv")
    out = tmp_path / "run"
    args = ["--ae-epochs", "1", "--head-epochs", "1", "--width", "4", "--latent-channels", "8", "--batch-size", "16"]
    history = out / "history.jsonl"
    rc, err = signal_when(
        ["train", "--data", data, "--out", out, "--epochs", "200", *args],
        lambda: history.exists() and '"finetune"' in history.read_text(),
        signal.SIGINT,
    )
    assert rc == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "edge-fer: interrupted", err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    state = json.loads((out / "state.json").read_text())
    assert state["done"] == ["ae", "head"], state
    r = run_cli("train", "--data", data, "--out", out, "--resume", "--epochs", "1", *args, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "state.json").read_text())["done"] == ["ae", "head", "finetune"]
