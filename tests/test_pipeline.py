"""The tf.data training pipeline: batches, official geometry end to end, determinism, bad input."""

import dataclasses
import json
import os
import shutil
import struct

import cv2
import numpy as np
import pytest
import tensorflow as tf
from image_files import jpeg
from PIL import Image
from test_augment import OFFICIAL_SCALES, ref_clip, ref_flip, ref_random_crop, ref_resize

from cornernet_tf import images
from cornernet_tf.data import augment, pipeline
from cornernet_tf.data.coco import CocoDataset
from cornernet_tf.spec.config import DataConfig

INPUT, OUTPUT = 127, 32
# Small sizes, and the crop scales as the official np.arange(0.6, 1.4, 0.1) gives
# them (`augment.DEFAULT_SCALES`): the geometry test compares against the official
# sampler, and int(127 * 0.9999999999999999) is one pixel less than int(127 * 1.0).
DATA = DataConfig(input_size=INPUT, output_size=OUTPUT, rand_scales=augment.DEFAULT_SCALES)
DATA_FIELDS = {field.name for field in dataclasses.fields(DataConfig)}


def small_train(source, **kwargs):
    """`make_train_dataset` on DATA; `kwargs` that are DataConfig fields replace DATA's."""
    config = dataclasses.replace(DATA, **{k: v for k, v in kwargs.items() if k in DATA_FIELDS})
    args = {"batch_size": 2, "seed": 0, **{k: v for k, v in kwargs.items() if k not in DATA_FIELDS}}
    return pipeline.make_train_dataset(source, config, **args)


def test_batch_structure(shapes_root):
    data = small_train(shapes_root)
    images, targets = next(iter(data.dataset))
    assert images.shape == (2, INPUT, INPUT, 3) and images.dtype == tf.float32
    assert targets["tl_heatmap"].shape == (2, OUTPUT, OUTPUT, 3)
    assert targets["br_index"].shape == (2, 128) and targets["br_index"].dtype == tf.int32
    assert targets["tl_offset"].shape == (2, 128, 2) and targets["mask"].shape == (2, 128)
    assert data.num_classes == 3 and data.categories.names[0] == "rectangle"
    assert data.steps_per_epoch == 4
    assert 20 < float(tf.reduce_mean(images)) < 250  # RGB on the 0-255 scale, not normalised


def test_heatmap_peaks_are_on_box_corners(shapes_root):
    data = small_train(shapes_root, batch_size=4, include_boxes=True, seed=3)
    _, targets = next(iter(data.dataset))
    targets = {k: v.numpy() for k, v in targets.items()}
    ratio = OUTPUT / INPUT
    checked = 0
    for b in range(4):
        mask = targets["mask"][b] > 0
        boxes, labels = targets["boxes"][b][mask], targets["labels"][b][mask]
        assert np.all(boxes >= 0) and np.all(boxes <= INPUT - 1) and np.all(labels >= 0)
        corners = {"tl": boxes[:, :2], "br": boxes[:, 2:]}
        for name, xy in corners.items():
            heat = targets[f"{name}_heatmap"][b]
            ix = (xy[:, 0] * ratio).astype(int)  # official int(x * ratio)
            iy = (xy[:, 1] * ratio).astype(int)
            np.testing.assert_array_equal(heat[iy, ix, labels], 1.0)
            np.testing.assert_array_equal(targets[f"{name}_index"][b][mask], iy * OUTPUT + ix)
            np.testing.assert_allclose(
                targets[f"{name}_offset"][b][mask],
                np.stack([xy[:, 0] * ratio - ix, xy[:, 1] * ratio - iy], 1),
                atol=1e-5,
            )
            peaks = set(zip(*np.nonzero(heat == 1.0), strict=True))
            assert peaks == set(zip(iy, ix, labels, strict=True))  # no other peak
            checked += len(ix)
        assert np.all(targets["labels"][b][~mask] == -1)
    assert checked > 4


def test_geometry_end_to_end_matches_the_official_sampler(shapes_root):
    """Pipeline output == official random_crop → resize → clip → flip for the drawn values."""
    seed = 5
    data = small_train(
        shapes_root,
        batch_size=1,
        seed=seed,
        shuffle_buffer=1,
        color_jitter=False,
        include_boxes=True,
    )
    draw = tf.function(augment.draw_train_params)
    records = data.source.records
    flips = set()
    for position, (image, targets) in enumerate(data.dataset.take(len(records))):
        record = records[position]  # shuffle_buffer=1 keeps file order
        bgr = cv2.imread(record.path)
        draws = draw(pipeline.element_seed(seed, position), bgr.shape[:2], input_size=INPUT)
        scale_index = [int(INPUT * s) for s in OFFICIAL_SCALES].index(int(draws["crop_size"][0]))
        cty, ctx = draws["center"].numpy()
        dets = np.concatenate([record.boxes, record.labels[:, None]], 1).astype(np.float64)
        canvas, dets = ref_random_crop(
            bgr, dets, OFFICIAL_SCALES[scale_index], ctx, cty, (INPUT, INPUT)
        )
        canvas, dets = ref_resize(canvas.astype(np.float32), dets, (INPUT, INPUT))
        dets = ref_clip(dets, (INPUT, INPUT))
        if bool(draws["flip"]):
            canvas, dets = ref_flip(canvas, dets)
        flips.add(bool(draws["flip"]))
        np.testing.assert_allclose(image[0].numpy()[..., ::-1], canvas, atol=5e-3)
        n = len(dets)
        np.testing.assert_array_equal(targets["mask"][0].numpy().sum(), n)
        np.testing.assert_allclose(targets["boxes"][0, :n].numpy(), dets[:, :4], atol=1e-3)
        np.testing.assert_array_equal(targets["labels"][0, :n].numpy(), dets[:, 4])
    assert flips == {False, True}


def _batches(data, count):
    return [
        (images.numpy(), targets["tl_heatmap"].numpy())
        for images, targets in data.dataset.take(count)
    ]


def test_same_seed_same_batches_and_different_seed_different(shapes_root):
    first = _batches(small_train(shapes_root, seed=11), 5)  # crosses an epoch boundary
    second = _batches(small_train(shapes_root, seed=11), 5)
    other = _batches(small_train(shapes_root, seed=12), 5)
    for (a_img, a_heat), (b_img, b_heat) in zip(first, second, strict=True):
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_heat, b_heat)
    assert not np.array_equal(first[0][0], other[0][0])


def test_cached_images_give_the_same_batches_without_reading_again(shapes_root, tmp_path):
    root = tmp_path / "shapes"
    shutil.copytree(shapes_root, root)
    cached = small_train(root, seed=11, cache_images=True)
    batches = iter(cached.dataset)
    first = [next(batches) for _ in range(5)]  # 8 images, batch 2: one pass and a bit
    shutil.rmtree(root / "train2017")  # later passes come from memory
    later = [next(batches) for _ in range(8)]
    expected = _batches(small_train(shapes_root, seed=11), 13)
    for (image, targets), (want_image, want_heat) in zip(first + later, expected, strict=True):
        np.testing.assert_array_equal(image.numpy(), want_image)
        np.testing.assert_array_equal(targets["tl_heatmap"].numpy(), want_heat)


def test_cached_images_are_refused_when_they_would_not_fit_in_memory(shapes_root, tmp_path):
    root = tmp_path / "shapes"
    shutil.copytree(shapes_root, root)
    annotation_file = root / "annotations" / "instances_train2017.json"
    data = json.loads(annotation_file.read_text())
    for image in data["images"]:  # 8 x 30 gigapixels as the annotations say
        image["width"] = image["height"] = 100_000
    annotation_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"data\.cache_images would keep about 240\.0 GB"):
        small_train(root, cache_images=True)
    small_train(root)  # without the cache the sizes do not matter


def test_input_context_shards_and_sets_the_per_replica_batch(shapes_root):
    train = small_train(
        shapes_root, batch_size=4, input_context=tf.distribute.InputContext(2, 1, 2)
    )
    assert next(iter(train.dataset))[0].shape[0] == 2  # global batch 4 over 2 replicas
    assert train.steps_per_epoch == 2  # 4 of the 8 images in this shard
    # The files each input pipeline reads: below every image's pixel count, each
    # read file is refused and recorded, so the trackers list exactly the shards.
    read = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, 2)
        data = small_train(
            shapes_root, input_context=context, max_pixels=1, max_bad_images=8, repeat=False
        )
        assert list(data.dataset) == []
        read.append([path for path, _ in data.tracker.bad_images()])
    paths = [record.path for record in train.source.records]
    assert read == [paths[0::2], paths[1::2]]
    with pytest.raises(TypeError, match="input_context"):
        small_train(shapes_root, input_context=object())


# --- bad input -------------------------------------------------------------


def _png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def _jpeg(image):
    return cv2.imencode(".jpg", image)[1].tobytes()


def _huge_png_header(width=100_000, height=100_000):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def _write(root, files, annotations=None, categories=None, sizes=None):
    """COCO layout with `files` {name: bytes or None (missing)}; one 10x10 box per image.

    Images are annotated 40 high and 50 wide unless `sizes` {name: (height, width)} says otherwise.
    """
    os.makedirs(root / "annotations", exist_ok=True)
    os.makedirs(root / "train2017", exist_ok=True)
    images = []
    for image_id, (name, content) in enumerate(files.items(), start=1):
        height, width = (sizes or {}).get(name, (40, 50))
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        if content is not None:
            (root / "train2017" / name).write_bytes(content)
    if annotations is None:
        annotations = [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0}
            for i in range(1, len(images) + 1)
        ]
    data = {
        "images": images,
        "annotations": annotations,
        "categories": categories or [{"id": 1, "name": "thing"}],
    }
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def bad_root(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    jpeg = _jpeg(rgb)
    png = _png(rgb)
    files = {
        "good.png": png,
        "gray.png": _png(rgb[..., 0]),
        "rgba.png": _png(np.concatenate([rgb, np.full((40, 50, 1), 9, np.uint8)], -1)),
        "deep.png": _png(rgb.astype(np.uint16) * 257),
        "gray.jpg": _jpeg(rgb[..., 0]),
        "zero.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "corrupt.jpg": b"\xff\xd8\xff" + rng.bytes(300),
        "junk.png": rng.bytes(200),
        "huge.png": _huge_png_header(),
        "missing.png": None,
    }
    return _write(tmp_path, files)


GOOD = ["good.png", "gray.png", "rgba.png", "deep.png", "gray.jpg"]
BAD_REASONS = {
    "zero.jpg": images.REASONS[images.EMPTY_FILE],
    "truncated.jpg": images.REASONS[images.CORRUPT],
    "truncated.png": images.REASONS[images.CORRUPT],
    "corrupt.jpg": images.REASONS[images.CORRUPT],
    "junk.png": images.REASONS[images.UNSUPPORTED_FORMAT],
    "huge.png": images.REASONS[images.TOO_LARGE],
    "missing.png": images.REASONS[images.CORRUPT],
}


def _unchecked(root):
    """Opens without the stat check, so bad files reach the pipeline."""
    return CocoDataset.open(root, "train2017", check_files=False)


def test_read_image_decodes_good_files_and_names_bad_ones(bad_root):
    rgb = cv2.imread(str(bad_root / "train2017" / "good.png"))[..., ::-1]
    for name in GOOD:  # grayscale, RGBA, 16-bit: all 3-channel, original size
        image, code = images.read_image(tf.constant(str(bad_root / "train2017" / name)))
        assert int(code) == images.OK, name
        assert image.shape == (40, 50, 3) and image.dtype == tf.uint8, name
        if name == "deep.png":  # 16-bit scaled to 8-bit exactly
            np.testing.assert_array_equal(image.numpy(), rgb)
    for name, reason in BAD_REASONS.items():
        image, code = images.read_image(tf.constant(str(bad_root / "train2017" / name)))
        assert images.REASONS[int(code)] == reason, name
        assert image.shape == (1, 1, 3), name


def test_training_skips_bad_images_every_pass_without_rereading(bad_root):
    data = small_train(
        _unchecked(bad_root), batch_size=1, repeat=False, max_bad_images=len(BAD_REASONS)
    )
    batches = list(data.dataset)  # the good files
    assert len(batches) == len(GOOD)
    assert all(image.shape == (1, INPUT, INPUT, 3) for image, _ in batches)
    bad = {os.path.basename(path): reason for path, reason in data.tracker.bad_images()}
    assert bad == BAD_REASONS  # every bad file named, with its reason
    assert data.tracker.num_bad_images == 7 and data.tracker.num_skipped == 7
    assert len(list(data.dataset)) == len(GOOD)  # second pass: known bad files are not read
    assert data.tracker.num_bad_images == 7 and data.tracker.num_skipped == 14


def test_cached_training_reads_bad_images_once(bad_root):
    data = small_train(
        _unchecked(bad_root),
        batch_size=1,
        repeat=False,
        max_bad_images=len(BAD_REASONS),
        cache_images=True,
    )
    assert len(list(data.dataset)) == len(GOOD)
    bad = {os.path.basename(path): reason for path, reason in data.tracker.bad_images()}
    assert bad == BAD_REASONS and data.tracker.num_skipped == 7
    assert len(list(data.dataset)) == len(GOOD)  # second pass: from the cache, nothing read
    assert data.tracker.num_skipped == 7


def test_bad_image_limit_aborts_naming_the_file(bad_root):
    data = small_train(_unchecked(bad_root), batch_size=1, max_bad_images=2, shuffle_buffer=1)
    # Parallel reads: whichever bad file crosses the limit is named.
    names = "|".join(name.replace(".", r"\.") for name in BAD_REASONS)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=rf"max_bad_images=2 bad images(.|\n)*({names})"
    ):
        for _ in data.dataset.take(20):
            pass


def test_open_time_bad_images_count_towards_the_limit(tmp_path):
    png = _png(np.zeros((40, 50, 3), np.uint8))
    root = _write(tmp_path, {"ok.png": png, "../up.png": png, "/abs.png": png, "gone.png": None})
    with pytest.raises(ValueError, match=r"3 images .* max_bad_images=2.*image 2: unsafe_file"):
        small_train(root, max_bad_images=2)
    data = small_train(root, batch_size=1, max_bad_images=3)
    assert data.tracker.initial_bad == 3 and len(data.source) == 1


def test_pixel_limit_refuses_before_decoding(bad_root):
    data = small_train(
        _unchecked(bad_root),
        batch_size=1,
        repeat=False,
        max_pixels=40 * 50 - 1,
        max_bad_images=len(GOOD) + len(BAD_REASONS),
    )
    assert list(data.dataset) == []
    reasons = {os.path.basename(path): reason for path, reason in data.tracker.bad_images()}
    for name in GOOD:  # PNG and JPEG headers
        assert reasons[name] == images.REASONS[images.TOO_LARGE]


def test_images_without_usable_annotations_give_all_negative_targets(tmp_path):
    png = _png(np.full((40, 50, 3), 128, np.uint8))
    annotations = [  # image 1 has none; every box of image 2 is bad; image 3 has one
        {"id": 1, "image_id": 2, "category_id": 1, "bbox": [60, 5, 10, 10]},  # outside
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [5, 5, float("nan"), 10]},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, -4, 10]},
        {"id": 4, "image_id": 2, "category_id": 3, "bbox": [5, 5, 10, 10]},  # unknown category
        {"id": 5, "image_id": 3, "category_id": 1, "bbox": [5, 5, 30, 30]},
    ]
    files = {"none.png": png, "bad.png": png, "one.png": png}
    root = _write(tmp_path, files, annotations=annotations)
    data = small_train(root, batch_size=1, repeat=False, flip=False, rand_scales=(1.0,))
    assert data.source.report.num_annotations == 1 and len(data.source) == 3
    peaks = sorted(float(tf.reduce_max(t["tl_heatmap"])) for _, t in data.dataset)
    masks = sorted(float(tf.reduce_sum(t["mask"])) for _, t in data.dataset)
    assert peaks == [0.0, 0.0, 1.0] and masks == [0.0, 0.0, 1.0]


def test_a_split_without_annotations_is_refused_naming_the_file(tmp_path):
    png = _png(np.full((40, 50, 3), 128, np.uint8))
    root = _write(tmp_path, {"a.png": png, "b.png": png}, annotations=[])
    with pytest.raises(ValueError, match=r"instances_train2017.json'? has no usable annotations"):
        small_train(root)


def test_images_of_another_size_than_annotated_are_bad_images(tmp_path):
    # Boxes are in the pixels of the annotated size; another size would train on wrong boxes.
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    turned = jpeg(rgb, 6)  # stored 40 x 50, displayed 50 high and 40 wide
    files = {
        "right.png": _png(rgb),
        "claimed.png": _png(rgb),
        "huge.png": _png(rgb),
        "stored_size.jpg": turned,
        "displayed_size.jpg": turned,
    }
    sizes = {"claimed.png": (256, 256), "huge.png": (40_000, 50), "displayed_size.jpg": (50, 40)}
    root = _write(tmp_path, files, sizes=sizes)
    data = small_train(root, batch_size=1, repeat=False, max_bad_images=3)
    assert len(list(data.dataset)) == 2  # right.png and displayed_size.jpg
    bad = {os.path.basename(path): reason for path, reason in data.tracker.bad_images()}
    reason = images.REASONS[images.SIZE_MISMATCH]
    assert bad == {"claimed.png": reason, "huge.png": reason, "stored_size.jpg": reason}
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_bad_images=2"):
        list(small_train(root, batch_size=1, repeat=False, max_bad_images=2).dataset)


def test_non_ascii_folders_and_file_names_train(tmp_path):
    png = _png(np.full((40, 50, 3), 128, np.uint8))
    names = ["ü bild 0 写真.png", "données.png", "missing 写真.png"]
    root = _write(tmp_path / "données", {names[0]: png, names[1]: png, names[2]: None})
    dataset = CocoDataset.open(root, "train2017", check_files=False)
    data = small_train(dataset, batch_size=1, repeat=False, max_bad_images=1)
    assert len(list(data.dataset)) == 2
    [(path, reason)] = data.tracker.bad_images()  # named in its own spelling
    assert path == str(root / "train2017" / names[2])
    assert reason == images.REASONS[images.CORRUPT]


def test_argument_errors_name_the_argument(shapes_root):
    with pytest.raises(ValueError, match="batch_size"):
        small_train(shapes_root, batch_size=0)
    with pytest.raises(ValueError, match="input_size"):
        small_train(shapes_root, input_size=(127,))
    with pytest.raises(ValueError, match="data.rand_scales"):
        small_train(shapes_root, rand_scales=(0.0,))
    with pytest.raises(ValueError, match="data.max_objects"):
        small_train(shapes_root, max_objects=0)
    with pytest.raises(ValueError, match="max_bad_images"):
        small_train(shapes_root, max_bad_images=-1)
    with pytest.raises(TypeError, match="source"):
        pipeline.make_train_dataset(3, DATA, batch_size=1)
    with pytest.raises(TypeError, match="`config` must be a cornernet_tf.spec.config.DataConfig"):
        pipeline.make_train_dataset(shapes_root, "train2017", batch_size=1)


def test_empty_dataset_is_an_error(tmp_path):
    root = _write(tmp_path, {})
    with pytest.raises(ValueError, match="no usable images"):
        small_train(root)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_header_size_and_decoding_per_format(tmp_path, fmt):

    rgb = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(rgb).save(path, format=fmt)
    contents = tf.io.read_file(str(path))
    size, code = images.image_header_size(contents)
    assert int(code) == images.OK and list(size.numpy()) == [37, 53]
    image, code = images.read_image(tf.constant(str(path)))
    assert int(code) == images.OK and image.shape == (37, 53, 3)
    if fmt in ("PNG", "BMP"):  # lossless
        np.testing.assert_array_equal(image.numpy(), rgb)


def test_read_image_never_raises(tmp_path):
    path = tmp_path / "x.png"
    shutil.copyfile(__file__, path)  # text, not an image
    image, code = images.read_image(tf.constant(str(path)))
    assert int(code) == images.UNSUPPORTED_FORMAT and image.shape == (1, 1, 3)
    image, code = images.read_image(tf.constant(str(tmp_path / "nope.png")))
    assert int(code) == images.CORRUPT


def test_works_under_a_distribution_strategy(shapes_root):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    trackers = []

    def dataset_fn(context):
        data = small_train(shapes_root, batch_size=2, input_context=context)
        trackers.append(data.tracker)
        return data.dataset

    with strategy.scope():  # the tracker's state must not become mirrored variables
        batch = next(iter(strategy.distribute_datasets_from_function(dataset_fn)))
    assert batch[0].shape == (2, INPUT, INPUT, 3)
    assert trackers[0].num_bad_images == 0


def test_xla_and_plain_photometric_agree():
    image = tf.random.stateless_uniform([31, 45, 3], [1, 2], 0, 255)
    draws = augment.draw_train_params(tf.constant([3, 4]), (31, 45))
    for normalize in (False, True):
        fused = pipeline._photometric_fn(True, True, normalize, True)(image, draws)
        plain = augment.photometric(image, draws, normalize_output=normalize)
        np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-5, atol=1e-3)
