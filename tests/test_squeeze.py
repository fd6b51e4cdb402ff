"""CornerNet-Squeeze and the CornerNet-Lite checkpoints: architecture, weights, numerics.

The reference is a PyTorch network written here from princeton-vl/CornerNet-Lite
`core/models/CornerNet_Squeeze.py` (`fire_module`, its layer factories) and
`core/models/py_utils/modules.py` (`hg_module`, `hg`, `hg_net`), whose
state-dict names and shapes are checked against the listings of the published
`CornerNet_Squeeze_500000.pkl` and of that repository's Hourglass-104
`CornerNet_500000.pkl` (`tests/data/`).
"""

import functools

import numpy as np
import pytest
from official_torch import (
    SMALL,
    assert_heads_match,
    assert_weight_map_is_the_listing,
    convert_with_console_script,
    modules,
    numpy_state_dict,
    official_listing,
    randomize,
)

from cornernet_tf import convert
from cornernet_tf.cli import convert as convert_cli
from cornernet_tf.models import load_model
from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.spec.presets import PRESETS, preset_output_stride

SQUEEZE_LISTING = "official_squeeze_state_dict.tsv"
LITE_HG104_LISTING = "official_lite_hg104_state_dict.tsv"
HEADS = (("heatmap", "heats"), ("embedding", "tags"), ("offset", "offs"))


@functools.cache
def _lite_reference():
    """PyTorch `hg_net` of CornerNet-Lite: CornerNet-Squeeze or (residual blocks) Hourglass-104."""
    ref = modules()
    torch, nn = ref.torch, ref.nn

    class Fire(nn.Module):  # official `fire_module`, squeeze ratio 2
        def __init__(self, inp, out, stride=1):
            super().__init__()
            half = out // 2
            self.conv1 = nn.Conv2d(inp, half, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(half)
            self.conv_1x1 = nn.Conv2d(half, half, 1, stride=stride, bias=False)
            self.conv_3x3 = nn.Conv2d(
                half, half, 3, padding=1, stride=stride, groups=half, bias=False
            )
            self.bn2 = nn.BatchNorm2d(out)
            self.skip = stride == 1 and inp == out
            self.relu = nn.ReLU()

        def forward(self, x):
            squeezed = self.bn1(self.conv1(x))
            y = self.bn2(torch.cat((self.conv_1x1(squeezed), self.conv_3x3(squeezed)), 1))
            return self.relu(y + x) if self.skip else self.relu(y)

    def residual(inp, out, stride=1):
        return ref.Residual(inp, out, stride=stride)

    class HgModule(nn.Module):  # official `hg_module` with the given layer factories
        def __init__(self, dims, mods, block, transposed):
            super().__init__()
            curr, nxt = dims[0], dims[1]
            self.up1 = nn.Sequential(*[block(curr, curr) for _ in range(mods[0])])
            self.max1 = nn.Sequential()  # both networks: no pooling, a strided first block
            self.low1 = nn.Sequential(
                block(curr, nxt, stride=2), *[block(nxt, nxt) for _ in range(mods[0] - 1)]
            )
            if len(dims) > 2:
                self.low2 = HgModule(dims[1:], mods[1:], block, transposed)
            else:
                self.low2 = nn.Sequential(*[block(nxt, nxt) for _ in range(mods[1])])
            self.low3 = nn.Sequential(
                *[block(nxt, nxt) for _ in range(mods[0] - 1)], block(nxt, curr)
            )
            if transposed:
                self.up2 = nn.ConvTranspose2d(curr, curr, 4, stride=2, padding=1)
            else:
                self.up2 = nn.Upsample(scale_factor=2)

        def forward(self, x):
            return self.up1(x) + self.up2(self.low3(self.low2(self.low1(self.max1(x)))))

    class Hg(nn.Module):  # official `hg`
        def __init__(self, config, block, transposed, stem_residuals):
            super().__init__()
            dims, stacks = config["dims"], config["num_stacks"]
            curr, cnv = dims[0], config["cnv_dim"]
            self.pre = nn.Sequential(
                ref.Convolution(7, 3, config["pre_dim"], stride=2),
                residual(config["pre_dim"], curr, stride=2),
                *[residual(curr, curr, stride=2) for _ in range(stem_residuals - 1)],
            )
            self.hgs = nn.ModuleList(
                [HgModule(dims, config["modules"], block, transposed) for _ in range(stacks)]
            )
            self.cnvs = nn.ModuleList([ref.Convolution(3, curr, cnv) for _ in range(stacks)])
            self.inters = nn.ModuleList([residual(curr, curr) for _ in range(stacks - 1)])
            self.inters_ = nn.ModuleList([ref.merge(curr, curr) for _ in range(stacks - 1)])
            self.cnvs_ = nn.ModuleList([ref.merge(cnv, curr) for _ in range(stacks - 1)])

        def forward(self, x):
            inter = self.pre(x)
            cnvs = []
            for i, (hg, cnv) in enumerate(zip(self.hgs, self.cnvs, strict=True)):
                cnvs.append(cnv(hg(inter)))
                if i < len(self.hgs) - 1:
                    inter = torch.relu(self.inters_[i](inter) + self.cnvs_[i](cnvs[-1]))
                    inter = self.inters[i](inter)
            return cnvs

    class Net(nn.Module):  # official `hg_net`, modules registered in the official order
        def __init__(self, config, fire, head_kernel):
            super().__init__()
            stacks, cnv, curr = config["num_stacks"], config["cnv_dim"], config["dims"][0]
            self.hg = Hg(config, Fire if fire else residual, fire, 2 if fire else 1)
            self.tl_modules, self.br_modules = ref.corner_pools(cnv, config["pool_dim"], stacks)

            def pred(out):  # `_pred_mod`
                return nn.Sequential(
                    ref.Convolution(head_kernel, cnv, curr, with_bn=False),
                    nn.Conv2d(curr, out, 1),
                )

            outs = {"heats": config["num_classes"], "tags": 1, "offs": 2}
            for official, out in outs.items():
                for corner in ("tl", "br"):
                    setattr(
                        self,
                        f"{corner}_{official}",
                        nn.ModuleList([pred(out) for _ in range(stacks)]),
                    )

        def forward(self, image):
            """Head outputs of every stack, NCHW, keyed like CornerNet's `all_stacks` dict."""
            outs = {}
            for i, cnv in enumerate(self.hg(image)):
                for corner in ("tl", "br"):
                    feature = getattr(self, f"{corner}_modules")[i](cnv)
                    for head, official in HEADS:
                        outs[f"{corner}_{head}_{i}"] = getattr(self, f"{corner}_{official}")[i](
                            feature
                        )
            return outs

    return torch, Net


def _official_arguments(preset):
    names = ("num_classes", "num_stacks", "dims", "modules", "pre_dim", "cnv_dim", "pool_dim")
    return {name: PRESETS[preset][name] for name in names}


def _lite_net(preset, seed=0, device=None):
    """The reference network of a preset (its official arguments), random or on `device`."""
    torch, net_class = _lite_reference()
    fire = PRESETS[preset].get("block") == "fire"
    arguments = (_official_arguments(preset), fire, PRESETS[preset].get("head_kernel", 3))
    if device == "meta":
        with torch.device("meta"):
            return net_class(*arguments)
    return randomize(net_class(*arguments), seed)


@pytest.mark.parametrize(
    "preset, listing",
    [("squeeze", SQUEEZE_LISTING), ("hourglass104", LITE_HG104_LISTING)],
)
def test_reference_network_has_the_official_names_and_shapes(preset, listing):
    net = _lite_net(preset, device="meta")  # names and shapes only
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == official_listing(listing)


@pytest.fixture(scope="module")
def squeeze_pair(tmp_path_factory):
    """The full-size reference network (random weights and BN statistics) and its conversion
    by `cornernet-convert`."""
    net = _lite_net("squeeze", seed=5)
    state_dict = numpy_state_dict(net, prefix="module.")
    model = convert_with_console_script(state_dict, tmp_path_factory.mktemp("squeeze"))
    return net, model


def test_squeeze_preset_is_the_official_network(squeeze_pair):
    _, model = squeeze_pair  # preset read from the keys
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 31_771_852
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 77_568
    assert model.output_stride == 8 == preset_output_stride("squeeze")
    listing = official_listing(SQUEEZE_LISTING)
    assert_weight_map_is_the_listing(model, listing)
    config = model.test_config  # the official CornerNet_Squeeze.json test procedure
    assert (config.top_k, config.num_dets, config.flip_test) == (20, 100, False)
    assert (config.ae_threshold, config.max_detections, config.scales) == (0.5, 100, (1.0,))
    assert model.channel_order == "bgr"


@pytest.mark.parametrize("size", [(255, 255), (511, 255)], ids=["255x255", "511x255"])
def test_converted_squeeze_matches_pytorch(squeeze_pair, size):
    net, model = squeeze_pair
    rgb = np.random.default_rng(6).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    reference = assert_heads_match(net, model, rgb, output_stride=8)
    assert reference["tl_heatmap_1"].shape[-1] == 80


def test_lite_hourglass_names_convert_like_the_cornernet_ones():
    """CornerNet-Lite's Hourglass-104 layout, small: read as hourglass104 with `hg.…` names."""
    _, net_class = _lite_reference()
    net = randomize(net_class(SMALL, False, 3), seed=7)
    state_dict = numpy_state_dict(net, prefix="module.")
    assert convert.detect_naming(state_dict) == "lite"
    assert convert.detect_preset(state_dict) == "hourglass104"
    model = convert.from_official_state_dict(state_dict, preset="tiny", **SMALL)
    rgb = np.random.default_rng(8).integers(0, 256, (1, 63, 95, 3), dtype=np.uint8)
    assert_heads_match(net, model, rgb, output_stride=4)


def test_a_squeeze_checkpoint_named_hourglass104_says_which_preset_fits(tmp_path, capsys):
    """The CLI on a CornerNet-Squeeze-layout `.npz` (tiny_squeeze's names, fast to build)."""
    state_dict = numpy_state_dict(_lite_net("tiny_squeeze", seed=9), prefix="module.")
    assert convert.detect_preset(state_dict) == "squeeze"
    path = tmp_path / "squeeze.npz"
    np.savez(path, **state_dict)
    output = tmp_path / "out.keras"
    assert convert_cli.main([str(path), "--output", str(output), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "does not fit CornerNet preset 'tiny'" in err
    assert "its keys are those of preset 'tiny_squeeze'" in err
    assert "--preset tiny_squeeze" in err
    assert not output.exists()
    assert convert_cli.main([str(path), "--output", str(output), "--preset", "tiny_squeeze"]) == 0
    assert "output stride 8" in capsys.readouterr().out


def test_neither_architecture_names_the_keys_and_the_presets():
    with pytest.raises(convert.StateDictMismatchError) as info:
        convert.from_official_state_dict({"backbone.conv1.weight": np.zeros((64, 3, 7, 7))})
    message = str(info.value)
    assert "backbone.conv1.weight" in message
    for name in PRESETS:
        assert name in message
    # Official module names but a foreign tree: the unmatched keys and the presets.
    state_dict = numpy_state_dict(_lite_net("tiny_squeeze", seed=1))
    state_dict["hg.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(convert.StateDictMismatchError) as info:
        convert.from_official_state_dict(state_dict, preset="tiny_squeeze")
    assert "hg.extra.weight (shape (3,))" in str(info.value)
    assert "presets: hourglass104, saccade, squeeze, tiny, tiny_saccade, tiny_squeeze" in str(
        info.value
    )


def test_squeeze_rejects_an_hourglass104_checkpoint_with_the_fitting_preset():
    """The other direction, in the API: residual keys with preset "squeeze"."""
    state_dict = numpy_state_dict(_lite_net("tiny", seed=4))
    with pytest.raises(convert.StateDictMismatchError) as info:
        convert.from_official_state_dict(state_dict, preset="tiny_squeeze")
    message = str(info.value)
    assert "its keys are those of preset 'tiny'" in message
    assert "presets: hourglass104, saccade, squeeze, tiny, tiny_saccade, tiny_squeeze" in message


def test_tiny_squeeze_preset_is_built_like_squeeze(tmp_path):
    model = CornerNet.from_preset("tiny_squeeze")
    assert model.output_stride == 8 and model.block == "fire" and model.head_kernel == 1
    images = np.random.default_rng(3).integers(0, 256, (1, 127, 127, 3), dtype=np.uint8)
    outputs = model(images, training=False)
    assert outputs["tl_heatmap"].shape == (1, 16, 16, 3)
    # The .keras file keeps the architecture (fire modules, transposed convolutions).
    model.save(tmp_path / "tiny_squeeze.keras")
    loaded = load_model(tmp_path / "tiny_squeeze.keras")
    assert (loaded.upsample, loaded.stem_residuals, loaded.test_config.top_k) == (
        "transposed",
        2,
        20,
    )
    reloaded = loaded(images, training=False)
    for key, value in outputs.items():
        np.testing.assert_array_equal(reloaded[key], value, err_msg=key)
