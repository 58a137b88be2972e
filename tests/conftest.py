"""Shared fixtures. Tests that need ../shared/data skip with a clear reason when it is absent."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.fixture_models import AE_BUNDLE, CLASSIFIERS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EDGE_FER_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(rel: str) -> Path:
    """A file under ../shared/data, or skip the test when it is not there."""
    p = SHARED_DATA / rel
    if not p.exists():
        pytest.skip(f"{p} not found (set EDGE_FER_SHARED_DATA to the shared data folder)")
    return p


@pytest.fixture
def hamilton_clip() -> Path:
    return shared_file("video/hamilton_clip.mp4")


@pytest.fixture
def face_images() -> dict[str, Path]:
    return {n: shared_file(f"images/{n}.jpg") for n in ("obama", "obama_240p", "two_people")}


@pytest.fixture
def yunet_model() -> Path:
    """The official YuNet release, as shipped in the package (no shared data needed)."""
    from edge_fer.models import shipped_yunet

    return shipped_yunet()


@pytest.fixture
def other_yunet_model() -> Path:
    """A second, different YuNet build (a fixture only: where a test needs a file that is not the shipped one)."""
    return shared_file("models/face_detection_yunet.onnx")


@pytest.fixture
def fer2013_zip() -> Path:
    return shared_file("fer2013.zip")


@pytest.fixture(autouse=True)
def _isolated_model_cache(tmp_path_factory, monkeypatch):
    """No test sees or writes the user's model cache (~/.cache/edge-fer, `edge-fer models pull`):
    `--detector yunet` without a path, and `models pull`, look in a fresh folder."""
    monkeypatch.setenv("EDGE_FER_CACHE_DIR", str(tmp_path_factory.mktemp("edge-fer-cache")))


# --- the tiny model bundles (committed, built by tests/fixture_models.py with TensorFlow) ----------
# Committed so that the runtime tests run on a runtime-only install, as on a Pi.


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """Path of a tiny full-int8 (int8 in/out) edge-fer bundle."""
    return CLASSIFIERS["int8"]


@pytest.fixture(scope="session")
def tiny_bundle_uint8() -> Path:
    return CLASSIFIERS["uint8"]


@pytest.fixture(scope="session")
def tiny_bundle_float() -> Path:
    return CLASSIFIERS["float32"]


@pytest.fixture(scope="session")
def tiny_ae_bundle() -> Path:
    """A tiny classifier with its int8 autoencoder beside it (``tiny_ae_ae.tflite``), as
    ``edge-fer convert --write-quality-gate`` writes them: the quality gate's model pair."""
    return AE_BUNDLE


# --- markers for tests that need an extra: `train` (TensorFlow) and `docs` (mkdocs) ---------------
# Without the extra they skip with this reason (a failure under strict skips); the runtime-only job
# deselects them with -m "not train and not docs".
EXTRA_MARKERS = {
    "train": ("tensorflow", "needs the train extra (TensorFlow): pip install -e '.[train,test]'"),
    "docs": ("mkdocs", "needs the docs extra (mkdocs): pip install -e '.[docs,test]'"),
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "train: needs a training extra (TensorFlow, Keras; jax where named): skipped without TensorFlow, "
        "deselected by the runtime-only job (-m 'not train')",
    )
    config.addinivalue_line("markers", "docs: needs the docs extra (mkdocs); deselected by the runtime-only job")


def pytest_collection_modifyitems(config, items):
    missing = {m: reason for m, (module, reason) in EXTRA_MARKERS.items() if importlib.util.find_spec(module) is None}
    for item in items:
        for marker, reason in missing.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=f"{reason}; a runtime-only run deselects these"))


# --- strict skips: in CI a skip is a failure unless it names hardware that cannot exist there -------
# Active when CI=true or EDGE_FER_STRICT_SKIPS=1. The only allowed skips come from needs_hardware().
HARDWARE = {
    "edgetpu": "a Coral Edge TPU (USB, M.2 or PCIe) and libedgetpu",
    "picamera": "a Raspberry Pi camera module (libcamera, python3-picamera2)",
    "gpu": "a GPU (CUDA or ROCm) for a training backend",
}
HARDWARE_PREFIX = "needs hardware: "


def needs_hardware(kind: str, detail: str = "") -> None:
    """Skip the test because ``kind`` (a key of HARDWARE) is not attached to this machine."""
    if kind not in HARDWARE:
        raise ValueError(f"{kind!r} is not on the hardware allow-list {sorted(HARDWARE)}")
    pytest.skip(HARDWARE_PREFIX + HARDWARE[kind] + (f" ({detail})" if detail else ""))


def strict_skips() -> bool:
    return os.environ.get("EDGE_FER_STRICT_SKIPS", "") == "1" or os.environ.get("CI", "").lower() == "true"


def allowed_skip(reason: str) -> bool:
    """A skip reason that needs_hardware() wrote: hardware on the allow-list."""
    return reason.startswith(HARDWARE_PREFIX) and any(
        reason[len(HARDWARE_PREFIX) :].startswith(h) for h in HARDWARE.values()
    )


def _skip_reason(report) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


def _fail_a_disallowed_skip(report) -> None:
    if not (strict_skips() and report.skipped and not hasattr(report, "wasxfail")):
        return
    reason = _skip_reason(report)
    if allowed_skip(reason):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"strict skips (CI=true or EDGE_FER_STRICT_SKIPS=1): skipped for a reason that is not hardware on the "
        f"allow-list ({', '.join(HARDWARE)}): {reason}\nInstall what it needs, or deselect it (docs/testing.md)."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_a_disallowed_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_a_disallowed_skip(outcome.get_result())
