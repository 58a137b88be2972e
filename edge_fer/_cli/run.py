"""`edge-fer run`: camera/video/images -> faces -> expressions -> JSON-line events.

Flags are a view of :mod:`edge_fer.config` (``--config file.toml`` is the other); flags override
the file. Heavy imports (OpenCV, the interpreter) happen inside the command, never TensorFlow.
"""

from __future__ import annotations

from typing import Optional

import typer

# flag parameter name -> config key
FLAG_KEYS = {
    "source": "source.uri",
    "model": "model.path",
    "device": "model.device",
    "threads": "model.threads",
    "detector": "detector.name",
    "detector_model": "detector.model",
    "detect_every": "detector.every",
    "full_every": "detector.full_every",
    "detect_scale": "detector.scale",
    "min_face": "detector.min_size",
    "output": "output.path",
    "format": "output.format",
    "overwrite": "output.overwrite",
    "per_frame": "output.per_frame",
    "annotate": "output.annotate",
    "save_crops": "output.save_crops",
    "quality": "quality.enabled",
    "quality_model": "quality.model",
    "quality_threshold": "quality.threshold",
    "mqtt_host": "mqtt.host",
    "mqtt_port": "mqtt.port",
    "mqtt_topic": "mqtt.topic",
    "http_host": "http.host",
    "http_port": "http.port",
    "max_frames": "run.max_frames",
    "loop": "source.loop",
    "wait_for_source": "source.wait",
    "width": "source.width",
    "height": "source.height",
}


# Pipeline options that `edge-fer bench` shares with `edge-fer run` (same flags, same help).
PIPELINE_OPTIONS = {
    "detector": typer.Option(None, "--detector", help="Face detector: haar (default) or yunet."),
    "detector_model": typer.Option(None, "--detector-model", help="YuNet .onnx model (with --detector yunet)."),
    "detect_every": typer.Option(None, "--detect-every", help="Detect faces every N frames; the tracker carries them in between."),
    "detect_scale": typer.Option(None, "--detect-scale", help="Downscale factor of the frame for detection (default 0.5)."),
    "full_every": typer.Option(None, "--full-every", help="A full-frame detection every N frames, between them only a window around each known face (default 12; 0: full frame every time)."),
    "min_face": typer.Option(None, "--min-face", help="Smallest face side in pixels."),
    "device": typer.Option(None, "--device", help="auto | cpu | edgetpu."),
    "width": typer.Option(None, "--width", help="Camera capture width."),
    "height": typer.Option(None, "--height", help="Camera capture height."),
}
_O = PIPELINE_OPTIONS


def register(app: typer.Typer) -> None:
    @app.command("run", help="Run the recognizer on a camera, stream, video or images; print JSON-line events.")
    def run_cmd(
        source: Optional[str] = typer.Option(None, "--source", "-s", help="Video file, image/folder/glob, camera index, rtsp://|http:// URL, or 'picamera2'."),
        model: Optional[str] = typer.Option(None, "--model", "-m", help="Model bundle (.tflite from 'edge-fer convert'). Default: the shipped model."),
        output: Optional[str] = typer.Option(None, "--output", "-o", help="Events file, or '-' for stdout (default)."),
        config: Optional[str] = typer.Option(None, "--config", "-c", help="TOML config file; flags override it."),
        format: Optional[str] = typer.Option(None, "--format", help="Output format: jsonl (default) or csv."),
        overwrite: Optional[bool] = typer.Option(None, "--overwrite/--append", help="Truncate the events file at start instead of appending to it (default: append; a restart never erases earlier events)."),
        detector: Optional[str] = _O["detector"],
        detector_model: Optional[str] = _O["detector_model"],
        detect_every: Optional[int] = _O["detect_every"],
        full_every: Optional[int] = _O["full_every"],
        detect_scale: Optional[float] = _O["detect_scale"],
        min_face: Optional[int] = _O["min_face"],
        device: Optional[str] = _O["device"],
        threads: Optional[int] = typer.Option(None, "--threads", help="Interpreter threads (0: default)."),
        max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after N frames (0: no limit)."),
        per_frame: Optional[bool] = typer.Option(None, "--per-frame/--no-per-frame", help="Also emit one 'face' event per face per frame."),
        loop: Optional[bool] = typer.Option(None, "--loop/--no-loop", help="Loop a video file."),
        wait_for_source: Optional[bool] = typer.Option(None, "--wait-for-source/--no-wait-for-source", help="Keep retrying (with back-off) a camera or stream that cannot be opened yet, instead of exiting (daemon)."),
        width: Optional[int] = _O["width"],
        height: Optional[int] = _O["height"],
        annotate: Optional[str] = typer.Option(None, "--annotate", help="Write an annotated video here (off by default: privacy)."),
        save_crops: Optional[str] = typer.Option(None, "--save-crops", help="Save face crops to this folder (off by default: privacy)."),
        quality: Optional[bool] = typer.Option(None, "--quality/--no-quality", help="Crop-quality gate: use <model>_ae.tflite when it is next to the model (default on; 'edge-fer convert --quality' makes it)."),
        quality_model: Optional[str] = typer.Option(None, "--quality-model", help="The gate's autoencoder bundle, if not <model>_ae.tflite."),
        quality_threshold: Optional[float] = typer.Option(None, "--quality-threshold", help="Reconstruction MSE above which a crop is low quality (default: the bundle's calibrated one)."),
        mqtt_host: Optional[str] = typer.Option(None, "--mqtt-host", help="Publish events to this MQTT broker (needs edge-fer[mqtt])."),
        mqtt_port: Optional[int] = typer.Option(None, "--mqtt-port", help="MQTT broker port (1883)."),
        mqtt_topic: Optional[str] = typer.Option(None, "--mqtt-topic", help="MQTT topic prefix (edge-fer)."),
        http_port: Optional[int] = typer.Option(None, "--http-port", help="Serve /healthz /metrics /latest on this port (0: off)."),
        http_host: Optional[str] = typer.Option(None, "--http-host", help="HTTP bind address (127.0.0.1)."),
        print_config: bool = typer.Option(False, "--print-config", help="Print the effective config as TOML and exit."),
    ) -> None:
        from edge_fer import config as cfgmod
        from edge_fer.errors import ConfigError

        values = dict(locals())
        overrides = {key: values[name] for name, key in FLAG_KEYS.items()}
        cfg = cfgmod.build(config, overrides)
        if print_config:
            typer.echo(cfgmod.to_toml(cfg, redact=True))  # secrets as ***: a printed config is often shared
            raise typer.Exit(0)
        if source is None and not config:
            raise ConfigError("no --source given (a video file, images, a camera index, a URL or 'picamera2')")
        from edge_fer.daemon import run_from_config

        code = run_from_config(cfg)
        if code:
            raise typer.Exit(code)
