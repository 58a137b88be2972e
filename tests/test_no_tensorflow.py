"""The runtime never imports TensorFlow (a subprocess checks sys.modules)."""

from __future__ import annotations

import json
import subprocess
import sys

BLOCK_TF = (
    "import sys\n"
    "for m in ('tensorflow', 'tensorflow.lite', 'keras', 'tf_keras'):\n"
    "    sys.modules[m] = None  # any import of these raises ImportError\n"
)


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


def test_run_path_on_video_with_tensorflow_blocked(hamilton_clip, tiny_bundle):
    code = BLOCK_TF + (
        "from edge_fer.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert not [m for m in sys.modules if m.startswith('tensorflow') and sys.modules[m] is not None]\n"
        "sys.exit(rc)\n"
    )
    r = _py(code, "run", "--source", str(hamilton_clip), "--model", str(tiny_bundle), "--max-frames", "120")
    assert r.returncode == 0, r.stderr
    events = [json.loads(x) for x in r.stdout.splitlines()]
    assert events and any(e["type"] == "face_appeared" for e in events)
