"""The inference precisions `load_model` and the predict/evaluate tools accept.

Each maps to the Keras dtype policy the network is rebuilt with: variables stay
float32 and the layers compute in the named type; the heads come out float32
and decoding runs in float32 whatever the precision.
"""

# precision: Keras dtype policy
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def check_precision(precision: str) -> str:
    """The Keras dtype policy for `precision`.

    Raises:
        ValueError: `precision` is not one of `PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision {precision!r} is not supported; use one of {', '.join(PRECISIONS)} "
            "(bfloat16 pays off on CPUs with AVX512-BF16 or AMX, and on TPUs)."
        )
    return PRECISIONS[precision]
