"""Label-efficiency study: what autoencoder pretraining is worth when labels are scarce.

For each label fraction (stratified, seeded ``--limit`` of FER2013 Training) and seed, the same
classifier (same architecture, recipe and epoch budget) is trained twice:

* ``pretrained``: stage 1 is the autoencoder pretrained on **all** training faces without their
  labels (``--init-ae`` from a full run, so every fraction shares it), then head + fine-tuning;
* ``scratch``: ``--no-pretrain``, the same classifier from random initialisation, for the same
  number of classifier epochs (head + fine-tune).

PublicTest accuracy (the selection split) is reported; PrivateTest is not looked at here. Each run
is an ordinary ``edge-fer train`` run dir under ``--out``; finished runs are reused, so the study
resumes after an interruption. Writes ``label_efficiency.json``, ``label_efficiency.md`` (docs/autoencoder.md
table) and ``label_efficiency.png``.

    python benchmarks/label_efficiency.py --data ../shared/data/fer2013.zip --init-ae runs/res16 \\
        --out runs/label_eff --fractions 0.05 0.1 0.25 --seeds 0 1 --seeds-large 0 \\
        --epochs-for 0.05=80 0.1=50 0.25=30 -- --arch res --width 16 ...
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

FER_TRAIN = 28709


def epochs_for(args, frac: float) -> int:
    """Fewer labels, more epochs (a fixed epoch count would give a 5% run 20x fewer optimizer steps
    than a 100% run): ``--epochs-for 0.05=80`` overrides ``--epochs`` per fraction."""
    for item in args.epochs_for:
        f, _, e = item.partition("=")
        if abs(float(f) - frac) < 1e-9:
            return int(e)
    return args.epochs


def run_one(args, frac: float, seed: int, variant: str, extra: list[str]) -> dict:
    out = Path(args.out) / f"f{frac:g}_s{seed}_{variant}"
    metrics = out / "metrics.json"
    if not metrics.exists():
        limit = max(7, int(round(frac * args.train_size)))
        cmd = [
            sys.executable,
            "-m",
            "edge_fer.cli",
            "train",
            "--data",
            args.data,
            "--out",
            str(out),
            "--limit",
            str(limit),
            "--seed",
            str(seed),
            "--epochs",
            str(epochs_for(args, frac)),
            "--head-epochs",
            str(args.head_epochs),
            "--resume",
            *extra,
        ]
        cmd += ["--init-ae", args.init_ae, "--ae-epochs", "0"] if variant == "pretrained" else ["--no-pretrain"]
        t0 = time.time()
        with open(Path(args.out) / "study.log", "a") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
        print(f"  {out.name}: {time.time() - t0:.0f} s", flush=True)
    m = json.loads(metrics.read_text())
    return {
        "fraction": frac,
        "seed": seed,
        "variant": variant,
        "train_images": m["train_images"],
        "public_accuracy": m["PublicTest"]["accuracy"],
        "public_macro_f1": m["PublicTest"]["macro_f1"],
        "seconds": sum(v.get("seconds", 0.0) for v in m.get("timing", {}).values()),
        "init_ae": args.init_ae if variant == "pretrained" else None,
    }


def kept_rows(path: str, rows: list[dict]) -> list[dict]:
    """The rows of an earlier study's ``label_efficiency.json`` (its run dirs may be gone) that this
    one did not train: a study continued on another machine keeps what was measured before."""
    done = {(r["fraction"], r["seed"], r["variant"]) for r in rows}
    old = json.loads(Path(path).read_text())["rows"]
    return [{**r, "kept_from": path} for r in old if (r["fraction"], r["seed"], r["variant"]) not in done]


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for frac in sorted({r["fraction"] for r in rows}):
        line: dict = {"fraction": frac}
        for variant in ("scratch", "pretrained"):
            acc = [r["public_accuracy"] for r in rows if r["fraction"] == frac and r["variant"] == variant]
            line[variant] = {
                "mean": statistics.fmean(acc) if acc else None,
                "sd": statistics.stdev(acc) if len(acc) > 1 else None,
                "n": len(acc),
                "runs": acc,
            }
        s, p = line["scratch"]["mean"], line["pretrained"]["mean"]
        line["gain_points"] = None if s is None or p is None else round(100 * (p - s), 2)
        line["train_images"] = next(r["train_images"] for r in rows if r["fraction"] == frac)
        out.append(line)
    return out


def markdown(summary: list[dict]) -> str:
    def cell(v: dict) -> str:
        if v["mean"] is None:
            return "not run"
        sd = f" ± {100 * v['sd']:.1f}" if v["sd"] is not None else ""
        return f"{100 * v['mean']:.1f}{sd} (n={v['n']})"

    lines = ["| labels used | training faces | from scratch | AE-pretrained | gain (points) |", "|---|---|---|---|---|"]
    for s in summary:
        gain = "—" if s["gain_points"] is None else f"{s['gain_points']:+.1f}"
        lines.append(
            f"| {100 * s['fraction']:g}% | {s['train_images']} | {cell(s['scratch'])} | "
            f"{cell(s['pretrained'])} | {gain} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for variant, style in (("scratch", "o--"), ("pretrained", "s-")):
        xs = [s["fraction"] * 100 for s in summary if s[variant]["mean"] is not None]
        ys = [s[variant]["mean"] * 100 for s in summary if s[variant]["mean"] is not None]
        es = [(s[variant]["sd"] or 0) * 100 for s in summary if s[variant]["mean"] is not None]
        ax.errorbar(
            xs,
            ys,
            yerr=es,
            fmt=style,
            capsize=3,
            label="AE-pretrained encoder" if variant == "pretrained" else "from scratch",
        )
    ax.set_xscale("log")
    ax.set_xlabel("training labels used (% of FER2013 Training)")
    ax.set_ylabel("PublicTest accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--init-ae", required=True, help="run dir whose stage-1 autoencoder saw all training faces")
    ap.add_argument("--out", required=True)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument(
        "--seeds-large",
        type=int,
        nargs="+",
        default=None,
        help="seeds for fractions >= 0.25 (fewer when CPU time is short)",
    )
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--epochs-for", nargs="*", default=[], metavar="FRACTION=EPOCHS")
    ap.add_argument("--head-epochs", type=int, default=1)
    ap.add_argument("--train-size", type=int, default=FER_TRAIN)
    ap.add_argument(
        "--full-run",
        action="append",
        default=[],
        help="VARIANT=RUN_DIR of a finished 100%% run to include (e.g. pretrained=runs/res16)",
    )
    ap.add_argument(
        "--summarize-only",
        action="store_true",
        help="train nothing: tabulate the finished runs under --out (a study cut short)",
    )
    ap.add_argument(
        "--keep-rows",
        default=None,
        metavar="JSON",
        help="an earlier study's label_efficiency.json: its rows for runs not trained here are kept",
    )
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then flags passed to every edge-fer train")
    a = ap.parse_args(argv)
    extra = [x for x in a.train_args if x != "--"]
    Path(a.out).mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in a.seeds:  # every fraction once before any second seed: a cut-short study is still a table
        for frac in a.fractions:
            if a.seeds_large is not None and frac >= 0.25 and seed not in a.seeds_large:
                continue
            for variant in ("pretrained", "scratch"):
                if a.summarize_only and not (Path(a.out) / f"f{frac:g}_s{seed}_{variant}" / "metrics.json").exists():
                    continue
                rows.append(run_one(a, frac, seed, variant, extra))
                (Path(a.out) / "label_efficiency_rows.json").write_text(json.dumps(rows, indent=2))
    for item in a.full_run:
        variant, _, run_dir = item.partition("=")
        m = json.loads((Path(run_dir) / "metrics.json").read_text())
        rows.append(
            {
                "fraction": 1.0,
                "seed": json.loads((Path(run_dir) / "config.json").read_text())["seed"],
                "variant": variant,
                "train_images": m["train_images"],
                "public_accuracy": m["PublicTest"]["accuracy"],
                "public_macro_f1": m["PublicTest"]["macro_f1"],
                "seconds": None,
                "run_dir": run_dir,
            }
        )
    if a.keep_rows:
        rows += kept_rows(a.keep_rows, rows)
    summary = summarize(rows)
    out = Path(a.out)
    (out / "label_efficiency.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    (out / "label_efficiency.md").write_text(markdown(summary))
    plot(summary, out / "label_efficiency.png")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
