"""CornerNet-Saccade's test procedure (`cornernet_tf.inference.saccade`).

The TensorFlow crop geometry, remapping, attention decoding, reference crops
and location NMS are compared with numpy transcriptions of
princeton-vl/CornerNet-Lite `core/test/cornernet_saccade.py` (written here from
the official functions);
the whole procedure runs on tiny_saccade's outputs replaced by planted values
that "see" a painted object, so the detections must come back at the object's
image coordinates, and its pooled detections must equal those of a
transcription of the official procedure run on the same planted heads.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from harness import SMALL_NETWORK
from seeding import seed_weights

from cornernet_tf.inference.decode import decode_corners
from cornernet_tf.inference.saccade import (
    ATTENTION_KEYS,
    SaccadeConfig,
    SaccadeProcedure,
    crop_window,
    decode_attention,
    location_nms,
    prepare_crops,
    reference_locations,
    remap_detections,
)
from cornernet_tf.models import CornerNet

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# ------------------------------------------------- official transcriptions


def official_crop(image_chw, center, size, out_image):
    """`crop_image_gpu` (torch tensors, CHW); returns the offset."""
    import torch

    cty, ctx = center
    height, width = size
    o_height, o_width = out_image.shape[1:3]
    im_height, im_width = image_chw.shape[1:3]
    scale = o_height / max(height, width)
    x0, x1 = max(0, ctx - width // 2), min(ctx + width // 2, im_width)
    y0, y1 = max(0, cty - height // 2), min(cty + height // 2, im_height)
    left, right = ctx - x0, x1 - ctx
    top, bottom = cty - y0, y1 - cty
    cropped_cty, cropped_ctx = o_height // 2, o_width // 2
    out_y0, out_y1 = cropped_cty - int(top * scale), cropped_cty + int(bottom * scale)
    out_x0, out_x1 = cropped_ctx - int(left * scale), cropped_ctx + int(right * scale)
    patch = image_chw[:, y0:y1, x0:x1].unsqueeze(0)
    out_image[:, out_y0:out_y1, out_x0:out_x1] = torch.nn.functional.interpolate(
        patch, size=[out_y1 - out_y0, out_x1 - out_x0], mode="bilinear", align_corners=False
    )[0]
    return np.array([cty - height // 2, ctx - width // 2])


def official_window(image_hw, center, size, out_size):
    """The integer arithmetic of `crop_image_gpu`."""
    cty, ctx = center
    height, width = size
    scale = out_size[0] / max(height, width)
    x0, x1 = max(0, ctx - width // 2), min(ctx + width // 2, image_hw[1])
    y0, y1 = max(0, cty - height // 2), min(cty + height // 2, image_hw[0])
    cy, cx = out_size[0] // 2, out_size[1] // 2
    out = (
        cy - int((cty - y0) * scale),
        cy + int((y1 - cty) * scale),
        cx - int((ctx - x0) * scale),
        cx + int((x1 - ctx) * scale),
    )
    return (y0, y1, x0, x1), out, (cty - height // 2, ctx - width // 2)


def official_remap(dets, scales, offsets, input_size, output_size):
    """`rescale_dets_` then `remap_dets_` (in place on a copy)."""
    dets = dets.copy()
    ratio = output_size / input_size
    dets[..., 0:4:2] /= ratio
    dets[..., 1:4:2] /= ratio
    xs, ys = dets[..., 0:4:2], dets[..., 1:4:2]
    xs /= scales.reshape(-1, 1, 1)
    ys /= scales.reshape(-1, 1, 1)
    xs += offsets[:, 1][:, None, None]
    ys += offsets[:, 0][:, None, None]
    return dets


def official_decode_atts(atts, att_scales, scales, offsets, height, width, thresh, ignore_same):
    """`decode_atts` with the official att_ratios [16, 8, 4]; atts NCHW."""
    next_ys, next_xs, next_scales, next_scores = [], [], [], []
    for aind in range(atts[0].shape[0]):
        for att, att_ratio, att_scale in zip(atts, [16, 8, 4], att_scales, strict=False):
            ys, xs = np.where(att[aind, 0] > thresh)
            scores = att[aind, 0, ys, xs]
            ys = ys * att_ratio / scales[aind] + offsets[aind, 0]
            xs = xs * att_ratio / scales[aind] + offsets[aind, 1]
            keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
            ys, xs, scores = ys[keep], xs[keep], scores[keep]
            next_scale = att_scale * scales[aind]
            if (ignore_same and att_scale <= 1) or scales[aind] > 2 or next_scale > 4:
                continue
            next_scales += [next_scale] * len(xs)
            next_scores += scores.tolist()
            next_ys += ys.tolist()
            next_xs += xs.tolist()
    return np.stack(
        (np.array(next_ys), np.array(next_xs), np.array(next_scales), np.array(next_scores)),
        axis=1,
    )


def official_ref_locs(dets):
    """`get_ref_locs`."""
    dets = dets[dets[:, 4] > 0.5]
    ref_xs = (dets[:, 0] + dets[:, 2]) / 2
    ref_ys = (dets[:, 1] + dets[:, 3]) / 2
    maxhws = np.maximum(dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1])
    ref_scales = np.zeros_like(maxhws)
    large, medium, small = maxhws > 96, (maxhws > 32) & (maxhws <= 96), maxhws <= 32
    ref_scales[large] = 192 / maxhws[large]
    ref_scales[medium] = 64 / maxhws[medium]
    ref_scales[small] = 24 / maxhws[small]
    locations = np.stack((ref_ys, ref_xs, ref_scales, dets[:, 4]), axis=1)
    locations[:, 3] = 1
    return locations


def official_location_nms(locations, thresh=16):
    """`location_nms`."""
    next_locations = []
    locations = locations[np.argsort(locations[:, -1])[::-1]]
    ys, xs, scales = locations[:, 0], locations[:, 1], locations[:, 2]
    dists = np.minimum(
        np.absolute(ys.reshape(-1, 1) - ys.reshape(1, -1)),
        np.absolute(xs.reshape(-1, 1) - xs.reshape(1, -1)),
    )
    ratios = scales.reshape(-1, 1) / scales.reshape(1, -1)
    while dists.shape[0] > 0:
        next_locations.append(locations[0])
        scale, dist, ratio = scales[0], dists[0], ratios[0]
        keep = (dist > (thresh / scale)) | (ratio > 1.2) | (ratio < 0.8)
        locations, scales = locations[keep], scales[keep]
        dists = dists[keep, :][:, keep]
        ratios = ratios[keep, :][:, keep]
    return np.stack(next_locations) if next_locations else np.zeros((0, 4))


# ------------------------------------------------------- host-step parity


def test_crop_window_matches_official_arithmetic():
    rng = np.random.default_rng(0)
    for image_hw in [(20, 700), (333, 500), (700, 41)]:
        scales = rng.uniform(0.2, 4.5, size=200).astype(np.float32)
        sides = (255 / scales).astype(np.int32)
        # Centres inside the image and a few outside (reference crops of boxes past the edge).
        centers = np.stack(
            [rng.integers(-30, image_hw[0] + 30, 200), rng.integers(-30, image_hw[1] + 30, 200)], 1
        )
        source, target, offsets = (t.numpy() for t in crop_window(image_hw, centers, sides, 255))
        for i in range(200):
            center, size = tuple(int(v) for v in centers[i]), (int(sides[i]),) * 2
            expected = official_window(image_hw, center, size, (255, 255))
            assert (tuple(source[i]), tuple(target[i]), tuple(offsets[i])) == expected


def test_prepare_crops_matches_official_crop_image():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, size=(90, 140, 3)).astype(np.float32)
    # Whole image at two sizes (as the coarse pass), zoomed crops, one at a corner.
    locations = np.array(
        [[45, 70, 96 / 140], [45, 70, 127 / 140], [30, 100, 2.0], [3, 2, 3.5], [80, 130, 1.3]],
        np.float32,
    )
    canvases, offsets = (t.numpy() for t in prepare_crops(image, locations, 127))
    image_chw = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float64))
    for i, (y, x, scale) in enumerate(locations):
        out = torch.zeros(3, 127, 127)
        side = int(127 / scale)
        offset = official_crop(image_chw, [int(y), int(x)], [side, side], out)
        np.testing.assert_array_equal(offsets[i], offset)
        # float32 on 0-255 against the official float64 on 0-1: 2e-5 of the range.
        np.testing.assert_allclose(canvases[i], out.numpy().transpose(1, 2, 0), atol=5e-3)


def test_prepare_crops_resizes_as_tf_image_resize():
    # The gather sampler against `tf.image.resize` of each clipped window.
    rng = np.random.default_rng(7)
    image = rng.uniform(0, 255, size=(75, 110, 3)).astype(np.float32)
    locations = np.stack(
        [rng.uniform(-5, 80, 40), rng.uniform(-5, 115, 40), rng.uniform(0.3, 4, 40)], 1
    )
    canvases, offsets = (t.numpy() for t in prepare_crops(image, locations, 127))
    checked = 0
    for i, (y, x, scale) in enumerate(locations):
        side = int(127 / scale)
        source, target, _ = (
            t.numpy()[0] for t in crop_window(image.shape[:2], [[int(y), int(x)]], [side], 127)
        )
        (y0, y1, x0, x1), (ty0, ty1, tx0, tx1) = source, target
        expected = np.zeros((127, 127, 3), np.float32)
        if min(y1 - y0, x1 - x0, ty1 - ty0, tx1 - tx0) > 0:
            expected[ty0:ty1, tx0:tx1] = tf.image.resize(
                image[y0:y1, x0:x1], (ty1 - ty0, tx1 - tx0), "bilinear", antialias=False
            ).numpy()
            checked += 1
        np.testing.assert_allclose(canvases[i], expected, atol=1e-4, rtol=0)
    assert checked > 30


def test_remap_matches_official():
    rng = np.random.default_rng(2)
    dets = rng.uniform(0, 64, size=(5, 12, 8)).astype(np.float32)
    scales = rng.uniform(0.3, 4, size=5).astype(np.float32)
    offsets = rng.integers(-100, 300, size=(5, 2)).astype(np.float32)
    for zooms in (scales, scales.astype(np.float64)):  # coarse (float32) and crop zooms
        expected = official_remap(dets, zooms, offsets, 255, 64)
        actual = remap_detections(dets, zooms, offsets, 64 / 255).numpy()
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("ignore_same", [False, True])
def test_decode_attention_matches_official(ignore_same):
    rng = np.random.default_rng(3)
    # Two coarse canvases (zoom < 2) and one at 2.5 (no crops from it).
    scales = np.array([192 / 400, 255 / 400, 2.5], np.float32)
    offsets = np.array([[-150, -10], [-50, 0], [40, 60]], np.float32)
    maps = [rng.uniform(0, 0.45, size=(3, side, side, 1)).astype(np.float32) for side in (4, 8, 16)]
    maps = [np.where(m > 0.38, m, 0) for m in maps]  # a few peaks per map
    nchw = [m.transpose(0, 3, 1, 2) for m in maps]
    expected = official_decode_atts(nchw, [1, 2, 4], scales, offsets, 300, 400, 0.3, ignore_same)
    actual = decode_attention(maps, scales, offsets, (300, 400), 0.3, (1, 2, 4), ignore_same)
    actual = actual.numpy()
    assert len(expected) > 5
    np.testing.assert_array_equal(actual, expected)


def test_reference_locations_and_location_nms_match_official():
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 400, size=(60, 2))
    wh = rng.choice([10.0, 20.0, 50.0, 90.0, 150.0, 300.0], size=(60, 2))
    dets = np.zeros((60, 8), np.float32)
    dets[:, 0:2], dets[:, 2:4] = xy, xy + wh
    dets[:, 4] = rng.uniform(0.2, 1, size=60)
    ref = reference_locations(dets).numpy()
    np.testing.assert_array_equal(ref, official_ref_locs(dets))
    peaks = np.stack(
        [
            rng.uniform(0, 400, 80),
            rng.uniform(0, 400, 80),
            rng.choice([0.6, 0.7, 1.3, 2.6], 80),
            rng.uniform(0.3, 1, 80),
        ],
        axis=1,
    )
    locations = np.concatenate([peaks, ref])
    expected = official_location_nms(locations)
    assert 5 < len(expected) < len(locations)
    np.testing.assert_array_equal(location_nms(locations).numpy(), expected)
    # Stopping at a budget keeps the same first locations.
    np.testing.assert_array_equal(location_nms(locations, max_kept=4).numpy(), expected[:4])
    assert location_nms(np.zeros((0, 4))).shape == (0, 4)


def test_no_border_rejects_pairs_touching_the_map_border():
    heat = np.full((1, 8, 8, 1), -10.0, np.float32)

    def scores(tl, br):
        tl_heat, br_heat = heat.copy(), heat.copy()
        tl_heat[0, tl[0], tl[1], 0] = br_heat[0, br[0], br[1], 0] = 10.0
        zeros = np.zeros((1, 8, 8, 1), np.float32)
        offs = np.zeros((1, 8, 8, 2), np.float32)
        out = decode_corners(
            tl_heat, br_heat, zeros, zeros, offs, offs, k=2, num_dets=1, no_border=True
        )
        return float(out["scores"][0, 0])

    assert scores((1, 1), (6, 6)) > 0.99
    for tl, br in [((0, 1), (6, 6)), ((1, 0), (6, 6)), ((1, 1), (7, 6)), ((1, 1), (6, 7))]:
        assert scores(tl, br) == -1.0, (tl, br)


# ----------------------------------------------- the procedure, planted heads


@pytest.fixture(scope="module")
def model():
    """tiny_saccade narrowed to one stack: the same map sizes, a smaller graph to trace."""
    seed_weights(3)  # weights whose crops give detections
    return CornerNet.from_preset(
        "tiny_saccade",
        **SMALL_NETWORK,
        head_dim=16,
        # Every attention peak counts: random weights still choose crops.
        saccade_config={"att_threshold": 0.0},
    )


@pytest.fixture(scope="module")
def layout(model):
    """Shape of each tiny_saccade output on a 255 canvas (without the batch axis)."""
    outputs = model(np.zeros((1, 255, 255, 3), np.float32), training=False)
    return {key: tuple(value.shape[1:]) for key, value in outputs.items()}


@pytest.fixture(scope="module")
def procedure(model, layout):
    return SaccadeProcedure(planted_network(layout), model.test_config)


def planted_network(layout, min_side=40):
    """tiny_saccade's outputs with planted values: one class-1 object per canvas.

    The object is what has red > 128: its corners are planted (with exact
    sub-pixel offsets) with score ~1 when its longer side on the canvas is at
    least `min_side` pixels and 0.2 otherwise (too small to trust), and an
    attention peak (logit 5) at its centre on the map of its size range.
    """

    def network(canvases):
        batch = tf.shape(canvases)[0]
        outputs = {key: tf.zeros(tf.concat([[batch], shape], 0)) for key, shape in layout.items()}
        side = canvases.shape[1]
        mask = canvases[..., 0] > 128.0  # [N, S, S]
        rows, cols = tf.reduce_any(mask, 2), tf.reduce_any(mask, 1)
        present = tf.reduce_any(rows, 1)
        first = lambda a: tf.cast(tf.argmax(tf.cast(a, tf.int32), 1), tf.float32)  # noqa: E731
        y1, x1 = first(rows), first(cols)
        y2, x2 = side - first(rows[:, ::-1]), side - first(cols[:, ::-1])
        longer = tf.maximum(x2 - x1, y2 - y1)
        planted = {}
        size = layout["tl_heatmap"][0]
        ratio = size / side
        grid = tf.range(size, dtype=tf.float32)
        logit = tf.where(longer >= min_side, 10.0, math.log(0.2 / 0.8))
        for corner, (x, y) in (("tl", (x1, y1)), ("br", (x2, y2))):
            mx, my = x * ratio, y * ratio
            hit = (
                (grid[None, :, None] == tf.floor(my)[:, None, None])
                & (grid[None, None, :] == tf.floor(mx)[:, None, None])
                & present[:, None, None]
            )
            heat = tf.where(hit, logit[:, None, None], -10.0)
            planted[f"{corner}_heatmap"] = tf.stack(
                [tf.fill(tf.shape(heat), -10.0), heat, heat * 0 - 10.0], -1
            )
            planted[f"{corner}_embedding"] = tf.zeros_like(outputs[f"{corner}_embedding"])
            frac = tf.stack([mx - tf.floor(mx), my - tf.floor(my)], -1)[:, None, None, :]
            planted[f"{corner}_offset"] = tf.zeros_like(outputs[f"{corner}_offset"]) + frac
        cy, cx = (y1 + y2) / 2, (x1 + x2) / 2
        ranges = ((longer > 96), (longer > 32) & (longer <= 96), (longer <= 32))
        for key, stride, in_range in zip(ATTENTION_KEYS, (16, 8, 4), ranges, strict=True):
            att_grid = tf.range(layout[key][0], dtype=tf.float32)
            hit = (
                (att_grid[None, :, None] == tf.floor(cy / stride)[:, None, None])
                & (att_grid[None, None, :] == tf.floor(cx / stride)[:, None, None])
                & (present & in_range)[:, None, None]
            )
            planted[key] = tf.where(hit, 5.0, -5.0)[..., None]
        return planted

    return network


def painted(height, width, box):
    """A dark image with a red box (x1, y1, x2, y2) in pixels [x1, x2) x [y1, y2)."""
    image = np.zeros((height, width, 3), np.float32)
    image[..., 1] = 60.0
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2, 0] = 255.0
    return image


def test_small_object_is_found_through_a_zoomed_crop(procedure):
    box = (200, 60, 220, 76)  # 20 x 16 pixels in a 200 x 300 image
    image = painted(200, 300, box)
    coarse, locations = (t.numpy() for t in procedure.locate(image))
    assert len(coarse) == 0  # too small on the coarse canvases: score 0.2 < 0.3
    # One attention peak per coarse pass (small-object map, zoom 4 x the pass).
    np.testing.assert_allclose(np.sort(locations[:, 2]), [4 * 192 / 300, 4 * 255 / 300], rtol=1e-6)
    found = {key: value.numpy() for key, value in procedure(image[None]).items()}
    assert found["num_detections"][0] >= 1
    assert found["classes"][0, 0] == 1
    assert found["confidence"][0, 0] > 0.99
    np.testing.assert_allclose(found["boxes"][0, 0], box, atol=1.5)


def test_large_object_from_the_coarse_pass_and_a_reference_crop(procedure):
    box = (60, 40, 200, 150)
    image = painted(200, 300, box)
    coarse, locations = (t.numpy() for t in procedure.locate(image))
    assert len(coarse) == 2  # found on both coarse canvases
    np.testing.assert_allclose(coarse[:, :4], [box, box], atol=2.5)
    # The confident coarse detections give one crop (the two coincide), scored 1,
    # zoomed so that the object spans 192 pixels.
    assert locations[0, 3] == 1
    np.testing.assert_allclose(locations[0, 2], 192 / 140, rtol=0.05)
    found = procedure(image[None])
    np.testing.assert_allclose(found["boxes"][0, 0], box, atol=1.5)


def test_detections_touching_the_canvas_border_are_dropped(procedure):
    # The image's width fills the 255 canvas: an object at its left edge has
    # its tl corner in the first map column there; on the 192 canvas it does not.
    coarse = procedure.locate(painted(200, 300, (0, 40, 140, 150)))[0].numpy()
    assert len(coarse) == 1
    np.testing.assert_allclose(coarse[0, :4], (0, 40, 140, 150), atol=2.5)
    coarse = procedure.locate(painted(200, 300, (12, 40, 152, 150)))[0].numpy()
    assert len(coarse) == 2


def test_crop_budget(model, layout):
    # Many small objects, no two in the same rows or columns (location NMS
    # compares the nearer of the x and y distances): more attention peaks
    # than crops allowed.
    image = np.zeros((400, 400, 3), np.float32)
    rows = np.random.default_rng(6).permutation(27)
    for i, row in enumerate(rows):
        y, x = 10 + 14 * row, 10 + 14 * i
        image[y : y + 8, x : x + 8, 0] = 255.0

    def network(canvases):
        # Attention peaks wherever a small-map pixel is red; no corners.
        planted = planted_network(layout)(canvases)
        red = tf.nn.max_pool2d(
            tf.cast(canvases[..., :1] > 128.0, tf.float32), 4, strides=4, padding="VALID"
        )
        small = tf.pad(red, [[0, 0], [0, 1], [0, 1], [0, 0]])
        planted["attention_small"] = tf.where(small > 0, 5.0, -5.0)
        return planted

    calls = []

    def counting(canvases):
        calls.append(int(canvases.shape[0]) if canvases.shape[0] is not None else -1)
        return network(canvases)

    for budget in (30, 4):
        procedure = SaccadeProcedure(counting, model.test_config, {"att_max_crops": budget})
        located = procedure.locate(image)[1].numpy()
        assert len(located) > 30
        ran = procedure.candidates(image)["locations"].numpy()
        np.testing.assert_array_equal(ran, located[:budget])  # the best first
    assert calls == [-1, -1]  # one trace of the canvas graph per procedure


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"att_max_crops": -1}, "att_max_crops"),
        ({"att_max_crops": 2.5}, "att_max_crops"),
        ({"att_scales": [1, 2]}, "att_scales"),
        ({"att_scales": [1, 0, 4]}, "att_scales"),
        ({"att_threshold": 1.5}, "att_threshold"),
        ({"init_sizes": []}, "init_sizes"),
        ({"init_sizes": [192, 0]}, "init_sizes"),
        ({"att_nms_kernel": 2}, "att_nms_kernel"),
        ({"num_dets": 0}, "num_dets"),
        ({"crop_size": "255"}, "crop_size"),
        ({"ref_dets": "yes"}, "ref_dets"),
        ({"max_crops": 3}, "max_crops"),
        ({"att_max_crops": 300}, "att_max_crops"),
        ({"init_sizes": [192, 300]}, "init_sizes"),
    ],
)
def test_bad_settings_name_the_setting(settings, field):
    with pytest.raises(ValueError, match=field):
        SaccadeConfig.coerce(settings)


def test_model_entry_points(model):
    image = np.random.default_rng(5).uniform(0, 255, size=(100, 150, 3)).astype(np.float32)
    ran = model.saccade_procedure().candidates(image)["locations"]
    assert 0 < len(ran) <= 30  # crops ran, within the budget
    expected = {key: value.numpy() for key, value in model.detect(image[None]).items()}
    assert expected["num_detections"][0] > 0
    # Keras' predict loop runs detect in a tf.function (as predict_images and evaluation do).
    result = model.predict(image[None], verbose=0)
    for key, value in expected.items():
        np.testing.assert_allclose(result[key], value, atol=1e-4)
    # One procedure (one traced graph) per setting, reused call after call.
    assert model.saccade_procedure({"ae_threshold": 0.5}) is model.saccade_procedure(
        {"ae_threshold": 0.5}
    )
    assert model.saccade_procedure().test_config == model.test_config
    assert model.saccade_procedure().config == model.saccade_config
    with pytest.raises(ValueError, match="attention"):
        CornerNet.from_preset("tiny").saccade_procedure()


def test_saccade_config_is_saved_with_the_model(model, tmp_path):
    from cornernet_tf.models import load_model

    assert model.get_config()["saccade_config"]["att_threshold"] == 0.0
    assert "saccade_config" not in CornerNet.from_preset("tiny").get_config()
    path = tmp_path / "saccade.keras"
    model.save(path)
    assert load_model(path).saccade_config == model.saccade_config
    with pytest.raises(ValueError, match="saccade.att_max_crops"):
        CornerNet.from_preset("tiny_saccade", saccade_config={"att_max_crops": -1})
    with pytest.raises(ValueError, match="saccade.crop_size 250"):
        CornerNet.from_preset(
            "tiny_saccade", saccade_config={"crop_size": 250, "init_sizes": [250]}
        )


def test_saccade_section_of_the_yaml_config(tmp_path):
    from cornernet_tf.spec.config import ConfigError, load_config

    path = CONFIG_DIR / "cornernet_saccade_coco.yaml"
    assert load_config(path).saccade == SaccadeConfig()  # the official values, written out
    config = load_config(path, ["saccade.att_max_crops=10", "saccade.att_scales=[1, 2, 3]"])
    assert (config.saccade.att_max_crops, config.saccade.att_scales) == (10, (1.0, 2.0, 3.0))
    with pytest.raises(ConfigError, match="saccade.att_threshold must be in"):
        load_config(path, ["saccade.att_threshold=1.5"])
    with pytest.raises(ConfigError, match="unknown key 'crops' in section 'saccade'"):
        load_config(path, ["saccade.crops=3"])


def test_coco_evaluation_runs_it(model, shapes_root):
    from cornernet_tf import evaluation
    from cornernet_tf.data.coco import CocoDataset

    dataset = CocoDataset.open(shapes_root, "val2017")
    result = evaluation.run_coco_evaluation(model, dataset, max_images=1, verbose=0)
    assert result.image_ids == [dataset.records[0].image_id]


def official_candidates(image, detect_canvases):
    """`cornernet_saccade_inference` up to the soft-NMS, official settings.

    `detect_canvases(canvases NHWC) -> (detections [N, D, 8], attention maps
    NHWC after NMS)` stands for `batch_decode`; crops are cut by the torch
    transcription of `crop_image_gpu`.
    """
    torch = pytest.importorskip("torch")
    height, width = image.shape[:2]
    image_chw = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float64))

    def prepare_images(locations):
        canvases = torch.zeros(len(locations), 3, 255, 255)
        offsets = np.zeros((len(locations), 2), np.float32)
        for ind, (y, x, scale) in enumerate(locations[:, :3]):
            size = [int(255 / scale)] * 2
            offsets[ind] = official_crop(image_chw, [int(y), int(x)], size, canvases[ind])
        return canvases.numpy().transpose(0, 2, 3, 1), offsets

    locations = np.array(
        [[height // 2, width // 2, size / max(height, width)] for size in (192, 255)], np.float32
    )
    canvases, offsets = prepare_images(locations)
    dets, atts = detect_canvases(canvases)
    scales = locations[:, 2]
    atts = [att.transpose(0, 3, 1, 2) for att in atts]
    next_locations = official_decode_atts(
        atts, [1, 2, 4], scales, offsets, height, width, 0.3, False
    )
    dets = official_remap(dets, scales, offsets, 255, 64).reshape(-1, 8)
    dets = dets[dets[:, 4] > 0.3]
    next_locations = official_location_nms(
        np.concatenate((next_locations, official_ref_locs(dets)), axis=0), thresh=16
    )
    detections = [dets]
    locations = next_locations[:30]
    if len(locations):
        canvases, offsets = prepare_images(locations)
        dets, _ = detect_canvases(canvases)
        dets = official_remap(dets, locations[:, 2], offsets, 255, 64).reshape(-1, 8)
        detections.append(dets[dets[:, 4] > -1])
    return np.concatenate(detections, axis=0)


@pytest.mark.parametrize("box", [(200, 60, 220, 76), (60, 40, 200, 150)])
def test_candidates_match_the_official_procedure(procedure, box):
    image = painted(200, 300, box)

    def detect_canvases(canvases):
        result = {key: value.numpy() for key, value in procedure.run_canvases(canvases).items()}
        columns = [result["boxes"]] + [
            result[key][..., None].astype(np.float32)
            for key in ("scores", "tl_scores", "br_scores", "classes")
        ]
        return np.concatenate(columns, -1), [result[key] for key in ATTENTION_KEYS]

    expected = official_candidates(image, detect_canvases)
    actual = procedure.candidates(image)["detections"].numpy()
    assert len(expected) >= 2  # the object, found in crops (and on coarse canvases)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)
