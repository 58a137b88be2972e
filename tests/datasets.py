"""Small generated FER-style datasets for tests (CSV, image folders, zips)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

from edge_fer.labels import LABELS


def faces(n: int, seed: int = 0, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """n grayscale 'faces' whose brightness pattern depends on the class, labels cycling 0..6."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(LABELS)
    yy, xx = np.mgrid[0:size, 0:size]
    x = np.empty((n, size, size), np.uint8)
    for i, c in enumerate(y):
        base = 128 + 90 * np.sin((xx + 3 * c) / (4 + c)) * np.cos(yy / 7)
        x[i] = np.clip(base + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
    return x, y


def write_csv(path: Path, n_per_split: dict[str, int] | None = None, usage: bool = True, seed: int = 0) -> Path:
    n_per_split = n_per_split or {"Training": 28, "PublicTest": 14, "PrivateTest": 14}
    lines = ["emotion,pixels,Usage" if usage else "emotion,pixels"]
    for k, (split, n) in enumerate(n_per_split.items()):
        x, y = faces(n, seed + k)
        for img, label in zip(x, y):
            px = " ".join(map(str, img.reshape(-1)))
            lines.append(f"{label},{px},{split}" if usage else f"{label},{px}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_fer_folders(root: Path, n_train: int = 14, n_test: int = 14, seed: int = 0) -> Path:
    """train/<class>/Training_i.jpg and test/<class>/{PublicTest,PrivateTest}_i.jpg."""
    x, y = faces(n_train, seed)
    for i, (img, c) in enumerate(zip(x, y)):
        d = root / "train" / LABELS[c]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"Training_{i}.jpg"), img)
    x, y = faces(n_test, seed + 1)
    for i, (img, c) in enumerate(zip(x, y)):
        d = root / "test" / LABELS[c]
        d.mkdir(parents=True, exist_ok=True)
        prefix = "PublicTest" if i % 2 == 0 else "PrivateTest"
        cv2.imwrite(str(d / f"{prefix}_{i}.jpg"), img)
    return root


def zip_folder(folder: Path, zip_path: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return zip_path
