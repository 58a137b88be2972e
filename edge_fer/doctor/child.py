"""The child side of a probe: ``python -c ... edge_fer.doctor.child.main``. Each check that loads
native code runs here, so a native crash kills this process, not the caller. It prints
``@edge-fer-probe stage NAME`` before each risky step and ``@edge-fer-probe result {json}`` at the
end; :func:`edge_fer.doctor.probe.run_probe` reads them."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from edge_fer.doctor.installed import RUNTIME_DISTS, dist_version
from edge_fer.fsutil import opencv_path, path_text

MARK = "@edge-fer-probe "


def _say(kind: str, payload: Any) -> None:
    sys.stdout.write(f"{MARK}{kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _stage(name: str) -> None:
    _say("stage", name)


def _max_rss_mb() -> float | None:
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # KiB on Linux
    except Exception:  # pragma: no cover - not on Linux
        return None


def fixed_input(shape: Any, dtype: Any) -> Any:
    """A deterministic model input (no RNG: the same bytes on every machine and numpy version)."""
    import numpy as np

    n = int(np.prod(shape))
    ramp = (np.arange(n, dtype=np.int64) * 37 + 11) % 256
    dt = np.dtype(dtype)
    if dt == np.int8:
        x = (ramp - 128).astype(np.int8)
    elif dt == np.uint8:
        x = ramp.astype(np.uint8)
    else:
        x = (ramp / 255.0).astype(dt)
    return x.reshape(tuple(int(s) for s in shape))


def _probe_backend(a: dict) -> dict:
    import numpy as np

    from edge_fer.interpreter import _import_backend, load_interpreter

    name = a["backend"]
    _stage("import")
    t0 = time.perf_counter()
    try:
        be = _import_backend(name)
    except ImportError as e:
        return {"status": "missing", "error": f"{type(e).__name__}: {e}"}
    t_import = time.perf_counter() - t0
    out: dict[str, Any] = {
        "version": dist_version(*RUNTIME_DISTS.get(name, ())),
        "numpy": np.__version__,
        "import_ms": round(t_import * 1000, 1),
    }
    data = Path(a["model"]).read_bytes()
    _stage("load")
    t0 = time.perf_counter()
    try:
        loaded = load_interpreter(model_content=data, device="cpu", threads=a.get("threads"), backend=be)
    except Exception as e:  # ModelError and whatever the backend raises
        return {**out, "status": "error", "error": f"{type(e).__name__}: {e}"}
    out["load_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    interp = loaded.interpreter
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    x = fixed_input(inp["shape"], inp["dtype"])
    _stage("invoke")
    try:
        interp.set_tensor(inp["index"], x)
        t0 = time.perf_counter()
        interp.invoke()
        out["invoke_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        y = interp.get_tensor(outp["index"])
    except Exception as e:
        return {**out, "status": "error", "error": f"{type(e).__name__}: {e}"}
    out.update(
        status="ok",
        input=f"{list(map(int, inp['shape']))} {np.dtype(inp['dtype']).name}",
        output=np.asarray(y).reshape(-1).tolist(),
        output_sha256=hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()[:16],
        max_rss_mb=_max_rss_mb(),
    )
    return out


def _probe_edgetpu(a: dict) -> dict:
    from edge_fer.interpreter import _import_backend, edgetpu_library

    lib = edgetpu_library()
    _stage("import")
    try:
        be = _import_backend(a["backend"])
    except ImportError as e:
        return {"status": "error", "error": f"{a['backend']}: {e}", "library": lib}
    if be.load_delegate is None:
        return {"status": "error", "error": f"the {be.name} backend cannot load delegates", "library": lib}
    _stage("dlopen")
    try:
        import ctypes

        ctypes.CDLL(lib)
    except OSError as e:
        return {"status": "absent", "error": str(e), "library": lib}
    _stage("delegate")
    try:
        be.load_delegate(lib)
    except Exception as e:
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "library": lib}
    return {"status": "ok", "library": lib}


def _probe_opencv(a: dict) -> dict:
    import tempfile

    _stage("cv2")
    try:
        import cv2
        import numpy as np
    except ImportError as e:
        return {"status": "missing", "error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = {"opencv": cv2.__version__}
    try:
        out["backends"] = sorted({cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getBackends()})
    except Exception:  # pragma: no cover - very old OpenCV
        out["backends"] = []
    # the default detector's cascade
    _stage("haar")
    try:
        from edge_fer.detect.haar import DEFAULT_CASCADE, cascade_dir

        path = cascade_dir() / DEFAULT_CASCADE
        ok = path.is_file() and not cv2.CascadeClassifier(str(path)).empty()
        out["haar"] = {"status": "ok" if ok else "error", "path": str(path)}
    except Exception as e:  # no cv2.data / no CascadeClassifier (OpenCV 5)
        out["haar"] = {"status": "error", "error": f"{type(e).__name__}: {e}"}
    _stage("yunet")
    out["yunet"] = _yunet_status()
    video = a.get("video")
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-fer-doctor-"))
        if not video:
            _stage("encode")
            video = str(Path(tmp) / "probe.mp4")
            w = cv2.VideoWriter(video, cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 48))
            if not w.isOpened():
                video = str(Path(tmp) / "probe.avi")
                w = cv2.VideoWriter(video, cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
            for i in range(10):
                w.write(np.full((48, 64, 3), i * 20, np.uint8))
            w.release()
            out["clip"] = "generated " + ("MPEG-4 (mp4v)" if video.endswith(".mp4") else "MJPG") + " clip"
        else:
            out["clip"] = path_text(video)
        _stage("decode")
        cap = cv2.VideoCapture(stack.enter_context(opencv_path(video)))  # a name that is not UTF-8: a link
        n, size = 0, None
        try:
            if cap.isOpened():
                out["decoder"] = cap.getBackendName()
                codec = int(cap.get(cv2.CAP_PROP_FOURCC))
                fourcc = "".join(chr((codec >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00")
                out["fourcc"] = fourcc if codec else None
                while n < int(a.get("frames", 30)):
                    ok, img = cap.read()
                    if not ok or img is None:
                        break
                    n, size = n + 1, f"{img.shape[1]}x{img.shape[0]}"
        finally:
            cap.release()
    out.update(frames=n, size=size, status="ok" if n else "error")
    if not n:
        out["error"] = f"OpenCV decoded no frame from {out['clip']}"
    return out


def _yunet_status() -> dict[str, Any]:
    """The default detector: ``cv2.FaceDetectorYN`` present, the shipped model's bytes as pinned, and
    the detector loading it (the runtime's own class)."""
    import cv2

    from edge_fer.models import YUNET_SHA256, shipped_yunet

    path = shipped_yunet()
    out: dict[str, Any] = {"face_detector_yn": hasattr(cv2, "FaceDetectorYN"), "path": str(path)}
    if path.is_file():
        from edge_fer.models_store import sha256_file

        out["sha256"] = sha256_file(path)
        out["sha256_ok"] = out["sha256"] == YUNET_SHA256
        out["bytes"] = path.stat().st_size
    if not out["face_detector_yn"]:
        out["status"] = "missing"
        return out
    try:
        from edge_fer.detect.yunet import YuNetDetector, check_model_file

        check_model_file(path, shipped=True)  # what is wrong, said of the shipped file, with the fix
        YuNetDetector(model=str(path))
    except Exception as e:  # ModelError naming what is wrong
        bad = "" if out.get("sha256_ok", True) else f"; its SHA-256 is not the release's ({out['sha256'][:12]}...)"
        out.update(status="error", error=f"the shipped detector cannot be used: {e}{bad}")
        return out
    out["status"] = "ok" if out.get("sha256_ok") else "changed"
    _pulled_yunet_status(out)
    return out


def _pulled_yunet_status(out: dict[str, Any]) -> None:
    """A copy pulled into the cache is what ``edge-fer run`` prefers: whether it loads
    (``pulled_path``, and ``pulled_error`` when it does not: run then falls back to the shipped one)."""
    from edge_fer.detect.yunet import default_model, load_net
    from edge_fer.errors import ModelError

    path, origin = default_model()
    if origin != "pulled":
        return
    out["pulled_path"] = str(path)
    try:
        load_net(path, (0.6, 0.3, 50))
    except ModelError as e:
        out["pulled_error"] = str(e)


def _probe_camera(a: dict) -> dict:
    _stage("cv2")
    import cv2

    target = a["target"]
    _stage("open")
    cap = cv2.VideoCapture(target)
    try:
        if not cap.isOpened():
            return {"status": "error", "error": f"OpenCV cannot open camera {target!r}"}
        _stage("read")
        ok, img = cap.read()
        if not ok or img is None:
            return {"status": "noframe", "error": "opened, but no frame came", "decoder": cap.getBackendName()}
        return {"status": "ok", "size": f"{img.shape[1]}x{img.shape[0]}", "decoder": cap.getBackendName()}
    finally:
        cap.release()


def _probe_picamera2(a: dict) -> dict:
    _stage("picamera2")
    try:
        from picamera2 import Picamera2
    except ImportError as e:
        return {"status": "missing", "error": f"{type(e).__name__}: {e}"}
    _stage("list")
    cams = Picamera2.global_camera_info()
    return {
        "status": "ok" if cams else "none",
        "cameras": [{k: str(v) for k, v in c.items() if k in ("Model", "Location", "Id", "Num")} for c in cams],
    }


_PROBES = {
    "backend": _probe_backend,
    "edgetpu": _probe_edgetpu,
    "opencv": _probe_opencv,
    "camera": _probe_camera,
    "picamera2": _probe_picamera2,
}


def main(argv: list[str]) -> int:
    kind, args = argv[0], json.loads(argv[1])
    try:  # a crash is an expected outcome here: no core dump (slow under emulation, litter everywhere)
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on Linux
        pass
    try:
        result = _PROBES[kind](args)
    except Exception as e:
        result = {"status": "error", "error": f"{type(e).__name__}: {e}"}
    _say("result", result)
    _stage("exit")  # a crash from here on is in the teardown (interpreter destructors)
    return 0
