"""tf_serving/: the compose files' pinned image, GPU reservation and mounted configs.

Docker cannot run here, so the files are read as data: the image tag must be
a TF Serving release of the installed TensorFlow's major.minor (TF Serving
versions follow TensorFlow's) inside pyproject's TensorFlow range, and every
file the server is told to read must be mounted where the flags say.
"""

import re
import tomllib

import tensorflow as tf
import yaml
from export_helpers import REPO
from google.protobuf import text_format
from packaging.requirements import Requirement
from packaging.version import Version
from tensorflow_serving.config import model_server_config_pb2

SERVING = REPO / "tf_serving"
TF_MAJOR_MINOR = ".".join(tf.__version__.split(".")[:2])  # "2.21"
# The image a compose file names: the pinned tag, overridable by TF_SERVING_TAG.
_IMAGE = re.compile(r"^tensorflow/serving:\$\{TF_SERVING_TAG:-(?P<tag>[^}]+)\}(?P<suffix>.*)$")


def _service(name):
    compose = yaml.safe_load((SERVING / name).read_text())
    assert list(compose["services"]) == ["tfserving"]
    return compose["services"]["tfserving"]


def _pinned(service):
    match = _IMAGE.match(service["image"])
    assert match, f"image {service['image']!r} is not tensorflow/serving:${{TF_SERVING_TAG:-…}}"
    return match["tag"], match["suffix"]


def _tensorflow_requirement():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return next(r for r in requirements if r.name in ("tensorflow", "tensorflow-cpu"))


def test_cpu_image_is_pinned_to_the_installed_tensorflow_release():
    tag, suffix = _pinned(_service("docker-compose.yml"))
    assert suffix == ""
    assert re.fullmatch(rf"{re.escape(TF_MAJOR_MINOR)}\.\d+", tag), (tag, TF_MAJOR_MINOR)
    assert Version(tag) in _tensorflow_requirement().specifier


def test_gpu_override_uses_the_same_release_and_reserves_nvidia_gpus():
    cpu_tag, _ = _pinned(_service("docker-compose.yml"))
    service = _service("docker-compose.gpu.yml")
    assert _pinned(service) == (cpu_tag, "-gpu")
    [device] = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert (
        device.get("count") == "all"
        or isinstance(device.get("count"), int)
        or ("device_ids" in device)
    )


def _mounts(service):
    mounts = {}
    for volume in service["volumes"]:
        source, target, mode = volume.rsplit(":", 2)  # the source may hold ${VAR:-default}
        assert mode == "ro", f"{volume}: the server only reads its mounts"
        mounts[target] = source
    return mounts


def _flags(service):
    return dict(arg.removeprefix("--").split("=", 1) for arg in service["command"])


def test_configs_are_mounted_where_the_flags_point():
    service = _service("docker-compose.yml")
    mounts, flags = _mounts(service), _flags(service)
    assert set(service["ports"]) == {"8500:8500", "8501:8501"}
    assert flags["enable_batching"] == "true" and flags["enable_model_warmup"] == "true"
    for flag in ("model_config_file", "batching_parameters_file"):
        source = mounts[flags[flag]]
        assert (SERVING / source).is_file(), f"{flag}: {source} is not in tf_serving/"
    assert mounts["/models"] == "${EXPORT_DIR:-../exports}"

    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((SERVING / mounts[flags["model_config_file"]]).read_text(), config)
    [model] = config.model_config_list.config
    assert (model.name, model.model_platform) == ("cornernet", "tensorflow")
    assert model.base_path == "/models/cornernet"  # under the export mount


def test_compose_file_explains_the_pin():
    tag, _ = _pinned(_service("docker-compose.yml"))
    text = (SERVING / "docker-compose.yml").read_text()
    assert f"TF Serving {tag}" in text
