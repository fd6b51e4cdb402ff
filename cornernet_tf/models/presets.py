"""Constructor arguments of the named CornerNet configurations."""

PRESETS = {
    # The official network (princeton-vl/CornerNet `models/CornerNet.py`):
    # 201,035,212 trainable parameters; 511x511 input → 128x128 maps.
    "hourglass104": {
        "num_classes": 80,
        "num_stacks": 2,
        "dims": [256, 256, 384, 384, 384, 512],
        "modules": [2, 2, 2, 2, 2, 4],
        "pre_dim": 128,
        "cnv_dim": 256,
        "pool_dim": 128,
    },
    # A small hourglass for CPU demos and tests: same topology (two stacks,
    # intermediate supervision, strided residual downsampling, corner pooling),
    # three levels and narrow widths (about 1M parameters). 127x127 input
    # → 32x32 maps.
    "tiny": {
        "num_classes": 3,
        "num_stacks": 2,
        "dims": [32, 32, 48, 64],
        "modules": [1, 1, 1, 1],
        "pre_dim": 16,
        "cnv_dim": 32,
        "pool_dim": 16,
        "head_dim": 32,
    },
}
