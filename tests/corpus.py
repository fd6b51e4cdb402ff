"""The hostile-input corpus: case makers, shared inputs and the checks every case passes.

The cases of each surface are in `tests/test_corpus_<surface>.py`.

Each case feeds one bad (or merely unusual) input to one surface: an image to
`cornernet-predict`, a config or dataset to `cornernet-train` and
`cornernet-evaluate`, a model file or output path to `cornernet-export`, an
answer of a broken server to the serving client, an annotation file to
`CocoDataset.open`. Each ends as

- a clear error: the documented exit code (1 runtime failure, 2 usage or
  input error), one message on stderr naming the file or key and the fix, no
  Python traceback, and nothing half-written (no temporary or partial file,
  no output at all for a usage error); or
- a counted skip: the bad entry is excluded and reported by id, the rest kept;
- or, for unusual but valid input (CMYK, 16-bit, palette, animated images),
  exit code 0 and complete outputs.

The command lines run in this process (their `main` functions) and share one
tiny model: the session fixture `export_model`, saved once to a `.keras` file.
"""

import contextlib
import dataclasses
import io
import json
import os
import shutil
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from serving_double import MisbehavingServer

from cornernet_tf.cli import evaluate as evaluate_cli
from cornernet_tf.cli import export as export_cli
from cornernet_tf.cli import predict as predict_cli
from cornernet_tf.cli import train as train_cli
from cornernet_tf.data.coco import CocoDataset
from cornernet_tf.serving import cli as serving_cli

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = str(REPO / "configs" / "shapes_tiny.yaml")


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        name: the test id.
        run: `run(ws)` → `(exit code, stderr)`, given the `Workspace`.
        code: the expected exit code.
        says: substrings stderr must hold: the file or key, and the fix.
        outputs: files (relative to the workspace) the run must leave complete;
            for codes != 0 they must not exist at all.
    """

    name: str
    run: Callable
    code: int
    says: tuple = ()
    outputs: tuple = ()


@dataclasses.dataclass
class Workspace:
    root: Path
    model: Path
    data: Path

    def path(self, name: str) -> str:
        return str(self.root / name)


# ------------------------------------------------------------ input makers


def _png(path, array, **options):
    Image.fromarray(array).save(path, **options)
    return str(path)


def _rgb(h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _image_file(ws, kind) -> str:
    path = ws.root / f"{kind}"
    if kind == "empty.jpg":
        path.write_bytes(b"")
    elif kind == "text.jpg":
        path.write_text("this is not a JPEG\n")
    elif kind == "random.png":
        path.write_bytes(np.random.default_rng(1).bytes(2000))
    elif kind == "truncated.png":
        buffer = io.BytesIO()
        Image.fromarray(_rgb()).save(buffer, format="PNG")
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "html.png":
        path.write_text("<html><body>404 Not Found</body></html>")
    elif kind == "cmyk.jpg":
        Image.fromarray(_rgb()).convert("CMYK").save(path, format="JPEG")
    elif kind == "gray16.png":
        _png(path, (np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) * 31))
    elif kind == "palette.png":
        Image.fromarray(_rgb()).convert("P").save(path)
    elif kind == "animated.gif":
        frames = [Image.fromarray(_rgb(seed=s)).convert("P") for s in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    elif kind == "rgba.png":
        _png(path, np.dstack([_rgb(), np.full((40, 48), 128, np.uint8)]))
    elif kind == "one_pixel.png":
        _png(path, _rgb(1, 1))
    elif kind == "folder.png":
        path.mkdir()
    elif kind == "symlink.png":
        (ws.root / "notes.txt").write_text("plain text\n")
        path.symlink_to(ws.root / "notes.txt")
    return str(path)


def _config_file(ws, text) -> str:
    path = ws.root / "config.yaml"
    path.write_text(text)
    return str(path)


def _model_with(ws, edit) -> str:
    """A copy of the shared .keras file with its config.json edited by `edit(config)`."""
    path = ws.root / "edited.keras"
    with zipfile.ZipFile(ws.model) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config["config"])
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    return str(path)


def _dataset(ws, edit=None, split="val2017") -> str:
    """A copy of the shared dataset with `edit(annotations)` applied to the split's JSON."""
    root = ws.root / "dataset"
    shutil.copytree(ws.data, root)
    annotation = root / "annotations" / f"instances_{split}.json"
    if edit is not None:
        content = json.loads(annotation.read_text())
        result = edit(content, root / split)
        annotation.write_text(result if isinstance(result, str) else json.dumps(content))
    return str(root)


# ------------------------------------------------------------------ runners


def _cli(main, argv):
    """Runs a command line's `main` in-process: `(exit code, stderr)`; a raised exception
    is what a user would see as a traceback."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 2
        except Exception:  # noqa: BLE001 - the corpus records it as a traceback
            code = "traceback"
            err.write(traceback.format_exc())
    return code, err.getvalue()


def predict(*images, extra=()):
    def run(ws):
        argv = ["--model", str(ws.model), "--output", ws.path("out"), *extra]
        return _cli(predict_cli.main, [*argv, *(_image_file(ws, i) for i in images)])

    return run


def predict_model(make_model):
    def run(ws):
        model = make_model(ws)
        image = _png(ws.root / "ok.png", _rgb())
        return _cli(predict_cli.main, ["--model", model, "--output", ws.path("out"), image])

    return run


def train(*sets, config=TINY_CONFIG, data=None):
    def run(ws):
        cfg = config(ws) if callable(config) else config
        data_dir = data(ws) if callable(data) else str(ws.data)
        argv = ["--config", cfg, "--data-dir", data_dir, "--model-dir", ws.path("run")]
        for item in sets:
            argv += ["--set", item]
        return _cli(train_cli.main, argv)

    return run


def evaluate(*extra, data=None, model=None):
    def run(ws):
        data_dir = data(ws) if callable(data) else str(ws.data)
        model_file = model(ws) if callable(model) else str(ws.model)
        argv = ["--config", TINY_CONFIG, "--data-dir", data_dir, "--model", model_file]
        argv += ["--output", ws.path("metrics.json"), "--verbose", "0", *extra]
        return _cli(evaluate_cli.main, argv)

    return run


def export(*extra, output="exports"):
    def run(ws):
        out = output(ws) if callable(output) else ws.path(output)
        argv = ["--model", str(ws.model), "--output", out, *extra]
        return _cli(export_cli.main, argv)

    return run


def serve(*replies, argv=("predict",), image=True):
    def run(ws):
        with MisbehavingServer(*replies) as server:
            files = [_png(ws.root / "x.png", _rgb())] if image else []
            return _cli(serving_cli.main, ["--url", server.url, *argv, *files])

    return run


def serve_args(*argv):
    def run(ws):
        return _cli(serving_cli.main, ["--url", "http://127.0.0.1:9", *argv])

    return run


def _answer(rows):
    return {"body": json.dumps({"predictions": rows}).encode()}


def _detections(**change):
    row = {
        "detection_boxes": [[1.0, 2.0, 30.0, 40.0], [-1.0, -1.0, -1.0, -1.0]],
        "detection_scores": [0.9, -1.0],
        "detection_classes": [0, -1],
        "num_detections": 1,
    }
    row.update(change)
    return {k: v for k, v in row.items() if v is not None}


def coco_skip(edit, kind, image_id=None):
    """`CocoDataset.open` on a split with one bad entry: excluded, counted, the rest kept."""

    def run(ws):
        root = _dataset(ws, edit, split="train2017")
        dataset = CocoDataset.open(root, "train2017")
        problems = [p for p in dataset.report.problems if p.kind == kind]
        total = len(
            json.loads(Path(ws.data, "annotations", "instances_train2017.json").read_text())[
                "images"
            ]
        )
        kept = len(dataset.records)
        message = "; ".join(str(p) for p in dataset.report.problems)
        ok = len(problems) == 1 and (image_id is None or problems[0].image_id == image_id)
        ok = ok and kept >= total - 1 and kept > 0
        return (0 if ok else "wrong"), message

    return run


def _first_image(content):
    return content["images"][0]


def _first_annotation(content):
    return content["annotations"][0]


def _set(getter, **values):
    def edit(content, _image_dir):
        getter(content).update(values)

    return edit


def _many_objects(content, _image_dir):
    image_id = content["images"][0]["id"]
    template = next(a for a in content["annotations"] if a["image_id"] == image_id)
    next_id = max(a["id"] for a in content["annotations"]) + 1
    content["annotations"] += [
        {**template, "id": next_id + i, "bbox": [1 + i % 10, 1, 5, 5]} for i in range(130)
    ]


def _text(text):
    return lambda content, _image_dir: text


def _duplicate_image_ids(content, _image_dir):
    content["images"][1]["id"] = content["images"][0]["id"]


IMAGE_FIX = "pass a JPEG, PNG, GIF, BMP or WebP file"
STATUS = b'{"model_version_status": []}'


# Where the tools write (a folder each: predict's --output, train's --model-dir,
# export's --output).
TOOL_OUTPUTS = ("out", "run", "exports")


def _listing(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def check_case(case, workspace):
    """Runs one case and checks its outcome (the rules of the module docstring)."""
    before = _listing(workspace.root)
    code, err = case.run(workspace)
    after = _listing(workspace.root)
    assert code != "traceback", f"TRACEBACK: {err}"
    assert "Traceback (most recent call last)" not in err, f"TRACEBACK: {err}"
    assert code == case.code, f"WRONG: exit {code}, expected {case.code}; stderr: {err}"
    for text in case.says:
        assert text in err, f"WRONG: the message does not say {text!r}: {err}"
    if code != 0:  # one message (after argparse's usage lines)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("usage:", " "))]
        assert len(lines) <= 2, f"WRONG: not one clear message: {err}"
    new = after - before
    half_written = [n for n in new if os.path.basename(n).startswith(".") or "incomplete" in n]
    assert not half_written, f"WRONG: left behind {half_written}"
    if code == 2:  # a usage error writes nothing
        written = [o for o in TOOL_OUTPUTS if (workspace.root / o).is_dir()]
        assert not written, f"WRONG: a usage error wrote {written}"
    for name in new:
        if name.endswith(".json") and not name.startswith("dataset"):
            json.loads((workspace.root / name).read_text())  # complete
    for output in case.outputs:
        json.loads((workspace.root / output).read_text())  # complete JSON
