"""Drawing detections and evaluation plots.

Boxes and labels are drawn with OpenCV, each class in its own colour, labels
on a filled band with text scaled to the image; plots use
matplotlib's object API (`matplotlib.figure.Figure`, no pyplot state, no
display needed). Files are written atomically (temporary file + `os.replace`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence

import cv2
import numpy as np

from cornernet_tf.utils.fs import atomic_write_bytes

__all__ = [
    "GROUND_TRUTH_COLOR",
    "DETECTION_COLOR",
    "class_colors",
    "draw_detections",
    "label_style",
    "plot_precision_recall",
    "save_gallery",
    "save_image",
    "upscale",
]

GROUND_TRUTH_COLOR = (0, 200, 0)  # RGB
DETECTION_COLOR = (255, 40, 40)


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """Distinct RGB colours (0-255) for `num_classes` classes (matplotlib `tab20`, then `hsv`).

    Args:
        num_classes: number of colours.

    Returns:
        A list of `num_classes` RGB tuples.
    """
    from matplotlib import colormaps

    if num_classes <= 20:
        rgba = colormaps["tab20"](np.arange(num_classes) * 2 % 20 + np.arange(num_classes) // 10)
    else:
        rgba = colormaps["hsv"](np.linspace(0.0, 1.0, num_classes, endpoint=False))
    return [tuple(int(round(255 * c)) for c in color[:3]) for color in rgba]


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    class_names: Sequence[str] | None = None,
    color: tuple[int, int, int] | None = None,
    line_thickness: int | None = None,
    font_scale: float | None = None,
) -> np.ndarray:
    """Draws boxes labelled "name score" on a copy of an image.

    Each label is written on a filled band of its box's colour (black or white
    text, whichever contrasts more), above the box where there is room and
    inside its top edge otherwise, shifted to stay inside the image; a label
    wider than the image is shortened. Labels of higher scores are drawn last
    (on top). Text and lines scale with the image (`label_style`), so labels
    read the same on a 128-pixel thumbnail and a 4000-pixel photo. The font
    (OpenCV's Hershey) is ASCII: other characters of a name are drawn as "?".

    Args:
        image: [H, W, 3] RGB, uint8 (or float 0-255).
        boxes: [N, 4] `x1, y1, x2, y2` in image pixels.
        classes: [N] class ids; negative ids (padding) are not drawn.
        scores: optional [N] confidences shown after the class name.
        class_names: names by class id (ids are shown when None).
        color: one RGB colour for every box; by default each class has its own
            (`class_colors`).
        line_thickness: box line width in pixels; by default from the image size.
        font_scale: OpenCV font scale; by default from the image size.

    Returns:
        [H, W, 3] uint8, the annotated image.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"draw_detections: `image` must be [H, W, 3] RGB, got shape {image.shape}; convert "
            "grayscale/RGBA images to RGB first."
        )
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)  # [N, 4]
    classes = np.asarray(classes).reshape(-1).astype(np.int32)  # [N]
    if len(classes) != len(boxes):
        raise ValueError(
            f"draw_detections: {len(boxes)} boxes but {len(classes)} classes; pass one class "
            "per box."
        )
    if scores is not None:
        scores = np.asarray(scores, np.float32).reshape(-1)
    height, width = image.shape[:2]
    style = label_style(height, width)
    line_thickness = line_thickness or style["line_thickness"]
    font_scale = font_scale or style["font_scale"]
    text_thickness = max(1, round(font_scale * 1.6))
    out = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))
    valid = np.flatnonzero(classes >= 0)
    if len(valid) == 0:
        return out
    if scores is not None:
        valid = valid[np.argsort(scores[valid], kind="stable")]  # best drawn last, on top
    palette = class_colors(max(int(classes[valid].max()) + 1, len(class_names or ())))
    labels = []
    for i in valid:
        k = int(classes[i])
        box_color = tuple(int(c) for c in (color or palette[k]))
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), box_color, line_thickness)
        name = class_names[k] if class_names is not None and k < len(class_names) else str(k)
        # OpenCV's Hershey font has ASCII only (it would draw one "?" per UTF-8 byte).
        name = "".join(c if " " <= c <= "~" else "?" for c in str(name))
        score = "" if scores is None else f" {float(scores[i]):.2f}"
        labels.append((name, score, x1, y1, box_color))
    for name, score, x1, y1, box_color in labels:  # after every box: no line crosses a label
        _draw_label(out, name, score, x1, y1, box_color, font_scale, text_thickness)
    return out


_FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_style(height: int, width: int) -> dict:
    """Font scale and box line width for an image: text about 2.5% of its shorter side.

    The text is never below 8 pixels high (OpenCV's Hershey font stops being
    legible under that); lines are one pixel per 320 pixels of the shorter side.

    Returns:
        `{"font_scale": float, "line_thickness": int}` for `draw_detections`.
    """
    side = max(1, min(height, width))
    text_height = max(8.0, 0.025 * side)
    (_, unit), _ = cv2.getTextSize("Ag", _FONT, 1.0, 1)  # cap height at scale 1
    return {"font_scale": text_height / unit, "line_thickness": max(1, round(side / 320))}


def _draw_label(out, name, score, x1, y1, color, font_scale, thickness) -> None:
    """Writes `name + score` on a filled band at a box's top-left corner, inside the image."""
    height, width = out.shape[:2]
    pad = max(1, round(font_scale * 4))
    text = name + score
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    while text_w + 2 * pad > width and len(name) > 1:  # too wide for the image: shorten the name
        name = name[:-2] + "."
        text = name + score
        (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    band_w, band_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    left = int(np.clip(x1, 0, max(0, width - band_w)))
    top = y1 - band_h if y1 - band_h >= 0 else y1  # above the box, else inside its top edge
    top = int(np.clip(top, 0, max(0, height - band_h)))
    cv2.rectangle(out, (left, top), (left + band_w - 1, top + band_h - 1), color, cv2.FILLED)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    origin = (left + pad, top + pad + text_h)
    cv2.putText(out, text, origin, _FONT, font_scale, ink, thickness, cv2.LINE_AA)


def upscale(image: np.ndarray, *boxes: np.ndarray, min_side: int = 320) -> tuple:
    """Enlarges a small image (nearest neighbour) and its boxes so that labels stay legible.

    Args:
        image: [H, W, 3].
        *boxes: arrays [N, 4] of `x1, y1, x2, y2` in image pixels.
        min_side: the shorter side after resizing; larger images are unchanged.

    Returns:
        (image, *boxes), resized by the same integer factor.
    """
    factor = max(1, int(math.ceil(min_side / max(1, min(image.shape[:2])))))
    if factor > 1:
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    return (image, *(np.asarray(b, np.float32) * factor for b in boxes))


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes an RGB image (format from the extension, e.g. .png, .jpg) atomically.

    Args:
        path: destination file.
        image: [H, W, 3] uint8 RGB.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1] or ".png"
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"save_image: OpenCV cannot encode {ext!r} images ({path}); use .png.")
    atomic_write_bytes(path, encoded.tobytes())


def plot_precision_recall(
    precision: np.ndarray,
    recall_thresholds: np.ndarray,
    iou_thresholds: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
) -> None:
    """Plots COCO precision-recall curves, one panel per class, as a PNG.

    Each panel shows the curves at IoU 0.5 and 0.75 and the mean over
    0.5:0.95 (area "all", 100 detections), with AP in the legend.

    Args:
        precision: `COCOeval.eval["precision"]` [T, R, K, A, M]; -1 where undefined.
        recall_thresholds: `COCOeval.params.recThrs` [R].
        iou_thresholds: `COCOeval.params.iouThrs` [T].
        class_names: [K] panel titles.
        path: the PNG to write.
    """
    from matplotlib.figure import Figure

    precision = np.asarray(precision)[:, :, :, 0, -1]  # [T, R, K]
    num_classes = precision.shape[2]
    if len(class_names) != num_classes:
        raise ValueError(
            f"plot_precision_recall: {len(class_names)} class names for {num_classes} classes."
        )
    cols = min(num_classes, 4 if num_classes <= 16 else int(math.ceil(math.sqrt(num_classes))))
    rows = int(math.ceil(num_classes / cols))
    fig = Figure(figsize=(3.2 * cols, 2.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    iou_thresholds = np.asarray(iou_thresholds)
    for k, ax in enumerate(axes.flat):
        if k >= num_classes:
            ax.set_axis_off()
            continue
        p = precision[:, :, k]  # [T, R]
        ax.set_title(class_names[k], fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        if not np.any(p > -1):
            ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", fontsize=8)
            continue
        for iou in (0.5, 0.75):
            t = int(np.argmin(np.abs(iou_thresholds - iou)))
            ax.plot(recall_thresholds, p[t], label=f"IoU {iou:.2f}: AP {p[t].mean():.3f}")
        mean = np.where(p > -1, p, np.nan).mean(axis=0)  # [R]
        ax.plot(recall_thresholds, mean, "k--", label=f"IoU .5:.95: AP {np.nanmean(mean):.3f}")
        ax.legend(fontsize=6, loc="lower left")
    fig.supxlabel("recall")
    fig.supylabel("precision")
    _save_figure(fig, path)


def save_gallery(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | os.PathLike,
    *,
    cols: int = 4,
    legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
) -> None:
    """Writes images of any sizes in a grid with titles, as a PNG.

    Args:
        images: [H, W, 3] uint8 RGB images (already annotated).
        titles: one title per image.
        path: the PNG to write.
        cols: images per row.
        legend: (label, RGB colour) entries for a figure legend.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if len(images) != len(titles):
        raise ValueError(f"save_gallery: {len(images)} images but {len(titles)} titles.")
    if not images:
        raise ValueError("save_gallery: no images to show.")
    cols = max(1, min(cols, len(images)))
    rows = int(math.ceil(len(images) / cols))
    fig = Figure(figsize=(3.5 * cols, 3.5 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(images):
            ax.imshow(images[i])
            ax.set_title(titles[i], fontsize=9)
    if legend:
        handles = [Patch(color=np.asarray(c) / 255.0, label=label) for label, c in legend]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    _save_figure(fig, path)


def _save_figure(fig, path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(os.fspath(path), buffer.getvalue())
