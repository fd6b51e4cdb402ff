"""Corner pooling: a directional cumulative max along H or W (paper §3.4).

Top pool `out[i, j] = max(in[i:, j])`, left pool `out[i, j] = max(in[i, j:])`,
bottom `max(in[:i+1, j])`, right `max(in[i, :j+1])`, as computed by the official
C++ extension (princeton-vl/CornerNet `models/py_utils/_cpools/src/*_pool.cpp`).

TensorFlow has no cumulative-max kernel. One `tf.maximum` per row is the
fastest formulation outside XLA (`benchmarks/corner_pool.py` times it against
`tf.scan`, doubling, `associative_scan`, while loops and torch's `cummax`), so:

- static length <= `_MAX_CHAIN`: the chain of maxima over all rows, with
  autodiff;
- longer or unknown lengths: chunks of `_CHUNK` rows - the chain runs across
  the chunks' rows (row k of every chunk at once), the chunk maxima are scanned
  across chunks (a chain, or a doubling `tf.while_loop` when the chunk count is
  unknown while tracing), and each row takes the max with the carry from the
  chunks beyond, which bounds the graph's size;
- under XLA (`jit_compile=True`): a `tf.while_loop` over rows with a
  hand-written backward, since XLA compiles long chains slowly.

Each backward sends an output's gradient to the argmax of its window with the
official tie rule (see `corner_pool`). The two non-XLA paths convert to TFLite
with builtin operators only.
"""

import tensorflow as tf

from cornernet_tf.utils.private_api import graph_in_xla_context

# (axis in NHWC, True when the window extends toward larger indices).
_DIRECTIONS = {
    "top": (1, True),
    "left": (2, True),
    "bottom": (1, False),
    "right": (2, False),
}
DIRECTIONS = tuple(_DIRECTIONS)

# Static lengths up to this run as one chain of maxima over all rows, the
# fastest formulation measured outside XLA. The limit bounds the graph size
# (two ops per row, forward and backward) for large test-time feature maps.
_MAX_CHAIN = 128

# Longer or unknown lengths are split into chunks of this many rows. 32 divides
# every CornerNet feature-map size (the network input is 128k - 1 pixels, the
# output (input + 1) / 4), so the padding is never paid there.
_CHUNK = 32


def corner_pool(x: tf.Tensor, direction: str) -> tf.Tensor:
    """Directional corner pooling (a cumulative max along H or W), NHWC.

    Follows princeton-vl/CornerNet `models/py_utils/_cpools/src/top_pool.cpp`
    (and `left_`, `bottom_`, `right_pool.cpp`):

    - "top":    `out[b, i, j, c] = max(x[b, i:, j, c])`
    - "left":   `out[b, i, j, c] = max(x[b, i, j:, c])`
    - "bottom": `out[b, i, j, c] = max(x[b, :i+1, j, c])`
    - "right":  `out[b, i, j, c] = max(x[b, i, :j+1, c])`

    Gradient: each output's upstream gradient goes to one element, the argmax
    of its window. On ties the element *farthest* from the output along the
    pooling direction wins (for "top", the largest row index among the tied
    maxima; for "bottom", the smallest). This is the official backward, which
    scans from the far end of the axis and moves its running argmax only on a
    strictly greater value. (A window whose maximum is -inf may get no
    gradient: it ties with the -inf padding.)

    Works in float16/bfloat16/float32/float64, inside `tf.function` with
    unknown batch, height and width, under `jit_compile=True`, and converts to
    TFLite with builtin operators only.

    Args:
        x: float tensor, [B, H, W, C].
        direction: one of "top", "left", "bottom", "right".

    Returns:
        A tensor like `x`, [B, H, W, C].

    Raises:
        ValueError: unknown `direction`, or `x` is not 4-D.
        TypeError: `x` is not a floating-point tensor.
    """
    if not isinstance(direction, str) or direction not in _DIRECTIONS:
        raise ValueError(
            f"corner_pool: `direction` must be one of {list(DIRECTIONS)}, got {direction!r}."
        )
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise ValueError(
            "corner_pool: `x` must be a 4-D NHWC tensor [batch, height, width, channels], "
            f"got shape {x.shape}; add or remove axes before pooling."
        )
    if not x.dtype.is_floating:
        raise TypeError(
            f"corner_pool: `x` must be a floating-point tensor, got {x.dtype.name}; "
            "cast it with tf.cast(x, tf.float32)."
        )
    axis, toward_end = _DIRECTIONS[direction]
    return _cumulative_max(x, axis, toward_end)


def _cumulative_max(x: tf.Tensor, axis: int, toward_end: bool) -> tf.Tensor:
    """Cumulative max of a 4-D `x` along `axis` (1 or 2), toward the far end if `toward_end`."""
    n = x.shape[axis]
    if n == 0:
        return tf.identity(x)
    if graph_in_xla_context():
        return _while_scan(x, axis, toward_end)
    if n is not None and n <= _MAX_CHAIN:
        rows = tf.unstack(x, axis=axis)  # n x [B, W, C] or [B, H, C]
        return tf.stack(_chain(rows, toward_end), axis=axis)
    return _chunked_scan(x, axis, toward_end)


def _chunked_scan(x: tf.Tensor, axis: int, toward_end: bool) -> tf.Tensor:
    """The cumulative max by chunks of `_CHUNK` rows, for long or unknown lengths.

    A chain of maxima runs across the chunks' rows (row k of every chunk at
    once: `_CHUNK` ops on tensors 1/_CHUNK of the input), the chunk maxima are
    scanned across chunks, and every row takes the max with the carry from the
    chunks beyond. Costs one more pass than a single chain over all rows.
    """
    shape = tf.unstack(tf.shape(x))
    static = x.shape.as_list()
    dims = [s if s is not None else d for s, d in zip(static, shape, strict=True)]
    n = dims[axis]
    num_chunks = -(-n // _CHUNK)  # ceil; a Python int when `n` is static
    padding = [[0, 0]] * 4
    padding[axis] = [0, num_chunks * _CHUNK - n]
    # -inf rows beyond the end never win a max; skipped when _CHUNK divides n.
    padded = x if isinstance(n, int) and n % _CHUNK == 0 else _pad(x, padding)
    chunked_shape = dims[:axis] + [num_chunks, _CHUNK] + dims[axis + 1 :]
    chunked = tf.reshape(padded, chunked_shape)  # e.g. top: [B, H/32, 32, W, C]
    rows = tf.unstack(chunked, num=_CHUNK, axis=axis + 1)  # 32 x [B, H/32, W, C]
    partial = _chain(rows, toward_end)  # within-chunk cumulative maxima
    chunk_max = partial[0] if toward_end else partial[-1]  # [B, H/32, W, C]
    carry = _exclusive_chunk_scan(chunk_max, axis, toward_end)  # max of the chunks beyond
    # carry first: on ties the farther chunk keeps the gradient (official rule).
    rows = [tf.maximum(carry, row) for row in partial]
    out = tf.reshape(tf.stack(rows, axis=axis + 1), tf.shape(padded))
    if padded is x:
        return out
    begin = [0, 0, 0, 0]
    size = [-1, -1, -1, -1]
    size[axis] = n
    return tf.slice(out, begin, size)


def _chain(rows: list[tf.Tensor], toward_end: bool) -> list[tf.Tensor]:
    """Running max over a list of equally shaped tensors, from the far end inward.

    The running value is the first argument of `tf.maximum`, whose registered
    gradient sends ties to the first argument (`x >= y`): ties go to the
    farther row, the official rule.
    """
    order = range(len(rows) - 1, -1, -1) if toward_end else range(len(rows))
    out = [None] * len(rows)
    running = None
    for i in order:
        running = rows[i] if running is None else tf.maximum(running, rows[i])
        out[i] = running
    return out


def _exclusive_chunk_scan(chunk_max: tf.Tensor, axis: int, toward_end: bool) -> tf.Tensor:
    """For each chunk, the max over the chunks strictly beyond it (-inf for the last).

    Args:
        chunk_max: [B, M, W, C] (axis 1) or [B, H, M, C] (axis 2), M chunks.
        axis: the chunk axis.
        toward_end: whether "beyond" means larger indices.

    Returns:
        A tensor like `chunk_max`.
    """
    m = chunk_max.shape[axis]
    if m is not None:
        inclusive = tf.stack(_chain(tf.unstack(chunk_max, axis=axis), toward_end), axis=axis)
    else:
        inclusive = _doubling_scan(chunk_max, axis, toward_end)
    return _shift(inclusive, 1 if toward_end else -1, axis, _neg_inf(chunk_max.dtype))


def _doubling_scan(x: tf.Tensor, axis: int, toward_end: bool) -> tf.Tensor:
    """Inclusive cumulative max by log-step doubling, for an axis of unknown length.

    Used on the chunk maxima only (1/_CHUNK of the input). The gradient is
    hand-written: autodiff through a `tf.while_loop` would keep every step's
    tensor and, under XLA, needs a static trip count.
    """
    far = 1 if toward_end else -1

    @tf.custom_gradient
    def scan(x):
        # Keep the tape off the loops: it would otherwise record them and make
        # the loop keep per-step accumulators (which XLA rejects).
        x = tf.stop_gradient(x)
        n = tf.shape(x)[axis]

        def step(shift, y):
            return shift * 2, tf.maximum(_shift(y, far * shift, axis, _neg_inf(y.dtype)), y)

        _, y = tf.while_loop(lambda shift, y: shift < n, step, (tf.constant(1), x))

        def grad(dy):
            # Official rule: i is a "record" when strictly greater than the
            # output beyond it, and a record is the argmax of the windows from
            # it back to (excluding) the previous record on the near side. Its
            # gradient sums dy over those windows: a segmented sum with
            # c_i = (1 - record_i) * (c_{i-1} + dy_i), computed as a doubling
            # over (passes-through, partial sum) pairs from the near end out.
            record = x > _shift(y, far, axis, _neg_inf(y.dtype))  # [B, M, W, C]
            zero = tf.zeros([], dy.dtype)
            passes = tf.logical_not(record)
            carried = tf.where(passes, dy, zero)

            def seg_step(shift, passes, carried):
                prev_passes = _shift(passes, -far * shift, axis, tf.constant(True))
                prev_carried = _shift(carried, -far * shift, axis, zero)
                carried = carried + tf.where(passes, prev_carried, zero)
                return shift * 2, tf.logical_and(passes, prev_passes), carried

            _, _, carried = tf.while_loop(
                lambda shift, p, c: shift < n, seg_step, (tf.constant(1), passes, carried)
            )
            incoming = _shift(carried, -far, axis, zero)  # c_{i-1}
            return tf.where(record, dy + incoming, zero)

        return y, grad

    return scan(x)


def _while_scan(x: tf.Tensor, axis: int, toward_end: bool) -> tf.Tensor:
    """The cumulative max as a `tf.while_loop` over rows, with a hand-written backward.

    Used under XLA, where it runs faster than the chunked chains and compiles
    in about a second instead of several per pool. The scanned axis is moved
    to the front so that each row is contiguous.
    """
    perm = [axis] + [i for i in range(4) if i != axis]
    inverse = [perm.index(i) for i in range(4)]

    @tf.custom_gradient
    def scan(front):
        front = tf.stop_gradient(front)  # [N, B, W, C] or [N, B, H, C]
        n = tf.shape(front)[0]
        neg_inf = tf.fill(tf.shape(front)[1:], _neg_inf(front.dtype))

        def forward(k, running, rows):
            i = n - 1 - k if toward_end else k
            running = tf.maximum(running, front[i])
            return k + 1, running, rows.write(i, running)

        rows = tf.TensorArray(front.dtype, size=n, element_shape=front.shape[1:])
        _, _, rows = tf.while_loop(
            lambda k, *_: k < n, forward, (0, neg_inf, rows), maximum_iterations=n
        )
        y = rows.stack()  # [N, ...]

        def grad(dy):
            # A row is a record when strictly greater than the output beyond it
            # (official rule). The upstream gradient runs from the near end
            # outward and is dropped on the next record.
            if toward_end:
                beyond = tf.concat([y[1:], neg_inf[None]], 0)
            else:
                beyond = tf.concat([neg_inf[None], y[:-1]], 0)
            record = front > beyond  # [N, ...]
            zero = tf.zeros([], dy.dtype)

            def backward(k, carried, rows):
                i = k if toward_end else n - 1 - k
                total = dy[i] + carried
                rows = rows.write(i, tf.where(record[i], total, zero))
                return k + 1, tf.where(record[i], zero, total), rows

            rows = tf.TensorArray(dy.dtype, size=n, element_shape=front.shape[1:])
            _, _, rows = tf.while_loop(
                lambda k, *_: k < n,
                backward,
                (0, tf.zeros_like(neg_inf), rows),
                maximum_iterations=n,
            )
            return rows.stack()

        return y, grad

    return tf.transpose(scan(tf.transpose(x, perm)), inverse)


def _shift(y: tf.Tensor, offset, axis: int, fill) -> tf.Tensor:
    """`out[..., i, ...] = y[..., i + offset, ...]` along `axis`, `fill` outside the range.

    A gather rather than a slice: `offset` may be a `tf.while_loop` variable
    and XLA needs static slice sizes. Only used on the chunk maxima (small).
    """
    n = tf.shape(y)[axis]
    source = tf.range(n) + offset  # [N]
    valid = tf.logical_and(source >= 0, source < n)
    gathered = tf.gather(y, tf.clip_by_value(source, 0, tf.maximum(n - 1, 0)), axis=axis)
    broadcast = [1, 1, 1, 1]
    broadcast[axis] = -1
    return tf.where(tf.reshape(valid, broadcast), gathered, tf.cast(fill, y.dtype))


def _pad(x: tf.Tensor, padding) -> tf.Tensor:
    return tf.pad(x, padding, constant_values=_neg_inf(x.dtype))


def _neg_inf(dtype: tf.DType) -> tf.Tensor:
    return tf.constant(float("-inf"), dtype)
