"""Shared fixtures. Tests that need ../shared/data skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    return shared_file("models/face_detection_yunet.onnx")


@pytest.fixture
def fer2013_zip() -> Path:
    return shared_file("fer2013.zip")
