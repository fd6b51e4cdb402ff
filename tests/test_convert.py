"""Loading official CornerNet weights: names, shapes, layouts and numerics.

The reference is a PyTorch network written here from princeton-vl/CornerNet
`models/CornerNet.py` and `models/py_utils/{kp,utils,kp_utils}.py` (same module
tree, so the same state-dict names), checked against the listing of the published
Hourglass-104 checkpoint in `tests/data/official_hg104_state_dict.tsv` (see
`tests/data/README.md`).
"""

import functools
import os
import re
import stat
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from official_torch import (
    SMALL,
    assert_close,
    assert_heads_match,
    convert_with_console_script,
    modules,
    numpy_state_dict,
    official_input,
    official_listing,
    randomize,
)

from cornernet_tf import convert
from cornernet_tf.cli import convert as convert_cli
from cornernet_tf.models.cornernet import OFFICIAL_MEAN_BGR, OFFICIAL_STD_BGR, CornerNet
from cornernet_tf.spec.presets import PRESETS

LISTING = "official_hg104_state_dict.tsv"

HEADS = ("heatmap", "embedding", "offset")


# ---------------------------------------------------------- official listing


def _official_listing():
    return official_listing(LISTING)


def _official_key(path):
    """Official name of a Keras weight, from its path (independent of convert.py).

    e.g. `corner_net/kps_0/low2/up1_1/conv2/bn/gamma` → `kps.0.low2.up1.1.bn2.weight`.
    """
    parts = path.split("/")[1:]
    variable = {
        "kernel": "weight",
        "bias": "bias",
        "gamma": "weight",
        "beta": "bias",
        "moving_mean": "running_mean",
        "moving_variance": "running_var",
    }[parts.pop()]
    top = parts[0]
    if m := re.fullmatch(r"(inters|cnvs)__(\d+)_(conv|bn)", top):
        return f"{m[1]}_.{m[2]}.{'0' if m[3] == 'conv' else '1'}.{variable}"
    if m := re.fullmatch(r"(tl|br)_(heatmap|embedding|offset)s_(\d+)", top):
        official = {"heatmap": "heats", "embedding": "tags", "offset": "regrs"}[m[2]]
        inner = "0.conv" if parts[1:] == ["conv", "conv"] else "1"
        return f"{m[1]}_{official}.{m[3]}.{inner}.{variable}"
    names = [re.sub(r"_(\d+)$", r".\1", p) for p in parts]
    *outer, layer, sub = names
    pool_module = top.startswith(("tl_cnvs", "br_cnvs"))
    parent = outer[-1] if outer else ""
    residual = re.fullmatch(r"(pre\.1|inters\.\d+|(up1|low1|low2|low3)\.\d+)", parent)
    renames = {}
    if residual:
        renames = {
            ("conv1", "conv"): "conv1",
            ("conv1", "bn"): "bn1",
            ("conv2", "conv"): "conv2",
            ("conv2", "bn"): "bn2",
            ("skip", "conv"): "skip.0",
            ("skip", "bn"): "skip.1",
        }
    elif pool_module:
        renames = {
            ("p_conv1", "conv"): "p_conv1",
            ("p_conv1", "bn"): "p_bn1",
            ("conv1", "conv"): "conv1",
            ("conv1", "bn"): "bn1",
        }
    leaf = renames.get((layer, sub), f"{layer}.{sub}")
    return ".".join([*outer, leaf, variable])


def test_official_key_translation_examples():
    assert _official_key("m/kps_0/low2/up1_1/conv2/bn/gamma") == "kps.0.low2.up1.1.bn2.weight"
    assert _official_key("m/pre_1/skip/conv/kernel") == "pre.1.skip.0.weight"
    assert _official_key("m/br_cnvs_1/p_conv1/bn/beta") == "br_cnvs.1.p_bn1.bias"
    assert _official_key("m/tl_cnvs_0/conv2/conv/kernel") == "tl_cnvs.0.conv2.conv.weight"
    assert _official_key("m/tl_offsets_1/out/bias") == "tl_regrs.1.1.bias"
    assert _official_key("m/cnvs__0_bn/moving_variance") == "cnvs_.0.1.running_var"


# --------------------------------------------------- PyTorch reference network


@functools.cache
def _torch_reference():
    """PyTorch CornerNet with the official module tree (built lazily: torch is optional)."""
    ref = modules()
    torch, nn, Residual, Convolution = ref.torch, ref.nn, ref.Residual, ref.Convolution

    class KpModule(nn.Module):  # official `kp_module` with CornerNet's strided `make_hg_layer`
        def __init__(self, n, dims, modules):
            super().__init__()
            curr_mod, next_mod = modules[0], modules[1]
            curr_dim, next_dim = dims[0], dims[1]
            self.up1 = nn.Sequential(*[Residual(curr_dim, curr_dim) for _ in range(curr_mod)])
            self.max1 = nn.Sequential()
            self.low1 = nn.Sequential(
                Residual(curr_dim, next_dim, stride=2),
                *[Residual(next_dim, next_dim) for _ in range(curr_mod - 1)],
            )
            if n > 1:
                self.low2 = KpModule(n - 1, dims[1:], modules[1:])
            else:
                self.low2 = nn.Sequential(*[Residual(next_dim, next_dim) for _ in range(next_mod)])
            self.low3 = nn.Sequential(
                *[Residual(next_dim, next_dim) for _ in range(curr_mod - 1)],
                Residual(next_dim, curr_dim),
            )
            self.up2 = nn.Upsample(scale_factor=2)  # nearest

        def forward(self, x):
            return self.up1(x) + self.up2(self.low3(self.low2(self.low1(self.max1(x)))))

    def kp_layer(cnv_dim, curr_dim, out_dim):  # official `make_kp_layer`
        return nn.Sequential(
            Convolution(3, cnv_dim, curr_dim, with_bn=False), nn.Conv2d(curr_dim, out_dim, 1)
        )

    class Net(nn.Module):  # official `kp`, modules registered in the official order
        def __init__(self, num_classes, num_stacks, dims, modules, pre_dim, cnv_dim, pool_dim):
            super().__init__()
            curr_dim = dims[0]
            stacks = range(num_stacks)
            self.nstack = num_stacks
            self.pre = nn.Sequential(
                Convolution(7, 3, pre_dim, stride=2), Residual(pre_dim, curr_dim, stride=2)
            )
            self.kps = nn.ModuleList([KpModule(len(dims) - 1, dims, modules) for _ in stacks])
            self.cnvs = nn.ModuleList([Convolution(3, curr_dim, cnv_dim) for _ in stacks])
            self.tl_cnvs, self.br_cnvs = ref.corner_pools(cnv_dim, pool_dim, num_stacks)
            self.tl_heats = nn.ModuleList(
                [kp_layer(cnv_dim, curr_dim, num_classes) for _ in stacks]
            )
            self.br_heats = nn.ModuleList(
                [kp_layer(cnv_dim, curr_dim, num_classes) for _ in stacks]
            )
            self.tl_tags = nn.ModuleList([kp_layer(cnv_dim, curr_dim, 1) for _ in stacks])
            self.br_tags = nn.ModuleList([kp_layer(cnv_dim, curr_dim, 1) for _ in stacks])
            self.inters = nn.ModuleList([Residual(curr_dim, curr_dim) for _ in stacks[1:]])
            self.inters_ = nn.ModuleList([ref.merge(curr_dim, curr_dim) for _ in stacks[1:]])
            self.cnvs_ = nn.ModuleList([ref.merge(cnv_dim, curr_dim) for _ in stacks[1:]])
            self.tl_regrs = nn.ModuleList([kp_layer(cnv_dim, curr_dim, 2) for _ in stacks])
            self.br_regrs = nn.ModuleList([kp_layer(cnv_dim, curr_dim, 2) for _ in stacks])
            self.relu = nn.ReLU()

        def forward(self, image):
            """Head outputs of every stack, NCHW, keyed like CornerNet's `all_stacks` dict."""
            inter = self.pre(image)
            outs = {}
            for i in range(self.nstack):
                cnv = self.cnvs[i](self.kps[i](inter))
                tl, br = self.tl_cnvs[i](cnv), self.br_cnvs[i](cnv)
                for corner, feature in (("tl", tl), ("br", br)):
                    for head, official in (
                        ("heatmap", "heats"),
                        ("embedding", "tags"),
                        ("offset", "regrs"),
                    ):
                        outs[f"{corner}_{head}_{i}"] = getattr(self, f"{corner}_{official}")[i](
                            feature
                        )
                if i < self.nstack - 1:
                    inter = self.relu(self.inters_[i](inter) + self.cnvs_[i](cnv))
                    inter = self.inters[i](inter)
            return outs

    return torch, Net


def _torch_net(config, seed=0):
    """Reference network in eval mode with random weights, biases and BN statistics."""
    _, net_class = _torch_reference()
    return randomize(net_class(**config), seed)


@functools.cache
def _small_state_dict():
    return numpy_state_dict(_torch_net(SMALL))


@pytest.fixture(scope="module")
def small_model():
    """One SMALL model for the whole module: failed loads leave it untouched."""
    return convert.from_official_state_dict(_small_state_dict(), preset="tiny", **SMALL)


# ----------------------------------------------------------------------- tests


def test_reference_network_has_the_official_names_and_shapes():
    torch, net_class = _torch_reference()
    with torch.device("meta"):  # names and shapes only, no 201M-parameter allocation
        net = net_class(**PRESETS["hourglass104"])
    ours = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert ours == _official_listing()


@pytest.fixture(scope="module")
def hourglass104_conversion(tmp_path_factory):
    listing = _official_listing()
    sizes = [int(np.prod(shape)) for _, shape in listing]
    values = np.random.default_rng(0).standard_normal(sum(sizes), dtype=np.float32)
    state_dict, offset = {}, 0
    for (key, shape), size in zip(listing, sizes, strict=True):
        if key.endswith("num_batches_tracked"):
            array = np.array(500_000, np.int64)
        else:
            array = values[offset : offset + size].reshape(shape)
            if key.endswith("running_var"):  # a variance is never negative
                array = np.abs(array)
        state_dict["module." + key] = array  # as the official trainer saves it
        offset += size
    model = convert_with_console_script(state_dict, tmp_path_factory.mktemp("hg104"))
    return listing, state_dict, model


@pytest.mark.slow
def test_hourglass104_every_weight_is_its_transposed_source(hourglass104_conversion):
    listing, state_dict, model = hourglass104_conversion
    consumed = set()
    for weight in model.weights:
        key = _official_key(weight.path)
        source = state_dict["module." + key]
        expected = source.transpose(2, 3, 1, 0) if source.ndim == 4 else source
        np.testing.assert_array_equal(weight.numpy(), expected, err_msg=f"{weight.path} ↔ {key}")
        consumed.add(key)
    counters = {k for k, _ in listing if k.endswith("num_batches_tracked")}
    assert consumed | counters == {k for k, _ in listing}
    assert len(consumed) == len(model.weights) == len(listing) - len(counters)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 201_035_212
    config = model.get_config()
    assert config["channel_order"] == "bgr"
    np.testing.assert_allclose(config["image_mean"], OFFICIAL_MEAN_BGR[::-1])
    np.testing.assert_allclose(config["image_std"], OFFICIAL_STD_BGR[::-1])
    assert config["num_classes"] == 80 and config["dims"] == [256, 256, 384, 384, 384, 512]


def test_small_conversion_assigns_every_weight_from_its_source(small_model):
    state_dict = _small_state_dict()
    for weight in small_model.weights:
        source = state_dict[_official_key(weight.path)]
        expected = source.transpose(2, 3, 1, 0) if source.ndim == 4 else source
        np.testing.assert_array_equal(weight.numpy(), expected, err_msg=weight.path)
    assert small_model.get_config()["channel_order"] == "bgr"


@pytest.mark.parametrize("size", [(63, 95), (64, 96)], ids=["odd", "even"])
def test_converted_outputs_match_pytorch(small_model, size):
    torch, _ = _torch_reference()
    net = _torch_net(SMALL)
    model = convert.load_official_weights(small_model, numpy_state_dict(net, prefix="module."))
    rgb = np.random.default_rng(2).integers(0, 256, (2, *size, 3), dtype=np.uint8)
    reference = assert_heads_match(net, model, rgb, output_stride=4)
    assert reference["tl_heatmap_1"].shape[-1] == 3
    last = model(rgb, training=False)
    assert len(last) == 6
    for key, value in last.items():
        assert_close(value, reference[f"{key}_1"], key)


def test_missing_unexpected_and_misshapen_keys_are_named(small_model):
    broken = dict(_small_state_dict())
    del broken["kps.1.low2.low2.1.bn2.running_var"]
    broken["tl_cnvs.0.p3_conv1.conv.weight"] = np.zeros((8, 12, 3, 3), "float32")
    broken["br_tags.1.1.weight"] = np.zeros((2, 16, 1, 1), "float32")
    before = [w.numpy() for w in small_model.weights]
    with pytest.raises(convert.StateDictMismatchError) as info:
        convert.load_official_weights(small_model, broken)
    message = str(info.value)
    assert "1 missing, 1 unexpected, 1 misshapen" in message
    assert "kps.1.low2.low2.1.bn2.running_var (expected (24,))" in message
    assert "tl_cnvs.0.p3_conv1.conv.weight (shape (8, 12, 3, 3))" in message
    assert "br_tags.1.1.weight: expected (1, 16, 1, 1), got (2, 16, 1, 1)" in message
    assert info.value.missing == [("kps.1.low2.low2.1.bn2.running_var", (24,))]
    assert isinstance(info.value, ValueError)
    for old, weight in zip(before, small_model.weights, strict=True):  # nothing half-loaded
        np.testing.assert_array_equal(weight.numpy(), old)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda sd: sd.pop("pre.0.conv.weight"), "pre.0.conv.weight (expected (8, 3, 7, 7))"),
        (
            lambda sd: sd.update({"extra.weight": np.ones(3, "float32")}),
            "extra.weight (shape (3,))",
        ),
        (
            lambda sd: sd.update({"cnvs_.0.0.weight": np.ones((16, 16, 1, 1), "float32")}),
            "cnvs_.0.0.weight: expected (16, 12, 1, 1), got (16, 16, 1, 1)",
        ),
        # An already-HWIO kernel is a shape error, not silently re-laid out.
        (
            lambda sd: sd.update({"pre.0.conv.weight": np.ones((7, 7, 3, 8), "float32")}),
            "pre.0.conv.weight: expected (8, 3, 7, 7), got (7, 7, 3, 8)",
        ),
        (
            lambda sd: sd.update({"inters.0.bn1.bias": np.full(16, np.nan, "float32")}),
            "inters.0.bn1.bias: contains NaN",
        ),
        (
            lambda sd: sd.update({"inters.0.bn1.bias": np.ones(16, np.int32)}),
            "inters.0.bn1.bias: dtype int32",
        ),
        (
            lambda sd: sd.update({"inters.0.bn1.running_var": np.full(16, -0.5, "float32")}),
            "inters.0.bn1.running_var: negative variance (minimum -0.5)",
        ),
        (
            lambda sd: sd.update({"inters.0.bn1.running_var": np.full(16, np.inf, "float32")}),
            "inters.0.bn1.running_var: contains NaN or infinity",
        ),
        (
            lambda sd: sd.pop("cnvs.1.bn.num_batches_tracked"),
            "cnvs.1.bn.num_batches_tracked (expected ())",
        ),
    ],
    ids=[
        "missing",
        "unexpected",
        "misshapen",
        "hwio",
        "nan",
        "int",
        "negative-variance",
        "inf-variance",
        "partial-counters",
    ],
)
def test_each_kind_of_mismatch_fails_naming_the_key(small_model, change, fragment):
    state_dict = dict(_small_state_dict())
    change(state_dict)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        convert.load_official_weights(small_model, state_dict)


def test_wrong_number_of_classes_gives_a_hint(small_model):
    config = {**SMALL, "num_classes": 5}
    state_dict = numpy_state_dict(_torch_net(config))
    with pytest.raises(ValueError, match=r"heatmaps have 5 classes; pass num_classes=5"):
        convert.load_official_weights(small_model, state_dict)


def test_counters_are_optional_as_in_pytorch_0_4_0_checkpoints(small_model):
    without = {k: v for k, v in _small_state_dict().items() if "num_batches_tracked" not in k}
    convert.load_official_weights(small_model, _small_state_dict())
    reference = [w.numpy() for w in small_model.weights]
    convert.load_official_weights(small_model, without)
    for old, weight in zip(reference, small_model.weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), old)


def test_prefix_is_optional_but_not_ambiguous(small_model):
    state_dict = _small_state_dict()
    mixed = {("module." + k if i % 2 else k): v for i, (k, v) in enumerate(state_dict.items())}
    convert.load_official_weights(small_model, mixed)
    twice = {**state_dict, "module.pre.0.conv.weight": state_dict["pre.0.conv.weight"]}
    with pytest.raises(ValueError, match="both with and without"):
        convert.load_official_weights(small_model, twice)


def test_bad_arguments(small_model):
    with pytest.raises(TypeError, match="state_dict"):
        convert.from_official_state_dict([("pre.0.conv.weight", np.zeros(1))])
    with pytest.raises(TypeError, match="strings"):
        convert.from_official_state_dict({1: np.zeros(1)})
    with pytest.raises(ValueError, match="channel_order"):
        convert.from_official_state_dict(_small_state_dict(), preset="tiny", channel_order="rgb")
    with pytest.raises(ValueError, match="unknown preset"):
        convert.from_official_state_dict(_small_state_dict(), preset="resnet50")
    with pytest.raises(TypeError, match="CornerNet"):
        convert.load_official_weights(object(), _small_state_dict())
    rgb_model = CornerNet.from_preset("tiny", **SMALL)  # not built: the check comes first
    with pytest.raises(ValueError, match="channel_order='rgb'"):
        convert.load_official_weights(rgb_model, _small_state_dict())
    # Not a CornerNet state dict at all: refused before building a model.
    with pytest.raises(ValueError, match="not an official CornerNet state dict"):
        convert.from_official_state_dict({"backbone.conv1.weight": np.zeros((64, 3, 7, 7))})


# ------------------------------------------------------------------ the script


def _script():
    """`cornernet-convert` (`scripts/convert_official.py` is a wrapper around it)."""
    return convert_cli


@functools.cache
def _tiny_net():
    # The official network has no separate head width (heads are dims[0] wide).
    official = {k: v for k, v in PRESETS["tiny"].items() if k != "head_dim"}
    return _torch_net(official, seed=3)


@functools.cache
def _tiny_state_dict():
    return numpy_state_dict(_tiny_net(), prefix="module.")


@pytest.fixture(scope="module")
def tiny_keras_file(tmp_path_factory):
    """The script run on a checkpoint laid out like the official one (legacy format, `module.`)."""
    torch, _ = _torch_reference()
    folder = tmp_path_factory.mktemp("convert")
    checkpoint = folder / "CornerNet_500000.pkl"
    state = {"module." + k: v for k, v in _tiny_net().state_dict().items()}
    torch.save(state, checkpoint, _use_new_zipfile_serialization=False)
    output = folder / "tiny.keras"
    assert _script().main([str(checkpoint), "--output", str(output), "--preset", "tiny"]) == 0
    assert sorted(os.listdir(folder)) == ["CornerNet_500000.pkl", "tiny.keras"]  # no temporary
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(output.stat().st_mode) == 0o666 & ~umask
    return output


@pytest.fixture(scope="module")
def tiny_loaded(tiny_keras_file):
    return keras.models.load_model(tiny_keras_file)


def test_script_writes_a_loadable_keras_file(tiny_loaded):
    torch, _ = _torch_reference()
    assert isinstance(tiny_loaded, CornerNet)
    assert tiny_loaded.channel_order == "bgr" and tiny_loaded.num_classes == 3
    rgb = np.random.default_rng(4).integers(0, 256, (1, 63, 63, 3), dtype=np.uint8)
    with torch.no_grad():
        reference = _tiny_net()(torch.from_numpy(official_input(rgb)))
    every_stack = tiny_loaded(rgb, training=False, all_stacks=True)
    assert set(every_stack) == set(reference)
    for key, value in every_stack.items():
        assert_close(value, reference[key].numpy().transpose(0, 2, 3, 1), key)


def test_keras_file_keeps_the_intermediate_heads(tiny_loaded):
    # Fine-tuning a loaded model needs the stack-0 heads (intermediate supervision).
    head = tiny_loaded.heads["tl_heatmap"][0]
    assert head.built
    source = _tiny_state_dict()["module.tl_heats.0.1.weight"]
    np.testing.assert_array_equal(head.out.kernel.numpy(), source.transpose(2, 3, 1, 0))


@pytest.mark.parametrize("fmt", ["zip", "legacy", "wrapped", "npz"])
def test_state_dicts_are_read_from_every_format(tmp_path, fmt):
    torch, _ = _torch_reference()
    state = {"module." + k: v for k, v in _tiny_net().state_dict().items()}  # trainer's keys
    path = tmp_path / ("model.npz" if fmt == "npz" else "CornerNet_500000.pkl")
    if fmt == "npz":
        np.savez(path, **_tiny_state_dict())
    else:
        payload = {"state_dict": state} if fmt == "wrapped" else state
        torch.save(payload, path, _use_new_zipfile_serialization=fmt != "legacy")
    loaded = convert.load_state_dict(path)
    assert set(loaded) == set(_tiny_state_dict())
    for key, value in loaded.items():
        np.testing.assert_array_equal(value, _tiny_state_dict()[key])
        assert value.dtype == (np.int64 if key.endswith("num_batches_tracked") else np.float32)


def test_script_errors_are_friendly(tmp_path, capsys, monkeypatch):
    main = _script().main
    output = tmp_path / "out.keras"

    assert main([str(tmp_path / "nope.pkl"), "--output", str(output)]) == 2
    assert "nope.pkl' does not exist" in capsys.readouterr().err

    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a checkpoint")
    assert main([str(garbage), "--output", str(output)]) == 2
    assert "is not a PyTorch checkpoint" in capsys.readouterr().err

    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"PK but not really")
    assert main([str(bad_npz), "--output", str(output)]) == 2
    assert "not a readable .npz" in capsys.readouterr().err

    npz = tmp_path / "small.npz"
    np.savez(npz, **_small_state_dict())
    assert main([str(npz), "--output", str(tmp_path / "out.h5")]) == 2
    assert "must end in .keras" in capsys.readouterr().err
    assert main([str(npz), "--output", str(tmp_path / "missing" / "out.keras")]) == 2
    assert "does not exist; create it" in capsys.readouterr().err
    assert main([str(npz), "--output", str(output), "--num-classes", "0"]) == 2
    assert "--num-classes" in capsys.readouterr().err
    assert main([str(npz), "--output", str(output), "--preset", "resnet50"]) == 2
    assert "unknown --preset 'resnet50'" in capsys.readouterr().err

    # Wrong architecture (SMALL is not the "tiny" preset): an existing output is
    # left untouched.
    output.write_text("previous model")
    assert main([str(npz), "--output", str(output), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "does not fit CornerNet preset 'tiny'" in err and "misshapen" in err
    assert output.read_text() == "previous model"

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    checkpoint = tmp_path / "model.pkl"
    checkpoint.write_bytes(b"\x80\x02")
    assert main([str(checkpoint), "--output", str(output)]) == 1
    assert "pip install .[convert]" in capsys.readouterr().err


def test_a_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path):
    class FailingModel:
        def save(self, path):
            Path(path).write_bytes(b"half a model")
            raise OSError("disk full")

    output = tmp_path / "model.keras"
    output.write_text("previous model")
    with pytest.raises(OSError, match="disk full"):
        _script().save_atomically(FailingModel(), str(output))
    assert output.read_text() == "previous model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_script_takes_no_abbreviations(tmp_path, capsys):
    # `--out` would have been read as --output, `--num` as --num-classes.
    cases = {
        ("x.pkl", "--out", "y.keras"): "required: --output",
        ("x.pkl", "--output", "y.keras", "--num", "3"): "unrecognized arguments: --num 3",
    }
    for argv, message in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            _script().main(list(argv))
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
