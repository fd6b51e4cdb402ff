"""Pascal VOC XML annotations.

Layouts read: a VOC root (`Annotations/*.xml`, `JPEGImages/`, optionally
`ImageSets/Main/<set>.txt` to choose the images), the `Annotations/` folder
itself, or any flat folder of XML files. Images are found by `<filename>` in
the image folder (by default `JPEGImages/` beside the annotations, else the XML
folder), or by the XML file's stem when `<filename>` names no file there.

Coordinates: VOC corners are 1-based pixel indices, both ends inclusive (the
devkit's `VOCevaldet` measures a box as `xmax - xmin + 1` pixels wide), so the
continuous box is `x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`: a box
`xmin=1 .. xmax=W` covers the whole image, and COCO's `w = xmax - xmin + 1`
(detectron2's VOC reader does the same; a box as wide as its pixels).
`<difficult>1</difficult>` objects are written as ignore regions (`iscrowd=1`:
neither trained on nor counted by the COCO evaluation, as the VOC evaluation
ignores them); `<truncated>` and `<occluded>` objects are normal boxes.
"""

from __future__ import annotations

import dataclasses
import os
import xml.parsers.expat

from cornernet_tf.data.coco import safe_join
from cornernet_tf.data.formats import common
from cornernet_tf.data.formats.common import Box, Conversion, FormatError, Issue, SourceImage
from cornernet_tf.data.formats.image_size import image_size

__all__ = ["read_voc", "parse_voc_xml"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".JPG", ".JPEG", ".PNG")


@dataclasses.dataclass
class _Element:
    tag: str
    line: int
    children: list[_Element] = dataclasses.field(default_factory=list)
    text: str = ""

    def find(self, tag: str) -> _Element | None:
        return next((c for c in self.children if c.tag == tag), None)

    def findtext(self, tag: str) -> str | None:
        child = self.find(tag)
        return None if child is None else child.text.strip()


def _parse_xml(data: bytes) -> _Element:
    """A minimal element tree with the line of every element (expat errors propagate)."""
    parser = xml.parsers.expat.ParserCreate()
    root = _Element("", 0)
    stack = [root]

    def start(tag, _attrs):
        element = _Element(tag, parser.CurrentLineNumber)
        stack[-1].children.append(element)
        stack.append(element)

    def end(_tag):
        stack.pop()

    def text(data):
        stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.Parse(data, True)
    return root.children[0]


@dataclasses.dataclass
class VocFile:
    """One parsed XML file.

    Attributes:
        filename: `<filename>` (None when absent).
        width, height: `<size>` values (None when absent or not positive integers).
        boxes: the objects, in continuous pixel corners.
    """

    filename: str | None
    width: int | None
    height: int | None
    boxes: list[Box]


def _int_or_none(text: str | None) -> int | None:
    try:
        value = int(float(text)) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def parse_voc_xml(data: bytes, where: str, issues: list[Issue]) -> VocFile:
    """Parses one VOC XML file.

    Args:
        data: the file's bytes.
        where: the file's name for messages (`where:line`).
        issues: where malformed objects are recorded (each left out).

    Returns:
        The parsed file.

    Raises:
        FormatError: not XML, or no `<annotation>` root (the message has `file:line`).
    """
    try:
        root = _parse_xml(data)
    except xml.parsers.expat.ExpatError as error:
        raise FormatError(
            f"{where}:{error.lineno}: not well-formed XML "
            f"({xml.parsers.expat.ErrorString(error.code)}, column {error.offset + 1})"
        ) from None
    if root.tag != "annotation":
        raise FormatError(f"{where}:{root.line}: root element is <{root.tag}>, not <annotation>")
    size = root.find("size")
    width = _int_or_none(size.findtext("width")) if size is not None else None
    height = _int_or_none(size.findtext("height")) if size is not None else None
    boxes = []
    for obj in (c for c in root.children if c.tag == "object"):
        at = f"{where}:{obj.line}"
        name = obj.findtext("name")
        bndbox = obj.find("bndbox")
        if not name:
            issues.append(Issue(at, common.MALFORMED, "<object> without a <name>", "box"))
            continue
        if bndbox is None:
            issues.append(Issue(at, common.MALFORMED, f"<object> {name!r} has no <bndbox>", "box"))
            continue
        corners = {}
        for key in ("xmin", "ymin", "xmax", "ymax"):
            text = bndbox.findtext(key)
            try:
                corners[key] = float(text)
            except (TypeError, ValueError):
                line = bndbox.find(key).line if bndbox.find(key) is not None else bndbox.line
                problem = f"<{key}> missing" if text is None else f"<{key}> is {text!r}"
                issues.append(
                    Issue(f"{where}:{line}", common.MALFORMED, f"{problem}, not a number", "box")
                )
                break
        else:
            difficult = obj.findtext("difficult") or "0"
            boxes.append(
                Box(
                    name,
                    corners["xmin"] - 1.0,
                    corners["ymin"] - 1.0,
                    corners["xmax"],
                    corners["ymax"],
                    ignore=difficult not in ("0", "", "false", "False"),
                    where=at,
                )
            )
    return VocFile(root.findtext("filename"), width, height, boxes)


def _layout(annotations: str, images: str | None) -> tuple[str, str, str | None]:
    """(XML folder, image folder, ImageSets/Main folder or None) of a VOC path."""
    if not os.path.isdir(annotations):
        raise FormatError(
            f"--annotations {annotations}: no such folder; pass a VOC root (with Annotations/) "
            "or a folder of .xml files."
        )
    voc_root = annotations
    xml_dir = annotations
    if os.path.isdir(os.path.join(annotations, "Annotations")):
        xml_dir = os.path.join(annotations, "Annotations")
    elif os.path.basename(os.path.normpath(annotations)) == "Annotations":
        voc_root = os.path.dirname(os.path.normpath(annotations))
    if images is None:
        jpeg = os.path.join(voc_root, "JPEGImages")
        images = jpeg if os.path.isdir(jpeg) else xml_dir
    elif not os.path.isdir(images):
        raise FormatError(f"--images {images}: no such folder; pass the folder of the images.")
    sets = os.path.join(voc_root, "ImageSets", "Main")
    return xml_dir, images, sets if os.path.isdir(sets) else None


def _find_image(images: str, filename: str | None, stem: str) -> tuple[str | None, bool]:
    """(image path or None, whether it was found by the XML file's stem)."""
    if filename:
        path = safe_join(images, filename)
        if path is not None and os.path.isfile(path):
            return path, False
    for suffix in _IMAGE_SUFFIXES:
        path = os.path.join(images, stem + suffix)
        if os.path.isfile(path):
            return path, True
    return None, False


def read_voc(
    annotations: str,
    images: str | None = None,
    *,
    classes: list[str] | None = None,
    image_set: str | None = None,
) -> Conversion:
    """Reads a VOC dataset (see the module docstring for layouts and conventions).

    Args:
        annotations: VOC root, its `Annotations/` folder, or a folder of XML files.
        images: image folder (default: `JPEGImages/` beside, else the XML folder).
        classes: class names in class-id order (a subset); default the sorted names found.
        image_set: name of an `ImageSets/Main/<name>.txt` list choosing the images.

    Returns:
        The conversion; files that cannot be used are `Issue`s, not errors.

    Raises:
        FormatError: missing folders, unknown image set, no XML file.
    """
    xml_dir, images, sets = _layout(annotations, images)
    if image_set is not None:
        list_file = os.path.join(
            sets or os.path.join(annotations, "ImageSets", "Main"), f"{image_set}.txt"
        )
        if not os.path.isfile(list_file):
            raise FormatError(
                f"--image-set {image_set}: {list_file} not found; pass the name of a list in "
                "ImageSets/Main/ (e.g. train, val, trainval)."
            )
        with open(list_file, encoding="utf-8") as f:
            # Segmentation-style lists carry a second column (-1/0/1); the id is the first.
            stems = [line.split()[0] for line in f if line.strip()]
        xml_files = [os.path.join(xml_dir, f"{stem}.xml") for stem in stems]
    else:
        xml_files = sorted(
            os.path.join(xml_dir, name) for name in os.listdir(xml_dir) if name.endswith(".xml")
        )
    if not xml_files:
        raise FormatError(
            f"--annotations {annotations}: no .xml files in {xml_dir}; pass a VOC folder."
        )
    issues: list[Issue] = []
    result: list[SourceImage] = []
    seen: dict[str, str] = {}
    for xml_path in xml_files:
        where = os.path.relpath(xml_path)
        try:
            with open(xml_path, "rb") as f:
                data = f.read()
        except OSError as error:
            issues.append(
                Issue(where, common.MALFORMED, f"cannot be read ({error.strerror})", "image")
            )
            continue
        try:
            parsed = parse_voc_xml(data, where, issues)
        except FormatError as error:
            at, _, message = str(error).partition(": ")
            issues.append(Issue(at, common.MALFORMED, message, "image"))
            continue
        stem = os.path.splitext(os.path.basename(xml_path))[0]
        path, by_stem = _find_image(images, parsed.filename, stem)
        if by_stem:
            issues.append(
                Issue(
                    where,
                    common.IMAGE_BY_STEM,
                    f"<filename> {parsed.filename!r} is not in {images}; took "
                    f"{os.path.basename(path)}, named as the XML file",
                )
            )
        if path is None:
            issues.append(
                Issue(
                    where,
                    common.MISSING_IMAGE,
                    f"image {parsed.filename or stem!r} not found in {images}",
                    "image",
                )
            )
            continue
        size = image_size(path)
        if isinstance(size, str):
            issues.append(Issue(where, common.UNREADABLE_IMAGE, f"{path}: {size}", "image"))
            continue
        width, height = size
        if parsed.width and parsed.height and (parsed.width, parsed.height) != size:
            issues.append(
                Issue(
                    where,
                    common.SIZE_MISMATCH,
                    f"<size> {parsed.width}x{parsed.height} but {path} is {width}x{height} "
                    "as the trainer reads it; the image's size is used",
                )
            )
        if path in seen:
            issues.append(
                Issue(
                    where,
                    common.DUPLICATE_IMAGE,
                    f"{path} is annotated by {seen[path]} already",
                    "image",
                )
            )
            continue
        seen[path] = where
        boxes = common.finish_boxes(parsed.boxes, width, height, issues)
        result.append(SourceImage(path, common.relative_name(path, images), width, height, boxes))
    found = sorted({box.label for image in result for box in image.boxes})
    return Conversion(result, common.select_classes(result, found, classes, issues), issues)
