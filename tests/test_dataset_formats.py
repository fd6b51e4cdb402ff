"""VOC, YOLO, CSV and COCO annotations → the COCO 2017 layout, read back by `CocoDataset`.

Every expected box is computed by hand in the comments from the format's
convention (docs/custom_data.md); malformed inputs must be named with
`file:line` and counted, never dropped silently.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from cornernet_tf.data.coco import CocoDataset
from cornernet_tf.data.formats import coco_json, common, csv_table, voc, writer, yolo
from cornernet_tf.data.formats.common import FormatError
from cornernet_tf.data.formats.image_size import image_size

NON_ASCII = "ü bild 写真"


def _image(path, width, height, orientation=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.full((height, width, 3), 90, np.uint8))
    if orientation is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, exif=exif)
    return path


def _voc_xml(filename, objects, size=None):
    """A VOC file; `objects` are (name, xmin, ymin, xmax, ymax, difficult)."""
    lines = ["<annotation>", f"  <filename>{filename}</filename>"]
    if size:
        lines.append(f"  <size><width>{size[0]}</width><height>{size[1]}</height></size>")
    for name, x1, y1, x2, y2, difficult in objects:
        lines += [
            "  <object>",
            f"    <name>{name}</name>",
            "    <truncated>1</truncated>",
            f"    <difficult>{difficult}</difficult>",
            f"    <bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
            "</bndbox>",
            "  </object>",
        ]
    return "\n".join([*lines, "</annotation>", ""])


def _read_back(root, split):
    dataset = CocoDataset.open(root, split)
    names = dataset.categories.names
    return dataset, {
        r.file_name: sorted(
            (names[k], *np.round(b, 4).tolist()) for b, k in zip(r.boxes, r.labels, strict=True)
        )
        for r in dataset.records
    }


def _where(conversion):
    return {(issue.where, issue.kind, issue.dropped) for issue in conversion.issues}


@pytest.fixture
def voc_root(tmp_path):
    root = tmp_path / "VOC"
    _image(root / "JPEGImages" / f"{NON_ASCII}.jpg", 60, 40)
    _image(root / "JPEGImages" / "b.png", 50, 50)
    _image(root / "JPEGImages" / "c.jpg", 30, 30)
    _image(root / "JPEGImages" / "d.jpg", 30, 30)
    ann = root / "Annotations"
    ann.mkdir()
    (ann / f"{NON_ASCII}.xml").write_text(
        _voc_xml(
            f"{NON_ASCII}.jpg",
            [
                ("cat", 1, 1, 60, 40, 0),  # the whole image: [0, 0, 60, 40]
                ("dog", 10, 5, 20, 15, 1),  # difficult: [9, 4, 11, 11], iscrowd
                ("dog", 3, 3, 3, 3, 0),  # one pixel: [2, 2, 1, 1]
            ],
            size=(60, 40),
        ),
        encoding="utf-8",
    )
    # 0-based xmin (a common labelling-tool slip) → x1 = -1, clipped to 0;
    # xmax = 70 past the 50-pixel image → clipped to 50: [0, 2, 50, 7].
    (ann / "b.xml").write_text(_voc_xml("b.png", [("dog", 0, 3, 70, 9, 0)], size=(50, 50)))
    # Line 6 has xmin "ten"; line 1 of c is fine but the file is cut short.
    (ann / "c.xml").write_text(
        _voc_xml("c.jpg", [("cat", 2, 2, 5, 5, 0), ("cat", "ten", 2, 5, 5, 0)])
    )
    (ann / "d.xml").write_text("<annotation>\n  <filename>d.jpg</filename>\n  <object>\n")
    (ann / "e.xml").write_text(_voc_xml("missing.jpg", []))
    sets = root / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("b\nc\n")
    return root


def test_voc_boxes_are_the_one_based_inclusive_corners(voc_root, tmp_path):
    conversion = voc.read_voc(str(voc_root))
    assert conversion.classes == ["cat", "dog"]  # sorted names
    out = tmp_path / "out"
    writer.write_split(conversion, str(out), "train")
    dataset, boxes = _read_back(out, "train")
    assert boxes == {
        f"{NON_ASCII}.jpg": [("cat", 0, 0, 60, 40), ("dog", 2, 2, 3, 3)],
        "b.png": [("dog", 0, 2, 50, 9)],
        "c.jpg": [("cat", 1, 1, 5, 5)],
    }
    # The difficult box is an ignore region: not trained on, ignored by COCOeval.
    assert dataset.report.counts == {"crowd": 1}
    crowd = [a for a in dataset.coco.dataset["annotations"] if a["iscrowd"]]
    assert [a["bbox"] for a in crowd] == [[9, 4, 11, 11]]
    data = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert {img["file_name"]: (img["width"], img["height"]) for img in data["images"]} == {
        f"{NON_ASCII}.jpg": (60, 40),
        "b.png": (50, 50),
        "c.jpg": (30, 30),
    }
    assert (out / "train" / f"{NON_ASCII}.jpg").read_bytes() == (
        voc_root / "JPEGImages" / f"{NON_ASCII}.jpg"
    ).read_bytes()


def test_voc_problems_are_named_with_file_and_line(voc_root):
    issues = _where(voc.read_voc(str(voc_root)))
    found = {(where.rsplit("Annotations/", 1)[1], kind, dropped) for where, kind, dropped in issues}
    assert found == {
        ("b.xml:4", common.CLIPPED, ""),  # the <object> line
        ("c.xml:13", common.MALFORMED, "box"),  # the <bndbox> line with "ten"
        ("d.xml:4", common.MALFORMED, "image"),  # unclosed elements at the end
        ("e.xml", common.MISSING_IMAGE, "image"),
    }


def test_voc_image_set_and_classes_choose(voc_root):
    conversion = voc.read_voc(str(voc_root), image_set="train", classes=["dog"])
    assert [image.file_name for image in conversion.images] == ["b.png", "c.jpg"]
    assert conversion.classes == ["dog"]
    assert [len(image.boxes) for image in conversion.images] == [1, 0]
    excluded = [i for i in conversion.issues if i.kind == common.EXCLUDED_CLASS]
    assert [i.where.rsplit("/", 1)[1] for i in excluded] == ["c.xml:3"]
    with pytest.raises(FormatError, match="--image-set nope: .*nope.txt not found"):
        voc.read_voc(str(voc_root), image_set="nope")


def test_voc_flat_folder_and_size_mismatch(tmp_path):
    folder = tmp_path / "flat"
    _image(folder / "a.jpg", 20, 10)
    (folder / "a.xml").write_text(_voc_xml("a.jpg", [("x", 1, 1, 4, 4, 0)], size=(10, 20)))
    conversion = voc.read_voc(str(folder))
    assert [(i.kind, i.dropped) for i in conversion.issues] == [(common.SIZE_MISMATCH, "")]
    (folder / "a.xml").write_text(_voc_xml("renamed.jpg", [("x", 1, 1, 4, 4, 0)]))
    conversion = voc.read_voc(str(folder))
    assert [(i.kind, i.dropped) for i in conversion.issues] == [(common.IMAGE_BY_STEM, "")]
    assert conversion.images[0].file_name == "a.jpg"
    assert (conversion.images[0].width, conversion.images[0].height) == (20, 10)


def test_exif_orientation_swaps_the_size_as_the_trainer_reads_it(tmp_path):
    from cornernet_tf.images import OK, read_image

    path = _image(tmp_path / "turned.jpg", 64, 32, orientation=6)
    assert image_size(path) == (32, 64)
    image, status = read_image(str(path))
    assert int(status) == OK and tuple(image.shape[:2]) == (64, 32)  # (height, width)
    _image(tmp_path / "x.webp", 8, 8)
    assert "not read by the trainer" in image_size(tmp_path / "x.webp")
    os.mkfifo(tmp_path / "pipe.jpg")  # reading it would block
    assert image_size(tmp_path / "pipe.jpg") == "is a named pipe (FIFO), not a file"
    assert image_size(tmp_path / "missing.jpg") == "not found"


@pytest.fixture
def yolo_root(tmp_path):
    root = tmp_path / "yolo"
    _image(root / "images" / "train" / f"{NON_ASCII}.jpg", 64, 32)
    _image(root / "images" / "train" / "turned.jpg", 64, 32, orientation=6)  # 32 x 64 shown
    _image(root / "images" / "train" / "background.png", 16, 16)
    labels = root / "labels" / "train"
    labels.mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n  0: cat\n  1: dog\n")
    (labels / f"{NON_ASCII}.txt").write_text(
        "0 0.5 0.5 0.25 0.5\n"  # x 24..40, y 8..24 → [24, 8, 16, 16]
        "1 0.25 0.25 0.75 0.25 0.5 0.75\n"  # segment: x 16..48, y 8..24 → [16, 8, 32, 16]
        "0 0.5 0.5 0.25 0.5\n"  # a repeat of line 1
        "\n"
        "1 0.5 abc 0.1 0.1\n"
        "5 0.5 0.5 0.1 0.1\n"
        "0 0.5 0.5 0.1\n",
        encoding="utf-8",
    )
    # 32 x 64 as displayed: x 0..16, y 16..48 → [0, 16, 16, 32]; the second box
    # overhangs the right border: x 28 ± 8 = 20..36 → clipped to 20..32.
    (labels / "turned.txt").write_text("1 0.25 0.5 0.5 0.5\n0 0.875 0.5 0.5 0.5\n")
    (labels / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    return root


def test_yolo_boxes_from_normalised_centres(yolo_root, tmp_path):
    conversion = yolo.read_yolo(str(yolo_root / "labels" / "train"))
    assert conversion.classes == ["cat", "dog"]  # data.yaml order
    out = tmp_path / "out"
    writer.write_split(conversion, str(out), "train")
    _, boxes = _read_back(out, "train")
    assert boxes == {
        f"{NON_ASCII}.jpg": [("cat", 24, 8, 40, 24), ("dog", 16, 8, 48, 24)],
        "turned.jpg": [("cat", 20, 16, 32, 48), ("dog", 0, 16, 16, 48)],
        "background.png": [],
    }
    labels = yolo_root.relative_to(yolo_root.parent)
    found = {
        (where.split(f"{labels}/labels/train/", 1)[1], kind, dropped)
        for where, kind, dropped in _where(conversion)
    }
    assert found == {
        (f"{NON_ASCII}.txt:3", common.DUPLICATE_BOX, "box"),
        (f"{NON_ASCII}.txt:5", common.MALFORMED, "box"),
        (f"{NON_ASCII}.txt:6", common.UNKNOWN_CLASS, "box"),
        (f"{NON_ASCII}.txt:7", common.MALFORMED, "box"),
        ("turned.txt:2", common.CLIPPED, ""),
        ("background.txt", common.NO_LABEL_FILE, ""),
        ("orphan.txt", common.MISSING_IMAGE, "file"),
    }


def test_yolo_names_files(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\n\n")
    assert yolo.read_names(str(tmp_path / "classes.txt")) == ["a", "b"]
    (tmp_path / "bad.txt").write_text("a\n\nb\n")
    with pytest.raises(FormatError, match=r"bad.txt:2: empty line"):
        yolo.read_names(str(tmp_path / "bad.txt"))
    (tmp_path / "d.yaml").write_text("names: [a, b, a]\n")
    with pytest.raises(FormatError, match=r"d.yaml: class names \['a'\] repeat"):
        yolo.read_names(str(tmp_path / "d.yaml"))
    (tmp_path / "e.yaml").write_text("names: {0: a, 2: b}\n")
    with pytest.raises(FormatError, match="not 0..1"):
        yolo.read_names(str(tmp_path / "e.yaml"))
    (tmp_path / "f.yaml").write_text("names: [a\n")
    with pytest.raises(FormatError, match=r"f.yaml:2: not valid YAML"):
        yolo.read_names(str(tmp_path / "f.yaml"))
    labels = tmp_path / "a" / "b" / "labels"
    labels.mkdir(parents=True)
    with pytest.raises(FormatError, match="no data.yaml, dataset.yaml, classes.txt"):
        yolo.read_yolo(str(labels))
    with pytest.raises(FormatError, match="d.yaml: pass the labels folder .* as --names"):
        yolo.read_yolo(str(tmp_path / "d.yaml"))


def test_csv_table(tmp_path):
    _image(tmp_path / "imgs" / f"{NON_ASCII}.jpg", 60, 40)
    _image(tmp_path / "imgs" / "b.jpg", 30, 30)
    _image(tmp_path / "imgs" / "empty.jpg", 30, 30)
    table = tmp_path / "boxes.csv"
    table.write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        f"{NON_ASCII}.jpg,60,40,cat,10,5,20,15\n"  # [10, 5, 10, 10]
        f"{NON_ASCII}.jpg,60,40,dog,x,5,20,15\n"
        "b.jpg,31,30,dog,25,0,35,30\n"  # width stated 31; xmax 35 → 30: [25, 0, 5, 30]
        "b.jpg,30,30,dog,5,5,2\n"
        "b.jpg,30,30,dog,9,9,4,12\n"  # xmax < xmin
        "empty.jpg,30,30,,,,,\n"
        "gone.jpg,30,30,cat,1,1,2,2\n",
        encoding="utf-8",
    )
    conversion = csv_table.read_csv(str(table), str(tmp_path / "imgs"))
    out = tmp_path / "out"
    writer.write_split(conversion, str(out), "val")
    _, boxes = _read_back(out, "val")
    assert boxes == {
        f"{NON_ASCII}.jpg": [("cat", 10, 5, 20, 15)],
        "b.jpg": [("dog", 25, 0, 30, 30)],
        "empty.jpg": [],
    }
    found = {
        (where.rsplit(":", 1)[1], kind, dropped) for where, kind, dropped in _where(conversion)
    }
    assert found == {
        ("3", common.MALFORMED, "box"),
        ("4", common.SIZE_MISMATCH, ""),
        ("4", common.CLIPPED, ""),
        ("5", common.MALFORMED, "box"),
        ("6", common.INVERTED_BOX, "box"),
        ("8", common.MISSING_IMAGE, "image"),
    }
    # Without a header the columns are in the documented order.
    table.write_text("b.jpg,30,30,dog,1,2,3,4\n")
    (image,) = csv_table.read_csv(str(table), str(tmp_path / "imgs")).images
    assert [(b.x1, b.y1, b.x2, b.y2) for b in image.boxes] == [(1, 2, 3, 4)]
    table.write_text("file,width,height,class,xmin,ymin,xmax,ymax\n")
    with pytest.raises(FormatError, match=r"boxes.csv:1: header lacks \['filename'\]"):
        csv_table.read_csv(str(table), str(tmp_path / "imgs"))


def test_coco_json_keeps_ids_or_renumbers_with_classes(tmp_path):
    _image(tmp_path / "imgs" / "sub" / f"{NON_ASCII}.jpg", 60, 40)
    _image(tmp_path / "imgs" / "b.jpg", 30, 30)
    source = {
        "images": [
            {"id": 7, "file_name": f"sub/{NON_ASCII}.jpg", "width": 60, "height": 40},
            {"id": 9, "file_name": "b.jpg", "width": 30, "height": 30},
            {"id": 11, "file_name": "../escape.jpg", "width": 30, "height": 30},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [1.5, 2, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1},
            {"id": 3, "image_id": 9, "category_id": 3, "bbox": [4, 4, 8, 8]},
            {"id": 4, "image_id": 9, "category_id": 8, "bbox": [4, 4, 8, 8]},
            {"id": 5, "image_id": 9, "category_id": 3, "bbox": [4, 4, "8", 8]},
        ],
        "categories": [{"id": 5, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    path = tmp_path / "source.json"
    path.write_text(json.dumps(source))
    conversion = coco_json.read_coco(str(path), str(tmp_path / "imgs"))
    out = tmp_path / "out"
    writer.write_split(conversion, str(out), "train")
    dataset, boxes = _read_back(out, "train")
    assert boxes == {
        f"sub/{NON_ASCII}.jpg": [("dog", 1.5, 2, 11.5, 22)],
        "b.jpg": [("cat", 4, 4, 12, 12)],
    }
    assert dataset.categories.category_ids == (3, 5)
    assert sorted(r.image_id for r in dataset.records) == [7, 9]
    assert dataset.report.counts == {"crowd": 1}
    assert {(w.split(": ", 1)[1], k) for w, k, _ in _where(conversion)} == {
        ("images[2]", common.MALFORMED),
        ("annotations[3] (id 4)", common.UNKNOWN_CLASS),
        ("annotations[4] (id 5)", common.MALFORMED),
    }
    chosen = coco_json.read_coco(str(path), str(tmp_path / "imgs"), classes=["dog", "cat"])
    writer.write_split(chosen, str(out), "reordered")
    dataset = CocoDataset.open(out, "reordered")
    assert dataset.categories.names == ("dog", "cat")
    assert dataset.categories.category_ids == (1, 2)


def test_write_split_refuses_an_existing_split(voc_root, tmp_path):
    conversion = voc.read_voc(str(voc_root))
    writer.write_split(conversion, str(tmp_path / "out"), "train")
    with pytest.raises(FormatError, match="instances_train.json exists already"):
        writer.write_split(conversion, str(tmp_path / "out"), "train")
    with pytest.raises(FormatError, match="plain folder name"):
        writer.write_split(conversion, str(tmp_path / "out"), "a/b")
    writer.write_split(conversion, str(tmp_path / "out"), "copy", copy=True)
    source = voc_root / "JPEGImages" / "b.png"
    linked, copied = tmp_path / "out" / "train" / "b.png", tmp_path / "out" / "copy" / "b.png"
    assert linked.stat().st_ino == source.stat().st_ino
    assert copied.stat().st_ino != source.stat().st_ino
    assert copied.read_bytes() == source.read_bytes()
