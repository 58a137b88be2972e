#!/usr/bin/env python3
"""arm64 smoke test: the edge-fer runtime on a Pi-like userland under emulation.

Raspberry Pi OS 64-bit is Debian Bookworm arm64 with Python 3.11. This script builds that userland
with mmdebstrap (cached), installs the runtime's dependencies for aarch64 the way
deploy/install-pi.sh resolves them (the project's dependencies and install-pi.sh's extras and pins,
numpy<2 included, markers evaluated by the arm64 Python itself), and runs the checkout under
``qemu-aarch64-static -cpu cortex-a72`` (Pi 4) and ``-cpu cortex-a76`` (Pi 5):

  doctor      edge-fer doctor on the shared video: which backend and delegate load, model output
  run-video   edge-fer run on the shared video (120 frames), TensorFlow blocked and checked absent
  run-images  edge-fer run on the shared images, events compared with the same run on this machine
  bench       edge-fer bench --model-only
  crops       the model's raw int8 outputs on the same face crops, compared with this machine's
  crash       (cortex-a72 only) the crash class: /proc/cpuinfo without ARM cores, as qemu-user gives
              by default. LiteRT 2.2+ dies with SIGSEGV there; doctor must say so with a fix and
              edge-fer run must end with one error line, never a bare "Segmentation fault"

qemu-user passes the host's /proc/cpuinfo (x86) through to the guest. A Pi's kernel describes its
ARM cores there, so the emulated Pi gets a Pi 4 / Pi 5 /proc/cpuinfo (a file in the rootfs, which
qemu's -L prefix serves first) for every step except "crash".

Timings under emulation are not a Pi's speed; they are printed only as the cost of this script.

    python tests/arm64/smoke.py                        # CI: both CPUs, the resolved LiteRT version
    python tests/arm64/smoke.py --litert 2.1.6 --litert 2.3.0 --matrix
                                                       # doctor's verdict per version x CPU x cpuinfo

Exit codes: 0 passed (or skipped: the reason is printed, e.g. qemu/mmdebstrap missing or no
network), 1 a check failed, ``--skip-code`` on a skip when given. ``--strict`` (what CI runs): a skip,
whole or of one step (no shared data, no x86-64 reference), is a failure, its reason printed. Caches under .cache/arm64
(gitignored): the rootfs (~80 MB), the aarch64 wheels and one site folder per requirement set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITE, ARCH = "bookworm", "arm64"
# Python 3.11 as on Raspberry Pi OS Bookworm; libglib2.0-0 and libstdc++6 for the OpenCV wheel
INCLUDE = ("python3.11", "libglib2.0-0", "libstdc++6")
PLATFORMS = ("manylinux_2_17_aarch64", "manylinux2014_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64")
CPUS = ("cortex-a72", "cortex-a76")
BOARDS = {"cortex-a72": "Raspberry Pi 4", "cortex-a76": "Raspberry Pi 5"}
BLOCK_TF = "import sys\nfor m in ('tensorflow', 'tensorflow.lite', 'keras', 'tf_keras'):\n    sys.modules[m] = None\n"


class Skip(Exception):
    pass


def log(msg: str) -> None:
    print(f"arm64 smoke: {msg}", flush=True)


def sh(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace", **kw)


def _no_core_dumps() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # qemu writes a core file for each guest crash otherwise


def tail(text: str, n: int = 8) -> str:
    return "\n".join((text or "").strip().splitlines()[-n:])


# --------------------------------------------------------------------------- Pi /proc/cpuinfo


def _present_cpus() -> list[int]:
    try:
        spec = Path("/sys/devices/system/cpu/present").read_text().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    out: list[int] = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out or [0]


def pi_cpuinfo(cpu: str) -> str:
    """/proc/cpuinfo as a Pi 4 (Cortex-A72) or Pi 5 (Cortex-A76) kernel writes it, one entry per
    host CPU (the guest sees the host's /sys/devices/system/cpu)."""
    if cpu == "cortex-a72":
        feats, variant, part, rev = "fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", 3
        tail_ = "Revision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"
    elif cpu == "cortex-a76":
        feats = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
        variant, part, rev = "0x4", "0xd0b", 1
        tail_ = "Revision\t: c04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
    else:
        raise ValueError(f"no Pi /proc/cpuinfo for {cpu}")
    entries = [
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {feats}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {rev}\n"
        for i in _present_cpus()
    ]
    return "\n".join(entries) + "\n" + tail_


def set_cpuinfo(root: Path, cpu: str | None) -> None:
    """A Pi's /proc/cpuinfo in the rootfs (qemu -L serves it), or none: the host's passes through."""
    f = root / "proc" / "cpuinfo"
    if cpu is None:
        f.unlink(missing_ok=True)
        return
    f.parent.mkdir(exist_ok=True)
    f.unlink(missing_ok=True)  # never write through a hard link into another copy of the rootfs
    f.write_text(pi_cpuinfo(cpu))


# --------------------------------------------------------------------------- install-pi.sh's resolution


def installed_layout(work: Path) -> Path:
    """The checkout arranged as pip installs it (pyproject's ``package-dir``: ``train/`` is
    ``edge_fer.train``, ``convert/`` is ``edge_fer.convert``), made of symlinks under ``work``: the guest
    imports exactly the package a Pi gets, from this checkout's files."""
    import tomllib

    root = work / "site-edge-fer"
    if root.exists():
        return root
    dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    pkg = root / "edge_fer"
    pkg.mkdir(parents=True)
    for entry in (REPO / dirs["edge_fer"]).iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, src in dirs.items():
        if name != "edge_fer":
            (root / name.replace(".", "/")).symlink_to(REPO / src)
    return root


def installer_spec(path: Path = REPO / "deploy" / "install-pi.sh") -> tuple[list[str], list[str]]:
    """(extras, extra requirements) of install-pi.sh's pip install line, e.g. (["mqtt"], ["numpy<2"])."""
    text = path.read_text()
    m = re.search(r'^EXTRAS="([^"]*)"', text, re.M)
    extras = [e.strip() for e in (m.group(1) if m else "").split(",") if e.strip()]
    pins: list[str] = []
    for line in text.splitlines():
        if re.search(r"pip\"? install", line) and "$pip_spec" in line:
            toks = shlex.split(line.strip().replace('"$pip_spec"', "PIP_SPEC"))
            if "PIP_SPEC" in toks:
                pins = [
                    t for t in toks[toks.index("PIP_SPEC") + 1 :] if t and t[0] not in "-$" and re.match(r"[A-Za-z]", t)
                ]
            break
    return extras, pins


RESOLVE = r"""
import json, sys, tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
spec = json.loads(sys.argv[1])
proj = tomllib.load(open(spec["pyproject"], "rb"))["project"]
reqs = list(proj["dependencies"])
for e in spec["extras"]:
    reqs += proj.get("optional-dependencies", {}).get(e, [])
reqs += spec["pins"]
out = []
for r in reqs:
    q = Requirement(r)
    if q.marker is not None and not q.marker.evaluate():
        continue
    q.marker = None
    name = canonicalize_name(q.name)
    if name in spec["override"]:
        q = Requirement(spec["override"][name])
    out.append(str(q))
print(json.dumps(out))
"""

VERIFY = r"""
import json, sys
from importlib.metadata import version, PackageNotFoundError
from packaging.requirements import Requirement
out, bad = {}, []
for r in json.loads(sys.argv[1]):
    q = Requirement(r)
    try:
        v = version(q.name)
    except PackageNotFoundError:
        bad.append(f"{q.name} not installed"); continue
    out[q.name] = v
    if not q.specifier.contains(v, prereleases=True):
        bad.append(f"{q.name} {v} does not satisfy {q}")
import platform
print(json.dumps({"versions": out, "bad": bad, "machine": platform.machine(), "python": platform.python_version()}))
"""


# --------------------------------------------------------------------------- host-side helpers (x86-64)

CROPS = r"""
import json, sys
from pathlib import Path
import cv2, numpy as np
from edge_fer.classify import Classifier
from edge_fer.detect import create_detector
clf = Classifier.from_file(None, device="cpu")
det = create_detector()  # the default detector: YuNet, the model shipped in the package
batches = []
imgs, video, nframes = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
frames = [cv2.imread(p) for p in imgs]
if video:
    cap = cv2.VideoCapture(video)
    for _ in range(nframes):
        ok, f = cap.read()
        if not ok: break
        frames.append(f)
for f in frames:
    if f is None: continue
    gray = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
    boxes = [tuple(int(v) for v in f.box) for f in det.detect(gray)]
    if boxes:
        batches.append(clf.prepare(gray, boxes))
x = np.concatenate(batches) if batches else np.zeros((0, 48, 48, 1), np.int8)
np.save(sys.argv[4], x)
print(len(x))
"""

RAW = r"""
import sys
import numpy as np
from edge_fer.classify import default_model_path
from edge_fer.interpreter import load_interpreter
x = np.load(sys.argv[1])
li = load_interpreter(model_path=str(default_model_path()), device="cpu")
it = li.interpreter
i, o = it.get_input_details()[0], it.get_output_details()[0]
ys = []
for k in range(len(x)):
    it.set_tensor(i["index"], x[k:k + 1]); it.invoke(); ys.append(it.get_tensor(o["index"]).copy())
y = np.concatenate(ys) if ys else np.zeros((0, 7), np.int8)
np.save(sys.argv[2], y)
print(li.backend, len(y), y.dtype)
"""


def _events(stdout: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and "type" in e:
            out.append(e)
    return out


def _event_key(e: dict) -> tuple:
    return (e.get("type"), e.get("frame"), e.get("track_id"), e.get("label"), tuple(e.get("box") or ()))


# --------------------------------------------------------------------------- the smoke test


class Smoke:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.cache = Path(a.cache).resolve()
        self.work = Path(tempfile.mkdtemp(prefix="edge-fer-arm64-"))
        self.results: list[dict] = []
        self.failed = False
        self.qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
        self.data = (
            Path(a.data) if a.data else Path(os.environ.get("EDGE_FER_SHARED_DATA", REPO.parent / "shared" / "data"))
        )
        self.report: dict = {"cpus": list(a.cpu), "steps": self.results}

    # -- bookkeeping
    def not_run(self, step: str, reason: str) -> None:
        """A step that cannot run here: SKIP, or FAIL under --strict."""
        self.record(step, None, False if self.a.strict else None, f"not run: {reason}", 0)

    def record(self, step: str, cpu: str | None, ok: bool | None, detail: str, secs: float, **extra) -> None:
        status = "PASS" if ok else ("SKIP" if ok is None else "FAIL")
        self.results.append(
            {"step": step, "cpu": cpu, "status": status, "detail": detail, "seconds": round(secs, 1), **extra}
        )
        log(f"{status} {step}{' [' + cpu + ']' if cpu else ''} ({secs:.0f} s): {detail}")
        if ok is False:
            self.failed = True

    # -- setup
    def check_tools(self) -> None:
        if not sys.platform.startswith("linux"):
            raise Skip("needs Linux (qemu-user)")
        if not self.qemu:
            raise Skip("qemu-aarch64-static not found (apt-get install qemu-user-static)")
        if not shutil.which("mmdebstrap"):
            raise Skip("mmdebstrap not found (apt-get install mmdebstrap)")

    def rootfs(self) -> Path:
        key = hashlib.sha256(json.dumps([SUITE, ARCH, "extract", INCLUDE]).encode()).hexdigest()[:12]
        root = self.cache / f"rootfs-{SUITE}-{ARCH}-{key}"
        if (root / ".complete").is_file():
            return root
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        log(f"building the {SUITE} {ARCH} rootfs (mmdebstrap, cached in {root})")
        try:
            cp = sh(
                [
                    "mmdebstrap",
                    f"--arch={ARCH}",
                    "--variant=extract",
                    "--include=" + ",".join(INCLUDE),
                    SUITE,
                    str(root),
                ],
                timeout=600,
            )
        except subprocess.TimeoutExpired:
            raise Skip("mmdebstrap took more than 10 minutes (mirror unreachable?)") from None
        if cp.returncode != 0 or not (root / "usr/bin/python3.11").exists():
            shutil.rmtree(root, ignore_errors=True)
            raise Skip(f"mmdebstrap failed (exit {cp.returncode}; no network, or not root?): {tail(cp.stderr, 3)}")
        (root / ".complete").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
        self.report["rootfs_build_s"] = round(time.monotonic() - t0, 1)
        return root

    def pip(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return sh([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], timeout=timeout)

    def platform_flags(self) -> list[str]:
        flags = [
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--abi",
            "abi3",
            "--abi",
            "none",
        ]
        for p in PLATFORMS:
            flags += ["--platform", p]
        return flags + ["--platform", "any"]

    def tool_path(self) -> Path:
        """A pure-Python 'packaging' wheel for the arm64 Python (importable as a zip)."""
        d = self.cache / "tools"
        have = sorted(d.glob("packaging-*.whl"))
        if have:
            return have[-1]
        cp = self.pip("download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(d), "packaging")
        have = sorted(d.glob("packaging-*.whl"))
        if cp.returncode != 0 or not have:
            raise Skip(f"cannot download the 'packaging' wheel (no network?): {tail(cp.stderr, 3)}")
        return have[-1]

    def guest(
        self,
        root: Path,
        cpu: str,
        argv: list[str],
        *,
        site: Path | list[Path] | None = None,
        timeout: float = 300,
        env: dict | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """Run the arm64 Python under qemu with the checkout (and ``site``) on its path."""
        e = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EDGE_FER_", "VIRTUAL_ENV"))}
        paths = [str(p) for p in (site if isinstance(site, list) else [site] if site else [])]
        e.update(
            PYTHONPATH=os.pathsep.join([*paths, str(installed_layout(self.work))]),
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
            EDGE_FER_PROBE_WRAPPER=shlex.join([self.qemu, "-cpu", cpu, "-L", str(root)]),
            EDGE_FER_CACHE_DIR=str(self.work / f"cache-{cpu}"),
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        e.update(env or {})
        return sh(
            [self.qemu, "-cpu", cpu, "-L", str(root), str(root / "usr/bin/python3.11"), *argv],
            timeout=timeout,
            env=e,
            cwd=str(cwd or self.work),
            preexec_fn=_no_core_dumps,
        )

    def resolve(self, root: Path, litert: str | None) -> tuple[list[str], Path]:
        extras, pins = installer_spec()
        if not pins:
            log("warning: could not read the extra pins of deploy/install-pi.sh's pip line; using numpy<2")
            pins = ["numpy<2"]
        self.report["installer"] = {"extras": extras, "pins": pins}
        spec = {
            "pyproject": str(REPO / "pyproject.toml"),
            "extras": extras,
            "pins": pins,
            "override": {"ai-edge-litert": f"ai-edge-litert=={litert}"} if litert else {},
        }
        cp = self.guest(root, CPUS[0], ["-c", RESOLVE, json.dumps(spec)], site=self.tool_path(), timeout=180)
        if cp.returncode != 0:
            raise RuntimeError(f"resolving the requirements on arm64 failed: {tail(cp.stderr)}")
        reqs = json.loads(cp.stdout.strip().splitlines()[-1])
        key = hashlib.sha256(json.dumps([reqs, PLATFORMS]).encode()).hexdigest()[:12]
        wheels = self.cache / "wheels"
        stamp = wheels / f".resolved-{key}"
        if not stamp.is_file():
            log("downloading aarch64 wheels: " + " ".join(reqs))
            try:
                cp = self.pip(
                    "download", "-q", "--progress-bar", "off", "-d", str(wheels), *self.platform_flags(), *reqs
                )
            except subprocess.TimeoutExpired:
                raise Skip("downloading the aarch64 wheels took more than 10 minutes") from None
            if cp.returncode != 0:
                raise Skip(
                    f"cannot download the aarch64 wheels (no network, or no wheel for {reqs}): {tail(cp.stderr, 4)}"
                )
            stamp.write_text("\n".join(reqs) + "\n")
        site = self.cache / f"site-{key}"
        if not (site / ".complete").is_file():
            shutil.rmtree(site, ignore_errors=True)
            cp = self.pip(
                "install",
                "-q",
                "--no-index",
                "--find-links",
                str(wheels),
                "--target",
                str(site),
                *self.platform_flags(),
                *reqs,
            )
            if cp.returncode != 0 or not any(site.glob("ai_edge_litert*")):
                raise RuntimeError(f"installing the aarch64 wheels into {site} failed: {tail(cp.stderr)}")
            (site / ".complete").write_text("\n".join(reqs) + "\n")
        return reqs, site

    def verify_install(self, root: Path, site: Path, reqs: list[str]) -> dict:
        cp = self.guest(root, CPUS[0], ["-c", VERIFY, json.dumps(reqs)], site=[site, self.tool_path()], timeout=180)
        if cp.returncode != 0:
            raise RuntimeError(f"checking the installed versions failed: {tail(cp.stderr)}")
        return json.loads(cp.stdout.strip().splitlines()[-1])

    # -- steps
    def py_main(self, argv: list[str], block_tf: bool = False) -> list[str]:
        code = (BLOCK_TF if block_tf else "import sys\n") + (
            "from edge_fer.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras') and sys.modules[m] is not None]\n"
            "print('@tf-modules', len(loaded), file=sys.stderr)\n"
            "sys.exit(rc)\n"
        )
        return ["-c", code, *argv]

    def step_doctor(self, root: Path, site: Path, cpu: str, video: Path | None) -> dict | None:
        t0 = time.monotonic()
        j = self.work / f"doctor-{cpu}.json"
        argv = ["doctor", "--no-camera", "--json", str(j)] + (["--video", str(video)] if video else [])
        cp = self.guest(root, cpu, self.py_main(argv), site=site, timeout=300)
        secs = time.monotonic() - t0
        print(cp.stdout.rstrip())
        if cp.returncode != 0 or not j.is_file():
            self.record("doctor", cpu, False, f"exit {cp.returncode}: {tail(cp.stderr + cp.stdout, 4)}", secs)
            return None
        rep = json.loads(j.read_text())
        row = {c["name"]: c for c in rep["checks"]}
        lr = row.get("backend ai_edge_litert", {})
        probe = (lr.get("data") or {}).get("probe") or {}
        res = probe.get("result") or {}
        det = row.get("detector yunet", {})
        ok = (
            rep["backend"] == "ai_edge_litert"
            and row.get("opencv video", {}).get("status") == "OK"
            and det.get("status") == "OK"  # cv2.FaceDetectorYN and the shipped YuNet model load
        )
        detail = f"verdict {rep['verdict']}: {rep['summary']}; detector yunet {det.get('status')}"
        x86 = self.report.get("x86_probe") or {}
        if x86.get("output") is not None and res.get("output") is not None:
            diff = max(abs(int(p) - int(q)) for p, q in zip(res["output"], x86["output"]))
            detail += (
                f"; output on the fixed input {'identical to' if diff == 0 else f'{diff} step(s) from'} x86-64's; "
                f"peak RSS {res.get('max_rss_mb')} MB under qemu (emulator included) vs {x86.get('max_rss_mb')} MB "
                "native x86-64"
            )
        self.record(
            "doctor",
            cpu,
            ok,
            detail,
            secs,
            backend=rep["backend"],
            litert=res.get("version"),
            output_sha256=res.get("output_sha256"),
            output=res.get("output"),
            rss_mb_under_qemu=res.get("max_rss_mb"),
            edgetpu=row.get("edgetpu delegate", {}).get("detail"),
            opencv=row.get("opencv video", {}).get("detail"),
            detector=det.get("detail"),
        )
        return rep

    def step_run_video(self, root: Path, site: Path, cpu: str, video: Path) -> None:
        t0 = time.monotonic()
        cp = self.guest(
            root,
            cpu,
            self.py_main(["run", "--source", str(video), "--max-frames", str(self.a.frames)], block_tf=True),
            site=site,
            timeout=600,
        )
        secs = time.monotonic() - t0
        ev = _events(cp.stdout)
        tf = re.search(r"@tf-modules (\d+)", cp.stderr)
        frames = re.search(r"stopped after (\d+) frames", cp.stderr)
        used = re.search(r"detector (\w+) \(", cp.stderr)  # the pipeline's start-up line
        ok = cp.returncode == 0 and bool(ev) and tf is not None and tf.group(1) == "0"
        ok = ok and used is not None and used.group(1) == "yunet"  # the default detector, end to end
        detail = (
            f"exit {cp.returncode}, detector {used.group(1) if used else '?'}, "
            f"{frames.group(1) if frames else '?'} frames, {len(ev)} events "
            f"({', '.join(sorted({e['type'] for e in ev}))}), TensorFlow modules loaded: {tf.group(1) if tf else '?'}"
        )
        if not ok:
            detail += ": " + tail(cp.stderr, 4)
        self.record("run-video", cpu, ok, detail, secs, events=len(ev))

    def step_run_images(self, root: Path, site: Path, cpu: str, images: Path, host_events: list[dict] | None) -> None:
        t0 = time.monotonic()
        cp = self.guest(
            root, cpu, self.py_main(["run", "--source", str(images)], block_tf=True), site=site, timeout=300
        )
        secs = time.monotonic() - t0
        ev = _events(cp.stdout)
        ok = cp.returncode == 0 and bool(ev)
        detail = (
            f"exit {cp.returncode}, {len(ev)} events, labels {sorted(e.get('label') for e in ev if e.get('label'))}"
        )
        same = None
        if host_events is not None:
            same = [_event_key(e) for e in ev] == [_event_key(e) for e in host_events]
            diff = max(
                (
                    abs(a - b)
                    for e1, e2 in zip(ev, host_events)
                    for a, b in zip((e1.get("scores") or {}).values(), (e2.get("scores") or {}).values())
                ),
                default=0.0,
            )
            detail += (
                f"; x86-64 run: {'same' if same else 'DIFFERENT'} events (type, frame, label, box), "
                f"max score difference {diff:.4f}"
            )
        if not ok:
            detail += ": " + tail(cp.stderr, 4)
        self.record("run-images", cpu, ok, detail, secs, same_as_x86=same)

    def step_bench(self, root: Path, site: Path, cpu: str) -> None:
        t0 = time.monotonic()
        j = self.work / f"bench-{cpu}.json"
        cp = self.guest(
            root,
            cpu,
            self.py_main(
                ["bench", "--model-only", "--runs", "30", "--warmup", "3", "--json", str(j), "-q"], block_tf=True
            ),
            site=site,
            timeout=300,
        )
        secs = time.monotonic() - t0
        ok = cp.returncode == 0 and j.is_file()
        detail = f"exit {cp.returncode}"
        if ok:
            b = json.loads(j.read_text())
            rt = b["machine"].get("runtime", {})
            m = b["models"][0]
            ok = not m.get("error")
            detail += (
                f", backend {rt.get('backend')} {rt.get('version')}, delegate {rt.get('delegate')}, "
                f"arch {b['machine'].get('arch')} (latency under emulation is not a Pi's: not reported)"
            )
        else:
            detail += ": " + tail(cp.stderr, 4)
        self.record("bench", cpu, ok, detail, secs)

    def step_crops(self, root: Path, site: Path, cpu: str, crops: Path, host_raw: Path) -> None:
        import numpy as np

        t0 = time.monotonic()
        out = self.work / f"raw-{cpu}.npy"
        cp = self.guest(root, cpu, ["-c", RAW, str(crops), str(out)], site=site, timeout=300)
        secs = time.monotonic() - t0
        if cp.returncode != 0 or not out.is_file():
            self.record("crops", cpu, False, f"exit {cp.returncode}: {tail(cp.stderr, 4)}", secs)
            return
        a, b = np.load(out), np.load(host_raw)
        if a.shape != b.shape or not len(b):
            self.record("crops", cpu, False, f"output shapes {a.shape} (arm64) and {b.shape} (x86-64)", secs)
            return
        d = np.abs(a.astype(np.int32) - b.astype(np.int32))
        n_same = int((d == 0).all(axis=1).sum())
        same_top = int((a.argmax(axis=1) == b.argmax(axis=1)).sum())
        # XNNPACK's int8 kernels differ between NEON and AVX: a requantization rounding step may land
        # one quantization step apart. More than that, or another top label, is a failure.
        ok = int(d.max()) <= 1 and same_top == len(b)
        self.record(
            "crops",
            cpu,
            ok,
            f"{n_same}/{len(b)} face crops give bit-identical {a.dtype} outputs on arm64 "
            f"({cp.stdout.split()[0] if cp.stdout else '?'}) and x86-64; largest difference {int(d.max())} "
            f"quantization step(s) in {int((d > 0).sum())} of {d.size} outputs; same top label "
            f"{same_top}/{len(b)}",
            secs,
            identical=n_same,
            crops=len(b),
            max_lsb=int(d.max()),
        )

    def step_crash_class(self, root: Path, site: Path, cpu: str, images: Path | None, litert: str | None) -> None:
        """No ARM cores in /proc/cpuinfo (qemu-user's default): a native crash must become a clear verdict."""
        set_cpuinfo(root, None)
        env = {"EDGE_FER_CACHE_DIR": str(self.work / "cache-crash")}
        try:
            t0 = time.monotonic()
            cp = self.guest(
                root,
                cpu,
                self.py_main(["doctor", "--no-camera", "--json", str(self.work / "doctor-crash.json")]),
                site=site,
                timeout=300,
                env=env,
            )
            secs = time.monotonic() - t0
            print(cp.stdout.rstrip())
            verdict = re.search(r"^verdict: (\w+)", cp.stdout, re.M)
            crashed = "crashed (SIG" in cp.stdout
            ok = cp.returncode in (0, 1) and verdict is not None
            self.record(
                "crash-doctor",
                cpu,
                ok,
                f"LiteRT {litert}, host /proc/cpuinfo: exit {cp.returncode}, verdict "
                f"{verdict.group(1) if verdict else 'NONE'}, ai_edge_litert "
                f"{'crashed (reported with a fix)' if crashed else 'did not crash'}",
                secs,
                crashed=crashed,
            )
            if images is None:
                return
            t0 = time.monotonic()
            # the cache of the steps above (a Pi /proc/cpuinfo): the start-up probe must not trust it here
            cp = self.guest(root, cpu, self.py_main(["run", "--source", str(images)]), site=site, timeout=300)
            secs = time.monotonic() - t0
            last = ([ln for ln in cp.stderr.strip().splitlines() if not ln.startswith("@tf-modules")] or [""])[-1]
            if crashed:
                ok = (
                    cp.returncode == 2
                    and last.startswith("edge-fer: error:")
                    and "crashed" in last
                    and "Traceback" not in cp.stderr
                )
                self.record("crash-run", cpu, ok, f"exit {cp.returncode}: {last[:300]}", secs)
            else:
                self.record("crash-run", cpu, cp.returncode == 0, f"exit {cp.returncode} (no crash to report)", secs)
        finally:
            set_cpuinfo(root, cpu)

    def matrix(self, root: Path) -> None:
        rows = []
        modes = ("pi", "host") if self.a.cpuinfo == "both" else (self.a.cpuinfo,)
        for v in self.a.litert:
            try:
                reqs, site = self.resolve(root, v)
            except Skip as e:
                rows.append({"litert": v, "error": str(e)})
                log(f"LiteRT {v}: {e}")
                continue
            for cpu in self.a.cpu:
                for mode in modes:
                    set_cpuinfo(root, cpu if mode == "pi" else None)
                    t0 = time.monotonic()
                    j = self.work / f"m-{v}-{cpu}-{mode}.json"
                    cp = self.guest(
                        root,
                        cpu,
                        self.py_main(["doctor", "--no-camera", "--json", str(j)]),
                        site=site,
                        timeout=300,
                        env={"EDGE_FER_CACHE_DIR": str(self.work / f"mc-{v}-{cpu}-{mode}")},
                    )
                    rep = json.loads(j.read_text()) if j.is_file() else {}
                    lr = next((c for c in rep.get("checks", []) if c["name"] == "backend ai_edge_litert"), {})
                    row = {
                        "litert": v,
                        "cpu": cpu,
                        "cpuinfo": "Pi" if mode == "pi" else "host (x86)",
                        "exit": cp.returncode,
                        "verdict": rep.get("verdict"),
                        "ai_edge_litert": lr.get("status"),
                        "detail": lr.get("detail"),
                        "fix": lr.get("fix"),
                        "seconds": round(time.monotonic() - t0, 1),
                    }
                    rows.append(row)
                    log(
                        f"LiteRT {v} {cpu} cpuinfo={row['cpuinfo']}: exit {row['exit']}, verdict {row['verdict']}, "
                        f"ai_edge_litert {row['ai_edge_litert']}: {row['detail']}"
                    )
                    if cp.returncode not in (0, 1) or not rep:
                        self.failed = True
                        log(tail(cp.stderr, 6))
            set_cpuinfo(root, None)
        self.report["matrix"] = rows

    def run(self) -> int:
        t_start = time.monotonic()
        self.check_tools()
        root = self.rootfs()
        if self.a.matrix:
            self.matrix(root)
            return self.finish(t_start)
        litert = self.a.litert[0] if self.a.litert else None
        reqs, site = self.resolve(root, litert)
        inst = self.verify_install(root, site, reqs)
        self.report["requirements"], self.report["installed"] = reqs, inst
        log(
            f"installed for {inst['machine']} Python {inst['python']}: "
            + ", ".join(f"{k} {v}" for k, v in inst["versions"].items())
        )
        if inst["bad"]:
            self.record("install", None, False, "; ".join(inst["bad"]), 0)
        litert_v = inst["versions"].get("ai-edge-litert")

        video = self.data / "video" / "hamilton_clip.mp4"
        images = self.data / "images"
        if not video.is_file():
            self.not_run("run-video", f"{video} not found (set EDGE_FER_SHARED_DATA)")
            video = None
        if not images.is_dir():
            self.not_run("run-images", f"{images} not found (set EDGE_FER_SHARED_DATA)")
            images = None

        # the x86-64 answers: the backend probe on the fixed input, the same face crops, the image run
        try:
            from edge_fer.doctor import run_probe, shipped_model

            os.environ.pop("EDGE_FER_PROBE_WRAPPER", None)
            p = run_probe("backend", {"backend": "ai_edge_litert", "model": str(shipped_model())})
            self.report["x86_probe"] = p.result if p.status == "ok" else {}
        except ImportError as e:  # edge-fer not importable on this side
            self.not_run("x86-reference", f"no x86-64 reference probe ({e})")
        crops, host_raw, host_events = self.work / "crops.npy", self.work / "raw-x86.npy", None
        imgs = sorted(str(p) for p in images.glob("*.jpg")) if images else []
        env = {k: v for k, v in os.environ.items() if k != "EDGE_FER_PROBE_WRAPPER"}
        env["EDGE_FER_CACHE_DIR"] = str(self.work / "cache-x86")
        cp = sh(
            [sys.executable, "-c", CROPS, json.dumps(imgs), str(video or ""), "90", str(crops)],
            timeout=300,
            env=env,
            cwd=str(self.work),
        )
        cp2 = (
            sh([sys.executable, "-c", RAW, str(crops), str(host_raw)], timeout=300, env=env, cwd=str(self.work))
            if cp.returncode == 0
            else cp
        )
        if cp2.returncode != 0:
            self.not_run("crops", f"no x86-64 reference crops ({tail(cp2.stderr, 3)})")
            crops = None
        elif cp.stdout.strip().splitlines()[-1:] == ["0"]:
            self.not_run("crops", "no face crops (no shared images or video)")
            crops = None
        if images is not None:
            cp = sh(
                [
                    sys.executable,
                    "-c",
                    "import sys; from edge_fer.cli import main; sys.exit(main(sys.argv[1:]))",
                    "run",
                    "--source",
                    str(images),
                ],
                timeout=300,
                env=env,
                cwd=str(self.work),
            )
            host_events = _events(cp.stdout) if cp.returncode == 0 else None

        for cpu in self.a.cpu:
            set_cpuinfo(root, cpu)
            log(f"--- {cpu} ({BOARDS.get(cpu, '?')}'s core; Pi /proc/cpuinfo) ---")
            self.step_doctor(root, site, cpu, video)
            if video is not None:
                self.step_run_video(root, site, cpu, video)
            if images is not None:
                self.step_run_images(root, site, cpu, images, host_events)
            self.step_bench(root, site, cpu)
            if crops is not None:
                self.step_crops(root, site, cpu, crops, host_raw)
        if not self.a.no_crash_check:
            cpu = self.a.cpu[0]
            log(f"--- crash class: {cpu} with the host's /proc/cpuinfo (qemu-user's default) ---")
            self.step_crash_class(root, site, cpu, images, litert_v)
        set_cpuinfo(root, None)
        return self.finish(t_start)

    def finish(self, t_start: float) -> int:
        total = time.monotonic() - t_start
        self.report["seconds"] = round(total, 1)
        self.report["passed"] = not self.failed
        if self.a.json:
            Path(self.a.json).write_text(json.dumps(self.report, indent=1) + "\n")
        over = f" (over the {self.a.budget:.0f} s budget)" if total > self.a.budget else ""
        log(f"{'FAILED' if self.failed else 'passed'} in {total:.0f} s{over}")
        shutil.rmtree(self.work, ignore_errors=True)
        return 1 if self.failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="append", choices=CPUS, help="qemu CPU (repeatable; default: both)")
    ap.add_argument(
        "--litert",
        action="append",
        default=[],
        help="ai-edge-litert version instead of the resolved one (repeatable with --matrix)",
    )
    ap.add_argument("--matrix", action="store_true", help="only edge-fer doctor, for each --litert x --cpu x --cpuinfo")
    ap.add_argument("--cpuinfo", choices=("pi", "host", "both"), default="both", help="with --matrix")
    ap.add_argument("--frames", type=int, default=120, help="frames of the shared video for run-video")
    ap.add_argument("--no-crash-check", action="store_true", help="leave out the host-/proc/cpuinfo crash-class check")
    ap.add_argument("--cache", default=str(REPO / ".cache" / "arm64"), help="cache folder (rootfs, wheels, sites)")
    ap.add_argument("--data", help="shared data folder (default: $EDGE_FER_SHARED_DATA or ../shared/data)")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--budget", type=float, default=480.0, help="wall-time budget in seconds (a warning when over)")
    ap.add_argument("--skip-code", type=int, default=0, help="exit code when skipped (default 0)")
    ap.add_argument(
        "--strict", action="store_true", help="a skip (the whole test, or one step) fails: exit 1 with the reason"
    )
    a = ap.parse_args(argv)
    a.cpu = a.cpu or list(CPUS)
    if a.matrix and not a.litert:
        ap.error("--matrix needs at least one --litert VERSION")
    smoke = Smoke(a)
    try:
        return smoke.run()
    except Skip as e:
        log(f"{'FAILED (--strict: a skip is a failure)' if a.strict else 'SKIP'}: {e}")
        shutil.rmtree(smoke.work, ignore_errors=True)
        return 1 if a.strict else a.skip_code
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        log(f"FAILED: {e}")
        shutil.rmtree(smoke.work, ignore_errors=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
