"""Op-level audit of a TFLite model: every op with its tensors' dtypes, an Edge TPU compatibility
check against Coral's documented requirements, parameter and MAC counts, and the
``edgetpu_compiler`` run when it is installed.

Edge TPU requirements checked (Coral, "TensorFlow models on the Edge TPU", compiler v16):

- tensors are 8-bit quantized (int8/uint8); int32 is only allowed for biases and constant
  op parameters (axes, shapes, paddings); no float tensors, so no DEQUANTIZE in the graph
  (QUANTIZE only at the model's input/output, where it converts between int8 and uint8);
- tensor sizes are constant at compile time (static shapes, no ``-1`` in shape signatures);
- model parameters (weights, biases) are compile-time constants;
- tensors have at most 3 dimensions larger than 1, and those are the innermost ones;
- only supported ops, with their per-op limits (see :data:`EDGETPU_OPS`).

The compiler maps ops to the Edge TPU in graph order up to the first op it cannot map; that op and
everything after it run on the CPU. The audit reports that split.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Supported ops (TFLite builtin names) with their documented limits, paraphrased.
EDGETPU_OPS: dict[str, str] = {
    "ADD": "",
    "AVERAGE_POOL_2D": "no fused activation",
    "CONCATENATION": "no fused activation; a constant input must be all zeros with exactly 2 inputs",
    "CONV_2D": "same dilation in x and y",
    "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": "",
    "FULLY_CONNECTED": "default weights format; 1-D output",
    "L2_NORMALIZATION": "",
    "LOGISTIC": "",
    "LSTM": "unidirectional only",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "",
    "MAXIMUM": "",
    "MAX_POOL_2D": "no fused activation",
    "MEAN": "no reduction over the batch dimension",
    "MINIMUM": "",
    "MUL": "",
    "PACK": "not along the batch dimension",
    "PAD": "no padding of the batch dimension",
    "PRELU": "alpha 1-D (only the innermost dimension > 1)",
    "QUANTIZE": "",
    "REDUCE_MAX": "not over the batch dimension",
    "REDUCE_MIN": "not over the batch dimension",
    "RELU": "",
    "RELU6": "",
    "RELU_N1_TO_1": "",
    "RESHAPE": "large reshapes may stay on the CPU",
    "RESIZE_BILINEAR": "3-D input/output; may stay on the CPU for precision",
    "RESIZE_NEAREST_NEIGHBOR": "3-D input/output; may stay on the CPU for precision",
    "RSQRT": "",
    "SLICE": "",
    "SOFTMAX": "1-D input of at most 16,000 elements",
    "SPACE_TO_DEPTH": "",
    "SPLIT": "not along the batch dimension",
    "SQUARED_DIFFERENCE": "",
    "SQUEEZE": "",
    "STRIDED_SLICE": "",
    "SUB": "",
    "SUM": "",
    "TANH": "",
    "TRANSPOSE": "",
    "TRANSPOSE_CONV": "",
}

# Input slot of the int32 bias for ops that have one.
_BIAS_SLOT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
_WEIGHT_SLOT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}
_NO_FUSED_ACT = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"}
_QUANT8 = {"INT8", "UINT8"}

COMPILER_MISSING = (
    "edgetpu_compiler is not on PATH: install it from Coral's apt repository "
    "(https://coral.ai/docs/edgetpu/compiler/, package 'edgetpu-compiler'; x86-64 Debian/Ubuntu only), "
    "then run: edgetpu_compiler -s -o OUTDIR MODEL.tflite"
)


def _name(x: Any) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x or "")


def _dims(t: Any) -> list[int]:
    return [int(d) for d in (t.shape if t.shape is not None else [])]


def _sig(t: Any) -> list[int]:
    s = t.shapeSignature if t.shapeSignature is not None and len(t.shapeSignature) else t.shape
    return [int(d) for d in (s if s is not None else [])]


def inspect_tflite(model_bytes: bytes) -> dict[str, Any]:
    """Ops (graph order) with their tensors, tensor roles, parameter and MAC counts, and the
    Edge TPU audit. Pure analysis of the flatbuffer (no interpreter, no delegate)."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.read_model_from_bytearray(bytearray(model_bytes))
    if len(model.subgraphs) != 1:
        sub_problem = [f"{len(model.subgraphs)} subgraphs (the Edge TPU compiler supports one)"]
    else:
        sub_problem = []
    sg = model.subgraphs[0]
    tensors = sg.tensors
    graph_inputs = {int(i) for i in sg.inputs}
    graph_outputs = {int(i) for i in sg.outputs}

    def is_const(i: int) -> bool:
        b = tensors[i].buffer
        return b > 0 and model.buffers[b].data is not None and len(model.buffers[b].data) > 0

    def const_value(i: int) -> np.ndarray | None:
        if not is_const(i):
            return None
        t = tensors[i]
        dt = {"INT32": np.int32, "INT64": np.int64}.get(fu.type_to_name(t.type))
        return None if dt is None else np.frombuffer(bytes(bytearray(model.buffers[t.buffer].data)), dtype=dt)

    def tinfo(i: int, role: str) -> dict[str, Any]:
        t = tensors[i]
        return {
            "index": i,
            "name": _name(t.name),
            "dtype": fu.type_to_name(t.type).lower(),
            "shape": _dims(t),
            "role": role,
        }

    roles: dict[int, str] = {}
    ops: list[dict[str, Any]] = []
    problems: list[str] = list(sub_problem)
    macs = 0
    first_bad: int | None = None

    for k, op in enumerate(sg.operators):
        opname = fu.opcode_to_name(model, op.opcodeIndex)
        version = int(model.operatorCodes[op.opcodeIndex].version)
        ins, outs = [], []
        for slot, i in enumerate(int(v) for v in op.inputs):
            if i < 0:
                continue
            if i in graph_inputs:
                role = "input"
            elif slot == _BIAS_SLOT.get(opname):
                role = "bias"
            elif slot == _WEIGHT_SLOT.get(opname) and is_const(i):
                role = "weight"
            elif is_const(i):
                role = "weight" if fu.type_to_name(tensors[i].type) in _QUANT8 | {"FLOAT32"} else "param"
            else:
                role = "activation"
            roles.setdefault(i, role)
            ins.append(tinfo(i, role))
        for i in (int(v) for v in op.outputs):
            role = "output" if i in graph_outputs else "activation"
            roles[i] = role
            outs.append(tinfo(i, role))

        reasons = _op_reasons(opname, op, ins, outs, graph_inputs, graph_outputs, const_value)
        if reasons and first_bad is None:
            first_bad = k
        macs += _op_macs(opname, op, tensors, ins, outs)
        ops.append(
            {
                "index": k,
                "op": opname,
                "version": version,
                "inputs": ins,
                "outputs": outs,
                "edgetpu": "ok" if not reasons else "; ".join(reasons),
            }
        )

    # Tensor-level requirements.
    tensor_list = []
    non_int8 = []
    for i, t in enumerate(tensors):
        role = roles.get(i, "unused")
        dtype = fu.type_to_name(t.type).lower()
        shape, sig = _dims(t), _sig(t)
        entry = {"index": i, "name": _name(t.name), "dtype": dtype, "shape": shape, "role": role}
        tensor_list.append(entry)
        if role == "unused":
            continue
        ok_dtype = dtype in ("int8", "uint8") or (dtype == "int32" and role in ("bias", "param"))
        if not ok_dtype:
            non_int8.append(entry)
            problems.append(f"tensor {entry['name']!r} ({role}) is {dtype}; the Edge TPU needs int8/uint8")
        if any(d < 0 for d in sig):
            problems.append(f"tensor {entry['name']!r} has a dynamic shape {sig}")
        if role in ("activation", "input", "output") and len(shape) > 3 and any(d > 1 for d in shape[:-3]):
            problems.append(f"tensor {entry['name']!r} shape {shape}: only the 3 innermost dimensions may be > 1")
        if role == "activation" and t.isVariable:
            problems.append(f"tensor {entry['name']!r} is a variable; parameters must be compile-time constants")
    for o in ops:
        if o["edgetpu"] != "ok":
            problems.append(f"op {o['index']} {o['op']}: {o['edgetpu']}")

    n_ops = len(ops)
    mapped = first_bad if first_bad is not None else n_ops
    params = 0
    for i, t in enumerate(tensors):
        if roles.get(i) in ("weight", "bias") and is_const(i):
            params += int(np.prod(_dims(t))) if _dims(t) else 1
    return {
        "ops": ops,
        "tensors": tensor_list,
        "op_counts": _counts(o["op"] for o in ops),
        "params": params,
        "macs": int(macs),
        "all_int8": not non_int8,
        "non_int8_tensors": non_int8,
        "edgetpu": {
            "compatible": not problems,
            "problems": problems,
            "ops_total": n_ops,
            "ops_expected_on_tpu": mapped,
            "first_unmappable_op": None if first_bad is None else f"{first_bad}: {ops[first_bad]['op']}",
            "note": "the compiler maps ops in graph order up to the first unsupported one; the rest run on the CPU",
        },
    }


def require_full_integer(model_bytes: bytes, what: str = "the converted model") -> dict[str, Any]:
    """:func:`inspect_tflite`, raising :class:`ModelError` when any used tensor is not int8/uint8
    (int32 biases and constant parameters excepted). The TFLite converter itself does not always
    refuse: an op without an int8 kernel is kept in float between DEQUANTIZE/QUANTIZE."""
    from edge_fer.errors import ModelError

    info = inspect_tflite(model_bytes)
    if not info["all_int8"]:
        bad_idx = {t["index"] for t in info["non_int8_tensors"]}
        float_ops = sorted(
            {o["op"] for o in info["ops"] if any(t["index"] in bad_idx for t in o["inputs"] + o["outputs"])}
        )
        bad = ", ".join(f"{t['name'][:60]} ({t['dtype']})" for t in info["non_int8_tensors"][:2])
        raise ModelError(
            f"{what} is not fully integer: ops {', '.join(float_ops) or '?'} stay float (e.g. {bad}); "
            "replace those layers with int8-capable ones"
        )
    return info


def _counts(names: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return out


def _nonunit(shape: list[int]) -> int:
    return sum(1 for d in shape if d > 1)


def _op_reasons(
    opname: str, op: Any, ins: list, outs: list, graph_inputs: set, graph_outputs: set, const_value: Any
) -> list[str]:
    reasons: list[str] = []
    if opname not in EDGETPU_OPS:
        reasons.append("not a supported Edge TPU op")
        return reasons
    opts = op.builtinOptions
    if opname in _NO_FUSED_ACT and getattr(opts, "fusedActivationFunction", 0):
        reasons.append("fused activation not supported on this op")
    if opname in ("CONV_2D", "DEPTHWISE_CONV_2D") and opts is not None:
        if getattr(opts, "dilationWFactor", 1) != getattr(opts, "dilationHFactor", 1):
            reasons.append("different x and y dilation")
    if opname == "QUANTIZE":
        at_edge = any(t["index"] in graph_inputs for t in ins) or any(t["index"] in graph_outputs for t in outs)
        if not at_edge:
            reasons.append("QUANTIZE inside the graph (re-quantization between layers)")
    if opname == "SOFTMAX" and ins:
        shp = ins[0]["shape"]
        if _nonunit(shp) > 1 or int(np.prod(shp or [1])) > 16000:
            reasons.append(f"input {shp} is not 1-D with at most 16,000 elements")
    if opname == "FULLY_CONNECTED" and outs and _nonunit(outs[0]["shape"]) > 1:
        reasons.append(f"output {outs[0]['shape']} is not 1-D")
    if opname in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and len(ins) > 1:
        axes = const_value(ins[1]["index"])
        rank = len(ins[0]["shape"])
        if axes is None:
            reasons.append("reduction axes are not a constant")
        elif any(int(a) % max(rank, 1) == 0 for a in np.ravel(axes)):
            reasons.append("reduction over the batch dimension")
    for t in ins + outs:
        if t["dtype"] in ("float32", "float16", "float64", "bfloat16"):
            reasons.append(f"{t['role']} tensor is {t['dtype']}")
            break
    return reasons


def _op_macs(opname: str, op: Any, tensors: Any, ins: list, outs: list) -> int:
    """Multiply-accumulates of the conv/fully-connected ops (the rest is negligible)."""
    if not outs or len(ins) < 2:
        return 0
    out = outs[0]["shape"]
    w = ins[1]["shape"]
    n_out = int(np.prod(out)) if out else 0
    if opname == "CONV_2D" and len(w) == 4:  # w: (O, kh, kw, I)
        return n_out * w[1] * w[2] * w[3]
    if opname == "DEPTHWISE_CONV_2D" and len(w) == 4:  # w: (1, kh, kw, O)
        return n_out * w[1] * w[2]
    if opname == "FULLY_CONNECTED" and len(w) == 2:  # w: (O, I)
        return n_out * w[1]
    if opname == "TRANSPOSE_CONV" and len(ins) >= 3:  # inputs: output_shape, weights (O, kh, kw, I), input
        wt, x = ins[1]["shape"], ins[2]["shape"]
        if len(wt) == 4 and x:
            return int(np.prod(x)) * wt[0] * wt[1] * wt[2]
    return 0


def run_edgetpu_compiler(model_path: Path, out_dir: Path, timeout: float = 300.0) -> dict[str, Any]:
    """Run ``edgetpu_compiler`` on ``model_path`` when it is on PATH; keep ``*_edgetpu.tflite`` and
    its log in ``out_dir``. Returns what happened (never raises for a compiler failure)."""
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        return {"available": False, "message": COMPILER_MISSING}
    cmd = [exe, "-s", "-o", str(out_dir), str(model_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"available": True, "ran": False, "error": str(e), "command": cmd}
    stem = model_path.stem
    compiled = out_dir / f"{stem}_edgetpu.tflite"
    log_path = out_dir / f"{stem}_edgetpu.log"
    if not log_path.exists():  # the compiler writes its own log; keep stdout too
        log_path.write_text(proc.stdout + proc.stderr)
    else:
        with log_path.open("a") as f:
            f.write("\n--- edgetpu_compiler stdout/stderr ---\n" + proc.stdout + proc.stderr)
    return {
        "available": True,
        "ran": True,
        "command": cmd,
        "returncode": proc.returncode,
        "model": str(compiled) if compiled.exists() else None,
        "log": str(log_path),
        "summary": "\n".join(proc.stdout.strip().splitlines()[-12:]),
    }
