"""Interpreter backend choice and the Edge TPU delegate path (with a fake load_delegate)."""

from __future__ import annotations

import logging

import pytest

from edge_fer.errors import ConfigError, ModelError
from edge_fer.interpreter import Backend, edgetpu_library, load_interpreter, select_backend


class FakeInterpreter:
    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        FakeInterpreter.instances.append(self)

    def allocate_tensors(self):
        pass


def fake_backend(delegate_ok: bool):
    calls = []

    def load_delegate(lib, options=None):
        calls.append(lib)
        if not delegate_ok:
            raise OSError(f"{lib}: cannot open shared object file")
        return "EDGETPU-DELEGATE"

    return Backend("fake", FakeInterpreter, load_delegate), calls


def test_select_backend_prefers_litert_and_never_tensorflow():
    import subprocess
    import sys

    # in a fresh interpreter: other tests in this process may have imported TensorFlow themselves
    code = (
        "import sys; from edge_fer.interpreter import select_backend; b = select_backend(); "
        "print(b.name, 'tensorflow' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["ai_edge_litert", "False"], r.stderr


def test_unknown_backend_and_device():
    with pytest.raises(ConfigError, match="backend"):
        select_backend("onnx")
    with pytest.raises(ConfigError, match="device"):
        load_interpreter(model_content=b"x", device="gpu")


def test_auto_uses_edgetpu_when_delegate_loads():
    be, calls = fake_backend(True)
    li = load_interpreter(model_content=b"m", device="auto", threads=2, backend=be)
    assert li.device == "edgetpu"
    assert calls == [edgetpu_library()]
    assert li.interpreter.kwargs["experimental_delegates"] == ["EDGETPU-DELEGATE"]
    assert li.interpreter.kwargs["num_threads"] == 2


def test_auto_falls_back_to_cpu_with_one_log_line(caplog):
    be, calls = fake_backend(False)
    with caplog.at_level(logging.INFO, logger="edge_fer.interpreter"):
        li = load_interpreter(model_content=b"m", device="auto", backend=be)
    assert li.device == "cpu"
    assert "experimental_delegates" not in li.interpreter.kwargs
    lines = [r for r in caplog.records if "Edge TPU" in r.getMessage()]
    assert len(lines) == 1 and "CPU" in lines[0].getMessage()


def test_edgetpu_requested_but_absent_is_a_clear_error():
    be, _ = fake_backend(False)
    with pytest.raises(ModelError, match="edgetpu.*libedgetpu"):
        load_interpreter(model_content=b"m", device="edgetpu", backend=be)


def test_cpu_never_touches_the_delegate():
    be, calls = fake_backend(True)
    li = load_interpreter(model_content=b"m", device="cpu", backend=be)
    assert li.device == "cpu" and calls == []


def test_real_edgetpu_request_agrees_with_the_hardware(tiny_bundle):
    """On a machine with a Coral Edge TPU (and libedgetpu) ``--device edgetpu`` loads the delegate; on one
    without, it is a clear error naming the runtime to install. ``auto`` finds out which this machine is."""
    auto = load_interpreter(model_path=str(tiny_bundle), device="auto")
    has_edgetpu = auto.device == "edgetpu"
    assert auto.device in ("edgetpu", "cpu")
    del auto  # release the accelerator before opening it again
    if has_edgetpu:
        li = load_interpreter(model_path=str(tiny_bundle), device="edgetpu")
        assert li.device == "edgetpu" and li.interpreter.get_input_details()[0]["shape"].tolist() == [1, 48, 48, 1]
    else:
        with pytest.raises(ModelError, match=r"--device edgetpu: .*libedgetpu.*--device cpu"):
            load_interpreter(model_path=str(tiny_bundle), device="edgetpu")


def test_real_interpreter_refuses_garbage():
    with pytest.raises(ModelError):
        load_interpreter(model_content=b"\0" * 64, device="cpu")
