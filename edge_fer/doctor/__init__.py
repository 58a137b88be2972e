"""`edge-fer doctor`: probe this machine, each check in a child process, and say what to fix.

A native crash (SIGSEGV in an interpreter's C++ code, SIGILL from a wheel built for a newer CPU)
cannot be caught in the process it happens in. So every check that loads native code runs in a
child Python process (:mod:`.child`); the parent (:mod:`.probe`) reads the stages the child reached
from its stdout, so a crash becomes a row such as "crashed (SIGSEGV) while loading the model" with
a fix, never a bare "Segmentation fault".

Checks (:mod:`.checks`): every importable interpreter backend (``ai_edge_litert``,
``tflite_runtime``, ``tensorflow``, :mod:`.installed`) on the shipped model (load + one inference on
a fixed input, through :func:`edge_fer.interpreter.load_interpreter`, the runtime's own code), the
Edge TPU delegate, OpenCV's video decoding, the default detector (``cv2.FaceDetectorYN`` and the YuNet
model shipped in the package: present, as pinned, loading) and the Haar cascade, the V4L2
cameras and picamera2. :mod:`.report` gives the verdict and the table.

The daemon's start-up (:func:`startup_backend`, called by ``edge-fer run``, :mod:`.startup`) uses
the same backend probe once per installed set of versions (cached as JSON, see :func:`.startup.cache_dir`)
and tells :mod:`edge_fer.interpreter` which backend to use, so a backend that kills the process is
skipped for the next one that works, or ends the run with one clear error line.

Environment:
  ``EDGE_FER_BACKEND``        force a backend (no probe at start-up)
  ``EDGE_FER_PROBE=0``        no probe at start-up
  ``EDGE_FER_CACHE_DIR``      edge-fer's cache: the start-up probe's result, pulled models
  ``EDGE_FER_PROBE_WRAPPER``  a command put in front of the child Python (e.g. ``qemu-aarch64-static
                              -cpu cortex-a72 -L ROOT``: emulation without binfmt_misc; testing only)
"""

from edge_fer.doctor.installed import dist_version, shipped_model
from edge_fer.doctor.probe import run_probe
from edge_fer.doctor.report import Report, format_report, run_doctor
from edge_fer.doctor.startup import startup_backend

__all__ = ["Report", "dist_version", "format_report", "run_doctor", "run_probe", "shipped_model", "startup_backend"]
