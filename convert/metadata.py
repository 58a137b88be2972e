"""Embed edge-fer metadata into a .tflite file's metadata table (read back by edge_fer.bundle)."""

from __future__ import annotations

from edge_fer.bundle import TFLITE_METADATA_NAME, ModelMeta, read_tflite_metadata


def embed_metadata(tflite_bytes: bytes, meta: ModelMeta) -> bytes:
    """Return ``tflite_bytes`` with ``meta`` stored as the ``edge_fer_metadata`` entry
    (replacing an older one). The graph itself is untouched."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    payload = meta.to_json().encode("utf-8")
    buf = schema.BufferT()
    buf.data = list(payload)
    kept, old = [], None
    for m in model.metadata or []:
        if (m.name.decode() if isinstance(m.name, bytes) else m.name) == TFLITE_METADATA_NAME:
            old = m
        else:
            kept.append(m)
    entry = schema.MetadataT()
    entry.name = TFLITE_METADATA_NAME
    if old is not None and not any(m.buffer == old.buffer for m in kept):
        model.buffers[old.buffer] = buf  # replaced in place: a re-embedded bundle does not grow
        entry.buffer = old.buffer
    else:
        model.buffers.append(buf)
        entry.buffer = len(model.buffers) - 1
    model.metadata = kept + [entry]
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    assert TFLITE_METADATA_NAME in read_tflite_metadata(out)
    return out
