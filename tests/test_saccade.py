"""CornerNet-Saccade: architecture, official weights, numerics of heads and attention maps.

The reference is a PyTorch network written here from princeton-vl/CornerNet-Lite
`core/models/CornerNet_Saccade.py` (`model`, its layer factories) and
`core/models/py_utils/modules.py` (`saccade_module`, `saccade`,
`saccade_net`), whose state-dict names and shapes are checked against the
listing of the published `CornerNet_Saccade_500000.pkl` (`tests/data/`).
"""

import functools

import keras
import numpy as np
import pytest
from official_torch import (
    assert_heads_match,
    assert_weight_map_is_the_listing,
    modules,
    numpy_state_dict,
    official_listing,
    randomize,
)

from cornernet_tf import convert
from cornernet_tf.cli import convert as convert_cli
from cornernet_tf.cli import train as train_cli
from cornernet_tf.models import load_model
from cornernet_tf.models.cornernet import ATTENTION_NAMES, CornerNet
from cornernet_tf.spec.catalog import resolve_config_path
from cornernet_tf.spec.config import load_config
from cornernet_tf.spec.presets import PRESETS, config_size_problem, preset_output_stride

SACCADE_LISTING = "official_saccade_state_dict.tsv"
HEADS = (("heatmap", "heats"), ("embedding", "tags"), ("offset", "offs"))
# Small, with what the official network has and more: three stacks, three
# levels, two residuals where the official has one (the width change sits in
# the last of low3), cnv_dim different from dims[0].
SMALL = {
    "num_classes": 3,
    "num_stacks": 3,
    "dims": [16, 24, 24, 32],
    "modules": [2, 1, 1, 2],
    "pre_dim": 8,
    "cnv_dim": 12,
    "pool_dim": 8,
}


@functools.cache
def _saccade_reference():
    """PyTorch `saccade_net` of CornerNet-Lite, modules registered in the official order."""
    ref = modules()
    torch, nn = ref.torch, ref.nn

    def blocks(inp, out, count, stride=1, change_last=False):
        """`count` residuals from `inp` to `out` channels; the width changes in the first
        (official `make_hg_layer`, `_make_layer`) or the last (`_make_layer_revr`)."""
        if change_last:
            return nn.Sequential(
                *[ref.Residual(inp, inp) for _ in range(count - 1)], ref.Residual(inp, out)
            )
        return nn.Sequential(
            ref.Residual(inp, out, stride=stride),
            *[ref.Residual(out, out) for _ in range(count - 1)],
        )

    class SaccadeModule(nn.Module):  # official `saccade_module`
        def __init__(self, dims, mods):
            super().__init__()
            curr, nxt = dims[0], dims[1]
            self.up1 = blocks(curr, curr, mods[0])
            self.max1 = nn.Sequential()  # `make_pool_layer`: no pooling, a strided low1
            self.low1 = blocks(curr, nxt, mods[0], stride=2)
            self.low2 = (
                SaccadeModule(dims[1:], mods[1:]) if len(dims) > 2 else blocks(nxt, nxt, mods[1])
            )
            self.low3 = blocks(nxt, curr, mods[0], change_last=True)
            self.up2 = nn.Upsample(scale_factor=2)

        def forward(self, x):
            low1 = self.low1(self.max1(x))
            if isinstance(self.low2, SaccadeModule):
                low2, merges = self.low2(low1)
            else:
                low2, merges = self.low2(low1), []
            merge = self.up1(x) + self.up2(self.low3(low2))
            return merge, [*merges, merge]

    class Saccade(nn.Module):  # official `saccade`
        def __init__(self, config):
            super().__init__()
            dims, stacks = config["dims"], config["num_stacks"]
            curr, cnv = dims[0], config["cnv_dim"]
            self.pre = nn.Sequential(
                ref.Convolution(7, 3, config["pre_dim"], stride=2),
                ref.Residual(config["pre_dim"], curr, stride=2),
            )
            self.hgs = nn.ModuleList(
                [SaccadeModule(dims, config["modules"]) for _ in range(stacks)]
            )
            self.cnvs = nn.ModuleList([ref.Convolution(3, curr, cnv) for _ in range(stacks)])
            self.inters = nn.ModuleList([ref.Residual(curr, curr) for _ in range(stacks - 1)])
            self.inters_ = nn.ModuleList([ref.merge(curr, curr) for _ in range(stacks - 1)])
            self.cnvs_ = nn.ModuleList([ref.merge(cnv, curr) for _ in range(stacks - 1)])

        def forward(self, x):
            inter = self.pre(x)
            cnvs, merges = [], []
            for i, (hg, cnv) in enumerate(zip(self.hgs, self.cnvs, strict=True)):
                out, levels = hg(inter)
                cnvs.append(cnv(out))
                merges.append(levels)
                if i < len(self.hgs) - 1:
                    inter = torch.relu(self.inters_[i](inter) + self.cnvs_[i](cnvs[-1]))
                    inter = self.inters[i](inter)
            return cnvs, merges

    class Net(nn.Module):  # official `saccade_net` built by `CornerNet_Saccade.model`
        def __init__(self, config):
            super().__init__()
            stacks, cnv, dims = config["num_stacks"], config["cnv_dim"], config["dims"]
            curr = dims[0]
            self.hg = Saccade(config)
            self.tl_modules, self.br_modules = ref.corner_pools(cnv, config["pool_dim"], stacks)

            def pred(inp, out):  # `_pred_mod` and the attention heads
                return nn.Sequential(
                    ref.Convolution(3, inp, curr, with_bn=False), nn.Conv2d(curr, out, 1)
                )

            outs = {"heats": config["num_classes"], "tags": 1, "offs": 2}
            for official, out in outs.items():
                for corner in ("tl", "br"):
                    setattr(
                        self,
                        f"{corner}_{official}",
                        nn.ModuleList([pred(cnv, out) for _ in range(stacks)]),
                    )
            # One head per level output, deepest first: 384, 384, 256 channels officially.
            self.att_modules = nn.ModuleList(
                [nn.ModuleList([pred(dim, 1) for dim in dims[-2::-1]]) for _ in range(stacks)]
            )

        def forward(self, image):
            """Every stack's heads and attention logits, NCHW, keyed like `all_stacks`."""
            outs = {}
            cnvs, merges = self.hg(image)
            for i, cnv in enumerate(cnvs):
                for corner in ("tl", "br"):
                    feature = getattr(self, f"{corner}_modules")[i](cnv)
                    for head, official in HEADS:
                        outs[f"{corner}_{head}_{i}"] = getattr(self, f"{corner}_{official}")[i](
                            feature
                        )
                for name, att, merge in zip(
                    ATTENTION_NAMES, self.att_modules[i], merges[i], strict=True
                ):
                    outs[f"attention_{name}_{i}"] = att(merge)
            return outs

    return torch, Net


def _official_arguments(preset):
    names = ("num_classes", "num_stacks", "dims", "modules", "pre_dim", "cnv_dim", "pool_dim")
    return {name: PRESETS[preset][name] for name in names}


def test_reference_network_has_the_official_names_and_shapes():
    torch, net_class = _saccade_reference()
    with torch.device("meta"):  # names and shapes only
        net = net_class(_official_arguments("saccade"))
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == official_listing(
        SACCADE_LISTING
    )


def test_saccade_preset_is_the_official_network():
    # Variables created in a StatelessScope are not initialised: names and shapes
    # of the 117M parameters without their memory.
    with keras.StatelessScope():
        model = CornerNet.from_preset("saccade")
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 116_969_339
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 77_312
    assert model.output_stride == 4 == preset_output_stride("saccade")
    assert model.input_size_granule == 32  # 255x255 → 64x64, the official training size
    listing = official_listing(SACCADE_LISTING)
    assert_weight_map_is_the_listing(model, listing)
    assert convert.detect_preset({k: None for k, _ in listing}) == "saccade"
    assert convert.detect_naming({k: None for k, _ in listing}) == "lite"
    config = model.test_config  # configs/CornerNet_Saccade.json, as far as `detect` has it
    assert (config.top_k, config.ae_threshold, config.flip_test) == (12, 0.3, False)
    assert (config.max_detections, config.scales) == (100, (1.0,))


def test_converted_saccade_matches_pytorch():
    _, net_class = _saccade_reference()
    net = randomize(net_class(SMALL), seed=11)
    state_dict = numpy_state_dict(net, prefix="module.")
    assert convert.detect_preset(state_dict) == "saccade"
    assert convert.detect_naming(state_dict) == "lite"
    model = convert.from_official_state_dict(state_dict, preset="tiny_saccade", **SMALL)
    assert model.attention and model.channel_order == "bgr"
    rgb = np.random.default_rng(12).integers(0, 256, (2, 63, 95, 3), dtype=np.uint8)
    reference = assert_heads_match(net, model, rgb, output_stride=4)
    # The attention maps are 1/4, 1/2 and 1/1 of the heads' size, and not constant.
    for name, side in zip(ATTENTION_NAMES, (4, 8, 16), strict=True):
        attention = reference[f"attention_{name}_2"]
        assert attention.shape == (2, side, side * 3 // 2, 1)
        assert np.std(attention) > 0.1
    # At inference only the last stack, unsuffixed.
    last = model(rgb, training=False)
    assert set(last) == {key[:-2] for key in reference if key.endswith("_2")}
    for key, value in last.items():
        np.testing.assert_allclose(value, reference[f"{key}_2"], rtol=1e-4, atol=1e-4)


def test_cornernet_convert_writes_a_saccade_model(tmp_path, capsys):
    """The command on a `tiny_saccade`-shaped checkpoint (.npz); the `.keras` file keeps the
    attention heads and the Saccade test settings, and computes the reference's outputs."""
    _, net_class = _saccade_reference()
    net = randomize(net_class(_official_arguments("tiny_saccade")), seed=15)
    path, output = tmp_path / "saccade.npz", tmp_path / "saccade.keras"
    np.savez(path, **numpy_state_dict(net, prefix="module."))
    assert convert_cli.main([str(path), "--output", str(output), "--preset", "tiny_saccade"]) == 0
    assert "output stride 4" in capsys.readouterr().out
    model = load_model(output)
    assert model.attention and model.num_stacks == 3 and model.test_config.top_k == 12
    rgb = np.random.default_rng(16).integers(0, 256, (1, 127, 127, 3), dtype=np.uint8)
    reference = assert_heads_match(net, model, rgb, output_stride=4)
    assert reference["attention_large_2"].shape == (1, 8, 8, 1)


def test_attention_needs_three_levels():
    with pytest.raises(ValueError, match=r"`attention=True` needs 3 hourglass levels"):
        CornerNet.from_preset("tiny_saccade", dims=[16, 24, 32])
    with pytest.raises(ValueError, match="`attention` must be True or False"):
        CornerNet(attention="yes")


def test_saccade_config_is_the_official_schedule():
    # princeton-vl/CornerNet-Lite configs/CornerNet_Saccade.json, written out by hand.
    config = load_config(resolve_config_path("cornernet_saccade_coco"))
    assert config.model.preset == "saccade"
    data, train, test = config.data, config.train, config.test
    assert (data.input_size, data.output_size, data.gaussian_iou) == (255, 64, 0.5)
    assert data.sampler == "saccade"
    assert data.rand_scales == (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1)
    assert (train.batch_size, train.base_batch, train.learning_rate) == (48, 48, 2.5e-4)
    assert (train.steps, train.lr_decay_steps, train.lr_decay_factor) == (500_000, (450_000,), 10.0)
    assert (test.top_k, test.ae_threshold, test.flip_test, test.scales) == (12, 0.3, False, (1.0,))
    assert (test.num_dets, test.max_detections) == (144, 100)
    assert config_size_problem(config) is None  # 255 fits three levels at stride 4
    # The preset's own test settings are the config's.
    assert CornerNet(**PRESETS["saccade"]).test_config == test


def test_training_an_attention_preset_needs_the_saccade_sampler(shapes_root, tmp_path, capsys):
    argv = ["--config", "shapes_tiny", "--data-dir", str(shapes_root)]
    argv += ["--model-dir", str(tmp_path / "m"), "--set", "model.preset=tiny_saccade"]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "model.preset 'tiny_saccade' has attention heads" in err
    assert "set data.sampler: saccade (got 'cornernet')" in err
    assert "Traceback" not in err
