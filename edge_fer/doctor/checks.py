"""The rows of ``edge-fer doctor``: each check (backend, Edge TPU delegate, OpenCV, cameras) runs its
probe and says OK / WARN / FAIL / SKIP, with the fix for each failure."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_fer.doctor.installed import RUNTIME_DISTS, dist_version, importable
from edge_fer.doctor.probe import Probe, run_probe

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"


@dataclass
class Check:
    name: str
    status: str  # OK WARN FAIL SKIP
    detail: str
    fix: str = ""
    essential: bool = False  # a FAIL here means the default `edge-fer run` cannot work
    data: dict = field(default_factory=dict)


def cpuinfo_describes_arm() -> bool | None:
    """On aarch64: whether /proc/cpuinfo lists ARM cores (None: unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    return "CPU implementer" in text and "CPU part" in text


def backend_fix(name: str, probe: Probe) -> str:
    """What to do about a backend whose probe failed."""
    machine = platform.machine().lower()
    alt = (
        "install a fallback backend (pip install 'edge-fer[tflite-runtime]'; edge-fer run then uses the one "
        "that works, EDGE_FER_BACKEND=NAME forces one)"
    )
    if probe.status == "crashed" and name == "ai_edge_litert":
        if machine in ("aarch64", "arm64"):
            arm = cpuinfo_describes_arm()
            if arm is False or arm is None:
                what = (
                    "is unreadable" if arm is None else "does not list ARM cores (qemu-user passes the host's through)"
                )
                return (
                    f"/proc/cpuinfo {what}: ai-edge-litert 2.2 and later crash there while creating the "
                    "Interpreter. Run on the device itself with /proc visible (no systemd ProcSubset=pid), or "
                    "pip install 'ai-edge-litert<2.2' (2.1.6 works there), or " + alt
                )
        return f"pip install 'ai-edge-litert<2.2' (2.1.6 does not crash where 2.2+ did under emulation), or {alt}"
    if probe.status == "crashed":
        return f"reinstall or change the version of {RUNTIME_DISTS[name][0]}, or {alt}"
    if "ModelError" in str(probe.result.get("error", "")):  # the backend works; the model file does not load
        return "the model file is damaged, truncated or not a TFLite model: check --model (edge-fer run refuses it too)"
    if probe.status == "timeout":
        return "the machine may be overloaded (rerun with a longer --timeout), or reinstall the backend"
    if name == "tflite_runtime" and "_ARRAY_API" in str(probe.result.get("error", "")):
        return "tflite-runtime needs numpy<2: pip install 'numpy<2'"
    return f"reinstall {RUNTIME_DISTS[name][0]} (pip install --force-reinstall {RUNTIME_DISTS[name][0]})"


def backend_check(name: str, model: Path, timeout: float) -> tuple[Check, Probe | None]:
    row = f"backend {name}"
    dist = RUNTIME_DISTS[name][0]
    if not importable(name):
        fix = "pip install ai-edge-litert" if name == "ai_edge_litert" else ""
        return Check(row, SKIP, f"not installed ({dist})", fix), None
    p = run_probe("backend", {"backend": name, "model": str(model)}, timeout)
    r = p.result
    ver = r.get("version") or dist_version(*RUNTIME_DISTS[name]) or "?"
    if p.status == "ok":
        detail = (
            f"{dist} {ver}: model loaded in {r.get('load_ms')} ms, one inference {r.get('invoke_ms')} ms, "
            f"peak RSS {r.get('max_rss_mb')} MB"
        )
        if name == "tensorflow":
            detail += " (tf.lite: the slow fallback)"
        return Check(row, OK, detail, data={"probe": asdict(p)}), p
    if p.status == "missing":
        return Check(
            row,
            SKIP,
            f"not importable ({r.get('error')})",
            f"pip install --force-reinstall {dist}",
            data={"probe": asdict(p)},
        ), p
    return Check(row, FAIL, f"{dist} {ver} {p.describe_failure()}", backend_fix(name, p), data={"probe": asdict(p)}), p


def _v4l2_candidates() -> list[tuple[int, str, str]]:
    """(index, /dev/videoN, name) of the capture nodes worth opening; codec/ISP nodes left out."""
    out = []
    skip = ("codec", "isp", "hevc", "rpivid", "pispbe", "pisp", "rp1-cfe", "unicam", "bcm2835")
    for dev in sorted(Path("/dev").glob("video[0-9]*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        n = dev.name[5:]
        if not n.isdigit():
            continue
        sysd = Path("/sys/class/video4linux") / dev.name
        name = (sysd / "name").read_text().strip() if (sysd / "name").is_file() else "?"
        idx = (sysd / "index").read_text().strip() if (sysd / "index").is_file() else "0"
        if idx != "0" or any(s in name.lower() for s in skip):
            continue
        out.append((int(n), str(dev), name))
    return out


def camera_checks(timeout: float) -> list[Check]:
    checks = []
    cams = _v4l2_candidates() if sys.platform.startswith("linux") else []
    if not cams:
        checks.append(
            Check(
                "camera V4L2",
                SKIP,
                "no USB/V4L2 camera (/dev/video*) found",
                "only needed for --source 0: plug in a USB camera; the Pi camera module is --source picamera2",
            )
        )
    for idx, dev, name in cams[:4]:
        row = f"camera {dev}"
        if not os.access(dev, os.R_OK | os.W_OK):
            checks.append(
                Check(
                    row,
                    FAIL,
                    f"{name}: no read/write permission",
                    "add the user to the 'video' group (sudo usermod -aG video $USER, then log in again)",
                )
            )
            continue
        p = run_probe("camera", {"target": idx}, min(timeout, 20.0))
        if p.status == "ok":
            checks.append(
                Check(row, OK, f"{name}: {p.result.get('size')} frame via {p.result.get('decoder')} (--source {idx})")
            )
        elif p.status == "noframe":
            checks.append(
                Check(
                    row,
                    WARN,
                    f"{name}: opened, but no frame came",
                    "is another process using it (the edge-fer service)? stop it and retry",
                )
            )
        else:
            checks.append(
                Check(
                    row,
                    FAIL,
                    f"{name}: {p.describe_failure()}",
                    "check the cable and `v4l2-ctl --list-devices`; try another index",
                    data={"probe": asdict(p)},
                )
            )
    if not importable("picamera2"):
        checks.append(
            Check(
                "camera picamera2",
                SKIP,
                "picamera2 not importable",
                "only for the Pi camera module: sudo apt install python3-picamera2 and a venv made with "
                "--system-site-packages (deploy/install-pi.sh does both)",
            )
        )
        return checks
    p = run_probe("picamera2", {}, min(timeout, 30.0))
    if p.status == "ok":
        models = ", ".join(c.get("Model", "?") for c in p.result.get("cameras", []))
        checks.append(Check("camera picamera2", OK, f"libcamera sees: {models} (--source picamera2)"))
    elif p.status == "none":
        checks.append(
            Check(
                "camera picamera2",
                WARN,
                "picamera2 works but libcamera sees no camera",
                "check the ribbon cable and camera_auto_detect=1 in /boot/firmware/config.txt; "
                "`rpicam-hello --list-cameras`",
            )
        )
    else:
        checks.append(
            Check(
                "camera picamera2",
                FAIL,
                p.describe_failure(),
                "reinstall python3-picamera2 (apt) and keep numpy<2 in the venv (deploy/install-pi.sh)",
                data={"probe": asdict(p)},
            )
        )
    return checks


def opencv_checks(video: str | None, timeout: float) -> list[Check]:
    p = run_probe("opencv", {"video": video}, timeout)
    r = p.result
    fix_cv = "pip install --force-reinstall 'opencv-python-headless<5'"
    if p.status == "missing":
        return [Check("opencv video", FAIL, f"OpenCV not importable ({r.get('error')})", fix_cv, essential=True)]
    if p.status in ("crashed", "timeout", "failed"):
        return [Check("opencv video", FAIL, p.describe_failure(), fix_cv, essential=True, data={"probe": asdict(p)})]
    checks = []
    dec = f"{r.get('frames')} frames {r.get('size') or ''} decoded from {r.get('clip')}"
    dec += f" ({r.get('fourcc') or '?'} via {r.get('decoder') or '?'}; OpenCV {r.get('opencv')})"
    if p.status == "ok":
        checks.append(Check("opencv video", OK, dec, data={"probe": asdict(p)}))
    else:
        fix = (
            ("this OpenCV build cannot decode that file: convert it (ffmpeg -i in -c:v libx264 out.mp4) or " + fix_cv)
            if video
            else fix_cv
        )
        checks.append(
            Check("opencv video", FAIL, str(r.get("error") or dec), fix, essential=True, data={"probe": asdict(p)})
        )
    checks.append(detector_check(r.get("yunet") or {}, r.get("haar") or {}, str(r.get("opencv"))))
    h = r.get("haar") or {}
    if h.get("status") == "ok":
        checks.append(Check("opencv haar", OK, "Haar cascade loads (--detector haar)"))
    else:
        yunet_ok = (r.get("yunet") or {}).get("status") in ("ok", "changed")
        checks.append(
            Check(
                "opencv haar",
                WARN if yunet_ok else FAIL,
                f"no usable Haar cascade ({h.get('error') or h.get('path')})",
                "only --detector haar needs it: pip install 'opencv-python-headless<5' (OpenCV 5 has no Haar cascades)",
                essential=not yunet_ok,
            )
        )
    return checks


def detector_check(y: dict, haar: dict, opencv: str) -> Check:
    """The default detector: YuNet's ``cv2.FaceDetectorYN`` and the model shipped in the package."""
    fix_model = "reinstall edge-fer (pip install --force-reinstall edge-fer), or 'edge-fer models pull yunet'"
    status = y.get("status")
    if y.get("pulled_error") and status in ("ok", "changed"):
        return Check(
            "detector yunet",
            WARN,
            f"the YuNet model pulled into the cache cannot be used ({y['pulled_error']}): edge-fer run falls back "
            f"to the shipped model, which loads",
            "edge-fer models pull yunet --force (fetch it again), or edge-fer models remove yunet",
            data={"yunet": y},
        )
    if y.get("pulled_path") and status in ("ok", "changed"):
        return Check(
            "detector yunet",
            OK,
            f"cv2.FaceDetectorYN present (OpenCV {opencv}); the model pulled into the cache loads "
            f"({y['pulled_path']}): the default detector uses it",
            data={"yunet": y},
        )
    if status == "ok":
        return Check(
            "detector yunet",
            OK,
            f"cv2.FaceDetectorYN present (OpenCV {opencv}); the shipped model loads ({y.get('path')}, "
            f"{y.get('bytes')} bytes, SHA-256 as pinned): the default detector",
            data={"yunet": y},
        )
    if status == "changed":
        return Check(
            "detector yunet",
            WARN,
            f"the shipped model {y.get('path')} loads but is not the released file (SHA-256 {y.get('sha256')})",
            fix_model,
            data={"yunet": y},
        )
    if status == "missing":
        haar_ok = haar.get("status") == "ok"
        return Check(
            "detector yunet",
            WARN if haar_ok else FAIL,
            f"OpenCV {opencv} has no cv2.FaceDetectorYN: "
            + ("edge-fer run falls back to the Haar detector" if haar_ok else "and no Haar cascade either"),
            "pip install 'opencv-python-headless>=4.8,<5' (YuNet needs OpenCV 4.8+)",
            essential=not haar_ok,
            data={"yunet": y},
        )
    return Check(
        "detector yunet",
        FAIL,
        str(y.get("error") or f"the shipped YuNet model is unusable ({y.get('path')})"),
        fix_model,
        essential=True,
        data={"yunet": y},
    )


def edgetpu_check(backend: str | None, timeout: float) -> Check:
    """The Edge TPU delegate, loaded through ``backend`` (the one the runtime will use)."""
    if backend is None:
        return Check("edgetpu delegate", SKIP, "no working interpreter backend to load it with")
    p = run_probe("edgetpu", {"backend": backend}, timeout)
    lib = p.result.get("library", "libedgetpu")
    if p.status == "ok":
        return Check("edgetpu delegate", OK, f"{lib} loaded and found an Edge TPU (--device auto uses it)")
    if p.status == "absent":
        return Check(
            "edgetpu delegate",
            SKIP,
            f"{lib} not installed (only needed for a Coral Edge TPU)",
            "for a Coral: sudo ./deploy/install-pi.sh --coral",
        )
    if p.status == "error":
        return Check(
            "edgetpu delegate",
            WARN,
            f"{lib} is installed but the delegate did not load: {p.result.get('error')}",
            "plug in the Coral (replug once after installing the udev rules; lsusb shows "
            "1a6e:089a or 18d1:9302) and check the user is in 'plugdev'; or --device cpu",
        )
    return Check(
        "edgetpu delegate",
        FAIL,
        p.describe_failure(),
        "reinstall libedgetpu1-std (a version matching the runtime), or run with --device cpu",
        data={"probe": asdict(p)},
    )
