"""Drawings of the hardest images: ground truth in green, predictions in a colour per kind, each
labelled. Uses Pillow's built-in font, so it needs no download."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from worker.mining import matching as k
from worker.mining.report import MinedImage

GROUND_TRUTH_COLOUR = (0, 200, 0)
PREDICTION_COLOURS = {
    k.MATCHED: (0, 120, 255),
    k.LOW_CONFIDENCE: (255, 165, 0),
    k.MISCLASSIFICATION: (255, 0, 255),
    k.DUPLICATE: (0, 200, 200),
    k.LOCALIZATION: (255, 255, 0),
    k.HARD_NEGATIVE: (255, 0, 0),
    k.BACKGROUND: (160, 0, 0),
}
MAX_SIDE = 1280


def _label(obj: dict) -> str:
    if obj["source"] == "ground_truth":
        return f"GT {obj['class']}" + ("" if obj["kind"] == k.MATCHED else f" {obj['kind']}")
    return f"{obj['predicted_class']} {obj['confidence']:.2f} {obj['kind']}"


def draw_preview(image: MinedImage, target: Path) -> Path:
    """Draw one mined image to ``target`` (JPEG), scaled so that its longer side is at most MAX_SIDE."""
    with Image.open(image.im_file) as opened:
        canvas = opened.convert("RGB")
    scale = min(1.0, MAX_SIDE / max(canvas.size))
    grow = 4 if max(canvas.size) < 320 else 1  # tiny images get room for readable labels
    factor = scale * grow
    if factor != 1.0:
        canvas = canvas.resize((round(canvas.width * factor), round(canvas.height * factor)), Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for obj in sorted(image.objects, key=lambda o: o["source"] != "ground_truth"):
        colour = GROUND_TRUTH_COLOUR if obj["source"] == "ground_truth" else PREDICTION_COLOURS[obj["kind"]]
        x1, y1, x2, y2 = (v * factor for v in obj["box"])
        draw.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=colour, width=2)
        text = _label(obj)
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        y = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y2 + 1
        draw.rectangle((x1, y, x1 + right - left + 2, y + bottom - top + 2), fill=colour)
        draw.text((x1 + 1, y), text, fill=(0, 0, 0), font=font)
    target.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(target, quality=90)
    return target
