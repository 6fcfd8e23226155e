"""Annotated images and videos for ``mmstream perceive --annotate OUT``: boxes, landmarks, labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def draw(image: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    import cv2

    out = image.copy()
    for face in record.get("faces", []):
        x1, y1, x2, y2 = (int(round(v)) for v in face["box"])
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), 2)
        for x, y in face.get("landmarks") or []:
            cv2.circle(out, (int(round(x)), int(round(y))), 2, (0, 0, 255), -1)
        expr = face.get("expression") or {}
        if expr:
            label = max(expr, key=expr.get)
            cv2.putText(out, f"{label} {expr[label]:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 255, 0), 1, cv2.LINE_AA)
    est = record.get("estimate") or {}
    if est:
        label = max(est, key=est.get)
        cv2.putText(out, f"estimate: {label} {est[label]:.2f}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out


class Annotator:
    """Writes OUT/<stem>.png per image and OUT/<stem>.mp4 per video."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, Any] = {}
        self.written: list[Path] = []

    def add(self, record: dict[str, Any]) -> None:
        import cv2

        image = record.get("_image")
        if image is None:
            return
        stem = Path(record["file"]).stem
        if record["kind"] == "image":
            path = self.out_dir / f"{stem}.png"
            cv2.imwrite(str(path), draw(image, record))
            self.written.append(path)
            return
        writer = self._writers.get(record["file"])
        if writer is None:
            path = self.out_dir / f"{stem}.mp4"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(record.get("_fps", 30.0)),
                                     (image.shape[1], image.shape[0]))
            self._writers[record["file"]] = writer
            self.written.append(path)
        writer.write(draw(image, record))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()
