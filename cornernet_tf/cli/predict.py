"""Detects objects in images and videos with a trained CornerNet; writes annotated copies and JSON.

    cornernet-predict --model runs/shapes/model.keras INPUT [INPUT ...] --output DIR \\
        [--score-threshold 0.3] [--batch-size 1] [--max-image-side 2048]

(also `python -m cornernet_tf.cli.predict` or `python scripts/predict.py`).

An INPUT is an image or video file, a folder (walked recursively, in sorted
order, hidden files left out) or a glob pattern (quote it; `**` matches any
depth of folders). JPEG, PNG, GIF, BMP and WebP images are read; grayscale
and RGBA images are converted to RGB and a JPEG's EXIF orientation is applied
(sizes and boxes are those of the image as viewers show it). Videos (.mp4,
.mov, .avi, .mkv, .webm, ...) are read frame by frame with OpenCV.

Outputs mirror each input's path relative to the folder or pattern that named
it (a file named on its own: its file name), without the extension:

- image `sub/a.jpg` → `DIR/sub/a.png` (the detections drawn: box, class name,
  score) and `DIR/sub/a.json` (`box` x1, y1, x2, y2 in image pixels,
  `class_id`, `class_name`, `score`);
- video `sub/clip.mp4` → `DIR/sub/clip.mp4` (annotated, the input's frame
  size and rate, MPEG-4 Part 2) and `DIR/sub/clip.jsonl` (one JSON line per
  frame: `frame`, `time` in seconds, `detections`);
- `DIR/detections.json` gathers all images (each as in its JSON file) and
  videos (`file`, `width`, `height`, `fps`, `frames`, `objects`, `annotated`,
  `json_lines`), the inputs that failed and the files skipped in folders.

Two inputs with the same output path get `_2`, `_3`... (so does an input named
`detections.*` at the top). Every file is written atomically. Detections are
those scoring at least `--score-threshold`, with the model's test settings
(official test procedure: flip test, soft-NMS, at most 100 detections), each
image at its own size; `--batch-size` images of the same size (consecutive
photos of one camera, a video's frames) run together.

An image or video frame with a side above `--max-image-side` is refused from
the file header, before decoding (memory grows with the pixels; docs/input.md
gives the figures). An input that cannot be read (missing, not an image or
video, corrupt, too large, a folder without images) is reported on stderr by
name and skipped; the others are still processed. Progress goes to stderr: a
bar with the time left on a terminal, a timestamped line every
`--progress-interval` seconds otherwise.

Exit codes: 0 done, 1 some inputs failed, 2 bad arguments or model, 130
interrupted (Ctrl-C; the files written are complete and listed).
"""

import argparse
import json
import math
import os
import sys

from cornernet_tf.cli._common import (
    UsageError,
    add_precision_argument,
    check_model_file,
    load_model,
    setup_output,
)
from cornernet_tf.cli._inputs import list_inputs, output_stem
from cornernet_tf.cli._progress import Progress
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE

# The summary file's stem; an input of that name at the top gets `detections_2`.
SUMMARY_STEM = "detections"
# Annotated videos: MPEG-4 Part 2 in .mp4, which every OpenCV build with FFmpeg
# writes (H.264 needs an encoder that pip's OpenCV wheels do not ship); Motion
# JPEG in .avi when it cannot.
VIDEO_FORMATS = ((".mp4", "mp4v"), (".avi", "MJPG"))
# A frame rate outside this range in a video header is a broken header.
FPS_RANGE = (0.1, 1000.0)
DEFAULT_FPS = 25.0
IMAGE_FIX = "pass a JPEG, PNG, GIF, BMP or WebP file"
VIDEO_FIX = "pass a video OpenCV reads (MP4, MOV, AVI, MKV, WebM), or its frames as images"


class InputError(Exception):
    """An input that cannot be processed; the message says why and the fix."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", required=True, help="trained model (.keras)")
    parser.add_argument(
        "--verbose", action="store_true", help="also show TensorFlow's own start-up logs"
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image or video files, folders (recursive) or quoted glob patterns",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="folder for annotated images and videos and their JSON (mirrors the inputs' "
        "relative paths)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        help="lowest confidence drawn and listed (0-1, default 0.3)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="images or frames of the same size run together (default 1; more uses more "
        "memory and is faster on a GPU)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (default 10; 0: "
        "one line per image or batch of frames); a terminal shows a bar",
    )
    parser.add_argument(
        "--max-image-side",
        type=int,
        default=DEFAULT_MAX_IMAGE_SIDE,
        help="refuse images and videos with a longer side, from the file header (default "
        f"{DEFAULT_MAX_IMAGE_SIDE}; memory grows with the pixels)",
    )
    add_precision_argument(parser)
    return parser.parse_args(argv)


def check_args(args) -> None:
    check_model_file(args.model)
    if not 0.0 <= args.score_threshold <= 1.0:
        raise UsageError(f"--score-threshold must be in [0, 1], got {args.score_threshold}.")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    if not 0.0 <= args.progress_interval < float("inf"):
        raise UsageError(
            f"--progress-interval must be a number of seconds >= 0, got {args.progress_interval}."
        )
    if args.max_image_side < 1:
        raise UsageError(f"--max-image-side must be a positive integer, got {args.max_image_side}.")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError(f"{args.output}: --output must be a folder, and this is a file.")


def class_names_for(model, model_path) -> tuple[list, str | None]:
    """The model's class names, else those of `classes.json` beside it, else the ids.

    Returns:
        (names, warning): the warning says where names come from when the
        model has none; None when it has them.
    """
    if model.class_names:
        return list(model.class_names), None
    classes_json = os.path.join(os.path.dirname(os.path.abspath(model_path)), "classes.json")
    if os.path.isfile(classes_json):
        from cornernet_tf.data.coco import CategoryMap

        names = list(CategoryMap.from_json(classes_json).names)
        if len(names) == model.num_classes:
            return names, f"the model has no class names; using those of {classes_json}"
    return [str(k) for k in range(model.num_classes)], (
        f"the model has no class names; labels are class ids 0-{model.num_classes - 1} (a "
        "model trained with cornernet-train carries its dataset's names)"
    )


def detections_at(outputs, index, score_threshold, class_names) -> list:
    """Image `index`'s detections of `CornerNet.detect` outputs, as JSON-ready dicts."""
    boxes, scores = outputs["boxes"][index], outputs["confidence"][index]  # [M, 4], [M]
    classes = outputs["classes"][index]  # [M]
    keep = (classes >= 0) & (scores >= score_threshold)
    return [
        {
            "box": [round(float(v), 2) for v in box],
            "class_id": int(k),
            "class_name": class_names[int(k)],
            "score": round(float(s), 4),
        }
        for box, k, s in zip(boxes[keep], classes[keep], scores[keep], strict=True)
    ]


class Detector:
    """`model.detect` over batches of same-size images, traced once for every size."""

    def __init__(self, model, score_threshold, class_names):
        import tensorflow as tf

        self._detect = tf.function(
            model.detect,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            autograph=False,
        )
        self.score_threshold = score_threshold
        self.class_names = class_names

    def __call__(self, images) -> list:
        """Detections (a list of dicts) for each of same-size [H, W, 3] uint8 RGB images."""
        import numpy as np

        outputs = self._detect(np.stack(images).astype(np.float32))
        outputs = {key: value.numpy() for key, value in outputs.items()}
        return [
            detections_at(outputs, i, self.score_threshold, self.class_names)
            for i in range(len(images))
        ]


def annotate(image, detections, class_names):
    import numpy as np

    from cornernet_tf import visualization

    return visualization.draw_detections(
        image,
        np.array([d["box"] for d in detections], np.float32).reshape(-1, 4),
        np.array([d["class_id"] for d in detections], np.int32),
        np.array([d["score"] for d in detections], np.float32),
        class_names=class_names,
    )


def read_image(path, max_image_side):
    """[H, W, 3] uint8 RGB, as displayed; raises `InputError`."""
    from cornernet_tf import images

    image, code = images.read_image(path, max_side=max_image_side)
    if int(code) != images.OK:
        fix = (
            f"resize it to at most {max_image_side} pixels a side, or raise "
            "--max-image-side if the machine has the memory (docs/input.md)"
            if int(code) == images.TOO_LARGE
            else IMAGE_FIX
        )
        raise InputError(f"cannot read the image ({images.REASONS[int(code)]}); {fix}")
    return image.numpy()


def open_video(path, max_image_side):
    """`(capture, width, height, fps, frame_count)`; the size checked before any frame is decoded.

    `frame_count` is the header's (0 when unknown; an estimate for some
    containers). Raises `InputError`.
    """
    import cv2

    from cornernet_tf.images import DEFAULT_MAX_PIXELS

    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise InputError(
            f"cannot read the video (OpenCV cannot open it: not a video, or a codec this "
            f"OpenCV lacks); {VIDEO_FIX}"
        )
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    if width <= 0 or height <= 0:
        capture.release()
        raise InputError(f"cannot read the video (no frame size in its header); {VIDEO_FIX}")
    if max(width, height) > max_image_side or width * height > DEFAULT_MAX_PIXELS:
        capture.release()
        raise InputError(
            f"the video's frames are {width}x{height}, above --max-image-side "
            f"{max_image_side}; resize it, or raise --max-image-side if the machine has the "
            "memory (docs/input.md)"
        )
    if not (math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
        fps = 0.0  # unknown: the caller picks a rate
    return capture, width, height, fps, count


class Run:
    """One command's work: reads the inputs, detects, writes the outputs."""

    def __init__(self, args, detector, class_names, progress, inputs=()):
        self.args = args
        self.detect = detector
        self.class_names = class_names
        self.progress = progress
        self.taken = {SUMMARY_STEM}
        self.inputs = {os.path.realpath(path) for path in inputs}  # never overwritten
        self.images, self.videos, self.errors = [], [], []
        self.pending = []  # [(source, image)] of one size, waiting for a batch

    def stem(self, source, suffixes) -> str:
        """A fresh output stem for `source` whose files overwrite no input."""
        while True:
            stem = output_stem(source.relative, self.taken)
            paths = [os.path.join(self.args.output, stem + suffix) for suffix in suffixes]
            if not any(os.path.realpath(path) in self.inputs for path in paths):
                return stem

    def fail(self, path, message) -> None:
        self.errors.append({"file": path, "error": message})
        self.progress.message(f"error: {path}: {message}.")

    def add_image(self, source) -> None:
        try:
            image = read_image(source.path, self.args.max_image_side)
        except InputError as e:
            self.fail(source.path, str(e))
            self.progress.update()
            return
        if self.pending and self.pending[0][1].shape != image.shape:
            self.flush()
        self.pending.append((source, image))
        if len(self.pending) >= self.args.batch_size:
            self.flush()

    def flush(self) -> None:
        """Detects the waiting images and writes their outputs."""
        from cornernet_tf import visualization
        from cornernet_tf.utils.fs import atomic_write_json

        if not self.pending:
            return
        batch, self.pending = self.pending, []
        results = self.detect([image for _, image in batch])
        for (source, image), detections in zip(batch, results, strict=True):
            stem = self.stem(source, (".png", ".json"))
            annotated_path = os.path.join(self.args.output, f"{stem}.png")
            visualization.save_image(annotated_path, annotate(image, detections, self.class_names))
            entry = {
                "file": source.path,
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "annotated": annotated_path,
                "detections": detections,
            }
            atomic_write_json(os.path.join(self.args.output, f"{stem}.json"), entry, indent=1)
            self.images.append(entry)
            self.progress.update()
            self.progress.message(
                f"{source.path}: {len(detections)} objects -> {annotated_path}", sys.stdout
            )

    def add_video(self, source, frame_count) -> None:
        self.flush()
        done = self.progress.done
        try:
            entry = self._video(source)
        except InputError as e:
            self.fail(source.path, str(e))
            return
        finally:  # the bar counted the header's frames: as many, whatever was read
            if frame_count > self.progress.done - done:
                self.progress.update(frame_count - (self.progress.done - done))
        self.videos.append(entry)
        self.progress.message(
            f"{source.path}: {entry['frames']} frames, {entry['objects']} objects -> "
            f"{entry['annotated']}, {entry['json_lines']}",
            sys.stdout,
        )

    def _video(self, source) -> dict:
        """Writes the annotated video and its JSON lines; returns the summary entry."""

        capture, width, height, fps, _ = open_video(source.path, self.args.max_image_side)
        try:
            ok, first = capture.read()
            if not ok:
                raise InputError(f"cannot read the video (no frame decodes); {VIDEO_FIX}")
            if not fps:
                self.progress.message(
                    f"warning: {source.path}: no valid frame rate in the header; the annotated "
                    f"video is written at {DEFAULT_FPS:g} frames per second."
                )
            fps = fps or DEFAULT_FPS
            stem = self.stem(source, (".jsonl", *(suffix for suffix, _ in VIDEO_FORMATS)))
            entry = {"file": source.path, "height": height, "width": width, "fps": round(fps, 3)}
            entry["json_lines"] = os.path.join(self.args.output, f"{stem}.jsonl")
            for suffix, fourcc in VIDEO_FORMATS:
                entry["annotated"] = os.path.join(self.args.output, stem + suffix)
                try:
                    frames, objects = self._write_video(capture, first, fourcc, fps, entry)
                except _CodecMissing:
                    continue
                return {**entry, "frames": frames, "objects": objects}
            raise InputError(
                "cannot write the annotated video (this OpenCV writes neither MPEG-4 nor Motion "
                "JPEG); install opencv-python-headless from PyPI"
            )
        finally:
            capture.release()

    def _write_video(self, capture, first, fourcc, fps, entry) -> tuple[int, int]:
        """Detects every frame from `first` on, writes both files atomically: (frames, objects)."""
        import cv2

        from cornernet_tf.utils.fs import atomic_path

        size = (entry["width"], entry["height"])
        suffix = os.path.splitext(entry["annotated"])[1]
        frames = objects = 0
        with atomic_path(entry["annotated"], suffix=suffix) as tmp_video:
            writer = cv2.VideoWriter(tmp_video, cv2.VideoWriter_fourcc(*fourcc), fps, size)
            if not writer.isOpened():
                raise _CodecMissing  # before any frame is used up: the next format
            try:
                with atomic_path(entry["json_lines"]) as tmp_lines, open(tmp_lines, "w") as lines:
                    for batch in _batches(capture, first, self.args.batch_size):
                        self._check_frames(batch, frames, *size)
                        rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in batch]
                        for image, detections in zip(rgb, self.detect(rgb), strict=True):
                            drawn = annotate(image, detections, self.class_names)
                            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                            record = {"frame": frames, "time": round(frames / fps, 3)}
                            lines.write(json.dumps({**record, "detections": detections}) + "\n")
                            frames += 1
                            objects += len(detections)
                        self.progress.update(len(batch))
            finally:
                writer.release()
        return frames, objects

    @staticmethod
    def _check_frames(batch, first, width, height) -> None:
        for k, frame in enumerate(batch):
            if frame.shape[:2] != (height, width):
                raise InputError(
                    f"frame {first + k} is {frame.shape[1]}x{frame.shape[0]}, the video's header "
                    f"says {width}x{height} (the annotated video has one size); split the video "
                    "where its size changes"
                )


class _CodecMissing(Exception):
    """OpenCV cannot write this video format here."""


def _batches(capture, first, size):
    """Lists of up to `size` BGR frames: `first`, then the rest of `capture`."""
    batch = [first]
    while True:
        while len(batch) < size:
            ok, frame = capture.read()
            if not ok:
                if batch:
                    yield batch
                return
            batch.append(frame)
        yield batch
        batch = []


def frame_counts(sources) -> dict:
    """The header frame count of each video source: None when unknown, 0 when unreadable."""
    import cv2

    counts = {}
    for source in sources:
        if source.kind == "video":
            capture = cv2.VideoCapture(source.path)
            if capture.isOpened():
                counts[source] = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) or None
            else:
                counts[source] = 0  # reported when its turn comes
            capture.release()
    return counts


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    output = os.path.realpath(args.output)
    for argument in args.inputs:
        if os.path.isdir(argument) and os.path.realpath(argument) == output:
            print(
                f"error: {argument}: --output is this input folder; write the outputs to "
                "another folder (they mirror the inputs' names).",
                file=sys.stderr,
            )
            return 2
    listing = list_inputs(args.inputs, exclude=args.output)
    for error in listing.errors:
        print(f"error: {error['file']}: {error['error']}.", file=sys.stderr)
    if listing.skipped:
        shown = ", ".join(listing.skipped[:5]) + (", ..." if len(listing.skipped) > 5 else "")
        print(
            f"note: {len(listing.skipped)} skipped, neither images nor videos by their "
            f"extension: {shown} (all listed in {SUMMARY_STEM}.json)",
            file=sys.stderr,
        )

    # FFmpeg's own log lines ("moov atom not found") name no file; the error
    # line of an unreadable video does. -8 is FFmpeg's AV_LOG_QUIET.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    setup_output(verbose=args.verbose)
    from cornernet_tf.utils.fs import atomic_write_json

    try:  # a bad model is a usage error (exit 2), whatever the inputs
        model = load_model(args.model, args.precision)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    class_names, warning = class_names_for(model, args.model)
    if warning:
        print(f"warning: {warning}.", file=sys.stderr)
    run, interrupted = None, False
    if listing.sources:
        counts = frame_counts(listing.sources)
        images = sum(s.kind == "image" for s in listing.sources)
        unit = "image" if images else "frame"  # a frame is an image too
        known = None not in counts.values()
        total = images + sum(counts.values()) if known else None
        progress = Progress(total, unit=unit, interval=args.progress_interval)
        detector = Detector(model, args.score_threshold, class_names)
        inputs = [source.path for source in listing.sources]
        run = Run(args, detector, class_names, progress, inputs)
        try:
            for source in listing.sources:
                if source.kind == "video":
                    run.add_video(source, counts[source] or 0)
                else:
                    run.add_image(source)
            run.flush()
        except KeyboardInterrupt:  # the files written so far are complete (atomic writes)
            progress.message(
                f"interrupted: {len(run.images)} images and {len(run.videos)} videos done, "
                f"listed in {os.path.join(args.output, SUMMARY_STEM)}.json."
            )
            interrupted = True
        progress.close()

    errors = listing.errors + (run.errors if run else [])
    summary = {
        "model": os.path.abspath(args.model),
        "score_threshold": args.score_threshold,
        "images": run.images if run else [],
        "videos": run.videos if run else [],
        "errors": errors,
        "skipped": listing.skipped,
        "interrupted": interrupted,
    }
    atomic_write_json(os.path.join(args.output, f"{SUMMARY_STEM}.json"), summary, indent=1)
    if interrupted:
        return 130  # the shell's code for SIGINT
    if errors:
        inputs = len(listing.sources) + len(listing.errors)
        print(
            f"{len(errors)} of {inputs} inputs failed: " + ", ".join(e["file"] for e in errors),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
