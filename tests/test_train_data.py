"""Dataset readers: FER2013 CSV, image folders, zips, user folders; corrupt and malformed input."""

from __future__ import annotations

import numpy as np
import pytest
from edge_fer.train.data import load_dataset, stratified_split

from edge_fer.errors import DataError
from tests.cli import assert_one_line_error, run_cli
from tests.datasets import faces, write_csv, write_fer_folders, zip_folder


def test_csv_fer2013_protocol_splits(tmp_path):
    ds = load_dataset(write_csv(tmp_path / "fer2013.csv"))
    assert {k: (s.name, len(s)) for k, s in ds.splits.items()} == {
        "train": ("Training", 28),
        "val": ("PublicTest", 14),
        "test": ("PrivateTest", 14),
    }
    x, y = faces(28, 0)
    np.testing.assert_array_equal(ds.splits["train"].x, x)
    np.testing.assert_array_equal(ds.splits["train"].y, y)
    assert ds.splits["train"].x.dtype == np.uint8 and ds.splits["val"].name == "PublicTest"


def test_csv_without_usage_gets_seeded_stratified_val_split(tmp_path):
    p = write_csv(tmp_path / "d.csv", {"Training": 70}, usage=False)
    a, b = load_dataset(p, val_fraction=0.2, seed=3), load_dataset(p, val_fraction=0.2, seed=3)
    assert len(a.splits["val"]) == 14 and len(a.splits["train"]) == 56
    assert a.splits["val"].class_counts() == [2] * 7
    np.testing.assert_array_equal(a.splits["val"].x, b.splits["val"].x)
    assert "test" not in a.splits


@pytest.mark.parametrize(
    "content, needle",
    [
        ("label,image\n0,1 2 3\n", "expected columns emotion,pixels,Usage"),
        ("emotion,pixels,Usage\n0," + " ".join(["7"] * 100) + ",Training\n", "line 2: 100 pixels, expected 2304"),
        ("emotion,pixels,Usage\n9," + " ".join(["7"] * 2304) + ",Training\n", "line 2: emotion 9 out of range"),
        ("emotion,pixels,Usage\nx," + " ".join(["7"] * 2304) + ",Training\n", "line 2: emotion 'x'"),
        ("emotion,pixels,Usage\n0," + " ".join(["7"] * 2304) + ",Holdout\n", "line 2: Usage 'Holdout'"),
        ("emotion,pixels,Usage\n0," + " ".join(["a"] * 2304) + ",Training\n", "line 2: pixels must be"),
        ("", "empty CSV"),
        ("emotion,pixels,Usage\n0," + " ".join(["7"] * 2304) + ",Training,extra\n", "line 2: 4 field(s), expected 3"),
    ],
)
def test_malformed_csv_is_a_clear_error_naming_the_line(tmp_path, content, needle):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(DataError, match=".*") as e:
        load_dataset(p)
    assert needle in str(e.value)


def test_csv_with_a_utf8_bom_reads_like_without(tmp_path):
    """Excel writes a BOM before the header: it was 'expected columns emotion,pixels,Usage, found
    emotion,pixels,Usage' (the BOM invisible)."""
    rows = "".join(f"{i % 7}," + " ".join(["7"] * 2304) + ",Training\n" for i in range(14))
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + ("emotion,pixels,Usage\n" + rows).encode())
    assert sum(len(s.y) for s in load_dataset(p).splits.values()) == 14


def test_fer_image_folders_and_zip_agree(tmp_path):
    root = write_fer_folders(tmp_path / "fer", n_train=21, n_test=14)
    a = load_dataset(root)
    b = load_dataset(zip_folder(root, tmp_path / "fer.zip", prefix="fer2013/"))
    for s in ("train", "val", "test"):
        assert a.splits[s].name == b.splits[s].name
        np.testing.assert_array_equal(a.splits[s].x, b.splits[s].x)
        np.testing.assert_array_equal(a.splits[s].y, b.splits[s].y)
    assert (len(a.splits["train"]), len(a.splits["val"]), len(a.splits["test"])) == (21, 7, 7)
    assert a.splits["val"].name == "PublicTest"


def test_corrupt_images_unknown_and_empty_classes_are_reported_not_fatal(tmp_path):
    root = write_fer_folders(tmp_path / "fer", n_train=14, n_test=14)
    (root / "train" / "happy" / "Training_broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "train" / "happy" / "Training_empty.jpg").write_bytes(b"")
    (root / "train" / "contemptuous").mkdir()
    (root / "train" / "contemptuous" / "x.jpg").write_bytes(b"whatever")
    (root / "train" / "notes.txt").write_text("hi")
    for f in (root / "train" / "sad").iterdir():
        f.unlink()
    ds = load_dataset(root)
    r = ds.report
    assert r.corrupt == 2 and any("Training_broken.jpg" in e for e in r.corrupt_examples)
    assert r.unknown_classes == {"contemptuous": 1}
    text = "\n".join(r.lines())
    assert "skipped 2 unreadable" in text and "contemptuous" in text
    assert len(ds.splits["train"]) == 12  # 14 - 2 sad images
    assert ds.splits["train"].class_counts()[4] == 0


def test_user_folders_with_aliases_and_class_map(tmp_path):
    x, _ = faces(12)
    import cv2

    for i, name in enumerate(["happiness", "sadness", "surprised", "grumpy"]):
        d = tmp_path / "mine" / name
        d.mkdir(parents=True)
        for j in range(3):
            cv2.imwrite(str(d / f"{j}.png"), cv2.resize(x[i * 3 + j], (96, 96)))
    ds = load_dataset(tmp_path / "mine", class_map=["grumpy=angry"], val_fraction=0.34)
    counts = np.bincount(np.concatenate([ds.splits["train"].y, ds.splits["val"].y]), minlength=7)
    assert counts.tolist() == [3, 0, 0, 3, 3, 3, 0]
    assert ds.splits["train"].x.shape[1:] == (48, 48)  # resized from 96x96
    assert ds.report.empty_classes == ["disgust", "fear", "neutral"]
    with pytest.raises(DataError, match="must be one of"):
        load_dataset(tmp_path / "mine", class_map=["grumpy=furious"])


@pytest.mark.parametrize(
    "maps, needle",
    [
        (["grumpy=angry", "grumpy=sad"], "--class-map maps 'grumpy' twice: to angry and to sad"),
        (["=angry"], "no folder name before '='"),
        (["grumpi=angry"], "--class-map names no folder here: grumpi (class folders: grumpy, happiness)"),
    ],
)
@pytest.mark.train  # through `edge-fer train`, which needs a training backend installed
def test_a_class_map_that_conflicts_or_names_no_folder_is_one_line(tmp_path, maps, needle):
    """These were silent: the last mapping won, an empty folder name was taken, and a mistyped folder
    left its class out of training without a word."""
    import cv2

    x, _ = faces(4)
    for i, name in enumerate(["happiness", "grumpy"]):
        (tmp_path / "mine" / name).mkdir(parents=True)
        for j in range(2):
            cv2.imwrite(str(tmp_path / "mine" / name / f"{j}.png"), x[i * 2 + j])
    args = [a for m in maps for a in ("--class-map", m)]
    r = run_cli("train", "--data", tmp_path / "mine", "--out", tmp_path / "run", *args)
    assert_one_line_error(r, needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("make", ["missing", "text", "empty_dir", "badzip"])
def test_unusable_paths_are_clear_errors(tmp_path, make):
    p = tmp_path / "x"
    if make == "text":
        p = tmp_path / "x.txt"
        p.write_text("hello")
    elif make == "empty_dir":
        p.mkdir()
    elif make == "badzip":
        p = tmp_path / "x.zip"
        p.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError):
        load_dataset(p)


def test_stratified_split_keeps_every_class():
    y = np.repeat(np.arange(7), [10, 2, 10, 30, 10, 10, 1])
    keep, held = stratified_split(y, 0.1, seed=0)
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == len(y)
    assert set(y[held]) == {0, 1, 2, 3, 4, 5}  # a class with one image stays in training
    assert set(y[keep]) == set(range(7))


def test_real_fer2013_zip_counts(fer2013_zip):
    ds = load_dataset(fer2013_zip)
    assert ds.report.loaded == 35887 and ds.report.corrupt == 0
    assert len(ds.splits["train"]) == 28709
    assert len(ds.splits["val"]) == len(ds.splits["test"]) == 3589
    assert ds.splits["train"].class_counts() == [3995, 436, 4097, 7215, 4830, 3171, 4965]


def test_unlabeled_folder_skips_corrupt_images(tmp_path):
    import cv2
    from edge_fer.train.trainer import load_unlabeled

    x, _ = faces(3)
    d = tmp_path / "crops" / "sub"
    d.mkdir(parents=True)
    for i, img in enumerate(x):
        cv2.imwrite(str(d / f"{i}.png"), cv2.resize(img, (64, 64)))
    (d / "bad.jpg").write_bytes(b"not an image")
    out = load_unlabeled(str(tmp_path / "crops"), 48)
    assert out.shape == (3, 48, 48) and out.dtype == np.uint8
    with pytest.raises(DataError, match="not a folder"):
        load_unlabeled(str(tmp_path / "crops" / "sub" / "missing"), 48)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable images"):
        load_unlabeled(str(tmp_path / "empty"), 48)
