"""The official PyTorch networks as baselines for the benchmarks (no weights needed).

princeton-vl/CornerNet (`models/CornerNet.py`, used by `train_memory.py`) and
princeton-vl/CornerNet-Lite (`core/models/CornerNet.py` and
`core/models/CornerNet_Squeeze.py`, used by `deploy_latency.py` and
`precision.py`) import their corner pooling from a C++ extension,
`py_utils/_cpools`, built with its own `setup.py` (`python setup.py build_ext
--inplace` there) into the modules `top_pool`, `bottom_pool`, `left_pool` and
`right_pool`. CornerNet-Lite's builds on CPU against PyTorch 2 (its forward
runs; its backward allocates on the GPU); princeton-vl/CornerNet's targets
PyTorch 0.4 and CUDA and does not compile. Where they cannot be imported,
`import_corner_pools` puts in their place
`torch.cummax` modules with the same interface (`forward(input) -> [output]`,
`backward(input, grad) -> [grad]`), so that the official autograd functions
run and save the same tensors, and says so.
"""

import os
import sys
import types

POOL_MODULES = ("top_pool", "bottom_pool", "left_pool", "right_pool")

# PyTorch's CPU kernels run on OpenMP, whose threads spin at each barrier by
# default: on a machine shared with other jobs a spinning thread waits for a
# descheduled one, and the official forward ran 5-10x slower than with
# passive waiting (TensorFlow, LiteRT and ONNX Runtime use their own pools).
OPENMP_WAIT = ("OMP_WAIT_POLICY", "PASSIVE")


def passive_openmp() -> str:
    """Sets OpenMP's passive wait unless the environment chose; call before importing torch.

    Returns:
        The policy in effect, for the output.
    """
    name, value = OPENMP_WAIT
    if "torch" in sys.modules:
        raise RuntimeError("passive_openmp: torch is already imported; call it first.")
    os.environ.setdefault(name, value)
    return f"{name}={os.environ[name]}"


# Official Lite network modules by our preset name.
LITE_NETWORKS = {"squeeze": "CornerNet_Squeeze", "hourglass104": "CornerNet"}


def install_cummax_pools() -> None:
    """Modules `top_pool`, ... with the official extension's interface, on `torch.cummax`."""
    import torch

    # module: (NCHW axis, True when the window extends toward larger indices)
    pools = {"top_pool": (2, True), "bottom_pool": (2, False)}
    pools |= {"left_pool": (3, True), "right_pool": (3, False)}
    for name, (axis, reverse) in pools.items():

        def cummax(x, axis=axis, reverse=reverse):
            if not reverse:
                return torch.cummax(x, axis)
            values, indices = torch.cummax(x.flip(axis), axis)
            return values.flip(axis), x.shape[axis] - 1 - indices.flip(axis)

        def forward(x, cummax=cummax):
            return [cummax(x)[0]]

        def backward(x, grad, cummax=cummax, axis=axis):
            return [torch.zeros_like(x).scatter_add_(axis, cummax(x)[1], grad)]

        sys.modules[name] = types.SimpleNamespace(forward=forward, backward=backward)


def import_corner_pools(cpools_dir: str) -> str:
    """Makes the official corner-pool modules importable; returns which ones run.

    Args:
        cpools_dir: the folder holding the built extension modules (the
            checkout's `_cpools` folder after `setup.py build_ext --inplace`).

    Returns:
        "official C++ extension" or "torch.cummax stand-ins (reason)".
    """
    sys.path.insert(0, cpools_dir)
    try:
        for name in POOL_MODULES:
            __import__(name)
    except ImportError as error:
        install_cummax_pools()
        return f"torch.cummax stand-ins (official extension not importable: {error})"
    return "official C++ extension"


def lite_cpools_dir(root: str) -> str:
    """The `_cpools` folder of a princeton-vl/CornerNet-Lite checkout."""
    return os.path.join(root, "core", "models", "py_utils", "_cpools")


def check_lite_root(root: str, preset: str) -> str | None:
    """Why `root` is not a usable CornerNet-Lite checkout for `preset`, or None."""
    if preset not in LITE_NETWORKS:
        return f"no official network for preset {preset!r} (have {', '.join(LITE_NETWORKS)})"
    path = os.path.join(root, "core", "models", f"{LITE_NETWORKS[preset]}.py")
    if not os.path.isfile(path):
        return f"{path} not found; pass a checkout of princeton-vl/CornerNet-Lite"
    return None


def lite_network(root: str, preset: str, cpools_dir: str | None = None):
    """The official CornerNet-Lite network for `preset`, fresh weights, in eval mode.

    Args:
        root: a princeton-vl/CornerNet-Lite checkout.
        preset: "squeeze" (`core/models/CornerNet_Squeeze.py`) or
            "hourglass104" (`core/models/CornerNet.py`).
        cpools_dir: folder of the built corner-pool modules; default the
            checkout's own `_cpools` folder.

    Returns:
        `(network, pools)`: the `torch.nn.Module` and which corner pooling it
        runs (see `import_corner_pools`).
    """
    import importlib

    pools = import_corner_pools(cpools_dir or lite_cpools_dir(root))
    sys.path.insert(0, root)
    module = importlib.import_module(f"core.models.{LITE_NETWORKS[preset]}")
    network = module.model()
    network.eval()
    return network, pools


def lite_test_forward(network, images, test_config):
    """A function running the official test forward on NHWC float images in [0, 255].

    The forward is what the official `core/test/cornernet.py` `decode` calls
    (`nnet.test(..., test=True)`): network, heatmap NMS, top-k corners and
    their pairing (`_decode`), under `torch.no_grad()`, with our
    `test_config`'s `top_k`, `ae_threshold`, `nms_kernel` and `num_dets` (the
    same values as the official configs for the presets); the official
    normalisation happens once, outside the timed call.
    """
    import numpy as np
    import torch

    mean = np.array([0.40789654, 0.44719302, 0.47026115], np.float32)  # BGR, official
    std = np.array([0.28863828, 0.27408164, 0.27809835], np.float32)
    bgr = images[..., ::-1].astype(np.float32) / 255.0
    tensor = torch.from_numpy(((bgr - mean) / std).transpose(0, 3, 1, 2).copy())

    def forward():
        with torch.no_grad():
            return network(
                tensor,
                test=True,
                K=test_config.top_k,
                ae_threshold=test_config.ae_threshold,
                kernel=test_config.nms_kernel,
                num_dets=test_config.num_dets,
            )

    return forward
