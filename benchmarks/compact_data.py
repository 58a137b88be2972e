"""A compact copy of a face dataset for a machine the full one cannot travel to (not a test).

    python benchmarks/compact_data.py --data ../shared/data/fer2013.zip --out .gpu/fer2013_compact.npz [--max-mb 55]

Writes one compressed .npz of the decoded uint8 faces (``train_x``, ``train_y``, ``val_x``, ``val_y``,
``test_x``, ``test_y``, ``labels``). Raw 48x48 faces barely compress (FER2013: 83 MB
as uint8, 79 MB in a .npz), so when the splits exceed ``--max-mb`` the training split is cut to a
stratified, seeded subset (val and test, when kept, stay whole unless fewer than 1000 training
faces would be left: then test goes first).
:func:`read` gives the splits back; :func:`write_fer_csv` turns them into a FER2013 CSV that
``edge-fer train --data`` reads.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

FACE_BYTES_NPZ = 48 * 48 * 0.96  # bytes per face after np.savez_compressed, measured on FER2013
USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def read(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (uint8 (N, H, W) faces, int64 labels), for the splits the file holds."""
    with np.load(path) as z:
        return {s: (z[f"{s}_x"], z[f"{s}_y"].astype(np.int64)) for s in USAGE if f"{s}_x" in z.files}


def write_fer_csv(splits: dict[str, tuple[np.ndarray, np.ndarray]], out: str | Path) -> Path:
    """The splits as a FER2013 CSV (emotion, pixels, Usage), the layout `edge-fer train` reads."""
    out = Path(out)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for split, (x, y) in splits.items():
            for face, label in zip(x, y):
                w.writerow([int(label), " ".join(map(str, face.reshape(-1).tolist())), USAGE[split]])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a dataset `edge-fer train` reads (FER2013 zip/CSV, folders)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-mb", type=float, default=55.0, help="size budget of the .npz (MB)")
    ap.add_argument("--splits", default="train,val", help="splits to keep (train, val, test)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from edge_fer.train.data import load_dataset, stratified_split

    ds = load_dataset(args.data, seed=args.seed)
    keep = {s.strip() for s in args.splits.split(",")} | {"train"}
    splits = {s: (ds.splits[s].x, ds.splits[s].y) for s in USAGE if s in ds.splits and s in keep}
    budget = int(args.max_mb * 1e6 / (FACE_BYTES_NPZ * ds.image_size**2 / 48**2))
    others = [s for s in ("val", "test") if s in splits]
    while others and sum(len(splits[s][1]) for s in others) + 1000 > budget:
        del splits[others.pop()]  # test first: keep at least 1000 training faces
    room = budget - sum(len(y) for k, (_, y) in splits.items() if k != "train")
    x, y = splits["train"]
    if len(y) > room:
        _, keep = stratified_split(y, room / len(y), args.seed)
        splits["train"] = (x[keep], y[keep])
    arrays = {f"{s}_{k}": v for s, (x, y) in splits.items() for k, v in (("x", x), ("y", y.astype(np.int8)))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, labels=np.array(ds.labels), **arrays)
    size = Path(args.out).stat().st_size / 1e6
    print(f"{args.out}: {size:.1f} MB, " + ", ".join(f"{s} {len(y)}" for s, (_, y) in splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
