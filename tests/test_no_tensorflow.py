"""The runtime never imports TensorFlow (a subprocess checks sys.modules)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli import env_without_tensorflow, imported_blocked, run_cli


def _py(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


def test_runtime_imports_do_not_load_tensorflow():
    code = (
        "import sys, json\n"
        "import edge_fer.pipeline, edge_fer.cli, edge_fer.classify, edge_fer.interpreter, edge_fer.daemon\n"
        "import edge_fer.sources, edge_fer.sources.opencv, edge_fer.sources.images, edge_fer.sources.live\n"
        "import edge_fer.detect.haar, edge_fer.detect.yunet, edge_fer.track, edge_fer.preprocess, edge_fer.config\n"
        "import edge_fer.sinks, edge_fer.sinks.jsonl, edge_fer.sinks.csv\n"
        "from edge_fer.interpreter import select_backend; select_backend()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))))\n"
    )
    r = _py(code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_run_path_on_video_with_tensorflow_blocked(hamilton_clip, tiny_bundle, tmp_path):
    """The installed edge-fer runs a video to events where TensorFlow and Keras cannot be imported,
    and never tries to import them."""
    block = tmp_path / "block"
    r = run_cli(
        "run",
        "--source",
        hamilton_clip,
        "--model",
        tiny_bundle,
        "--max-frames",
        "120",
        env=env_without_tensorflow(block),
    )
    assert r.returncode == 0, r.stderr
    assert imported_blocked(block) == []
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert events and any(e["type"] == "face_appeared" for e in events)
