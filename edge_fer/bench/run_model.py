"""The classifier alone, the way TFLite's ``benchmark_model`` times it: init time, first inference,
warm-up, N timed runs, percentiles; for several bundles and thread counts, one row per pair."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.bench.bundle import bundle_accuracy, bundle_format, read_model
from edge_fer.bench.machine import machine_info, peak_rss_mb, runtime_version
from edge_fer.bench.report import ModelRow, ModelsReport, SkippedModel
from edge_fer.errors import ConfigError, EdgeFerError, ModelError
from edge_fer.models import display_path
from edge_fer.stats import summarize_ms

log = logging.getLogger(__name__)


def parse_threads(spec: str | None) -> list[int]:
    """``"1,2"`` -> ``[1, 2]``; ``None`` / ``""`` -> ``[0]`` (0: the interpreter's default)."""
    if not spec:
        return [0]
    parts = spec.replace(" ", "").split(",")
    try:
        if not all(parts):  # "1,,2", " ", "2,"
            raise ValueError
        vals = [int(x) for x in parts]
    except ValueError:
        raise ConfigError(f"--threads must be a number or a comma-separated list such as 1,2, got {spec!r}") from None
    if any(not 0 <= v <= MAX_THREADS for v in vals):  # the range `run --threads` has ([model] threads)
        raise ConfigError(f"--threads values must be in [0, {MAX_THREADS}], got {spec!r}")
    return list(dict.fromkeys(vals))


#: the most interpreter threads any command takes (``[model] threads``' range)
MAX_THREADS = 64


def _random_batch(spec: Any, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = (batch, spec.height, spec.width, spec.channels)
    dt = np.dtype(spec.dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)
    return rng.random(shape, dtype=np.float32)


def _timed(fn: Any, runs: int) -> np.ndarray:
    """Seconds per call of ``fn()``, ``runs`` times."""
    out = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def _head(path: str | Path, data: bytes, threads: int, batch: int) -> dict[str, Any]:
    return {
        "path": display_path(path),
        "name": Path(path).name,
        "size_bytes": len(data),
        "threads": threads,  # 0: the interpreter's default
        "batch": batch,
    }


def bench_model(
    path: str | Path,
    *,
    threads: int = 0,
    device: str = "auto",
    runs: int = 200,
    warmup: int = 10,
    batch: int = 1,
    seed: int = 0,
    keep_samples: bool = True,
) -> ModelRow:
    """One bundle at one thread count: init, first inference, warm-up, ``runs`` timed runs.

    ``latency`` times ``Classifier.predict`` (what the pipeline's classify stage runs: set the input,
    invoke, read and dequantize the output); ``invoke`` times the interpreter's ``invoke()`` alone,
    as TFLite's ``benchmark_model`` does. The input is random data of the model's dtype."""
    from edge_fer.classify import Classifier

    data, meta = read_model(path)
    t0 = time.perf_counter()
    clf = Classifier(data, source=str(path), device=device, threads=threads or None)
    init = time.perf_counter() - t0
    fmt = bundle_format(data, clf)
    acc, split = bundle_accuracy(meta, fmt)
    x = _random_batch(clf.input_spec, batch, np.random.default_rng(seed))
    first = _timed(lambda: clf.predict(x), 1)[0]
    for _ in range(warmup):
        clf.predict(x)
    lat = _timed(lambda: clf.predict(x), runs)
    inv = _timed(clf.interpreter.invoke, runs)
    return ModelRow(
        **_head(path, data, threads, batch),
        format=fmt,
        accuracy=acc,
        accuracy_split=split,
        backend=clf.backend,
        device=clf.device,
        init_ms=round(init * 1000, 3),
        first_inference_ms=round(first * 1000, 4),
        warmup_runs=warmup,
        runs=runs,
        latency=summarize_ms(lat),
        invoke=summarize_ms(inv),
        inferences_per_s=round(runs / max(float(lat.sum()), 1e-12), 1),
        samples=[round(v * 1000, 5) for v in lat] if keep_samples else None,
    )


def bench_models(
    paths: Sequence[str | Path],
    *,
    threads: Sequence[int] = (0,),
    device: str = "auto",
    runs: int = 200,
    warmup: int = 10,
    batch: int = 1,
    keep_samples: bool = True,
) -> ModelsReport:
    """Every bundle at every thread count. Files that are not usable bundles are an error up front;
    a bundle the runtime here cannot run (an Edge TPU model without the accelerator) becomes a
    :class:`SkippedModel` row, unless no row at all could run."""
    if runs < 1:
        raise ConfigError(f"--runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {warmup}")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    if not paths:
        from edge_fer.classify import default_model_path

        paths = [default_model_path()]
    for p in paths:
        read_model(p)  # unreadable / not a bundle: one clear error before anything runs
    rows: list[ModelRow | SkippedModel] = []
    for p in paths:
        for t in threads:
            try:
                rows.append(
                    bench_model(
                        p, threads=t, device=device, runs=runs, warmup=warmup, batch=batch, keep_samples=keep_samples
                    )
                )
            except EdgeFerError as e:
                data = Path(p).read_bytes()
                rows.append(SkippedModel(**_head(p, data, t, batch), format=bundle_format(data), error=str(e)))
                log.warning("skipped %s (threads %s): %s", p, t or "default", e)
    ran = next((r for r in rows if isinstance(r, ModelRow)), None)
    if ran is None:
        raise ModelError("no model could be run: " + "; ".join(str(r.error) for r in rows))
    machine = machine_info()
    edgetpu = any(getattr(r, "device", None) == "edgetpu" for r in rows)
    machine["runtime"] = {
        "backend": ran.backend,
        "version": runtime_version(ran.backend),
        "delegate": "edgetpu" if edgetpu else "none",
        "device": device,
        "threads": list(threads),
    }
    return ModelsReport(
        runs=runs,
        warmup_runs=warmup,
        batch=batch,
        models=rows,
        peak_rss_mb=peak_rss_mb(),
        machine=machine,
    )
