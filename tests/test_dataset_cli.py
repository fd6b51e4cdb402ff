"""`cornernet-dataset convert` and `check` as users run them: the console script, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cornernet_tf.cli import dataset as dataset_cli
from cornernet_tf.data.coco import CocoDataset

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "cornernet-dataset"
NON_ASCII = "ü bild 写真"


def _run(args, **kwargs):
    assert SCRIPT.is_file(), f"{SCRIPT} is not installed; reinstall the package (make install)"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, **kwargs
    )


@pytest.fixture
def voc(tmp_path):
    """A flat VOC folder: 8 images of cats and dogs, one XML cut short."""
    folder = tmp_path / f"voc {NON_ASCII}"
    folder.mkdir()
    for k in range(8):
        name = f"{NON_ASCII} {k}" if k == 0 else f"img{k}"
        Image.fromarray(np.full((40, 60, 3), 30 * k, np.uint8)).save(folder / f"{name}.jpg")
        label = "cat" if k % 2 else "dog"
        (folder / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename>\n<object><name>{label}</name>\n"
            "<bndbox><xmin>5</xmin><ymin>6</ymin><xmax>30</xmax><ymax>20</ymax></bndbox>"
            "</object></annotation>\n",
            encoding="utf-8",
        )
    (folder / "img7.xml").write_text("<annotation>\n<object>\n", encoding="utf-8")
    return folder


def test_convert_and_check_in_a_fresh_process(voc, tmp_path):
    out = tmp_path / "data"
    proc = _run(
        ["convert", "--format", "voc", "--annotations", str(voc), "--output", str(out)]
        + ["--split", "train2017", "--val-fraction", "0.3", "--seed", "5"]
    )
    assert proc.returncode == 0, proc.stderr
    assert "img7.xml:3: malformed: not well-formed XML" in proc.stdout
    train, val = CocoDataset.open(out, "train2017"), CocoDataset.open(out, "val2017")
    assert (len(train), len(val)) == (5, 2)  # 7 usable images, round(0.3 * 7) = 2
    for dataset in (train, val):
        assert dataset.categories.names == ("cat", "dog")
        assert sorted({int(k) for r in dataset.records for k in r.labels}) == [0, 1]
        for record in dataset.records:
            np.testing.assert_array_equal(record.boxes, [[4, 5, 30, 20]])
    log = (out / "annotations" / "conversion_train2017.txt").read_text(encoding="utf-8")
    assert "img7.xml:3: malformed" in log
    proc = _run(["check", str(out), "--split", "val2017", "--json", str(tmp_path / "s.json")])
    assert proc.returncode == 0, proc.stderr
    assert "2 images, 2 classes" in proc.stdout
    proc = _run(["check", str(out), "--split", "train2017"])
    assert f"left out or changed (1): {out / 'annotations' / 'conversion_train2017.txt'}" in (
        proc.stdout
    )
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["boxes_per_class"] == {"cat": 1, "dog": 1}
    assert stats["box_sizes"]["width"] == [26.0, 26.0, 26.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "voc", "--annotations", "nowhere"], "--annotations nowhere: no such folder"),
        (["--format", "voc", "--annotations", "{voc}", "--classes", "a,,b"], "empty class name"),
        (["--format", "voc", "--annotations", "{voc}", "--names", "x"], "--names is for"),
        (["--format", "voc", "--annotations", "{voc}", "--strict"], "img7.xml:3: malformed"),
        (["--format", "csv", "--annotations", "{voc}"], "is a folder, not a file"),
        (["--format", "voc", "--annotations", "{voc}", "--val-fraction", "1"], "--val-fraction"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(voc, tmp_path, capsys, args, message):
    out = tmp_path / "data"
    argv = ["convert", *(a.format(voc=voc) for a in args), "--output", str(out), "--split", "s"]
    assert dataset_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (out / "annotations").exists() and not (out / "s").exists()


def test_check_draws_and_refuses_missing_splits(voc, tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["convert", "--format", "voc", "--annotations", str(voc), "--output", str(out)]
    assert dataset_cli.main([*argv, "--split", "train"]) == 0
    assert dataset_cli.main([*argv, "--split", "train"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert dataset_cli.main(["check", str(out), "--split", "nope"]) == 2
    assert "instances_nope.json" in capsys.readouterr().err
    assert dataset_cli.main(["check", str(out), "--split", "train", "--draw", "2"]) == 2
    assert "needs --output" in capsys.readouterr().err
    drawings = tmp_path / "drawn"
    argv = ["check", str(out), "--split", "train", "--draw", "7", "--output", str(drawings)]
    assert dataset_cli.main(argv) == 0
    files = sorted(p.name for p in drawings.iterdir())
    assert files == [f"{k}_img{k}.png" for k in range(1, 7)] + [f"7_{NON_ASCII} 0.png"]
    drawn = np.asarray(Image.open(drawings / files[-1]))
    assert drawn.shape[:2] == (320, 480)  # upscaled 8x for legible labels
    assert drawn[6 * 8 - 4 : 20 * 8 + 4, 4 * 8 - 4 : 30 * 8 + 4].std() > 0  # a box was drawn


def test_convert_imports_no_tensorflow(voc, tmp_path):
    probe = (
        "import sys\n"
        "from cornernet_tf.cli import dataset\n"
        f"code = dataset.main(['convert', '--format', 'voc', '--annotations', {str(voc)!r},"
        f" '--output', {str(tmp_path / 'o')!r}, '--split', 'a'])\n"
        f"code += dataset.main(['check', {str(tmp_path / 'o')!r}, '--split', 'a'])\n"
        "heavy = sorted({'tensorflow', 'keras'} & set(sys.modules))\n"
        "print('RESULT', code, heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert "RESULT 0 []" in proc.stderr, proc.stderr[-2000:]


def test_a_folder_without_any_box_is_refused(tmp_path, capsys):
    folder = tmp_path / "voc"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.jpg")
    (folder / "a.xml").write_text("<annotation><filename>a.jpg</filename></annotation>\n")
    argv = ["convert", "--format", "voc", "--annotations", str(folder), "--output"]
    assert dataset_cli.main([*argv, str(tmp_path / "out"), "--split", "s"]) == 2
    assert "no box with a class name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_python_m_and_subcommand_help():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for command in ("convert", "check"):
        proc = subprocess.run(
            [sys.executable, "-m", "cornernet_tf.cli.dataset", command, "--help"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            cwd=REPO,
        )
        assert proc.returncode == 0 and proc.stdout.startswith("usage: cornernet-dataset")
