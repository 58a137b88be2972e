"""What a model bundle is, read from the file and its metadata: format (int8, float32, Edge TPU, ...)
and the accuracy that train or convert measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_fer.errors import ModelError


def read_model(path: str | Path) -> tuple[bytes, Any]:
    """(bytes, :class:`~edge_fer.bundle.ModelMeta`) of a bundle; :class:`ModelError` when unusable."""
    from edge_fer.bundle import read_bundle_meta

    p = Path(path)
    from edge_fer.fsutil import read_model_bytes

    data = read_model_bytes(p)
    try:
        meta = read_bundle_meta(data, str(p))
    except ModelError as e:
        msg = str(e)
        raise ModelError(msg if str(p) in msg else f"{p}: {msg}") from None
    return data, meta


def bundle_format(data: bytes, classifier: Any | None = None) -> str:
    """``edgetpu`` (compiled for the Edge TPU), ``int8`` / ``uint8`` (integer in/out), ``mixed``
    (float in/out, integer tensors inside) or ``float32``."""
    if b"edgetpu-custom-op" in data:
        return "edgetpu"
    if classifier is None:
        return "unknown"
    dt = np.dtype(classifier.input_spec.dtype)
    if dt.kind in "iu":
        return dt.name
    if any(np.dtype(t["dtype"]) in (np.dtype(np.int8), np.dtype(np.uint8)) for t in _tensor_details(classifier)):
        return "mixed"
    return "float32"


def _tensor_details(classifier: Any) -> list[dict]:
    try:
        return list(classifier.interpreter.get_tensor_details())
    except Exception:  # pragma: no cover
        return []


def bundle_accuracy(meta: Any, fmt: str) -> tuple[float | None, str | None]:
    """Accuracy from the bundle's metadata: convert's float/int8 evaluation for that format when
    present, else train's figure for a test split (PrivateTest preferred)."""
    m = getattr(meta, "metrics", None) or {}
    q = m.get("quantized")
    if isinstance(q, dict):
        v = q.get("float" if fmt == "float32" else "int8")
        if isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float)):
            ev = q.get("eval")
            return float(v["accuracy"]), ev.get("split") if isinstance(ev, dict) else None
    cands = [(k, v) for k, v in m.items() if isinstance(v, dict) and isinstance(v.get("accuracy"), (int, float))]
    if not cands:
        return None, None
    for pref in ("private", "test"):
        for k, v in cands:
            if pref in k.lower():
                return float(v["accuracy"]), k
    k, v = cands[0]
    return float(v["accuracy"]), k
