"""What `pip install cornernet_tf` resolves: GPU-capable TensorFlow, extras, no local pins.

Read from the installed distribution's metadata (`importlib.metadata`), the
same requirements pip resolves, so a change to pyproject.toml that would
install a CPU-only TensorFlow on a GPU machine fails here.
"""

import importlib.metadata

import pytest
from packaging.requirements import Requirement

LINUX_X86 = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}
MACOS_ARM = {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"}


def _requirements(extra=None, environment=LINUX_X86):
    """Names → requirements that apply on `environment` (with `extra`, only that extra's)."""
    found = {}
    for text in importlib.metadata.requires("cornernet_tf") or []:
        requirement = Requirement(text)
        env = {**environment, "extra": extra or ""}
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        if extra is not None and (
            requirement.marker is None or "extra" not in str(requirement.marker)
        ):
            continue
        found[requirement.name.lower()] = requirement
    return found


@pytest.mark.parametrize("environment", [LINUX_X86, MACOS_ARM], ids=["linux-x86_64", "macos-arm64"])
def test_tensorflow_is_declared_as_tensorflow(environment):
    requirements = _requirements(environment=environment)
    assert "tensorflow" in requirements
    assert "tensorflow-cpu" not in requirements  # would shadow a GPU build on Linux
    tensorflow = requirements["tensorflow"]
    assert tensorflow.specifier.contains("2.21.0") and not tensorflow.specifier.contains("2.22.0")
    assert not tensorflow.extras


def test_gpu_extra_brings_the_cuda_libraries_in_the_same_range():
    gpu = _requirements(extra="gpu")
    assert set(gpu) == {"tensorflow"}
    assert gpu["tensorflow"].extras == {"and-cuda"}
    assert gpu["tensorflow"].specifier == _requirements()["tensorflow"].specifier


@pytest.mark.parametrize("extra", ["convert", "bench"])
def test_torch_is_a_range_not_a_local_build(extra):
    torch = _requirements(extra=extra)["torch"]
    assert not any(spec.operator == "==" for spec in torch.specifier), torch
    assert torch.specifier.contains("2.13.0")


def test_every_runtime_dependency_has_an_upper_bound():
    for name, requirement in _requirements().items():
        assert any(spec.operator in ("<", "<=", "~=") for spec in requirement.specifier), name


def test_tensorflow_serving_api_follows_tensorflow():
    requirements = _requirements()
    assert requirements["tensorflow-serving-api"].specifier == requirements["tensorflow"].specifier


def test_the_suite_runs_each_group_of_tests_in_one_process(request):
    """`make test` (`--dist loadgroup`) keeps the tests sharing an expensive fixture in one
    process (tests/conftest.py names the groups); pytest-xdist marks them by appending the
    group to the test ids. A pytest with which that silently stops (9.2, the reason for
    the `dev` extra's bound) builds those fixtures in both processes: minutes more."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("runs under `make test` (pytest-xdist with --dist loadgroup)")
    assert request.node.nodeid.endswith("@test_dependencies.py"), (
        f"{request.node.nodeid}: no group in the test id; install the pytest and "
        "pytest-xdist versions pyproject.toml's `dev` extra allows."
    )
