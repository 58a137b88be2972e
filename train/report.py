"""The pictures and the model card of a training run (PNG via matplotlib's Agg backend)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from edge_fer.train.results import TrainMetrics

from edge_fer.bundle import Preprocessing
from edge_fer.fsutil import atomic_write_text

log = logging.getLogger("edge_fer.train")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ae = [r for r in rows if r["stage"] == "ae"]
    if ae:
        axes[0].plot([r["epoch"] for r in ae], [r["loss"] for r in ae], "o-", ms=3, label="train")
        if "val_loss" in ae[0]:
            axes[0].plot([r["epoch"] for r in ae], [r["val_loss"] for r in ae], "o-", ms=3, label="validation")
        axes[0].legend()
    else:  # stage 1 taken from another run (--init-ae) or skipped (--no-pretrain): say so, not a blank panel
        axes[0].text(0.5, 0.5, "no autoencoder epochs in this run\n(--init-ae or --no-pretrain)", ha="center")
        axes[0].set_axis_off()
    axes[0].set(title="autoencoder reconstruction (MSE)", xlabel="epoch")
    cls = [r for r in rows if r["stage"] in ("head", "finetune")]
    x = np.arange(1, len(cls) + 1)
    for key, ax, title in (("accuracy", axes[1], "classifier accuracy"), ("loss", axes[2], "classifier loss")):
        if cls:
            ax.plot(x, [r.get(key, np.nan) for r in cls], "o-", ms=3, label="train")
            ax.plot(x, [r.get(f"val_{key}", np.nan) for r in cls], "o-", ms=3, label="validation")
            n_head = sum(r["stage"] == "head" for r in cls)
            if n_head:
                ax.axvline(n_head + 0.5, color="gray", ls="--", lw=1, label="unfreeze encoder")
            ax.legend()
        ax.set(title=title, xlabel="epoch (head + fine-tune)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(report: dict, title: str, path: Path) -> None:
    plt = _plt()
    cm = np.asarray(report["confusion_matrix"], dtype=np.float64)
    labels = report["labels"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n({int(cm[i, j])})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(
        xlabel="predicted",
        ylabel="true",
        title=f"{title}: accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}",
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reconstructions(autoencoder, faces: np.ndarray, path: Path, prep: Preprocessing, n: int = 12) -> None:
    plt = _plt()
    from edge_fer.preprocess import blur, normalize

    x = normalize(blur(faces[:n], prep.blur_sigma), prep.scale, prep.offset)[..., None]
    rec = np.asarray(autoencoder(x, training=False))
    fig, axes = plt.subplots(2, len(x), figsize=(1.2 * len(x), 2.8))
    for i in range(len(x)):
        for row, img in ((0, x[i]), (1, rec[i])):
            axes[row, i].imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
            axes[row, i].axis("off")
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    mse = float(np.mean((rec - x) ** 2))
    fig.suptitle(f"autoencoder on held-out faces (MSE {mse:.4f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def model_card(cfg, metrics: TrainMetrics, meta, dataset) -> str:
    rows = [f"| {name} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |" for name, m in metrics.splits.items()]
    per_class = ""
    final_name = metrics.final_split()
    if final_name:
        final = metrics.splits[final_name]
        per_class = "\n".join(
            f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
            for k, v in final["per_class"].items()
        )
        per_class = (
            "\n### Per class on the final split\n\n| class | precision | recall | F1 | n |\n|---|---|---|---|---|\n"
            + per_class
            + "\n"
        )
    timing = ", ".join(f"{k}: {v['epochs']} epochs in {v['seconds']:.0f} s" for k, v in metrics.timing.items())
    p = meta.provenance
    return f"""# Model card: edge-fer expression classifier

- **Task**: 7-class facial expression ({", ".join(meta.labels)}) from a {meta.input_height}x{meta.input_width} grayscale face crop.
- **Architecture**: convolutional encoder (pretrained as an undercomplete autoencoder: {"yes" if cfg.pretrain else "no, --no-pretrain ablation"}) + conv/GAP/dense head, width {cfg.width}, {p.get("params")} parameters.
- **Training data**: `{p.get("dataset")}` ({p.get("dataset_kind")}), {metrics.train_images} training faces. Model selection on {metrics.selection.get("split")} (best epoch {metrics.selection.get("best_epoch")}); the final split was never used for any choice.
- **Preprocessing** (embedded in the bundle, read by the runtime): grayscale, square crop with margin {meta.preprocessing.margin}, `{meta.preprocessing.resize}` resize, Gaussian blur sigma {meta.preprocessing.blur_sigma}, input = pixel x {meta.preprocessing.scale:.6f} + {meta.preprocessing.offset}.{_sharpness_note(metrics)}
- **Training**: seed {cfg.seed}, batch {cfg.batch_size}, {timing}; {_framework(p)}, created {p.get("created")}.

## Results (float Keras model)

| split | n | accuracy | macro-F1 |
|---|---|---|---|
{chr(10).join(rows)}
{per_class}
## Intended use and limits

Research, demos and aggregate, consented measurements (e.g. audience reactions) on devices such as a
Raspberry Pi. FER2013 faces are web images of posed and spontaneous expressions with label noise
(human accuracy is about 65%); the dataset's demographics are not balanced and accuracy differs across
groups, head poses and lighting. Do not use this model for decisions about individuals (hiring,
policing, health, education). Expressions are not emotions.
"""


def _framework(p: dict) -> str:
    """'Keras 3.x on jax 0.10.2 (cpu)'; runs from before the backend choice recorded TensorFlow only."""
    backend = p.get("backend") or "tensorflow"
    version = p.get("backend_version") or p.get("tensorflow")
    devices = ", ".join(p.get("devices") or [])
    return f"Keras {p.get('keras')} on {backend} {version}" + (f" ({devices})" if devices else "")


def _sharpness_note(metrics: TrainMetrics) -> str:
    s = metrics.sharpness or {}
    if not s.get("degraded"):
        return ""
    return (
        f"\n- **Data caveat**: the training faces are heavily blurred (median Laplacian variance "
        f"{s['train_laplacian_var']}) while validation/test faces are sharp ({s['val_laplacian_var']}). "
        f"All non-training inputs (validation, test, the camera at run time) are blurred with sigma "
        f"{s['blur_sigma']} to match ({s.get('val_laplacian_var_after_blur')} after blurring); without it "
        f"the model scores below chance on sharp faces. Fine detail that expressions carry is lost."
    )


def write_all(run, rows, metrics: TrainMetrics, dataset, autoencoder, cfg, meta) -> None:
    try:
        plot_curves(rows, run.curves)
        final_key = metrics.final_split() or next(iter(metrics.splits), None)
        if final_key:
            plot_confusion(metrics.splits[final_key], final_key, run.confusion)
        if autoencoder is not None:
            plot_reconstructions(autoencoder, dataset.splits["val"].x, run.recon, meta.preprocessing)
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install 'edge-fer[train]')")
    atomic_write_text(run.card, model_card(cfg, metrics, meta, dataset))
