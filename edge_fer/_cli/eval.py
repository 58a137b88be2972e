"""`edge-fer eval`: accuracy, macro-F1, per-class precision/recall and the confusion matrix of a
bundle on labeled faces, through the runtime's own classifier (never TensorFlow).

    edge-fer eval --data fer2013.zip                       # the shipped model, FER2013 PrivateTest
    edge-fer eval --model m.tflite --data faces/ --detect  # DIR/<class>/*, crops from the detector
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval", help="Evaluate a model bundle on labeled faces through the runtime's own preprocessing.")
    def eval_cmd(
        data: Path = typer.Option(
            ..., "--data", help="FER2013 .csv/.zip/folder, or a labeled image folder DIR/<class>/*."
        ),
        model: Path | None = typer.Option(
            None, "--model", "-m", help="Model bundle (.tflite); default: the shipped one."
        ),
        split: str | None = typer.Option(
            None, "--split", help="PrivateTest (default for FER2013), PublicTest, Training, test, val, train or all."
        ),
        detect: bool = typer.Option(
            False,
            "--detect",
            help="Classify the crop the runtime's face detector makes (images without a face are counted).",
        ),
        json_path: Path | None = typer.Option(None, "--json", help="Write the figures to this JSON file."),
        class_map: list[str] = typer.Option(
            [], "--class-map", help="FOLDER=LABEL mapping of your class folders (repeatable)."
        ),
        detector: str = typer.Option(
            "yunet", "--detector", help="With --detect: yunet (the default detector, shipped) or haar."
        ),
        detector_model: str | None = typer.Option(
            None, "--detector-model", help="With --detect: the YuNet .onnx (or a Haar cascade XML)."
        ),
        detect_scale: float = typer.Option(
            1.0, "--detect-scale", help="With --detect: downscale factor before detection (0.05-1)."
        ),
        min_face: int = typer.Option(30, "--min-face", help="With --detect: smallest face side in pixels."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on stdout (use with --json)."),
    ) -> None:
        from edge_fer.errors import ConfigError
        from edge_fer.evaluate import DetectOptions, evaluate

        if not 0.05 <= detect_scale <= 1.0:
            raise ConfigError(f"--detect-scale must be in [0.05, 1], got {detect_scale}")
        if min_face < 1:
            raise ConfigError(f"--min-face must be >= 1, got {min_face}")
        opts = DetectOptions(detector=detector, model=detector_model or "", scale=detect_scale, min_size=min_face)
        rep = evaluate(model, data, split=split, detect=detect, class_map=list(class_map), detect_options=opts)
        if json_path:
            from edge_fer.errors import EdgeFerError
            from edge_fer.fsutil import atomic_write_json

            try:
                json_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise EdgeFerError(f"--json {json_path}: cannot write ({e.strerror or e})") from None
            try:
                atomic_write_json(json_path, rep.to_dict())
            except EdgeFerError as e:
                raise EdgeFerError(f"--json {json_path}: {e}") from None
        if not quiet:
            typer.echo(rep.render())
