"""Compiled time loops of the fused tanh-RNN and GRU layers (numba, optional).

Only the sequential parts of :mod:`seqforecast.fast.fused` live here: the forward
recurrence and the backward-through-time loop that yields pre-activation gradients.
Input projections and weight/input gradients stay whole-sequence matmuls in torch.
Every kernel works in place on C-contiguous, time-major numpy arrays that share memory
with the caller's tensors and loops by hand: each step's recurrent product is one
:func:`matmul_add` (innermost loop over a contiguous axis, which LLVM vectorises without
fastmath); the elementwise parts loop over the step's ``[B, H]`` block. Nothing is
allocated per step (the GRU forward allocates one ``[B, 3H]`` scratch block per call).
Constants are cast to the arrays' dtype, so float32 inputs are computed in float32 and
float64 in float64, as in torch; only :func:`tanh` works in float64 (see there why).

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


@lazy_njit
def matmul_add(out: np.ndarray, a: np.ndarray, w: np.ndarray) -> None:
    """``out += a @ w`` in place, for ``out [B, N]``, ``a [B, K]``, ``w [K, N]``.

    Each output adds ``a[b, k] * w[k, n]`` in order of ``k``. Rows go four at a time,
    so every element of ``w`` loaded serves four rows; the innermost loop runs over the
    contiguous ``n`` (LLVM vectorises it). With 20-unit rows a loop per row spends more
    time on loop overhead than on arithmetic; blocking rows cut that.
    """
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
def tanh_rnn_forward(h: np.ndarray, w_hh_t: np.ndarray) -> None:
    """``h_t = tanh(h_t + h_{t-1} W_hh^T)`` in place, ``h_{-1} = 0``.

    ``h [T, B, H]`` holds ``x_t W_ih^T + b_ih + b_hh`` on entry and the states on exit;
    ``w_hh_t [H, H]`` is ``W_hh`` transposed (row ``k`` = weights from input unit ``k``).
    """
    steps, batch, hidden = h.shape
    flat = h.reshape(steps, batch * hidden)  # one step's [B, H] as one contiguous row
    for t in range(steps):
        if t > 0:
            matmul_add(h[t], h[t - 1], w_hh_t)  # [B, H] += [B, H] @ [H, H]
        for i in range(batch * hidden):
            flat[t, i] = tanh(flat[t, i])


@lazy_njit
def tanh_rnn_backward(g: np.ndarray, h: np.ndarray, w_hh: np.ndarray) -> None:
    """Backward through time in place: ``g [T, B, H]`` from dL/dh_t to dL/d(pre-activation).

    ``h [T, B, H]`` are the forward states, ``w_hh [H, H]`` the recurrent weights.
    ``d_t = (g_t + d_{t+1} W_hh) ⊙ (1 - h_t²)``.
    """
    steps, batch, hidden = h.shape
    one = h.dtype.type(1)
    g_flat, h_flat = g.reshape(steps, batch * hidden), h.reshape(steps, batch * hidden)
    for t in range(steps - 1, -1, -1):
        for i in range(batch * hidden):
            g_flat[t, i] *= one - h_flat[t, i] * h_flat[t, i]
        if t > 0:
            matmul_add(g[t - 1], g[t], w_hh)  # [B, H] += [B, H] @ [H, H]


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
