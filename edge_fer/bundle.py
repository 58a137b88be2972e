"""A model bundle: a ``.tflite`` file plus the metadata the runtime needs to use it.

The metadata is one JSON document, written by ``edge-fer train`` as ``metadata.json`` in the run
directory and embedded by ``edge-fer convert`` into the ``.tflite`` file's own metadata table
(entry name :data:`TFLITE_METADATA_NAME`), so that one file is the whole bundle. The runtime reads
it here with a tiny flatbuffer reader (no TensorFlow, no extra dependency) and refuses a bundle
it cannot understand, with the reason.

It is the one source of truth for labels and preprocessing: train writes it, convert carries it,
the runtime reads it (train/serve skew is the classic way FER models lose accuracy in the field).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_fer.errors import ModelError
from edge_fer.labels import LABELS

FORMAT = "edge-fer-bundle"
FORMAT_VERSION = 1
TFLITE_METADATA_NAME = "edge_fer_metadata"

_RESIZE_METHODS = ("area", "linear", "nearest", "cubic")

# the JSON type each metadata field must have (checked at load: a wrong type must not pass the load
# and crash the daemon at its first face, after READY)
_NUMBER = "a number"
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "color": ((str,), "a string"),
    "resize": ((str,), "a string"),
    "scale": ((int, float), _NUMBER),
    "offset": ((int, float), _NUMBER),
    "margin": ((int, float), _NUMBER),
    "blur_sigma": ((int, float), _NUMBER),
    "flip_average": ((bool,), "true or false"),
    "labels": ((list, tuple), "a list of names"),
    "input_height": ((int,), "an integer"),
    "input_width": ((int,), "an integer"),
    "input_channels": ((int,), "an integer"),
    "preprocessing": ((dict,), "an object"),
    "quantization": ((dict,), "an object"),
    "provenance": ((dict,), "an object"),
    "metrics": ((dict,), "an object"),
}


def _check_field_types(d: dict[str, Any], where: str = "") -> None:
    """Every known field of ``d`` has its JSON type (booleans are not numbers; numbers are finite)."""
    import math

    for key, value in d.items():
        types, name = _FIELD_TYPES.get(key, ((object,), ""))
        ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if ok and key == "labels":
            ok = all(isinstance(x, str) and x for x in value)
            name = "a list of non-empty strings"
        if not ok:
            raise ModelError(f"metadata field {where}{key!r} must be {name}, got {json.dumps(value)[:60]}")


@dataclass(frozen=True)
class Preprocessing:
    """How a face crop becomes the model's input.

    ``model_input = pixel * scale + offset`` on a ``color`` image of the model's input size,
    resized with ``resize`` interpolation from a square crop of the detector's box widened by
    ``margin`` (a fraction of the box side, on each side). When ``blur_sigma`` > 0 the resized crop is
    low-passed with a Gaussian of that sigma (pixels) first: the trainer sets it when the training
    faces are much blurrier than real ones (see ``edge_fer.train.sharpness``), so that faces in the
    field look like the faces the model learned from.
    """

    color: str = "gray"
    resize: str = "area"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    margin: float = 0.1
    blur_sigma: float = 0.0
    # test-time augmentation: the runtime classifies each crop and its mirror image and averages the
    # probabilities (two inferences per face; every accuracy and latency figure of the bundle includes it)
    flip_average: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelError(f"unknown preprocessing keys {sorted(unknown)}")
        _check_field_types(d, "preprocessing.")
        p = cls(**d)
        if p.color != "gray":
            raise ModelError(f"unsupported preprocessing color {p.color!r} (supported: 'gray')")
        if p.resize not in _RESIZE_METHODS:
            raise ModelError(f"unsupported resize method {p.resize!r} (supported: {_RESIZE_METHODS})")
        if not (0.0 <= float(p.margin) < 2.0):
            raise ModelError(f"preprocessing margin {p.margin} out of range [0, 2)")
        if not (0.0 <= float(p.blur_sigma) < 10.0):
            raise ModelError(f"preprocessing blur_sigma {p.blur_sigma} out of range [0, 10)")
        if not isinstance(p.flip_average, bool):
            raise ModelError(f"preprocessing flip_average must be true or false, got {p.flip_average!r}")
        return p


@dataclass
class ModelMeta:
    """Everything a consumer needs to know about a model, JSON-serialisable."""

    labels: tuple[str, ...] = LABELS
    input_height: int = 48
    input_width: int = 48
    input_channels: int = 1
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    # Filled by convert: {"input": {"dtype", "scale", "zero_point"}, "output": {...}}
    quantization: dict[str, Any] = field(default_factory=dict)
    # Where it came from: run dir, dataset, versions, creation time, ...
    provenance: dict[str, Any] = field(default_factory=dict)
    # Evaluation results (train's metrics.json summary, convert's float/int8 comparison).
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "metadata") -> ModelMeta:
        if not isinstance(d, dict):
            raise ModelError(f"{source}: metadata is not a JSON object")
        if d.get("format") != FORMAT:
            raise ModelError(f"{source}: not an edge-fer bundle (format={d.get('format')!r})")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelError(
                f"{source}: bundle format version {version!r} is newer than this edge-fer "
                f"understands ({FORMAT_VERSION}); upgrade edge-fer"
            )
        body = {k: v for k, v in d.items() if k not in ("format", "format_version")}
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelError(f"{source}: unknown metadata keys {sorted(unknown)}")
        try:
            _check_field_types(body)
            body["preprocessing"] = Preprocessing.from_dict(body.get("preprocessing", {}))
            body["labels"] = tuple(body.get("labels", LABELS))
            meta = cls(**body)
        except ModelError as e:
            raise ModelError(f"{source}: {e}") from None
        except TypeError as e:
            raise ModelError(f"{source}: invalid metadata ({e})") from None
        if len(meta.labels) < 2 or len(set(meta.labels)) != len(meta.labels):
            raise ModelError(f"{source}: labels must be at least 2 distinct names, got {meta.labels}")
        if meta.input_channels not in (1, 3) or min(meta.input_height, meta.input_width) < 8:
            raise ModelError(
                f"{source}: unsupported input shape {meta.input_height}x{meta.input_width}x{meta.input_channels}"
            )
        return meta

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "metadata") -> ModelMeta:
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelError(f"{source}: metadata is not valid JSON ({e})") from None
        return cls.from_dict(d, source)

    @classmethod
    def load(cls, path: str | Path) -> ModelMeta:
        p = Path(path)
        try:
            return cls.from_json(p.read_bytes(), str(p))
        except OSError as e:
            raise ModelError(f"cannot read {p}: {e.strerror or e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")


# --- a minimal, read-only flatbuffer reader for the TFLite Model table ---------------------------
# Only what is needed to read Model.metadata[] and Model.buffers[] (schema.fbs field ids:
# Model.buffers = 4, Model.metadata = 6; Metadata.name = 0, Metadata.buffer = 1;
# Buffer.data = 0, Buffer.offset = 1, Buffer.size = 2).


def _field_pos(buf: bytes, table: int, field_id: int) -> int:
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * field_id
    if slot >= vt_size:
        return 0
    off = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + off if off else 0


def _deref(buf: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _vector(buf: bytes, table: int, field_id: int) -> tuple[int, int]:
    """(start of elements, length) of a vector field, (0, 0) when absent."""
    pos = _field_pos(buf, table, field_id)
    if not pos:
        return 0, 0
    vec = _deref(buf, pos)
    return vec + 4, struct.unpack_from("<I", buf, vec)[0]


def read_tflite_metadata(buf: bytes) -> dict[str, bytes]:
    """Return the ``{name: bytes}`` metadata entries of a TFLite flatbuffer.

    Raises :class:`ModelError` when ``buf`` is not a TFLite model.
    """
    if len(buf) < 16 or buf[4:8] != b"TFL3":
        raise ModelError("not a TFLite model (no 'TFL3' file identifier)")
    try:
        model = _deref(buf, 0)
        buffers_start, n_buffers = _vector(buf, model, 4)
        meta_start, n_meta = _vector(buf, model, 6)
        out: dict[str, bytes] = {}
        for i in range(n_meta):
            entry = _deref(buf, meta_start + 4 * i)
            name_pos = _field_pos(buf, entry, 0)
            if not name_pos:
                continue
            s = _deref(buf, name_pos)
            name = buf[s + 4 : s + 4 + struct.unpack_from("<I", buf, s)[0]].decode("utf-8")
            bpos = _field_pos(buf, entry, 1)
            bidx = struct.unpack_from("<I", buf, bpos)[0] if bpos else 0
            if bidx >= n_buffers:
                raise ModelError(f"metadata {name!r} points at buffer {bidx} of {n_buffers}")
            btab = _deref(buf, buffers_start + 4 * bidx)
            data_start, data_len = _vector(buf, btab, 0)
            if data_len:
                out[name] = bytes(buf[data_start : data_start + data_len])
            else:  # large-model layout: data lives after the flatbuffer at (offset, size)
                opos, spos = _field_pos(buf, btab, 1), _field_pos(buf, btab, 2)
                off = struct.unpack_from("<Q", buf, opos)[0] if opos else 0
                size = struct.unpack_from("<Q", buf, spos)[0] if spos else 0
                out[name] = bytes(buf[off : off + size]) if off > 1 else b""
        return out
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise ModelError(f"corrupt TFLite flatbuffer ({e})") from None


def read_bundle_meta(model_bytes: bytes, source: str = "model") -> ModelMeta:
    """The :class:`ModelMeta` embedded in a ``.tflite`` produced by ``edge-fer convert``."""
    entries = read_tflite_metadata(model_bytes)
    raw = entries.get(TFLITE_METADATA_NAME)
    if raw is None:
        raise ModelError(
            f"{source}: a TFLite model without edge-fer metadata (labels, preprocessing); "
            "make it with 'edge-fer convert'"
        )
    return ModelMeta.from_json(raw, source)


def read_bundle_meta_named(model_bytes: bytes, source: str) -> ModelMeta:
    """:func:`read_bundle_meta` whose errors always start with ``source`` (the file the user named)."""
    try:
        return read_bundle_meta(model_bytes, source)
    except ModelError as e:
        msg = str(e)
        raise ModelError(msg if msg.startswith(source) else f"{source}: {msg}") from None
