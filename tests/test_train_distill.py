"""`edge-fer train --teacher`: soft targets from finished runs (offline knowledge distillation)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from edge_fer.train.batches import FaceBatches
from edge_fer.train.distill import soften

from edge_fer.cli import main
from tests.cli import run_cli
from tests.datasets import write_csv

pytestmark = pytest.mark.train

TINY = ["--ae-epochs", "1", "--epochs", "1", "--head-epochs", "1", "--width", "4", "--latent-channels", "8"]
TINY += ["--batch-size", "16"]


def test_soften_keeps_the_ranking_and_flattens():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    for t in (1.0, 2.0, 4.0):
        q = soften(p, t)
        assert np.allclose(q.sum(1), 1.0)
        assert (q.argmax(1) == p.argmax(1)).all()
    assert np.allclose(soften(p, 1.0), p)
    assert soften(p, 4.0).max() < soften(p, 2.0).max() < p.max()


def test_soft_targets_pass_through_the_batches():
    x = np.random.default_rng(0).integers(0, 255, (10, 48, 48), dtype=np.uint8)
    soft = np.full((10, 7), 1 / 7, np.float32)
    soft[:, 3] += 0.5
    img, tgt = FaceBatches(x, soft, batch_size=4, training=True, one_hot=7)[0]
    assert img.shape == (4, 48, 48, 1) and tgt.shape == (4, 7)
    assert np.allclose(tgt, soft[:4])  # the rows of the faces drawn, untouched
    hard = FaceBatches(x, np.arange(10) % 7, batch_size=4, one_hot=7)[0][1]
    assert np.array_equal(hard, np.eye(7, dtype=np.float32)[np.arange(4)])


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    data = write_csv(root / "fer2013.csv")
    out = root / "teacher"
    assert main(["train", "--data", str(data), "--out", str(out), *TINY]) == 0
    return data, out


def test_student_records_its_teachers(teacher, tmp_path):
    data, t = teacher
    out = tmp_path / "student"
    args = ["train", "--data", str(data), "--out", str(out), *TINY, "--teacher", str(t), "--teacher", str(t)]
    assert main([*args, "--distill-weight", "0.7", "--distill-temperature", "3"]) == 0
    state = json.loads((out / "state.json").read_text())
    d = state["distillation"]
    assert d["weight"] == 0.7 and d["temperature"] == 3.0 and len(d["teachers"]) == 2
    assert d["teachers"][0]["run"] == str(t)
    assert 0.0 <= d["train_accuracy"] <= 1.0 and 0.0 <= d["val_accuracy"] <= 1.0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["teacher"] == [str(t), str(t)]
    assert (out / "model.keras").is_file()


def test_a_teacher_that_is_not_a_run_is_one_line_before_training(teacher, tmp_path):
    data, _ = teacher
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    r = run_cli(
        "train", "--data", str(data), "--out", str(tmp_path / "o"), *TINY, "--teacher", str(not_a_run), timeout=300
    )
    assert r.returncode == 2, r.stderr[-2000:]
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("edge-fer: error: --teacher") and "not a finished run directory" in err[-1]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "checkpoints").exists()  # refused before stage 1, not after it


def test_distill_weight_out_of_range_is_refused(teacher, tmp_path, capsys):
    data, t = teacher
    args = ["train", "--data", str(data), "--out", str(tmp_path / "o"), "--teacher", str(t)]
    assert main([*args, "--distill-weight", "1.5"]) == 2
    assert "--distill-weight" in capsys.readouterr().err


def test_teachers_see_training_faces_as_trained_and_field_faces_blurred():
    """A teacher trained on blurry faces (bundle blur_sigma > 0) was trained on the training faces as
    they are: they must not be blurred again; validation faces get the teacher's field blur."""
    from pathlib import Path

    from edge_fer.train.distill import Teacher, teacher_probs
    from edge_fer.train.sharpness import gaussian_blur

    from edge_fer.bundle import Preprocessing

    class Sharpness:  # "probabilities" that follow the pixel spread: a blur lowers them
        def predict_on_batch(self, x):
            s = x.reshape(len(x), -1).std(axis=1, keepdims=True)
            return np.concatenate([s, 1 - s], axis=1)

    faces = np.random.default_rng(0).integers(0, 255, (6, 48, 48), dtype=np.uint8)
    t = Teacher(Path("t"), Sharpness(), Preprocessing(blur_sigma=2.0), ["a", "b"])
    plain = Teacher(Path("t"), Sharpness(), Preprocessing(), ["a", "b"])
    assert np.allclose(teacher_probs(t, faces), teacher_probs(plain, faces))
    assert np.allclose(teacher_probs(t, faces, field=True), teacher_probs(plain, gaussian_blur(faces, 2.0)))
    assert not np.allclose(teacher_probs(t, faces, field=True), teacher_probs(t, faces))


def test_the_shipped_bundle_teaches_through_the_runtime(teacher, tmp_path):
    """`--teacher default` (and any .tflite bundle): the int8 model run by the runtime's own
    Classifier over 14 views; before, a bundle was refused as 'not a finished run directory'."""
    data, _ = teacher
    out = tmp_path / "student"
    args = ["train", "--data", str(data), "--out", str(out), *TINY, "--teacher", "default", "--teacher-views", "multi"]
    r = run_cli(*args, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((out / "state.json").read_text())["distillation"]
    assert d["views"] == "multi" and d["teachers"][0]["run"].endswith("default_int8.tflite")
    assert 0.0 <= d["teachers"][0]["train_accuracy"] <= 1.0
    assert json.loads((out / "config.json").read_text())["teacher_views"] == "multi"


def test_bundle_teacher_probabilities_are_the_runtimes(tmp_path):
    from edge_fer.train.distill import face_views, load_teacher, teacher_probs

    from edge_fer.classify import Classifier, default_model_path

    faces = np.random.default_rng(1).integers(0, 255, (5, 48, 48), dtype=np.uint8)
    bundle = tmp_path / "copy.tflite"
    bundle.write_bytes(default_model_path().read_bytes())
    t = load_teacher(str(bundle))
    assert t.is_bundle and t.labels == list(Classifier.from_file(bundle).labels)
    assert t.model.threads == (os.cpu_count() or 1)  # labelling runs on every core, not on one
    clf = Classifier.from_file(bundle)
    views = face_views(faces, "multi")
    want = np.mean([clf.predict_raw(clf.prepare_crops(list(v))) for v in views], axis=0)
    assert np.allclose(teacher_probs(t, faces, views="multi"), want, atol=1e-6)
    flip = np.mean([clf.predict_raw(clf.prepare_crops(list(v))) for v in (faces, faces[:, :, ::-1])], axis=0)
    assert np.allclose(teacher_probs(t, faces), flip, atol=1e-6)


def test_teacher_views():
    from edge_fer.train.distill import face_views

    faces = np.zeros((2, 48, 48), np.uint8)
    faces[:, 10:20, 5:15] = 200  # a bright patch left of centre
    flip = face_views(faces, "flip")
    assert len(flip) == 2 and np.array_equal(flip[1], faces[:, :, ::-1])
    multi = face_views(faces, "multi")
    assert len(multi) == 14 and np.array_equal(multi[0], faces)
    for v, m in zip(multi[0::2], multi[1::2], strict=True):
        assert v.shape == faces.shape and v.dtype == np.uint8 and np.array_equal(m, v[:, :, ::-1])
    assert np.array_equal(multi[2][:, 10:20, 7:17], faces[:, 10:20, 5:15])  # shifted right by 2 pixels
    assert all(not np.array_equal(v, faces) for v in multi[2::2])


def test_a_missing_bundle_teacher_is_one_line(teacher, tmp_path):
    data, _ = teacher
    r = run_cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
        *TINY,
        "--teacher",
        str(tmp_path / "nope.tflite"),
        timeout=300,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert err[-1] == f"edge-fer: error: --teacher {tmp_path / 'nope.tflite'}: no such model file"
    assert "Traceback" not in r.stderr


def test_each_epoch_shows_every_face_once_as_one_of_its_copies():
    """--teacher-augments: x holds K copies of N faces (copy after copy) with one target each; an epoch
    draws one copy per face, and the target that comes out is that copy's own."""
    n, k = 12, 3
    x = np.random.default_rng(0).integers(0, 255, (k * n, 48, 48), dtype=np.uint8)
    y = np.zeros((k * n, 7), np.float32)
    for row in range(k * n):  # the target names the row: copy in column 0, face in column 1
        y[row, 0], y[row, 1] = row // n, row % n
    b = FaceBatches(x, y, batch_size=5, training=True, copies=k, one_hot=7)
    assert len(b) == 3  # batches over the 12 faces, not over 36 rows
    chosen = []
    for _epoch in range(4):
        tgt = np.concatenate([b[i][1] for i in range(len(b))])
        assert sorted(tgt[:, 1].astype(int)) == list(range(n))  # every face once
        chosen.append(tgt[np.argsort(tgt[:, 1]), 0].astype(int))
        b.on_epoch_end()
    assert len({tuple(c) for c in chosen}) > 1 and set(np.concatenate(chosen)) == set(range(k))
    with pytest.raises(ValueError, match="copies"):
        FaceBatches(x[:-1], y[:-1], training=True, copies=k)


def test_augmented_copies_are_seeded_warps_of_the_faces():
    from edge_fer.train.distill import augmented_copies

    faces = np.random.default_rng(1).integers(0, 255, (5, 48, 48), dtype=np.uint8)
    a = augmented_copies(faces, 3, seed=4)
    assert a.shape == (15, 48, 48) and a.dtype == np.uint8
    assert np.array_equal(a, augmented_copies(faces[..., None], 3, seed=4))  # a resumed run gets the same
    assert not np.array_equal(a, augmented_copies(faces, 3, seed=5))
    assert not np.array_equal(a[:5], a[5:10])  # the copies differ from each other and from the faces
    assert not np.array_equal(a[:5], faces)


def test_consistent_teaching_trains_on_labelled_copies(teacher, tmp_path):
    data, t = teacher
    out = tmp_path / "student"
    args = ["train", "--data", str(data), "--out", str(out), *TINY, "--teacher", str(t), "--teacher-augments", "3"]
    r = run_cli(*args, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((out / "state.json").read_text())["distillation"]
    assert d["augments"] == 3 and 0.0 <= d["train_accuracy"] <= 1.0
    assert json.loads((out / "config.json").read_text())["teacher_augments"] == 3
    assert (out / "model.keras").is_file()


def test_teacher_augments_without_a_teacher_is_one_line(teacher, tmp_path):
    data, _ = teacher
    r = run_cli(
        "train", "--data", str(data), "--out", str(tmp_path / "o"), *TINY, "--teacher-augments", "4", timeout=300
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip().splitlines()[-1] == "edge-fer: error: --teacher-augments needs a --teacher to label the copies"
    )


def test_a_resumed_run_reuses_the_teacher_targets_and_relabels_for_another_teacher(teacher, tmp_path, caplog):
    import shutil

    data, finished = teacher
    t = tmp_path / "teacher"
    shutil.copytree(finished, t)
    out = tmp_path / "student"
    args = ["train", "--data", str(data), "--out", str(out), *TINY, "--teacher", str(t), "--teacher-augments", "2"]
    assert main(args) == 0
    kept = out / "checkpoints" / "teacher_targets.npz"
    first = np.load(kept)["targets"]
    assert first.shape[1] == 7 and np.allclose(first.sum(1), 1.0, atol=1e-5)

    def resume_after_stage_1() -> str:
        state = json.loads((out / "state.json").read_text())
        state["done"] = ["ae"]  # as if killed after stage 1
        (out / "state.json").write_text(json.dumps(state))
        caplog.clear()
        caplog.set_level("INFO")
        assert main([*args, "--resume"]) == 0
        return caplog.text

    log = resume_after_stage_1()
    assert "teacher targets: reusing teacher_targets.npz" in log and "teacher ensemble of 1" not in log
    # the teacher retrained with other weights: the kept targets are stale and the faces are labelled again
    assert main(["train", "--data", str(data), "--out", str(t), "--overwrite", *TINY, "--seed", "3"]) == 0
    log = resume_after_stage_1()
    assert "reusing" not in log and "teacher ensemble of 1" in log
    assert not np.allclose(np.load(kept)["targets"], first)


def test_detector_copies_are_the_runtimes_crops_of_the_copies(fer2013_zip):
    from edge_fer.train.data import load_labeled_images
    from edge_fer.train.distill import augmented_copies, detector_recut

    from edge_fer.detect import create_detector
    from edge_fer.evaluate import DetectOptions, detector_crop

    faces = np.stack(load_labeled_images(fer2013_zip, "PublicTest").images[:24])
    copies = augmented_copies(faces, 2, seed=0)
    out, recut = detector_recut(copies, len(faces), 1, margin=0.05)
    assert out.shape == copies.shape and out.dtype == np.uint8
    assert recut >= 20  # YuNet finds nearly every FER2013 face given context
    assert np.array_equal(out[24:], copies[24:])  # the second copy stays as the teachers saw it
    det = create_detector("yunet")
    changed = 0
    for i in range(24):
        crop = detector_crop(det, copies[i], DetectOptions(), 0.05, (48, 48))
        assert np.array_equal(out[i], copies[i] if crop is None else crop)
        changed += crop is not None and not np.array_equal(crop, copies[i])
    assert changed == recut


def test_detector_copies_train_on_recut_copies_labelled_as_they_were(teacher, tmp_path, caplog):
    data, t = teacher
    out = tmp_path / "student"
    caplog.set_level("INFO")
    args = ["train", "--data", str(data), "--out", str(out), *TINY, "--teacher", str(t), "--teacher-augments", "2"]
    assert main([*args, "--detector-copies", "1"]) == 0
    assert "detector copies: " in caplog.text and "recut around YuNet's box" in caplog.text
    d = json.loads((out / "state.json").read_text())["distillation"]
    assert d["detector_copies"] == 1 and d["augments"] == 2


def test_a_resumed_run_reuses_the_recut_copies_and_recuts_for_another_margin(teacher, tmp_path, caplog, monkeypatch):
    """The recut copies are kept next to the teacher targets: a resumed run takes them without
    running the detector; a run whose crops differ (another --margin) recuts."""
    data, t = teacher
    out = tmp_path / "student"
    args = ["train", "--data", str(data), "--out", str(out), *TINY, "--teacher", str(t), "--teacher-augments", "2"]
    args += ["--detector-copies", "1"]
    assert main(args) == 0
    kept = out / "checkpoints" / "detector_copies.npz"
    first, first_key = np.load(kept)["copies"], str(np.load(kept)["key"])
    assert first.dtype == np.uint8 and first.shape[1:] == (48, 48) and len(first) > 0

    def resume_after_stage_1(*extra: str) -> str:
        state = json.loads((out / "state.json").read_text())
        state["done"] = ["ae"]  # as if killed after stage 1
        (out / "state.json").write_text(json.dumps(state))
        caplog.clear()
        caplog.set_level("INFO")
        assert main([*args, *extra, "--resume"]) == 0
        return caplog.text

    import edge_fer.train.distill as distill

    real_recut = distill.detector_recut

    def no_recut(*a, **k):
        raise AssertionError("the kept copies should have been reused")

    monkeypatch.setattr(distill, "detector_recut", no_recut)
    log = resume_after_stage_1()
    assert "detector copies: reusing detector_copies.npz" in log
    monkeypatch.setattr(distill, "detector_recut", real_recut)
    log = resume_after_stage_1("--margin", "0.15")  # other crops: the kept ones are stale
    assert "reusing detector_copies.npz" not in log and "recut around YuNet's box" in log
    assert str(np.load(kept)["key"]) != first_key  # kept again, for the new margin


def test_more_detector_copies_than_copies_is_one_line(teacher, tmp_path):
    data, t = teacher
    r = run_cli(
        "train", "--data", str(data), "--out", str(tmp_path / "o"), *TINY, "--teacher", str(t),
        "--teacher-augments", "1", "--detector-copies", "2", timeout=300,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "edge-fer: error: --detector-copies 2 needs at least as many --teacher-augments copies to recut (got 1)"
    )
