"""The experiment configs shipped with the package, and `--config` name resolution.

The repository keeps its YAML configs in the top-level `configs/` folder; the
wheel installs that folder as the package `cornernet_tf.configs` (see
`[tool.setuptools.package-dir]` in pyproject.toml). Command-line tools accept
`--config` as a file path or as the name of one of these configs:

    resolve_config_path("configs/shapes_tiny.yaml")  # an existing file: itself
    resolve_config_path("shapes_tiny")               # a packaged config
    resolve_config_path("shapes_tiny.yaml")          # the same

This module imports neither TensorFlow nor the config schema, so resolving a
name costs nothing before the arguments are checked.
"""

from __future__ import annotations

import importlib.resources
import os
from importlib.resources.abc import Traversable
from pathlib import Path

from cornernet_tf.spec.config import ConfigError

__all__ = [
    "CONFIGS_PACKAGE",
    "UnknownConfigError",
    "packaged_config_names",
    "packaged_configs_dir",
    "resolve_config_path",
]

CONFIGS_PACKAGE = "cornernet_tf.configs"
_SUFFIX = ".yaml"


class UnknownConfigError(ConfigError):
    """`--config` is neither an existing file nor the name of a packaged config.

    A `ConfigError`, so callers that already turn config errors into a usage
    error (exit code 2) need no extra case.
    """


def packaged_configs_dir() -> Traversable:
    """The folder holding the packaged YAML configs.

    Returns:
        The repository's top-level `configs/` folder when the running
        `cornernet_tf` sits in a source checkout (editable install, or the
        checkout on `PYTHONPATH`); otherwise the installed
        `cornernet_tf.configs` package, through `importlib.resources`.
    """
    # In a checkout, read the configs beside the package itself rather than
    # importing `cornernet_tf.configs`: when several checkouts share one
    # environment, the editable install's finder maps that package to the
    # checkout that was installed, which may not be the one running.
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "configs" / "__init__.py").is_file():
        return checkout / "configs"
    return importlib.resources.files(CONFIGS_PACKAGE)


def packaged_config_names() -> list[str]:
    """Names of the packaged configs (file names without `.yaml`), sorted."""
    folder = packaged_configs_dir()
    return sorted(
        entry.name[: -len(_SUFFIX)]
        for entry in folder.iterdir()
        if entry.name.endswith(_SUFFIX) and entry.is_file()
    )


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML file meant by a `--config` value.

    Args:
        name_or_path: a path to a config file, or the name of a packaged config
            with or without `.yaml` (`"cornernet_hg104_coco"`). An existing
            file wins over a packaged config of the same name.

    Returns:
        The path of the config file (unchanged when it names an existing file).

    Raises:
        UnknownConfigError: neither an existing file nor a packaged config;
            the one-line message lists the packaged names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = os.fspath(name_or_path)
    # Only a bare name can be a packaged config; "configs/x.yaml" that does not
    # exist is a wrong path, and reported as such below.
    if text and os.sep not in text and "/" not in text:
        stem = text[: -len(_SUFFIX)] if text.endswith(_SUFFIX) else text
        if stem in packaged_config_names():
            packaged = packaged_configs_dir() / f"{stem}{_SUFFIX}"
            # pip installs packages as plain files, so this is a real path;
            # `load_config` and its messages need one.
            return Path(os.fspath(packaged))
    names = ", ".join(packaged_config_names()) or "(none found)"
    raise UnknownConfigError(
        f"--config {text}: no such file, and not a packaged config; pass a YAML file path "
        f"or one of the packaged configs: {names}."
    )
