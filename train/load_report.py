"""What loading a dataset found: faces loaded, and everything skipped, counted and named (never a crash)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """What loading found: skipped files are counted and named, never a crash."""

    source: str
    kind: str = ""
    loaded: int = 0
    corrupt: int = 0
    corrupt_examples: list[str] = field(default_factory=list)
    unknown_classes: dict[str, int] = field(default_factory=dict)
    empty_classes: list[str] = field(default_factory=list)
    ignored_files: int = 0

    def add_corrupt(self, name: str) -> None:
        self.corrupt += 1
        if len(self.corrupt_examples) < 10:
            self.corrupt_examples.append(name)

    def lines(self) -> list[str]:
        out = [f"{self.source}: {self.loaded} faces loaded ({self.kind})"]
        if self.corrupt:
            ex = ", ".join(self.corrupt_examples[:3])
            out.append(f"skipped {self.corrupt} unreadable/corrupt image(s), e.g. {ex}")
        if self.unknown_classes:
            desc = ", ".join(f"{k!r} ({v} files)" for k, v in sorted(self.unknown_classes.items()))
            out.append(f"ignored unknown class folder(s) {desc}; map them with --class-map NAME=LABEL")
        if self.empty_classes:
            out.append(f"no images for class(es): {', '.join(self.empty_classes)}")
        if self.ignored_files:
            out.append(f"ignored {self.ignored_files} non-image file(s)")
        return out

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "loaded": self.loaded,
            "corrupt": self.corrupt,
            "corrupt_examples": self.corrupt_examples,
            "unknown_classes": self.unknown_classes,
            "empty_classes": self.empty_classes,
            "ignored_files": self.ignored_files,
        }
