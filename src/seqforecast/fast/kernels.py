"""Compiled time loops of the fused tanh-RNN and GRU layers (numba, optional).

Only the loops over time of :mod:`seqforecast.fast.functions` live here. Every kernel works on
C-contiguous numpy arrays that share memory with the caller's tensors and loops by hand,
so that LLVM vectorises the innermost loop over a contiguous axis without fastmath.

- tanh RNN: unit-major arrays ``[H, T, B]``. The forward also does the input projection
  and the biases (one kernel call per layer); each step's products are
  :func:`step_matmul_add`, whose inner loop runs over the batch.
- GRU: time-major arrays ``[T, B, *]``; each step's recurrent product is one
  :func:`matmul_add`, inner loop over the units.

Nothing is allocated per step (one ``[B, *]`` scratch block per call at most). Constants
are cast to the arrays' dtype, so float32 inputs are computed in float32 and float64 in
float64, as in torch; only :func:`tanh` works in float64 (see there why); the float32
tanh-RNN loops use :func:`tanh32` instead.

Each function is compiled on its first call (:func:`seqforecast.fast.jit.lazy_njit`),
once per dtype, and cached on disk. ``H`` is the hidden width, ``T`` steps, ``B`` rows.
"""

from __future__ import annotations

import numpy as np

from seqforecast.fast.jit import lazy_njit


@lazy_njit
def tanh(x: float) -> float:
    """``tanh(x)`` in float64 from arithmetic alone, so that loops calling it vectorise.

    libm's ``tanh`` is a scalar call that keeps the loops around it from vectorising, which
    would leave the compiled tanh-RNN slower than torch's vectorised loop. Here:
    ``y = x / 8`` (clamped where ``tanh`` is ±1 in float64), Lambert's continued fraction
    ``tanh y = y / (1 + y²/(3 + y²/(5 + … + y²/17)))`` evaluated as one ratio ``n / d``,
    then three doublings ``tanh 2u = 2 tanh u / (1 + tanh² u)`` on the ratio, one final
    division. Accuracy (checked by the tests against libm): float32 results correctly
    rounded, float64 within a few ulps; ±0, ±inf and NaN map as in libm.
    """
    y = x * 0.125
    if x > 20.0:  # tanh(x) == 1.0 in float64 beyond 19.1
        y = 2.5
    elif x < -20.0:
        y = -2.5
    s = y * y
    p, q = 17.0, 1.0  # the fraction's tail, as p / q
    for i in range(7, -1, -1):
        p, q = (2 * i + 1) * p + s * q, p
    n, d = y * q, p  # tanh(y) = n / d
    for _ in range(3):
        n, d = 2.0 * n * d, d * d + n * n
    return n / d


# float32 constants, so that float32 arithmetic stays float32 in :func:`tanh32`.
_QUARTER, _TWO, _CLAMP = np.float32(0.25), np.float32(2), np.float32(9.1)
_ODD = (np.float32(7), np.float32(5), np.float32(3), np.float32(1))


@lazy_njit
def tanh32(x: float) -> float:
    """``tanh(x)`` in float32 arithmetic, for float32 loops (eight lanes per vector, not four).

    As :func:`tanh` with fewer terms: ``y = x / 4`` (clamped at ±9.1, beyond which float32
    ``tanh`` is ±1), the continued fraction to ``y²/9`` as one ratio, two doublings, one
    division. Accuracy (checked by the tests against libm): within 4 ulp of the exact
    value; ±0, ±inf and NaN map as in libm.
    """
    y = x * _QUARTER
    if x > _CLAMP:
        y = _CLAMP * _QUARTER
    elif x < -_CLAMP:
        y = -_CLAMP * _QUARTER
    s = y * y
    p, q = np.float32(9), np.float32(1)  # the fraction's tail, as p / q
    for c in _ODD:
        p, q = c * p + s * q, p
    n, d = y * q, p  # tanh(y) = n / d
    for _ in range(2):
        n, d = _TWO * n * d, d * d + n * n
    return n / d


@lazy_njit
def matmul_add(out: np.ndarray, a: np.ndarray, w: np.ndarray) -> None:
    """``out += a @ w`` in place, for ``out [B, N]``, ``a [B, K]``, ``w [K, N]``.

    Each output adds ``a[b, k] * w[k, n]`` in order of ``k``. Rows go four at a time,
    so every element of ``w`` loaded serves four rows; the innermost loop runs over the
    contiguous ``n`` (LLVM vectorises it). With 20-unit rows a loop per row spends more
    time on loop overhead than on arithmetic; blocking rows cut that.
    """
    # duplicates: intentional unrolling (rows four at a time) for the time-major GRU layout;
    # step_matmul_add is the unit-major tanh-RNN's, blocked over k too: see there.
    rows, inner = a.shape
    cols = w.shape[1]
    b = 0
    while b + 4 <= rows:
        for k in range(inner):
            a0, a1, a2, a3 = a[b, k], a[b + 1, k], a[b + 2, k], a[b + 3, k]
            for n in range(cols):
                w_kn = w[k, n]
                out[b, n] += a0 * w_kn
                out[b + 1, n] += a1 * w_kn
                out[b + 2, n] += a2 * w_kn
                out[b + 3, n] += a3 * w_kn
        b += 4
    for row in range(b, rows):  # the last rows % 4
        for k in range(inner):
            a_rk = a[row, k]
            for n in range(cols):
                out[row, n] += a_rk * w[k, n]


@lazy_njit
def step_matmul_add(out: np.ndarray, a: np.ndarray, x: np.ndarray, j: int) -> None:
    """``out += a @ x[:, j]`` in place, for ``out [N, B]``, ``a [N, K]``, ``x [K, T, B]``.

    For the unit-major layout ``[units, time, batch]``: the innermost loop runs over the
    contiguous batch axis, whose width (the chapter's 32) fills whole SIMD vectors, where a
    20-unit row would leave a scalar tail. Rows and ``k`` go four at a time, so each load
    of ``x`` serves four rows and each output is loaded and stored once per four ``k``.
    ``out`` must not share memory with ``x``: LLVM vectorises the loop behind a runtime
    overlap check, which one strided array with both operands in it would fail.
    """
    # duplicates: intentional unrolling (rows and k four at a time) for the unit-major
    # tanh-RNN layout; matmul_add is the time-major GRU's: see there.
    rows, inner = a.shape
    cols = out.shape[1]
    inner4 = inner - inner % 4
    r = 0
    while r + 4 <= rows:
        for k in range(0, inner4, 4):
            a00, a01, a02, a03 = a[r, k], a[r, k + 1], a[r, k + 2], a[r, k + 3]
            a10, a11, a12, a13 = a[r + 1, k], a[r + 1, k + 1], a[r + 1, k + 2], a[r + 1, k + 3]
            a20, a21, a22, a23 = a[r + 2, k], a[r + 2, k + 1], a[r + 2, k + 2], a[r + 2, k + 3]
            a30, a31, a32, a33 = a[r + 3, k], a[r + 3, k + 1], a[r + 3, k + 2], a[r + 3, k + 3]
            for b in range(cols):
                x0, x1, x2, x3 = x[k, j, b], x[k + 1, j, b], x[k + 2, j, b], x[k + 3, j, b]
                out[r, b] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                out[r + 1, b] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
                out[r + 2, b] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                out[r + 3, b] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
        for k in range(inner4, inner):
            a0, a1, a2, a3 = a[r, k], a[r + 1, k], a[r + 2, k], a[r + 3, k]
            for b in range(cols):
                x_k = x[k, j, b]
                out[r, b] += a0 * x_k
                out[r + 1, b] += a1 * x_k
                out[r + 2, b] += a2 * x_k
                out[r + 3, b] += a3 * x_k
        r += 4
    for row in range(r, rows):  # the last rows % 4
        for k in range(inner):
            a_k = a[row, k]
            for b in range(cols):
                out[row, b] += a_k * x[k, j, b]


@lazy_njit
def tanh_rnn_forward(
    x: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    h: np.ndarray,
) -> None:
    """``h_t = tanh(b_ih + b_hh + W_ih x_t + W_hh h_{t-1})``, ``h_{-1} = 0``, into ``h``.

    Unit-major: ``x [F, T, B]``, ``h [H, T, B]`` (written); ``w_ih [H, F]``, ``w_hh [H, H]``,
    ``b_ih, b_hh [H]``. float32 uses :func:`tanh32`, float64 :func:`tanh`.
    """
    hidden, steps, batch = h.shape
    z = np.empty((hidden, batch), dtype=h.dtype)  # one step's pre-activation: [H, B]
    for t in range(steps):
        for n in range(hidden):
            bias = b_ih[n] + b_hh[n]
            for b in range(batch):
                z[n, b] = bias
        step_matmul_add(z, w_ih, x, t)  # [H, B] += [H, F] @ [F, B]
        if t > 0:
            step_matmul_add(z, w_hh, h, t - 1)  # [H, B] += [H, H] @ [H, B]
        for n in range(hidden):
            for b in range(batch):
                if h.itemsize == 4:  # a constant per compiled dtype
                    h[n, t, b] = tanh32(z[n, b])
                else:
                    h[n, t, b] = tanh(z[n, b])


@lazy_njit
def tanh_rnn_backward(g: np.ndarray, h: np.ndarray, w_hh_t: np.ndarray, d: np.ndarray) -> None:
    """Backward through time: ``d_t = (g_t + W_hh^T d_{t+1}) ⊙ (1 - h_t²)`` into ``d``.

    Unit-major ``[H, T, B]``: ``g`` (dL/dh_t from above, read only), ``h`` (the forward
    states), ``d`` (written: the pre-activation gradients); ``w_hh_t [H, H]`` is ``W_hh^T``.
    """
    hidden, steps, batch = h.shape
    one = h.dtype.type(1)
    carry = np.empty((hidden, batch), dtype=h.dtype)  # dL/dh_t: [H, B]
    for t in range(steps - 1, -1, -1):
        for n in range(hidden):
            for b in range(batch):
                carry[n, b] = g[n, t, b]
        if t < steps - 1:
            step_matmul_add(carry, w_hh_t, d, t + 1)  # [H, B] += [H, H] @ [H, B]
        for n in range(hidden):
            for b in range(batch):
                d[n, t, b] = carry[n, b] * (one - h[n, t, b] * h[n, t, b])


@lazy_njit
def gru_forward(
    gi: np.ndarray,
    w_hh_t: np.ndarray,
    b_hh: np.ndarray,
    h: np.ndarray,
    rz: np.ndarray,
    n: np.ndarray,
    ghn: np.ndarray,
) -> None:
    """The ``nn.GRU`` recurrence (gate order r, z, n), ``h_{-1} = 0``; fills the outputs.

    Inputs ``gi [T, B, 3H]`` (``x_t W_ih^T + b_ih``), ``w_hh_t [H, 3H]`` (``W_hh``
    transposed), ``b_hh [3H]``. Outputs ``h [T, B, H]`` (states), ``rz [T, B, 2H]`` (r, z
    gates), ``n [T, B, H]`` (n gate) and ``ghn [T, B, H]`` (``h_{t-1} W_hn^T + b_hn``).
    """
    steps, batch, hidden = h.shape
    h2, h3 = 2 * hidden, 3 * hidden
    one, zero = h.dtype.type(1), h.dtype.type(0)
    gh = np.empty((batch, h3), dtype=h.dtype)  # h_{t-1} W_hh^T + b_hh: [B, 3H]
    for t in range(steps):
        for b in range(batch):
            for i in range(h3):
                gh[b, i] = b_hh[i]
        if t > 0:
            matmul_add(gh, h[t - 1], w_hh_t)  # [B, 3H] += [B, H] @ [H, 3H]
        for b in range(batch):
            for j in range(hidden):
                r = one / (one + np.exp(-(gi[t, b, j] + gh[b, j])))
                z = one / (one + np.exp(-(gi[t, b, hidden + j] + gh[b, hidden + j])))
                n[t, b, j] = tanh(gi[t, b, h2 + j] + r * gh[b, h2 + j])
                n_j = n[t, b, j]  # rounded to the arrays' dtype
                h_prev = h[t - 1, b, j] if t > 0 else zero
                h[t, b, j] = (h_prev - n_j) * z + n_j  # (1 - z) n + z h_{t-1}
                rz[t, b, j] = r
                rz[t, b, hidden + j] = z
                ghn[t, b, j] = gh[b, h2 + j]


@lazy_njit
def gru_backward(
    g: np.ndarray,
    h: np.ndarray,
    rz: np.ndarray,
    n: np.ndarray,
    ghn: np.ndarray,
    w_hh: np.ndarray,
    d_gi: np.ndarray,
    d_gh: np.ndarray,
) -> None:
    """GRU backward through time: pre-activation gradients of both projections.

    ``g [T, B, H]`` holds dL/dh_t from above on entry (the carry is added in place);
    ``h, rz, n, ghn`` are :func:`gru_forward`'s outputs, ``w_hh [3H, H]``. Fills
    ``d_gi [T, B, 3H]`` (gradient of ``x W_ih^T + b_ih``: r, z, n pre-activations) and
    ``d_gh [T, B, 3H]`` (gradient of ``h W_hh^T + b_hh``: r, z, then ``h W_hn^T + b_hn``).
    """
    steps, batch, hidden = h.shape
    h2 = 2 * hidden
    one, zero = h.dtype.type(1), h.dtype.type(0)
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            for j in range(hidden):
                dh = g[t, b, j]
                r = rz[t, b, j]
                z = rz[t, b, hidden + j]
                n_j = n[t, b, j]
                h_prev = h[t - 1, b, j] if t > 0 else zero
                d_n = dh * ((one - z) * (one - n_j * n_j))
                d_z = dh * ((h_prev - n_j) * z * (one - z))
                d_r = d_n * (ghn[t, b, j] * r * (one - r))
                d_gi[t, b, j] = d_r
                d_gi[t, b, hidden + j] = d_z
                d_gi[t, b, h2 + j] = d_n
                d_gh[t, b, j] = d_r
                d_gh[t, b, hidden + j] = d_z
                d_gh[t, b, h2 + j] = d_n * r
        if t > 0:
            for b in range(batch):
                for k in range(hidden):
                    g[t - 1, b, k] += g[t, b, k] * rz[t, b, hidden + k]  # dh_{t-1} through z
            matmul_add(g[t - 1], d_gh[t], w_hh)  # [B, H] += [B, 3H] @ [3H, H]
