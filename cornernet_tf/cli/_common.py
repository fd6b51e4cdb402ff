"""Helpers shared by the command-line tools.

Importing this module is free: the config schema (numpy, PyYAML) loads when a
config is loaded, and TensorFlow never.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cornernet_tf.spec.precision import PRECISIONS
from cornernet_tf.utils.console import setup_output
from cornernet_tf.utils.fs import not_a_file

__all__ = [
    "CONFIG_HELP",
    "UsageError",
    "add_precision_argument",
    "check_model_file",
    "load_config",
    "setup_output",
]

CONFIG_HELP = "YAML experiment config: a file, or a packaged config name (e.g. shapes_tiny)"


class UsageError(ValueError):
    """A bad argument, file or dataset; the message names it and the fix (exit code 2)."""


def load_model(path: str, precision: str = "float32"):
    """`cornernet_tf.models.load_model`, TensorFlow imported on first use.

    Raises:
        UsageError: the file is missing, not a `.keras` file, unreadable or
            holds another kind of model.
    """
    from cornernet_tf.models import load_model as load_cornernet

    try:
        return load_cornernet(path, precision=precision)
    except ValueError as e:
        raise UsageError(f"{e} Pass a .keras file saved by cornernet-train.") from None


def add_precision_argument(parser) -> None:
    """`--precision`, the dtype the network computes in (`cornernet_tf.spec.precision`)."""
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="float32",
        help="dtype the network computes in (default float32; bfloat16 is faster on CPUs with "
        "AVX512-BF16 or AMX, and on TPUs; decoding stays float32)",
    )


def check_model_file(path: str) -> None:
    """Checks `--model` before TensorFlow is imported.

    Raises:
        UsageError: the file is missing, not a regular file or not a `.keras` file.
    """
    reason = not_a_file(path)
    if reason is not None:
        raise UsageError(
            f"{path}: model file {reason}; pass the .keras file written by "
            "scripts/train.py (<model-dir>/model.keras) with --model."
        )
    if not path.endswith(".keras"):
        raise UsageError(
            f"{path}: --model must be a Keras v3 .keras file (scripts/train.py writes "
            "<model-dir>/model.keras); convert official weights with scripts/convert_official.py."
        )


def load_config(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()):
    """Loads `--config` (a file path or a packaged config name) with `--set` overrides.

    Args:
        name_or_path: the `--config` value; see
            `cornernet_tf.spec.catalog.resolve_config_path`.
        overrides: `section.key=value` strings.

    Returns:
        The validated `cornernet_tf.spec.config.Config`.

    Raises:
        ConfigError: unknown name, missing file or invalid content, sizes
            the preset cannot take (the message is one line naming the file,
            the key and the fix).
    """
    from cornernet_tf.spec.catalog import resolve_config_path
    from cornernet_tf.spec.config import load_config as load_config_file

    return load_config_file(resolve_config_path(name_or_path), overrides)
