"""`cornernet-predict` on what users have: folders, glob patterns, WebP images, videos.

Runs the command in this process (and once as the installed console script in
a fresh subprocess) with an untrained, very small CornerNet; the outputs are
read back as a user would: images with OpenCV, the annotated video with
`cv2.VideoCapture`, the JSON files and JSON lines with `json`.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from harness import save_small_model
from image_files import jpeg, png_bomb, stored_image
from seeding import seed_weights

from cornernet_tf import images
from cornernet_tf.cli import _inputs, _progress
from cornernet_tf.cli import predict as predict_cli
from cornernet_tf.models import CornerNet
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE

NAMES = ["rectangle", "ellipse", "triangle"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+/\d+ ", re.MULTILINE)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("model"), seed=3)


@pytest.fixture(scope="module")
def pictures(shapes_root):
    """Four shapes images (96x80 RGB), decoded."""
    files = sorted((shapes_root / "val2017").glob("*.png"))
    return [cv2.imread(str(f)) for f in files]  # BGR, as cv2.imwrite takes them


def _tree(root: Path, pictures) -> dict:
    """A folder of nested images, a WebP, a non-image, a hidden file and a broken JPEG."""
    (root / "sub" / "deep").mkdir(parents=True)
    files = {
        "a.png": pictures[0],
        "sub/a.png": pictures[1],  # same name in a subfolder: its own outputs
        "sub/deep/c.webp": pictures[2],
        "sub/b.jpg": cv2.resize(pictures[3], (70, 50)),  # another size
    }
    for name, image in files.items():
        assert cv2.imwrite(str(root / name), image)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"junk")
    (root / "sub" / "broken.jpg").write_text("a text file named .jpg")
    return files


def test_listing_refuses_pipes_and_devices_found_in_folders(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    os.symlink("/dev/zero", tmp_path / "zero.jpg")
    (tmp_path / "ok.png").write_bytes(b"x")
    listing = _inputs.list_inputs([str(tmp_path)])
    assert [s.relative for s in listing.sources] == ["ok.png"]
    errors = {os.path.basename(e["file"]): e["error"] for e in listing.errors}
    assert "named pipe" in errors["pipe.png"] and "device" in errors["zero.jpg"]


def _read_json(path):
    return json.loads(Path(path).read_text())


def test_folder_tree_mirrors_relative_paths_skips_other_files_reports_broken_ones(
    model_path, pictures, tmp_path, capsys
):
    tree = tmp_path / "photos"
    files = _tree(tree, pictures)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tree / "out"  # inside the input folder: never read as input
    argv = ["--model", model_path, str(tree), str(empty), "--output", str(out)]
    code = predict_cli.main(
        [*argv, "--score-threshold", "0", "--batch-size", "2", "--progress-interval", "0"]
    )
    captured = capsys.readouterr()

    assert code == 1
    assert f"{empty}: the folder holds no image or video files" in captured.err
    broken = tree / "sub" / "broken.jpg"
    assert f"{broken}: cannot read the image" in captured.err
    assert f"note: 1 skipped, neither images nor videos by their extension: {tree}" in (
        captured.err
    )
    assert "2 of 6 inputs failed" in captured.err
    summary = _read_json(out / "detections.json")
    assert [e["file"] for e in summary["errors"]] == [str(empty), str(broken)]
    assert summary["skipped"] == [str(tree / "notes.txt")]
    # Sorted walk, each output beside its relative path.
    order = ["a.png", "sub/a.png", "sub/b.jpg", "sub/deep/c.webp"]
    assert [e["file"] for e in summary["images"]] == [str(tree / n) for n in order]
    for name, entry in zip(order, summary["images"], strict=True):
        stem = os.path.splitext(name)[0]
        assert entry["annotated"] == str(out / f"{stem}.png")
        assert _read_json(out / f"{stem}.json") == entry
        height, width = files[name].shape[:2]
        assert cv2.imread(entry["annotated"]).shape == (height, width, 3)
        assert (entry["height"], entry["width"]) == (height, width)
        assert len(entry["detections"]) > 0  # threshold 0: every valid slot
    # Progress to a pipe: timestamped lines, no carriage return, no escape sequence.
    assert TIMESTAMP.search(captured.err), captured.err
    assert "\r" not in captured.err and "\x1b" not in captured.err

    # Batches of two same-size images give each image's own detections.
    single = tmp_path / "single"
    code = predict_cli.main(
        ["--model", model_path, str(tree), "--output", str(single), "--score-threshold", "0"]
    )
    assert code == 1
    capsys.readouterr()
    for entry in summary["images"]:
        alone = _read_json(single / (os.path.relpath(entry["annotated"], out)[:-4] + ".json")).get
        boxes = np.array([d["box"] for d in entry["detections"]])
        np.testing.assert_allclose(boxes, [d["box"] for d in alone("detections")], atol=0.02)


def test_glob_patterns_and_webp_headers(model_path, pictures, tmp_path, capsys):
    tree = tmp_path / "photos"
    _tree(tree, pictures)
    out = tmp_path / "out"
    pattern = str(tree / "**" / "*.png")
    code = predict_cli.main(["--model", model_path, pattern, "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = _read_json(out / "detections.json")
    assert [e["file"] for e in summary["images"]] == [str(tree / "a.png"), str(tree / "sub/a.png")]
    assert (out / "a.json").is_file() and (out / "sub" / "a.json").is_file()

    # An input is never overwritten, whatever --output is.
    original = (tree / "a.png").read_bytes()
    code = predict_cli.main(["--model", model_path, str(tree / "a.png"), "--output", str(tree)])
    assert code == 0 and (tree / "a.png").read_bytes() == original
    assert (tree / "a_2.png").is_file() and (tree / "a_2.json").is_file()
    code = predict_cli.main(["--model", model_path, str(tree), "--output", str(tree)])
    assert code == 2 and "--output is this input folder" in capsys.readouterr().err

    nothing = str(tmp_path / "*.tiff")
    code = predict_cli.main(["--model", model_path, nothing, "--output", str(out)])
    assert code == 1
    assert f"{nothing}: the pattern matches no image or video files" in capsys.readouterr().err

    # WebP sizes come from the header (lossy, lossless, extended), before decoding.
    image = cv2.resize(pictures[0], (53, 37))
    for flags in ([cv2.IMWRITE_WEBP_QUALITY, 80], [cv2.IMWRITE_WEBP_QUALITY, 101]):
        ok, data = cv2.imencode(".webp", image, flags)
        contents = tf.constant(data.tobytes())
        size, code = images.image_header_size(contents)
        assert int(code) == images.OK and size.numpy().tolist() == [37, 53]
        decoded, code = images.decode_checked(contents, max_pixels=1 << 20, max_side=52)
        assert int(code) == images.TOO_LARGE
    # Short, foreign or unknown RIFF files are named, never decoded.
    cases = {
        "riff.webp": (b"RIFF", images.UNSUPPORTED_FORMAT),
        "wave.webp": (b"RIFF\x24\0\0\0WAVEfmt " + bytes(20), images.UNSUPPORTED_FORMAT),
        "chunk.webp": (b"RIFF\x24\0\0\0WEBPVP8Q" + bytes(20), images.CORRUPT),
        "cut.webp": (data.tobytes()[:24], images.CORRUPT),
    }
    for name, (contents, expected) in cases.items():
        (tmp_path / name).write_bytes(contents)
        _, code = images.read_image(tf.constant(str(tmp_path / name)))
        assert int(code) == expected, name


def test_listing_suffixes_are_those_the_reader_reads():
    assert _inputs.IMAGE_SUFFIXES == images.IMAGE_SUFFIXES
    taken = {"detections"}
    stems = [_inputs.output_stem(p, taken) for p in ("a.jpg", "A.png", "detections.jpg", "s/a")]
    assert stems == ["a", "A_2", "detections_2", "s/a"]


def _write_video(path, frames, fourcc, fps=12.0):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc} into {path.suffix}"
    for frame in frames:
        writer.write(frame)
    writer.release()


@pytest.mark.parametrize(("suffix", "fourcc"), [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_video_gives_an_annotated_video_and_json_lines_per_frame(
    model_path, pictures, tmp_path, capsys, suffix, fourcc
):
    frames = [pictures[k % len(pictures)] for k in range(5)]
    clips = tmp_path / "clips"
    clips.mkdir()
    video = clips / f"clip{suffix}"
    _write_video(video, frames, fourcc)
    (clips / "broken.mp4").write_text("not a video")
    out = tmp_path / "out"
    code = predict_cli.main(
        ["--model", model_path, str(clips), "--output", str(out), "--batch-size", "2"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"{clips / 'broken.mp4'}: cannot read the video" in captured.err
    assert not (out / "broken.mp4").exists() and not (out / "broken.jsonl").exists()

    summary = _read_json(out / "detections.json")
    [entry] = summary["videos"]
    assert entry["annotated"] == str(out / "clip.mp4")
    assert (entry["frames"], entry["width"], entry["height"]) == (5, 96, 80)
    assert entry["fps"] == pytest.approx(12.0)
    capture = cv2.VideoCapture(entry["annotated"])
    read = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        read.append(frame)
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
    capture.release()
    assert len(read) == 5 and read[0].shape == (80, 96, 3)
    lines = Path(entry["json_lines"]).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(5))
    assert [r["time"] for r in records] == [round(k / 12.0, 3) for k in range(5)]
    assert sum(len(r["detections"]) for r in records) == entry["objects"]
    assert f"{video}: 5 frames, {entry['objects']} objects" in captured.out
    assert not [p for p in os.listdir(out) if ".incomplete" in p]  # no temporaries left


def test_video_larger_than_max_image_side_is_refused_before_decoding(
    model_path, pictures, tmp_path, capsys
):
    video = tmp_path / "big.avi"
    _write_video(video, [pictures[0]] * 2, "MJPG")
    out = tmp_path / "out"
    argv = ["--model", model_path, str(video), "--output", str(out), "--max-image-side", "64"]
    assert predict_cli.main(argv) == 1
    assert "frames are 96x80, above --max-image-side 64" in capsys.readouterr().err
    assert _read_json(out / "detections.json")["videos"] == []


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_lines_elsewhere():
    now = [0.0]
    terminal = _Terminal()
    bar = _progress.Progress(4, unit="image", stream=terminal, clock=lambda: now[0])
    for _ in range(4):
        now[0] += 2.0
        bar.update()
    bar.message("a result line")
    bar.close()
    text = terminal.getvalue()
    assert "\r\x1b[K[######" in text and "2/4 images (50%)" in text and "ETA 4 s" in text
    assert "a result line\n" in text and text.endswith("\n")

    now[0] = 0.0
    pipe = io.StringIO()
    lines = _progress.Progress(100, unit="frame", stream=pipe, interval=10.0, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 1.0
        lines.update()
    lines.close()
    written = pipe.getvalue().splitlines()
    assert "\r" not in pipe.getvalue() and "\x1b" not in pipe.getvalue()
    assert all(TIMESTAMP.match(line) for line in written)
    assert len(written) == 10  # every 10 s, the last one included
    assert "100/100 frames (100%)" in written[-1]
    quiet = io.StringIO()  # a short run: no line at all
    short = _progress.Progress(3, stream=quiet, interval=10.0, clock=lambda: now[0])
    short.update(3)
    short.close()
    assert quiet.getvalue() == ""
    assert _progress.format_duration(3725) == "1 h 02 min"


def test_console_script_in_a_fresh_process(model_path, pictures, tmp_path):
    tree = tmp_path / "photos"
    _tree(tree, pictures)
    (tree / "sub" / "broken.jpg").unlink()
    broken = tree / "broken.mp4"
    broken.write_text("not a video")
    script = Path(sys.executable).parent / "cornernet-predict"
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(script), "--model", model_path, str(tree), "--output", str(out)]
        + ["--progress-interval", "0"],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"error: {broken}: cannot read the video" in proc.stderr
    assert "moov atom" not in proc.stderr  # FFmpeg's own line, which names no file
    summary = _read_json(out / "detections.json")
    assert len(summary["images"]) == 4 and [e["file"] for e in summary["errors"]] == [str(broken)]
    assert all(os.path.isfile(e["annotated"]) for e in summary["images"])
    assert "\r" not in proc.stderr and TIMESTAMP.search(proc.stderr)
    shutil.rmtree(out)


def test_a_model_without_class_names_labels_ids_with_a_warning(pictures, tmp_path, capsys):
    seed_weights(4)
    model = CornerNet.from_preset(
        "tiny",
        num_stacks=1,
        dims=[8, 8, 8, 8],
        modules=[1, 1, 1, 1],
        pre_dim=8,
        cnv_dim=8,
        pool_dim=8,
        num_classes=2,
    )
    model.build()
    path = tmp_path / "nameless.keras"
    model.save(path)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), pictures[0])
    out = tmp_path / "out"
    argv = ["--model", str(path), str(image), "--output", str(out), "--score-threshold", "0"]
    assert predict_cli.main(argv) == 0
    assert "warning: the model has no class names; labels are class ids 0-1" in (
        capsys.readouterr().err
    )
    detections = _read_json(out / "a.json")["detections"]
    assert detections and all(d["class_name"] == str(d["class_id"]) for d in detections)


# ------------------------------------------------------ what cannot be read


@pytest.fixture(scope="module")
def unreadable_run(model_path, tmp_path_factory):
    """One `cornernet-predict` run over inputs it cannot read; (exit code, output, files)."""
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
    files["bomb"].write_bytes(png_bomb(8000, 8000))  # 200 KB that decode to 192 MB
    files["summary-name"].write_bytes(jpeg(stored_image(40, 60)))
    files["exif"].write_bytes(jpeg(stored_image(128, 64), 6))
    output = folder / "out"
    code = predict_cli.main(
        ["--model", model_path, "--output", str(output), "--score-threshold", "0"]
        + [str(p) for p in files.values()]
    )
    return code, output, files


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("fifo", r"is a named pipe \(FIFO\), not a file"),
        ("dev-zero", "is a device, not a file"),
        ("folder", "the folder holds no image or video files"),
        ("missing", "not found"),
        (
            "bomb",
            f"too large.*resize it to at most {DEFAULT_MAX_IMAGE_SIDE} pixels a side"
            ".*--max-image-side",
        ),
    ],
)
def test_unreadable_inputs_are_named_in_the_summary(unreadable_run, case, message):
    code, output, files = unreadable_run
    assert code == 1
    summary = json.loads((output / "detections.json").read_text())
    errors = {e["file"]: e["error"] for e in summary["errors"]}
    assert re.search(message, errors[str(files[case])]), errors[str(files[case])]


def test_the_summary_stays_apart_from_an_image_named_detections(unreadable_run):
    _, output, files = unreadable_run
    summary = json.loads((output / "detections.json").read_text())
    assert {"images", "errors"} <= set(summary)
    own = json.loads((output / "detections_2.json").read_text())
    assert own["file"] == str(files["summary-name"]) and (output / "detections_2.png").is_file()


def test_a_rotated_photo_is_reported_at_its_displayed_size(unreadable_run):
    _, output, _ = unreadable_run
    entry = json.loads((output / "phone.json").read_text())
    assert (entry["width"], entry["height"]) == (128, 64)
    assert all(d["box"][2] <= 128 and d["box"][3] <= 64 for d in entry["detections"])
    assert cv2.imread(str(output / "phone.png")).shape[:2] == (64, 128)
