"""benchmarks/label_efficiency.py: a study continued elsewhere keeps the rows measured before."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "label_efficiency.py"


@pytest.fixture
def study():
    spec = importlib.util.spec_from_file_location("label_efficiency", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(frac, seed, variant, acc):
    return {"fraction": frac, "seed": seed, "variant": variant, "train_images": 10, "public_accuracy": acc}


def test_keep_rows_merges_an_earlier_study_and_new_runs_win(study, tmp_path):
    earlier = tmp_path / "earlier.json"
    old = [_row(0.25, 0, "pretrained", 0.55), _row(0.25, 0, "scratch", 0.57), _row(0.25, 1, "scratch", 0.10)]
    earlier.write_text(json.dumps({"rows": old, "summary": []}))
    out = tmp_path / "study"
    run = out / "f0.25_s1_scratch"  # a run finished here replaces the earlier row of the same key
    run.mkdir(parents=True)
    public = {"accuracy": 0.56, "macro_f1": 0.5}
    (run / "metrics.json").write_text(json.dumps({"train_images": 7177, "PublicTest": public, "timing": {}}))
    args = ["--data", "x", "--init-ae", "ae", "--out", str(out), "--fractions", "0.25", "--seeds", "0", "1"]
    assert study.main([*args, "--summarize-only", "--keep-rows", str(earlier)]) == 0
    got = json.loads((out / "label_efficiency.json").read_text())
    rows = {(r["fraction"], r["seed"], r["variant"]): r for r in got["rows"]}
    assert rows[(0.25, 1, "scratch")]["public_accuracy"] == 0.56 and "kept_from" not in rows[(0.25, 1, "scratch")]
    assert rows[(0.25, 0, "pretrained")]["kept_from"] == str(earlier)
    (summary,) = got["summary"]
    assert summary["scratch"]["n"] == 2 and summary["pretrained"]["n"] == 1
    assert summary["scratch"]["mean"] == pytest.approx((0.57 + 0.56) / 2)
