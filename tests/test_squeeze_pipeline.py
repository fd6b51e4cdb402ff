"""A CornerNet-Squeeze-style network (output stride 8) through training and TFLite export.

The `tiny_squeeze` preset has the Squeeze building blocks (fire modules,
transposed-convolution upsampling, two stem residuals, 1x1 heads) at the
`tiny` widths: the targets, the training loop, the test geometry and the
TFLite files must all work at its stride.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import CLASS_NAMES, REPO, SIZE, random_image
from seeding import seed_weights

from cornernet_tf import export, training
from cornernet_tf.cli import train as train_cli
from cornernet_tf.inference.decode import OUTPUT_KEYS
from cornernet_tf.inference.geometry import prepare_test_image
from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.runtime import TFLiteDetector
from cornernet_tf.spec.config import ConfigError, ModelConfig, load_config
from cornernet_tf.targets import encode_targets

CONFIG = str(REPO / "configs" / "shapes_tiny.yaml")
DETECTION_KEYS = dict(export.DETECTION_OUTPUTS)  # detect key → exported name


def test_tiny_squeeze_trains_on_stride_8_targets():
    # 63x63 inputs → 8x8 maps; eager steps (no train-step tracing) keep it short.
    seed_weights(0)
    model = CornerNet.from_preset("tiny_squeeze")
    boxes = np.array([[6.0, 8.0, 40.0, 30.0], [20.0, 24.0, 58.0, 60.0]], np.float32)
    size, out = 63, -(-63 // model.output_stride)
    target = encode_targets(
        boxes, np.array([0, 2], np.int32), input_size=size, output_size=out, num_classes=3
    )
    assert target["tl_heatmap"].shape == (out, out, 3) and out == 8
    keys = ("tl_heatmap", "br_heatmap", "tl_index", "br_index", "tl_offset", "br_offset", "mask")
    targets = {k: tf.stack([target[k]] * 2) for k in keys}
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    model.compile(tf.keras.optimizers.Adam(1e-3), run_eagerly=True)
    hourglass = model.kps[0]
    squeeze_weights = [hourglass.up2.kernel, hourglass.up1[0].conv_3x3.kernel]
    before = [w.numpy() for w in squeeze_weights]
    history = model.fit(images, targets, batch_size=2, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for old, weight in zip(before, squeeze_weights, strict=True):  # trained through them
        assert not np.array_equal(old, weight.numpy()), weight.path


def test_output_size_of_another_stride_is_refused_before_tensorflow(shapes_root, tmp_path, capsys):
    argv = ["--config", CONFIG, "--data-dir", str(shapes_root), "--model-dir", str(tmp_path / "m")]
    argv += ["--set", "model.preset=tiny_squeeze"]  # shapes_tiny.yaml: 127 → 32, stride 4
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "data.output_size must be ceil(input_size / 8) = 16 for input_size 127" in err
    assert not (tmp_path / "m").exists()
    # Loading the config checks it; so does `train`, for a `Config` built in Python.
    with pytest.raises(ConfigError, match=r"ceil\(input_size / 8\) = 16") as error:
        load_config(CONFIG, ["model.preset=tiny_squeeze"])
    assert error.value.key == "data.output_size"
    config = dataclasses.replace(
        load_config(CONFIG), model=ModelConfig(preset="tiny_squeeze", overrides={"num_stacks": 1})
    )
    with pytest.raises(ConfigError, match=r"ceil\(input_size / 8\) = 16"):
        training.train(config, shapes_root, tmp_path / "api", verbose=0)
    assert not (tmp_path / "api").exists()


def test_tflite_at_stride_8(calibration_images):
    # The SavedModel's signatures wrap `model.detect`, which takes the stride
    # from the model: test_saved_model.py checks them, and the decoding at
    # stride 8 is compared with `detect` here, through the float32 file.
    seed_weights(3)
    model = CornerNet.from_preset("tiny_squeeze", class_names=CLASS_NAMES)
    for corner in ("tl", "br"):  # spread-out scores, every pair passes the AE test
        heat = model.heads[f"{corner}_heatmap"][-1].out
        heat.kernel.assign(heat.kernel * 40.0)
        embedding = model.heads[f"{corner}_embedding"][-1].out
        embedding.kernel.assign(embedding.kernel * 0.0)
    # float16 is float32's graph with half-size weights; the full-size squeeze
    # converts to all three in benchmarks/model_zoo.py.
    flatbuffers = export.convert_tflite_variants(
        model,
        input_size=(SIZE, SIZE),
        quantizations=("none", "int8"),
        representative_data=calibration_images[:4],
    )
    detect = tf.function(
        model.detect, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)]
    )
    for quantization, flatbuffer in flatbuffers.items():
        ops = export.tflite_ops(flatbuffer)
        assert not [op for op in ops if op.startswith("Flex") or not op.isupper()], quantization
        assert {"TRANSPOSE_CONV", "DEPTHWISE_CONV_2D"} <= set(ops), quantization
    assert len(flatbuffers["int8"]) < len(flatbuffers["none"]) / 2

    image = random_image(21)  # one with detections (22 has none)
    canvas, _ = prepare_test_image(image[None], output_stride=model.output_stride)
    heads = model(canvas, training=False)
    assert heads["tl_heatmap"].shape == (1, 16, 16, 3)
    runner = Interpreter(model_content=flatbuffers["none"]).get_signature_runner()
    outputs = runner(images=image[None].astype(np.float32))
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(outputs[key], heads[key].numpy(), atol=1e-4)
    expected = detect(image[None])
    assert int(expected["num_detections"][0]) > 0  # not a comparison of empty results
    for key, name in DETECTION_KEYS.items():
        np.testing.assert_allclose(outputs[name], expected[key].numpy(), atol=1e-4)

    # int8: decoded on the device, soft-NMS on the host; boxes in the image.
    detector = TFLiteDetector(flatbuffers["int8"], test_config=model.test_config)
    found = detector.detect_image(image)
    assert found["boxes"].shape == (1, 100, 4)
    valid = found["classes"][0] >= 0
    assert valid.any()
    assert (found["boxes"][0][valid] >= 0).all() and (found["boxes"][0][valid] <= SIZE).all()
