"""The wheel: what `pip install cornernet_tf` puts on a machine.

The wheel is built once (pip, no build isolation, no index: no network) from
a copy of the sources, so the checkout gets no `build/` or `*.egg-info`. It is
then unpacked into a folder used as `PYTHONPATH` outside the repository: the
command-line tools and the packaged configs must work from there alone.
"""

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPTS = {
    "cornernet-train": "cornernet_tf.cli.train:run",
    "cornernet-evaluate": "cornernet_tf.cli.evaluate:main",
    "cornernet-predict": "cornernet_tf.cli.predict:main",
    "cornernet-export": "cornernet_tf.cli.export:main",
    "cornernet-convert": "cornernet_tf.cli.convert:main",
    "cornernet-make-shapes": "cornernet_tf.cli.make_shapes:main",
    # Declared ahead of its module, which is written separately: only the
    # declaration is checked, and the module when the sources have it.
    "cornernet-serving-client": "cornernet_tf.serving.cli:main",
}
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


def _source_files(folder):
    """Files of a source folder, relative to the repository, as wheel-style names."""
    return {
        path.relative_to(REPO).as_posix()
        for path in (REPO / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def _env(pythonpath):
    env = dict(os.environ, PYTHONPATH=str(pythonpath), TF_CPP_MIN_LOG_LEVEL="2")
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Path of the wheel built from a copy of the sources."""
    source = tmp_path_factory.mktemp("source")
    for path in REPO.iterdir():
        if path.is_file():
            shutil.copy2(path, source)
    for folder in ("cornernet_tf", "configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=_IGNORE)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--no-cache-dir", "-q", "-w", str(out), str(source)]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=_env(""), cwd=source
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel_path,) = out.glob("cornernet_tf-*.whl")
    return wheel_path


@pytest.fixture(scope="module")
def wheel_names(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory):
    """The wheel's contents, as pip would install them into site-packages."""
    folder = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder)
    return folder


def test_wheel_holds_the_package_and_the_configs(wheel_names):
    modules = {name for name in _source_files("cornernet_tf") if name.endswith(".py")}
    missing = sorted(modules - wheel_names)
    assert missing == [], "add their subpackages to [tool.setuptools] packages in pyproject.toml"
    assert "cornernet_tf/cli/train.py" in wheel_names
    configs = {
        name.replace("configs/", "cornernet_tf/configs/", 1)
        for name in _source_files("configs")
        if name.endswith((".yaml", ".py"))
    }
    assert {
        "cornernet_tf/configs/__init__.py",
        "cornernet_tf/configs/cornernet_hg104_coco.yaml",
        "cornernet_tf/configs/shapes_tiny.yaml",
    } <= configs
    assert sorted(configs - wheel_names) == []
    # Nothing else at the top level: no `configs`, `scripts` or `tests` package.
    assert {name.split("/")[0] for name in wheel_names} == {
        "cornernet_tf",
        "cornernet_tf-0.1.0.dist-info",
    }


def test_wheel_declares_the_license_and_the_gpu_capable_tensorflow(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("cornernet_tf-0.1.0.dist-info/METADATA").decode()
        names = archive.namelist()
    assert "cornernet_tf-0.1.0.dist-info/licenses/LICENSE" in names
    assert "License-Expression: BSD-3-Clause" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: tensorflow<2.22,>=2.21" in requires
    assert not any("tensorflow-cpu" in line for line in requires)
    assert any(line.startswith("Requires-Dist: tensorflow[and-cuda]") for line in requires)


def test_wheel_holds_the_serving_client(wheel_names):
    modules = {name for name in _source_files("cornernet_tf/serving") if name.endswith(".py")}
    assert modules
    missing = sorted(modules - wheel_names)
    assert missing == [], "add cornernet_tf.serving to [tool.setuptools] packages in pyproject.toml"


def test_entry_points_declare_every_console_script(wheel, wheel_names):
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("cornernet_tf-0.1.0.dist-info/entry_points.txt").decode()
    entry_points = configparser.ConfigParser()
    entry_points.read_string(text)
    assert dict(entry_points["console_scripts"]) == CONSOLE_SCRIPTS
    for name, target in CONSOLE_SCRIPTS.items():
        module_file = target.split(":")[0].replace(".", "/") + ".py"
        if name == "cornernet-serving-client" and module_file not in wheel_names:
            continue
        assert module_file in wheel_names, name


def test_installed_tools_and_configs_work_without_the_repository(unpacked, tmp_path):
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "import cornernet_tf\n"
        "from cornernet_tf.spec import catalog\n"
        "from cornernet_tf.cli._common import load_config\n"
        "root = Path(sys.argv[1]).resolve()\n"
        "assert Path(cornernet_tf.__file__).resolve().is_relative_to(root), cornernet_tf.__file__\n"
        "path = catalog.resolve_config_path('cornernet_hg104_coco')\n"
        "assert path.resolve().is_relative_to(root / 'cornernet_tf' / 'configs'), path\n"
        "config = load_config('cornernet_hg104_coco.yaml', ['train.steps=7'])\n"
        "print(config.model.preset, config.train.steps, catalog.packaged_config_names())\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = _env(unpacked)
    command = [sys.executable, "-c", probe, str(unpacked)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [
        "hourglass104 7 ['cornernet_hg104_coco', 'cornernet_squeeze_coco', 'finetune_hg104', "
        "'finetune_squeeze', 'shapes_tiny']",
        "False",
    ]
    command = [sys.executable, "-m", "cornernet_tf.cli.train", "--help"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("usage: ") and "--config" in proc.stdout
    command = [sys.executable, "-m", "cornernet_tf.cli.evaluate", "--config", "nope"]
    command += ["--data-dir", "d", "--model", "m.keras"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    configs = "cornernet_hg104_coco, cornernet_squeeze_coco, finetune_hg104, finetune_squeeze, "
    configs += "shapes_tiny"
    assert f"packaged configs: {configs}." in proc.stderr
