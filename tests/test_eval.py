"""`edge-fer eval`: the binding interface (flags, JSON keys), on tiny data made here and the shared photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tests.cli import assert_one_line_error, env_without_tensorflow, imported_blocked
from tests.cli import run_cli as cli
from tests.datasets import faces, write_fer_folders, zip_folder

KEYS = {"accuracy", "macro_f1", "n", "per_class", "confusion_matrix", "labels", "skipped"}


def direct_predictions(bundle, crops: list[np.ndarray]) -> np.ndarray:
    """Argmax of the runtime classifier on already 48x48 crops, computed without edge_fer.evaluate."""
    from edge_fer.classify import Classifier

    clf = Classifier.from_file(bundle, device="cpu", threads=1)
    return np.concatenate([clf.predict_raw(clf.prepare_crops([c])) for c in crops]).argmax(1)


def run_eval(tmp_path, *args) -> dict:
    out = tmp_path / "eval.json"
    p = cli("eval", *args, "--json", str(out), "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert KEYS <= set(rep)
    return rep


def test_fer2013_zip_private_and_public_split(tmp_path, tiny_bundle):
    root = write_fer_folders(tmp_path / "fer", n_train=14, n_test=28)
    z = zip_folder(root, tmp_path / "fer.zip", prefix="fer2013/")
    rep = run_eval(tmp_path, "--model", str(tiny_bundle), "--data", str(z))
    assert rep["split"] == "PrivateTest" and rep["n"] == 14  # odd indices of the 28 test faces
    assert rep["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    cm = np.array(rep["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == 14
    assert rep["accuracy"] == pytest.approx(np.trace(cm) / 14)
    # the same figure computed independently from the images and the runtime classifier
    x, y = faces(28, seed=1)
    priv = [i for i in range(28) if i % 2 == 1]
    crops = [cv2.imdecode(cv2.imencode(".jpg", x[i])[1], cv2.IMREAD_GRAYSCALE) for i in priv]
    pred = direct_predictions(tiny_bundle, crops)
    assert rep["accuracy"] == pytest.approx(float((pred == y[priv]).mean()))
    pub = run_eval(tmp_path, "--model", str(tiny_bundle), "--data", str(z), "--split", "PublicTest")
    assert pub["split"] == "PublicTest" and pub["n"] == 14


def test_labeled_folder_with_aliases_unmapped_class_and_corrupt_file(tmp_path, tiny_bundle):
    root = tmp_path / "other_dataset"
    x, _ = faces(12, seed=3, size=64)
    layout = {"anger": 3, "happiness": 4, "sadness": 2, "contempt": 3}
    k = 0
    for folder, n in layout.items():
        (root / folder).mkdir(parents=True)
        for i in range(n):
            img = cv2.resize(x[k], (64, 80))  # not square: squared as the runtime squares a box
            cv2.imwrite(str(root / folder / f"{i}.png"), img)
            k += 1
    (root / "sadness" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    rep = run_eval(tmp_path, "--model", str(tiny_bundle), "--data", str(root))
    assert rep["n"] == 9
    assert rep["skipped"]["unmapped_classes"] == {"contempt": 3}
    assert rep["skipped"]["unmapped_class"] == 3 and rep["skipped"]["unreadable"] == 1
    support = {c: v["support"] for c, v in rep["per_class"].items()}
    assert support == {"angry": 3, "disgust": 0, "fear": 0, "happy": 4, "sad": 2, "surprise": 0, "neutral": 0}
    # --class-map maps the leftover folder too
    rep = run_eval(tmp_path, "--model", str(tiny_bundle), "--data", str(root), "--class-map", "contempt=disgust")
    assert rep["n"] == 12 and rep["per_class"]["disgust"]["support"] == 3


def test_detect_on_the_shared_photos(tmp_path, tiny_bundle, face_images):
    root = tmp_path / "photos"
    for label, name in (("happy", "obama"), ("neutral", "two_people"), ("happy", "obama_240p")):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{name}.jpg").write_bytes(face_images[name].read_bytes())
    (root / "sad").mkdir()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320), dtype=np.uint8)
    cv2.imwrite(str(root / "sad" / "noise.png"), noise)
    rep = run_eval(tmp_path, "--model", str(tiny_bundle), "--data", str(root), "--detect")
    assert rep["detect"] is True
    assert rep["n"] == 3 and rep["skipped"]["no_face"] == 1
    # without --detect every image is taken as a face
    assert run_eval(tmp_path, "--model", str(tiny_bundle), "--data", str(root))["n"] == 4


def test_human_readable_table(tmp_path, tiny_bundle):
    root = write_fer_folders(tmp_path / "fer", n_train=7, n_test=14)
    p = cli("eval", "--model", str(tiny_bundle), "--data", str(root))
    assert p.returncode == 0, p.stderr
    for needle in ("accuracy", "macro-F1", "precision", "recall", "confusion", "disgust", "PrivateTest"):
        assert needle in p.stdout


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda t: ["--data", str(t / "missing")], "no such file"),
        (lambda t: ["--data", str(write_fer_folders(t / "f", 7, 14)), "--split", "bogus"], "--split"),
        (lambda t: ["--data", str(t / "only_contempt")], "no readable face images"),
        (
            lambda t: ["--data", str(write_fer_folders(t / "f", 7, 14)), "--model", str(t / "nope.tflite")],
            "nope.tflite",
        ),
        (
            lambda t: ["--data", str(write_fer_folders(t / "f", 7, 14)), "--detect", "--detect-scale", "3"],
            "--detect-scale",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, make, needle):
    (tmp_path / "only_contempt" / "contempt").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "only_contempt" / "contempt" / "a.png"), np.zeros((48, 48), np.uint8))
    assert_one_line_error(cli("eval", *make(tmp_path)), needle)


def test_eval_never_imports_tensorflow(tmp_path, tiny_bundle):
    root, block = write_fer_folders(tmp_path / "fer", n_train=7, n_test=14), tmp_path / "block"
    p = cli("eval", "--model", str(tiny_bundle), "--data", str(root), "-q", env=env_without_tensorflow(block))
    assert p.returncode == 0, p.stdout + p.stderr
    assert imported_blocked(block) == []


def _relabelled(tmp_path, name: str, mapping: dict[bytes, bytes]):
    """The shipped bundle with its embedded label names rewritten (names of the same length, so the
    metadata's size and the model's bytes are untouched)."""
    from edge_fer.classify import default_model_path

    data = default_model_path().read_bytes()
    i = data.find(b'"labels"')
    old = data[i : data.find(b"]", i) + 1]
    new = old
    for a in mapping:
        new = new.replace(b'"%s"' % a, b'"@%s@"' % a)
    for a, b in mapping.items():
        new = new.replace(b'"@%s@"' % a, b'"%s"' % b)
    out = tmp_path / name
    out.write_bytes(data.replace(old, new))
    return out


def test_eval_matches_the_data_to_the_model_by_label_name(tmp_path, fer2013_zip):
    """eval scored outputs by position: a bundle whose labels say output 0 is 'happy' got the same
    accuracy as the shipped one, while `run` called every happy face 'angry'. Labels the model does not
    have are refused."""
    from edge_fer.train.data import load_labeled_images

    pub = load_labeled_images(fer2013_zip, "PublicTest")
    root = tmp_path / "faces"
    for label in ("happy", "sad"):
        (root / label).mkdir(parents=True)
        idx = [i for i, y in enumerate(pub.y) if int(y) == {"happy": 3, "sad": 4}[label]][:20]
        for i in idx:
            cv2.imwrite(str(root / label / f"{i}.png"), pub.images[i])
    shipped = run_eval(tmp_path, "--data", str(root))
    swapped = run_eval(
        tmp_path,
        "--data",
        str(root),
        "--model",
        str(_relabelled(tmp_path, "swap.tflite", {b"angry": b"happy", b"happy": b"angry"})),
    )
    assert shipped["accuracy"] > 0.6
    assert swapped["per_class"]["happy"]["recall"] < 0.2  # its "happy" output is the network's angry one
    assert swapped["accuracy"] < shipped["accuracy"] - 0.3

    renamed = _relabelled(tmp_path, "renamed.tflite", {b"happy": b"jolly"})
    assert_one_line_error(cli("eval", "--data", str(root), "--model", str(renamed)), "do not include happy")


def _mark_encrypted(zip_path, member: str) -> None:
    """Set the 'encrypted' flag of one member (local and central headers), as `zip -P` leaves it:
    zipfile then refuses to read it without a password."""
    import struct

    data = bytearray(zip_path.read_bytes())
    name = member.encode()
    for sig, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        i = data.find(sig)
        while i >= 0:
            if data[i + name_at : i + name_at + len(name)] == name:
                (flags,) = struct.unpack_from("<H", data, i + flag_at)
                struct.pack_into("<H", data, i + flag_at, flags | 1)
            i = data.find(sig, i + 4)
    zip_path.write_bytes(bytes(data))


def test_an_encrypted_zip_member_is_skipped_and_counted(tmp_path, tiny_bundle):
    """An encrypted member was an internal error (exit 70) for eval, train, convert and adapt."""
    root = tmp_path / "faces"
    x, _ = faces(6, seed=4)
    for i, folder in enumerate(("happy", "happy", "happy", "sad", "sad", "sad")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / folder / f"{i}.png"), x[i])
    z = zip_folder(root, tmp_path / "faces.zip")
    _mark_encrypted(z, "happy/0.png")
    rep = run_eval(tmp_path, "--model", str(tiny_bundle), "--data", str(z))
    assert rep["n"] == 5 and rep["skipped"]["unreadable"] == 1


def test_a_folder_of_public_test_faces_says_how_to_evaluate_them(tmp_path, tiny_bundle):
    """FER-named files without PrivateTest_ ones said only 'no test split (splits found: val)'."""
    from tests.datasets import faces

    x, _ = faces(4)
    for i, img in enumerate(x):
        (tmp_path / "d" / "happy").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "d" / "happy" / f"PublicTest_{i}.png"), img)
    line = assert_one_line_error(
        cli("eval", "--model", str(tiny_bundle), "--data", str(tmp_path / "d")), "no test split"
    )
    assert "val (PublicTest_*)" in line and "--split" in line, line
    p = cli("eval", "--model", str(tiny_bundle), "--data", str(tmp_path / "d"), "--split", "val", "-q")
    assert p.returncode == 0, p.stderr
