"""The TF Serving warm-up file that `export_saved_model` writes into each version.

`saved_model_root` / `saved_model` are the session fixtures (conftest.py): the
tiny preset exported once with the defaults, and that export loaded.
"""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from cornernet_tf import export
from cornernet_tf.export import saved_model as saved_model_module
from cornernet_tf.export import warmup

OUTPUT_SPECS = {  # name: (dtype, shape for one image)
    "detection_boxes": (tf.float32, (1, 100, 4)),
    "detection_scores": (tf.float32, (1, 100)),
    "detection_classes": (tf.int32, (1, 100)),
    "num_detections": (tf.int32, (1,)),
}


def _records(version_dir):
    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    assert path.is_file()
    records = []
    for data in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        record = prediction_log_pb2.PredictionLog()
        record.ParseFromString(data)
        records.append(record)
    return records


def test_warmup_file_holds_one_request_per_signature(saved_model_root):
    records = _records(saved_model_root / "cornernet" / "1")
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log", "predict_log"]
    requests = {
        r.predict_log.request.model_spec.signature_name: r.predict_log.request for r in records
    }
    assert set(requests) == {"serving_default", "detect_uint8"}
    for request in requests.values():
        assert request.model_spec.name == "cornernet"
        assert list(request.inputs) == ["images"]
    encoded = tf.make_ndarray(requests["serving_default"].inputs["images"])
    assert encoded.shape == (1,) and encoded[0][:3] == b"\xff\xd8\xff"  # one JPEG file
    pixels = tf.make_ndarray(requests["detect_uint8"].inputs["images"])
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 480, 640, 3)
    assert warmup.read_warmup_requests(saved_model_root / "cornernet" / "1") == records


def test_warmup_requests_run_through_the_signatures(saved_model_root, saved_model):
    outputs = {}
    for record in _records(saved_model_root / "cornernet" / "1"):
        request = record.predict_log.request
        signature = request.model_spec.signature_name
        images = tf.constant(tf.make_ndarray(request.inputs["images"]))
        outputs[signature] = saved_model.signatures[signature](images=images)
        for name, (dtype, shape) in OUTPUT_SPECS.items():
            assert outputs[signature][name].dtype == dtype
            assert tuple(outputs[signature][name].shape) == shape
        assert int(outputs[signature]["num_detections"][0]) > 0  # the decoder ran on boxes
    # The uint8 request holds the JPEG's decoded pixels: both answers agree.
    for name in OUTPUT_SPECS:
        np.testing.assert_array_equal(
            outputs["serving_default"][name], outputs["detect_uint8"][name]
        )


def test_warmup_file_is_written_in_the_staging_folder(export_model, tmp_path, monkeypatch):
    calls = []

    def spy(staging, name, image_size):
        calls.append((staging, name, image_size, (tmp_path / "det" / "3").exists()))
        return warmup.write_warmup_requests(staging, name, image_size)

    monkeypatch.setattr(saved_model_module, "write_warmup_requests", spy)
    final = export.export_saved_model(
        export_model, tmp_path, name="det", version=3, warmup_image_size=(64, 96)
    )
    [(staging, name, image_size, final_existed)] = calls
    assert staging != final and staging.parent == final.parent and not final_existed
    assert (name, image_size) == ("det", (64, 96))
    records = _records(final)
    assert {r.predict_log.request.model_spec.name for r in records} == {"det"}
    uint8 = [
        r for r in records if r.predict_log.request.model_spec.signature_name == "detect_uint8"
    ]
    assert tf.make_ndarray(uint8[0].predict_log.request.inputs["images"]).shape == (1, 64, 96, 3)


@pytest.mark.parametrize("size", [(0, 10), (100, 5000), (64, 65), "big", (64.0, 64), (1, 2, 3)])
def test_bad_warmup_size_is_refused(export_model, tmp_path, size):
    with pytest.raises(ValueError, match="`warmup_image_size` must be .* up to `max_image_side`"):
        export.export_saved_model(export_model, tmp_path, max_image_side=64, warmup_image_size=size)
    assert not (tmp_path / "cornernet").exists()


def test_default_warmup_size_fits_max_image_side(export_model, tmp_path, monkeypatch):
    sizes = []
    monkeypatch.setattr(saved_model_module, "write_warmup_requests", lambda *a: sizes.append(a[2]))
    monkeypatch.setattr(tf.saved_model, "save", lambda *args, **kwargs: None)  # only the size
    export.export_saved_model(export_model, tmp_path, max_image_side=320)
    assert sizes == [(240, 320)]


def test_warmup_image_is_deterministic_and_not_blank():
    image = warmup.warmup_image(48, 64)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, warmup.warmup_image(48, 64))
    assert image.std() > 10
