"""Inputs that once gave a wrong answer without a word: each now gives the right one or a refusal.

The companion of the hostile-input corpus. Every case is generated here (no
committed binaries) and asserts the answer a user expects, or a refusal that
names the input and the fix: duplicate COCO ids, ground truth that training
drops, EXIF orientation on every read path, pixels outside [0, 255], arrays
of no or unsupported shape, decompression bombs (refused from the file header,
before decoding), model paths that are not `.keras` files, file names that
collide, and temporaries left by killed writers. The model is the session's
tiny `export_model` and its SavedModel; docs/input.md states the contract.
"""

import io
import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import REPO
from PIL import Image, ImageOps

from cornernet_tf import images
from cornernet_tf import training as training_lib
from cornernet_tf.cli import predict as predict_cli
from cornernet_tf.data import shapes
from cornernet_tf.data.coco import CocoDataset
from cornernet_tf.evaluation import run_coco_evaluation
from cornernet_tf.models import load_model
from cornernet_tf.spec.config import load_config
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE
from cornernet_tf.utils import fs

LIMIT = DEFAULT_MAX_IMAGE_SIDE


# ------------------------------------------------------------------ generators


def _exif(orientation: int, byte_order: str) -> bytes:
    """An APP1 EXIF payload whose first IFD holds Make, then Orientation."""
    e = "<" if byte_order == "II" else ">"
    entries = struct.pack(f"{e}HHI4s", 0x010F, 2, 4, b"cam\0")  # Make, ASCII, inline
    entries += struct.pack(f"{e}HHIH2x", 0x0112, 3, 1, orientation)  # Orientation, SHORT
    tiff = byte_order.encode() + struct.pack(f"{e}HI", 42, 8) + struct.pack(f"{e}H", 2)
    return b"Exif\0\0" + tiff + entries + struct.pack(f"{e}I", 0)


def _stored_image(height=128, width=64) -> np.ndarray:
    """An asymmetric picture (blocks of distinct colours), lossless enough as JPEG."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 4, : width // 2] = (250, 20, 20)
    image[height // 2 :, width // 2 :] = (20, 250, 20)
    image[height // 4 : height // 2, width // 4 :] = (20, 20, 250)
    return image


def _jpeg(
    image: np.ndarray,
    orientation: int | None = None,
    byte_order: str = "II",
    comment: bytes = b"",
) -> bytes:
    buffer = io.BytesIO()
    kwargs = {"comment": comment} if comment else {}
    if orientation is not None:
        kwargs["exif"] = _exif(orientation, byte_order)
    Image.fromarray(image).save(buffer, "JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def _displayed(jpeg: bytes) -> np.ndarray:
    """What a viewer shows: Pillow's decoding with the EXIF orientation applied."""
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg))).convert("RGB"))


def _png_bomb(height: int, width: int) -> bytes:
    """A real 1-bit grayscale PNG of zeros: a few KB that decode to height*width*3 bytes."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row * 1000) for _ in range(height // 1000))
    body += packer.compress(row * (height % 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------- EXIF orientation


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def _decode(contents):
    """`decode_checked` and `exif_orientation`, traced once for all the cases."""
    image, code = images.decode_checked(contents, max_pixels=1 << 20)
    return image, code, images.exif_orientation(contents)


_orientation = tf.function(
    images.exif_orientation, input_signature=[tf.TensorSpec([], tf.string)], autograph=False
)


@pytest.mark.parametrize("byte_order", ["II", "MM"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_displayed_image(orientation, byte_order):
    # Before: every read path decoded the stored pixels (orientation ignored).
    jpeg = _jpeg(_stored_image(), orientation, byte_order)
    image, code, found = _decode(tf.constant(jpeg))
    assert int(code) == images.OK and int(found) == orientation
    np.testing.assert_array_equal(image.numpy(), _displayed(jpeg))


@pytest.mark.parametrize(
    "contents",
    [
        pytest.param(_jpeg(_stored_image()), id="jpeg-without-exif"),
        pytest.param(_jpeg(_stored_image(), 9), id="orientation-out-of-range"),
        pytest.param(_jpeg(_stored_image(), 6)[:40], id="truncated-inside-exif"),
        pytest.param(b"\xff\xd8\xff\xe1\xff\xffExif\0\0MM", id="segment-longer-than-file"),
        pytest.param(
            _jpeg(_stored_image(), comment=b"\xff\xe1\x00\x40" + _exif(6, "II")),
            id="exif-bytes-inside-a-comment-segment",
        ),
        pytest.param(_png_bomb(8, 8), id="png"),
        pytest.param(b"", id="empty"),
    ],
)
def test_exif_orientation_without_a_usable_tag_is_the_stored_one(contents):
    assert int(_orientation(tf.constant(contents))) == 1


def test_every_file_reader_applies_the_orientation(tmp_path):
    # images.read_image is the reader of training, evaluation, predict and calibration.
    path = tmp_path / "phone.jpg"
    path.write_bytes(_jpeg(_stored_image(128, 64), 6))
    image, code = images.read_image(tf.constant(str(path)))
    assert int(code) == images.OK and image.shape == (64, 128, 3)  # shown 128 wide, 64 high


def test_serving_default_detects_on_the_displayed_image(saved_model):
    jpeg = _jpeg(_stored_image(128, 64), 6)
    served = saved_model.signatures["serving_default"](images=tf.constant([jpeg]))
    pixels = saved_model.signatures["detect_uint8"](images=tf.constant(_displayed(jpeg)[None]))
    assert int(served["num_detections"][0]) > 0
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_allclose(served[key].numpy(), pixels[key].numpy(), atol=1e-4)
    boxes = served["detection_boxes"].numpy()[0, : int(served["num_detections"][0])]
    assert boxes[:, 2].max() <= 128 and boxes[:, 3].max() <= 64  # x within the 128 displayed


# --------------------------------------------------- pixel values and shapes


def _float_with(value):
    image = np.full((40, 48, 3), 100.0, np.float32)
    image[3, 4, 0] = value
    return image


KERAS_REFUSALS = [
    # (id, call on the model, error type, message)
    ("inf-pixel", lambda m: m.predict_images([_float_with(np.inf)]), ValueError, "non-finite"),
    ("nan-pixel", lambda m: m.predict(_float_with(np.nan)[None], verbose=0), ValueError, "NaN"),
    (
        "inf-in-a-tensor",
        lambda m: m.predict(tf.constant(_float_with(np.inf)[None]), verbose=0),
        ValueError,
        "non-finite",
    ),
    ("1e30-pixel", lambda m: m.predict_images([_float_with(1e30)]), ValueError, r"\[0, 255\]"),
    ("negative-float", lambda m: m.predict_images([_float_with(-3.0)]), ValueError, "np.clip"),
    (
        "uint16",
        lambda m: m.predict_images([np.full((8, 8, 3), 1000, np.uint16)]),
        ValueError,
        "// 257",
    ),
    ("0x0", lambda m: m.predict_images([np.zeros((0, 0, 3), np.uint8)]), ValueError, "1x1"),
    (
        "batch-of-0",
        lambda m: m.predict(np.zeros((0, 32, 32, 3), np.uint8), verbose=0),
        ValueError,
        "holds no images",
    ),
    (
        "ragged-list",
        lambda m: m.predict([np.zeros((8, 8, 3)), np.zeros((9, 8, 3))], verbose=0),
        TypeError,
        "different sizes; pass them to predict_images",
    ),
    ("none-to-predict", lambda m: m.predict(None, verbose=0), TypeError, "NoneType"),
    ("none-image", lambda m: m.predict_images([None]), TypeError, "NoneType"),
    ("path-string", lambda m: m.predict("photo.jpg", verbose=0), TypeError, "read files"),
    ("path-in-list", lambda m: m.predict_images(["photo.jpg"]), TypeError, "read files"),
    ("string-array", lambda m: m.predict_images([np.array([["a"]])]), TypeError, "dtype <U1"),
    (
        "side-above-limit",
        lambda m: m.predict_images([np.zeros((1, LIMIT + 1, 3), np.uint8)]),
        ValueError,
        f"sides above {LIMIT} pixels are refused",
    ),
    (
        "side-above-given-limit",
        lambda m: m.predict(np.zeros((1, 40, 50, 3), np.uint8), verbose=0, max_image_side=49),
        ValueError,
        "sides above 49 pixels",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [pytest.param(*case[1:], id=case[0]) for case in KERAS_REFUSALS],
)
def test_keras_inputs_outside_the_contract_are_refused(export_model, call, error, match):
    with pytest.raises(error, match=match):
        call(export_model)


def test_a_larger_limit_is_the_callers_choice(export_model):
    image = np.full((20, 70, 3), 90, np.uint8)
    with pytest.raises(ValueError, match="sides above 64"):
        export_model.predict_images([image], max_image_side=64)
    result = export_model.predict_images([image], max_image_side=70)
    assert result["boxes"].shape[0] == 1


def test_savedmodel_takes_no_float_pixels(saved_model):
    # Non-finite pixels cannot reach the SavedModel: its inputs are uint8 or encoded files.
    signature = saved_model.signatures["detect_uint8"]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(images=tf.constant(_float_with(np.inf)[None]))
    assert signature.structured_input_signature[1]["images"].dtype == tf.uint8


# ---------------------------------------------------------- decompression bombs


def test_serving_default_refuses_a_bomb_from_its_header(saved_model):
    # Before: decoded in full (1.2 GB of pixels for this 20000x20000 PNG), then refused.
    # "too large" is the header check's verdict: with it the decoder never runs.
    bomb = _png_bomb(20000, 20000)
    assert len(bomb) < 200_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="too large.*read from the file header"
    ):
        saved_model.signatures["serving_default"](images=tf.constant([bomb]))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 600 * 1024


def test_detect_uint8_refuses_a_side_above_the_limit(saved_model):
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"sides above {LIMIT} pixels"):
        saved_model.signatures["detect_uint8"](images=tf.zeros([1, 1, LIMIT + 1, 3], tf.uint8))


# ------------------------------------------------------------ cornernet-predict


@pytest.fixture(scope="module")
def predict_run(export_model, tmp_path_factory):
    """One `cornernet-predict` run over hostile inputs; returns (exit code, output dir, files)."""
    folder = tmp_path_factory.mktemp("predict_inputs")
    files = {
        "fifo": folder / "pipe.png",
        "dev-zero": folder / "zero.png",
        "folder": folder / "album.png",
        "missing": folder / "missing.png",
        "bomb": folder / "bomb.png",
        "summary-name": folder / "detections.jpg",
        "exif": folder / "phone.jpg",
    }
    os.mkfifo(files["fifo"])
    os.symlink("/dev/zero", files["dev-zero"])
    files["folder"].mkdir()
    files["bomb"].write_bytes(_png_bomb(8000, 8000))  # the 200 KB PNG that ran 156 s
    files["summary-name"].write_bytes(_jpeg(_stored_image(40, 60)))
    files["exif"].write_bytes(_jpeg(_stored_image(128, 64), 6))
    model_file = folder / "model.keras"
    model_file.touch()  # the script's path check; the session model stands in for loading
    output = folder / "out"
    original = predict_cli.load_model
    predict_cli.load_model = lambda path: export_model
    try:
        code = predict_cli.main(
            ["--model", str(model_file), "--output", str(output), "--score-threshold", "0"]
            + [str(p) for p in files.values()]
        )
    finally:
        predict_cli.load_model = original
    return code, output, files


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("fifo", r"is a named pipe \(FIFO\), not a file"),
        ("dev-zero", "is a device, not a file"),
        ("folder", "the folder holds no image or video files"),
        ("missing", "not found"),
        ("bomb", f"too large.*resize it to at most {LIMIT} pixels a side.*--max-image-side"),
    ],
)
def test_predict_refuses_unreadable_inputs_by_name(predict_run, case, message):
    code, output, files = predict_run
    assert code == 1
    summary = json.loads((output / "detections.json").read_text())
    errors = {e["file"]: e["error"] for e in summary["errors"]}
    assert re.search(message, errors[str(files[case])]), errors[str(files[case])]


def test_predict_keeps_the_summary_apart_from_an_image_named_detections(predict_run):
    _, output, files = predict_run
    summary = json.loads((output / "detections.json").read_text())
    assert {"images", "errors"} <= set(summary)
    own = json.loads((output / "detections_2.json").read_text())
    assert own["file"] == str(files["summary-name"]) and (output / "detections_2.png").is_file()


def test_predict_reports_the_displayed_size_of_a_rotated_photo(predict_run):
    _, output, _ = predict_run
    entry = json.loads((output / "phone.json").read_text())
    assert (entry["width"], entry["height"]) == (128, 64)
    assert all(d["box"][2] <= 128 and d["box"][3] <= 64 for d in entry["detections"])
    assert cv2.imread(str(output / "phone.png")).shape[:2] == (64, 128)


# ------------------------------------------------------------------ model files


@pytest.fixture(scope="module")
def model_files(export_model, saved_model_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model_files")
    export_model.save(folder / "good.keras")
    data = (folder / "good.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    (folder / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "empty.keras").touch()
    os.mkfifo(folder / "pipe.keras")
    return {
        "truncated": (folder / "truncated.keras", "truncated or corrupt"),
        "random-bytes": (folder / "random.keras", "truncated or corrupt"),
        "empty": (folder / "empty.keras", "truncated or corrupt"),
        "savedmodel-dir": (saved_model_root / "cornernet" / "1", "is a SavedModel folder"),
        "fifo": (folder / "pipe.keras", r"is a named pipe \(FIFO\)"),
        "missing": (folder / "none.keras", "not found"),
    }


@pytest.mark.parametrize(
    "case", ["truncated", "random-bytes", "empty", "savedmodel-dir", "fifo", "missing"]
)
def test_a_bad_model_path_is_named_for_what_it_is(model_files, case, capsys):
    # Before: a corrupt .keras and a SavedModel folder were both "not found".
    path, message = model_files[case]
    with pytest.raises(ValueError, match=message):
        load_model(path)
    code = predict_cli.main(["--model", str(path), "--output", str(path.parent / "o"), "x.png"])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err


# ----------------------------------------------------------------- COCO ground truth


def _coco(tmp_path, extra_annotations=(), **changes):
    """Two 64x48 images with three good boxes, plus `extra_annotations`."""
    image_dir = tmp_path / "val"
    image_dir.mkdir(exist_ok=True)
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 48, "width": 64},
            {"id": 2, "file_name": "b.png", "height": 48, "width": 64},
        ],
        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 5, 20, 18], "area": 360},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [30, 10, 25, 30], "area": 750},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [10, 8, 40, 30], "area": 1200},
            *extra_annotations,
        ],
    }
    data.update(changes)
    for k, image in enumerate(data["images"]):
        if isinstance(image, dict) and "file_name" in image:
            cv2.imwrite(str(image_dir / image["file_name"]), np.full((48, 64, 3), k, np.uint8))
    return data, str(tmp_path / "instances_val.json"), str(image_dir)


class _GroundTruthDetector:
    """Detects exactly the boxes training keeps: image k is filled with the value k."""

    def __init__(self, dataset):
        rows = [(r.boxes, r.labels) for r in dataset.records]
        width = max(len(b) for b, _ in rows)
        self.boxes = np.full((len(rows), width, 4), -1, np.float32)
        self.classes = np.full((len(rows), width), -1, np.int32)
        for k, (boxes, labels) in enumerate(rows):
            self.boxes[k, : len(boxes)], self.classes[k, : len(labels)] = boxes, labels

    def detect(self, image):
        k = tf.cast(image[0, 0, 0, 0], tf.int32)
        classes = tf.gather(tf.constant(self.classes), k)[None]
        return {
            "boxes": tf.gather(tf.constant(self.boxes), k)[None],
            "confidence": tf.where(classes >= 0, 1.0, -1.0),
            "classes": classes,
        }


def _ann(ann_id, bbox, image_id=1, category_id=1, **extra):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


GROUND_TRUTH_CASES = [
    # (id, extra annotations, excluded kinds {kind: count})
    ("nan-box", [_ann(10, [float("nan"), 3, 10, 10])], {"non_finite_bbox": 1}),
    ("negative-size", [_ann(11, [5, 5, -10, 10])], {"negative_size": 1}),
    ("zero-size", [_ann(12, [5, 5, 0, 10], image_id=2)], {"empty_box": 1}),
    ("outside-image", [_ann(13, [70, 5, 10, 10])], {"outside_image": 1}),
    ("unknown-category", [_ann(14, [1, 1, 8, 8], category_id=9)], {"unknown_category": 1}),
    ("malformed-bbox", [_ann(15, [1, 1, 8])], {"malformed_bbox": 1}),
    ("duplicate-annotation-id", [_ann(2, [40, 30, 12, 12], image_id=2)], {}),
    ("missing-area", [_ann(16, [40, 2, 12, 12], category_id=2)], {}),
    ("crowd-region", [_ann(17, [0, 0, 64, 48], iscrowd=1, area=3072)], {}),
]


@pytest.mark.parametrize(
    ("extra", "excluded"),
    [pytest.param(extra, excluded, id=name) for name, extra, excluded in GROUND_TRUTH_CASES],
)
def test_the_ground_truth_itself_scores_ap_one(tmp_path, extra, excluded):
    # Before: evaluation scored against boxes training drops (AP 0.967 for the ground truth).
    data, ann_file, image_dir = _coco(tmp_path, extra)
    dataset = CocoDataset.from_dict(data, ann_file, image_dir)
    evaluation = run_coco_evaluation(_GroundTruthDetector(dataset), dataset, verbose=0)
    assert evaluation.stats["AP"] == pytest.approx(1.0)
    assert evaluation.excluded_annotations == excluded


@pytest.mark.parametrize(
    ("section", "entry", "message"),
    [
        ("images", {"id": 1, "file_name": "b.png", "height": 48, "width": 64}, "image ids \\[1\\]"),
        ("categories", {"id": 2, "name": "again"}, "category ids \\[2\\]"),
    ],
)
def test_duplicate_ids_are_refused_naming_the_file(tmp_path, section, entry, message):
    data, ann_file, image_dir = _coco(tmp_path)
    data[section].append(entry)
    with pytest.raises(ValueError, match=f"instances_val.json.*duplicate {message}"):
        CocoDataset.from_dict(data, ann_file, image_dir)


def test_a_dataset_image_that_is_no_regular_file_is_excluded_by_name(tmp_path):
    data, ann_file, image_dir = _coco(tmp_path)
    os.remove(os.path.join(image_dir, "b.png"))
    os.mkfifo(os.path.join(image_dir, "b.png"))  # reading it would block for ever
    dataset = CocoDataset.from_dict(data, ann_file, image_dir)
    assert [r.image_id for r in dataset.records] == [1]
    assert dataset.report.counts == {"not_a_file": 1}


# ----------------------------------------------------------- leftovers of kills


STALE_NAMES = {
    ".model.keras.incomplete-ab12cd34.keras": "removed",  # a killed model save
    ".cornernet_float32.tflite.incomplete-x_9y8z7w.tmp": "removed",  # a killed TFLite write
    ".summary.json.incomplete-00000000.tmp": "removed",
    ".3.incomplete-qwertyui/": "removed",  # a killed SavedModel export (a folder)
    ".model.keras.ab12cd34.keras": "kept",  # not this module's pattern
    ".hidden": "kept",
    "model.keras": "kept",
    "4/": "kept",
}


def test_stale_temporaries_are_removed_by_the_next_write(tmp_path):
    for name in STALE_NAMES:
        if name.endswith("/"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "saved_model.pb").write_bytes(b"partial")
        else:
            (tmp_path / name).write_bytes(b"partial")
        os.utime(tmp_path / name, (time.time() - 60, time.time() - 60))
    fresh = tmp_path / ".config.yaml.incomplete-fresh123.tmp"  # may be between create and lock
    fresh.write_bytes(b"")
    fs.atomic_write_text(tmp_path / "classes.json", "{}")
    left = {p.name + ("/" if p.is_dir() else "") for p in tmp_path.iterdir()}
    assert left == {n for n, fate in STALE_NAMES.items() if fate == "kept"} | {
        fresh.name,
        "classes.json",
    }


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_the_sweep_leaves_a_fifo_named_like_a_stale_temporary(tmp_path):
    # Opening a FIFO for reading blocks until a writer comes: the sweep must
    # not open it, so the write in a fresh process finishes.
    fifo = tmp_path / ".detections.json.incomplete-abcdefgh.tmp"
    os.mkfifo(fifo)
    os.utime(fifo, (time.time() - 3600,) * 2)
    script = (
        "import sys\n"
        "from cornernet_tf.utils.fs import atomic_write_text\n"
        "atomic_write_text(sys.argv[1], '[]')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "detections.json")],
        env=env,
        check=True,
        timeout=60,
    )
    assert (tmp_path / "detections.json").read_text() == "[]"
    assert fifo.is_fifo()


def test_the_temporary_of_a_live_writer_stays_and_of_a_killed_one_goes(tmp_path):
    script = (
        "import sys, time\n"
        "from cornernet_tf.utils.fs import atomic_path\n"
        "with atomic_path(sys.argv[1], suffix='.keras') as tmp:\n"
        "    open(tmp, 'wb').write(b'half a model')\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(120)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "model.keras")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        tmp = Path(proc.stdout.readline().strip())
        os.utime(tmp, (time.time() - 60, time.time() - 60))
        assert fs.remove_stale_temporaries(tmp_path) == [] and tmp.exists()  # writer alive
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert fs.remove_stale_temporaries(tmp_path) == [str(tmp)]
        assert list(tmp_path.iterdir()) == []
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


# ------------------------------------------------------------ a finished run again


def test_restarting_a_finished_run_keeps_its_summary(shapes_root, tmp_path):
    # Before: the restarted run trained nothing and wrote images_per_sec 0.0.
    overrides = [
        "train.steps=2",
        "train.eval_every=0",
        "data.input_size=63",
        "data.output_size=16",
        "train.batch_size=2",
        "train.jit_compile=false",
        "model.overrides={num_stacks: 1, dims: [8, 8], modules: [1, 1], pre_dim: 8, "
        "cnv_dim: 8, pool_dim: 8}",
    ]
    config = load_config(REPO / "configs" / "shapes_tiny.yaml", overrides)
    run = tmp_path / "run"
    state = training_lib.build_training_state(
        config,
        list(shapes.CLASSES),
        str(run / "checkpoints"),
        learning_rate=training_lib.LearningRate.from_config(config.train),
    )
    state.model.optimizer.iterations.assign(config.train.steps)  # a run that has finished
    state.manager.save(checkpoint_number=config.train.steps)
    finished = {"step": 2, "images_per_sec": 12.5, "model_path": str(run / "model.keras")}
    (run / "summary.json").write_text(json.dumps(finished))
    result = training_lib.train(config, shapes_root, run, strategy="one_device", verbose=0)
    assert result.step == config.train.steps and result.images_per_sec == 12.5
    assert json.loads((run / "summary.json").read_text()) == finished
    assert (run / "model.keras").is_file()
