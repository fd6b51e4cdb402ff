"""PyTorch building blocks of the official networks, for the weight-conversion tests.

Written here from princeton-vl/CornerNet `models/py_utils/{utils,kp_utils}.py`
and princeton-vl/CornerNet-Lite `core/models/py_utils/utils.py` (the same
`convolution`, `residual` and corner-pool modules, so the same state-dict
names), checked against the listings in `tests/data/` by the tests that use
them. torch is optional: `modules()` skips the calling test without it.
"""

import functools
import re
import types
from pathlib import Path

import numpy as np
import pytest

from cornernet_tf.models.cornernet import OFFICIAL_MEAN_BGR, OFFICIAL_STD_BGR

DATA = Path(__file__).resolve().parent / "data"

# A small architecture with every official feature: two stacks, two hourglass
# levels, width changes in low1/low3, several residuals per level, cnv_dim
# different from dims[0] (catches cnv/curr mix-ups), 3 classes.
SMALL = {
    "num_classes": 3,
    "num_stacks": 2,
    "dims": [16, 16, 24],
    "modules": [2, 1, 2],
    "pre_dim": 8,
    "cnv_dim": 12,
    "pool_dim": 8,
}


def official_listing(name):
    """`(key, shape)` of every tensor of an official state dict listing, in checkpoint order."""
    rows = []
    for line in (DATA / name).read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("key\t"):
            continue
        key, shape = line.split("\t")
        rows.append((key, tuple(int(n) for n in re.findall(r"\d+", shape))))
    return rows


def assert_weight_map_is_the_listing(model, listing, naming="lite"):
    """The converter's names and PyTorch shapes for `model` equal the listing's rows.

    Args:
        model: a built CornerNet.
        listing: `official_listing` rows.
        naming: the converter's naming ("lite" for CornerNet-Lite checkpoints).
    """
    from cornernet_tf import convert

    targets, counters = convert.official_weight_map(model, naming)
    expected = {
        key: convert._torch_shape(tuple(variable.shape), layout)
        for key, (variable, layout) in targets.items()
    }
    assert expected == {k: s for k, s in listing if not k.endswith("num_batches_tracked")}
    assert set(counters) == {k for k, _ in listing if k.endswith("num_batches_tracked")}


@functools.cache
def modules():
    """The official building blocks as PyTorch modules (built lazily: torch is optional)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Convolution(nn.Module):  # official `convolution`
        def __init__(self, k, inp, out, stride=1, with_bn=True):
            super().__init__()
            pad = (k - 1) // 2
            self.conv = nn.Conv2d(inp, out, k, padding=pad, stride=stride, bias=not with_bn)
            self.bn = nn.BatchNorm2d(out) if with_bn else nn.Sequential()
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.bn(self.conv(x)))

    class Residual(nn.Module):  # official `residual`
        def __init__(self, inp, out, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, out, 3, padding=1, stride=stride, bias=False)
            self.bn1 = nn.BatchNorm2d(out)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(out)
            self.skip = (
                nn.Sequential(
                    nn.Conv2d(inp, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
                )
                if stride != 1 or inp != out
                else nn.Sequential()
            )
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu(y + self.skip(x))

    # Corner pools as mmcv's pure-PyTorch fallback: flip + cummax.
    def top_pool(x):
        return torch.flip(torch.cummax(torch.flip(x, [2]), 2).values, [2])

    def left_pool(x):
        return torch.flip(torch.cummax(torch.flip(x, [3]), 3).values, [3])

    def bottom_pool(x):
        return torch.cummax(x, 2).values

    def right_pool(x):
        return torch.cummax(x, 3).values

    class Pool(nn.Module):  # official `pool` / `corner_pool` (tl: top, left; br: bottom, right)
        def __init__(self, dim, pool_dim, pool1, pool2):
            super().__init__()
            self.p1_conv1 = Convolution(3, dim, pool_dim)
            self.p2_conv1 = Convolution(3, dim, pool_dim)
            self.p_conv1 = nn.Conv2d(pool_dim, dim, 3, padding=1, bias=False)
            self.p_bn1 = nn.BatchNorm2d(dim)
            self.conv1 = nn.Conv2d(dim, dim, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(dim)
            self.relu1 = nn.ReLU()
            self.conv2 = Convolution(3, dim, dim)
            self.pool1, self.pool2 = pool1, pool2

        def forward(self, x):
            pools = self.pool1(self.p1_conv1(x)) + self.pool2(self.p2_conv1(x))
            p_bn1 = self.p_bn1(self.p_conv1(pools))
            return self.conv2(self.relu1(p_bn1 + self.bn1(self.conv1(x))))

    def corner_pools(dim, pool_dim, stacks):
        """`(tl, br)` ModuleLists of corner-pool modules, one per stack."""
        return (
            nn.ModuleList([Pool(dim, pool_dim, top_pool, left_pool) for _ in range(stacks)]),
            nn.ModuleList([Pool(dim, pool_dim, bottom_pool, right_pool) for _ in range(stacks)]),
        )

    def merge(inp, out):  # `inters_` / `cnvs_`: conv1x1 (no bias) + BN
        return nn.Sequential(nn.Conv2d(inp, out, 1, bias=False), nn.BatchNorm2d(out))

    return types.SimpleNamespace(
        torch=torch,
        nn=nn,
        Convolution=Convolution,
        Residual=Residual,
        Pool=Pool,
        corner_pools=corner_pools,
        merge=merge,
    )


def randomize(net, seed):
    """`net` in eval mode with random weights, biases and BN statistics."""
    torch = modules().torch
    torch.manual_seed(seed)
    nn = torch.nn
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                # std 1/sqrt(fan_in): activations stay O(1) through both stacks, so an
                # absolute 1e-4 is a tight float32 tolerance.
                nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
                if module.bias is not None:
                    nn.init.normal_(module.bias, 0.0, 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.normal_(module.bias, 0.0, 0.2)
                nn.init.normal_(module.running_mean, 0.0, 0.2)
                nn.init.uniform_(module.running_var, 0.5, 2.0)
                module.num_batches_tracked.fill_(12345)
    return net.eval()


def numpy_state_dict(net, prefix=""):
    return {prefix + k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def official_input(rgb):
    """The official test input for an RGB uint8 image: BGR, /255, mean/std, NCHW."""
    bgr = rgb[..., ::-1].astype("float32") / 255.0
    normalised = (bgr - np.array(OFFICIAL_MEAN_BGR, "float32")) / np.array(
        OFFICIAL_STD_BGR, "float32"
    )
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))


def assert_close(actual, expected, key):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4, err_msg=key)


def assert_heads_match(net, model, rgb, output_stride):
    """Every stack's heads of `model` (Keras, NHWC) equal `net`'s (PyTorch) on `rgb` images.

    Returns:
        The reference heads, NHWC numpy arrays keyed like `all_stacks` outputs.
    """
    torch = modules().torch
    with torch.no_grad():
        outputs = net(torch.from_numpy(official_input(rgb)))
    reference = {k: v.numpy().transpose(0, 2, 3, 1) for k, v in outputs.items()}  # NHWC
    height, width = rgb.shape[1:3]
    expected_shape = (len(rgb), (height + 1) // output_stride, (width + 1) // output_stride)
    assert reference["tl_heatmap_1"].shape[:3] == expected_shape
    # The random weights and BN statistics keep activations O(1): not a comparison of zeros.
    assert 0.1 < np.std(reference["br_heatmap_1"]) < 10
    every_stack = model(rgb, training=False, all_stacks=True)
    assert set(every_stack) == set(reference)
    for key, expected in reference.items():
        assert_close(every_stack[key], expected, key)
    return reference


def convert_with_console_script(state_dict, folder, *args):
    """`cornernet-convert` on `state_dict` saved as the official trainer saves it.

    The checkpoint is a legacy-format PyTorch file of tensors (PyTorch 0.4's
    `torch.save`); the converter runs as users run it, the installed console
    script in a fresh process. Returns the loaded `.keras` model.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    import torch

    from cornernet_tf.models import load_model

    checkpoint, output = Path(folder) / "CornerNet_500000.pkl", Path(folder) / "converted.keras"
    tensors = {key: torch.from_numpy(np.asarray(value)) for key, value in state_dict.items()}
    torch.save(tensors, checkpoint, _use_new_zipfile_serialization=False)
    del tensors
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cornernet-convert"), str(checkpoint), "--output",
         str(output), *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote" in result.stdout
    checkpoint.unlink()
    return load_model(output)
