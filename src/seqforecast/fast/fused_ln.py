"""The layer-normalised RNN layer as one autograd node per sequence, with hand-written BPTT.

The reference :class:`~seqforecast.models.norm_rnn.LayerNormRNN` loop records about ten
small ops per time step in the autograd graph. :class:`LayerNormRNNFunction` follows
:mod:`seqforecast.fast.functions`: the input projection of the whole sequence is one
matmul, only the recurrence is stepped (autograd off, in place into preallocated
buffers), and backward-through-time computes the pre-activation gradients in one loop,
after which weight, bias and input gradients are whole-sequence matmuls and sums.

Each time loop runs either as torch ops (``native_layer_norm`` and its backward, the
kernels ``nn.LayerNorm`` itself runs; any device) or, when
:func:`~seqforecast.fast.jit.use_numba` says so and the tensors are on the CPU, as one
compiled numba call (with :func:`~seqforecast.fast.kernels.tanh`, written out so that
the loop vectorises). The two give the same results within float rounding. Under autocast
(CPU or CUDA) the Function computes in float32, as those of :mod:`seqforecast.fast.functions`.
:class:`FusedLayerNormRNN` is the layer that runs it, made from a plain
:class:`~seqforecast.models.norm_rnn.LayerNormRNN` by ``from_plain``.

Per step, with ``z_t = x_t W_ih^T + b + h_{t-1} W_hh^T`` (``[B, H]``)::

    n_t = (z_t - mean(z_t)) * rstd_t,  rstd_t = 1 / sqrt(var(z_t) + eps)   (over the H units)
    h_t = tanh(gamma * n_t + beta)

and backward, for ``g_t = dL/dh_t`` (from above plus the carry from step ``t + 1``)::

    a_t = g_t * (1 - h_t^2),  d_t = gamma * a_t
    dz_t = rstd_t * (d_t - mean(d_t) - n_t * mean(d_t * n_t)),  carry dz_t W_hh to g_{t-1}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.amp import custom_bwd, custom_fwd
from torch.autograd.function import once_differentiable

from seqforecast.fast.functions import FLOAT32_BWD, FLOAT32_FWD, dense_copy, input_projection
from seqforecast.fast.fused import take_over
from seqforecast.fast.jit import as_numpy, compiled_loops, lazy_njit
from seqforecast.fast.kernels import tanh
from seqforecast.models.norm_rnn import LayerNormRNN


@lazy_njit
def _forward_loop(z, w_hh_t, gamma, beta, eps, h, mean, rstd):
    """Numba forward recurrence, in place.

    ``z [T, B, H]``: ``x W_ih^T + b`` on entry, the pre-normalisation ``z_t`` on exit;
    writes ``h [T, B, H]``, ``mean [T, B]``, ``rstd [T, B]``. ``w_hh_t [H, H]`` is
    ``W_hh^T`` (contiguous, so the inner loop is a vectorisable row update); ``gamma``,
    ``beta [H]``.
    """
    steps, batch, hidden = z.shape
    for t in range(steps):
        for b in range(batch):
            z_row = z[t, b]
            if t > 0:
                for j in range(hidden):  # z_t += h_{t-1} W_hh^T, one row of W_hh^T at a time
                    h_j = h[t - 1, b, j]
                    for i in range(hidden):
                        z_row[i] += h_j * w_hh_t[j, i]
            m = 0.0
            for i in range(hidden):
                m += z_row[i]
            m /= hidden
            v = 0.0
            for i in range(hidden):
                d = z_row[i] - m
                v += d * d
            r = 1.0 / np.sqrt(v / hidden + eps)
            mean[t, b] = m
            rstd[t, b] = r
            for i in range(hidden):
                h[t, b, i] = (z_row[i] - m) * r * gamma[i] + beta[i]  # rounded to the input dtype
        h_t = h[t].reshape(batch * hidden)  # the whole step at once, so the loop is long
        for i in range(batch * hidden):  # h_t = tanh(h_t), vectorised (see kernels.tanh)
            h_t[i] = tanh(np.float64(h_t[i]))


@lazy_njit
def _backward_loop(g, h, z, mean, rstd, w_hh, gamma, d_gamma, d_beta):
    """Numba BPTT, in place.

    ``g [T, B, H]``: ``dL/dh_t`` from above on entry, ``dL/dz_t`` on exit; ``h``, ``z``
    ``[T, B, H]``, ``mean``, ``rstd [T, B]`` as saved by the forward; writes the
    LayerNorm affine gradients ``d_gamma``, ``d_beta [H]``.
    """
    steps, batch, hidden = g.shape
    dg = np.zeros(hidden)  # float64 accumulators, whatever the input dtype
    db = np.zeros(hidden)
    n = np.empty(hidden)
    d = np.empty(hidden)
    for t in range(steps - 1, -1, -1):
        for b in range(batch):
            m, r = mean[t, b], rstd[t, b]
            s1 = 0.0
            s2 = 0.0
            for i in range(hidden):
                n_i = (z[t, b, i] - m) * r
                a = g[t, b, i] * (1.0 - h[t, b, i] * h[t, b, i])  # through tanh
                dg[i] += a * n_i
                db[i] += a
                d[i] = a * gamma[i]
                n[i] = n_i
                s1 += d[i]
                s2 += d[i] * n_i
            s1 /= hidden
            s2 /= hidden
            g_row = g[t, b]
            for i in range(hidden):
                g_row[i] = r * (d[i] - s1 - n[i] * s2)  # through LayerNorm
            if t > 0:
                carry = g[t - 1, b]
                for i in range(hidden):  # g_{t-1} += dz_t W_hh, one row of W_hh at a time
                    g_i = g_row[i]
                    for j in range(hidden):
                        carry[j] += g_i * w_hh[i, j]
    d_gamma[:] = dg
    d_beta[:] = db


def _forward_torch(
    z: Tensor, w_hh: Tensor, gamma: Tensor, beta: Tensor, eps: float, h: Tensor
) -> tuple[Tensor, Tensor]:
    """Torch forward recurrence into ``z`` and ``h [T, B, H]``; returns ``mean, rstd [T, B, 1]``."""
    hidden = z.shape[-1]
    w_hh_t = w_hh.t()
    means, rstds = [], []
    prev = None
    for z_t, h_t in zip(z.unbind(0), h.unbind(0), strict=True):  # [B, H] views
        if prev is not None:
            z_t.addmm_(prev, w_hh_t)
        y, mu, rs = torch.native_layer_norm(z_t, [hidden], gamma, beta, eps)  # [B, H], [B, 1] x2
        prev = torch.tanh(y, out=h_t)
        means.append(mu)
        rstds.append(rs)
    return torch.stack(means), torch.stack(rstds)


def _backward_torch(
    g: Tensor, h: Tensor, z: Tensor, mean: Tensor, rstd: Tensor, w_hh: Tensor, gamma: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Torch BPTT: ``g [T, B, H]`` (``dL/dh`` from above) -> ``dz [T, B, H]``, ``dgamma, dbeta``.

    ``g`` is overwritten (it ends holding the gradients below ``tanh``).
    """
    hidden = g.shape[-1]
    deriv = 1 - h * h  # tanh' at every step: [T, B, H]
    gs, ds, zs = g.unbind(0), deriv.unbind(0), z.unbind(0)
    means, rstds = mean.unbind(0), rstd.unbind(0)
    dz = []
    for t in range(g.shape[0] - 1, -1, -1):
        a = gs[t].mul_(ds[t])  # [B, H]: g now holds the gradient below tanh
        d, _, _ = torch.ops.aten.native_layer_norm_backward(
            a, zs[t], [hidden], means[t], rstds[t], gamma, None, [True, False, False]
        )
        if t > 0:
            gs[t - 1].addmm_(d, w_hh)
        dz.append(d)
    n = (z - mean) * rstd  # normalised pre-activations: [T, B, H]
    return torch.stack(dz[::-1]), (g * n).sum((0, 1)), g.sum((0, 1))


class LayerNormRNNFunction(torch.autograd.Function):
    """``h_t = tanh(LN(x_t W_ih^T + b + h_{t-1} W_hh^T))``, ``h_{-1} = 0``.

    Inputs ``x [B, T, F]``, ``w_ih [H, F]``, ``w_hh [H, H]``, ``b [H]``, the LayerNorm
    affine ``gamma``, ``beta [H]`` and its ``eps``. Output ``h [B, T, H]`` (every step's state).
    """

    # Unlike the RNN/GRU Functions this one also runs on CUDA (its torch loops), so it
    # computes in float32 under CUDA autocast too.
    @staticmethod
    @custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    @FLOAT32_FWD
    def forward(
        ctx: Any,
        x: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b: Tensor,
        gamma: Tensor,
        beta: Tensor,
        eps: float,
    ) -> Tensor:
        x_tm, z = input_projection(x, w_ih, b)  # [T*B, F], [T, B, H]
        steps, batch, _ = z.shape
        h = torch.empty_like(z)  # [T, B, H]
        if compiled_loops(z, batch):
            mean = z.new_empty(steps, batch, 1)
            rstd = torch.empty_like(mean)
            z_, w_hh_t, gamma_, beta_, h_ = map(as_numpy, (z, w_hh.t(), gamma, beta, h))
            mean_, rstd_ = as_numpy(mean.view(steps, batch)), as_numpy(rstd.view(steps, batch))
            _forward_loop(z_, w_hh_t, gamma_, beta_, eps, h_, mean_, rstd_)
        else:
            mean, rstd = _forward_torch(z, w_hh, gamma, beta, eps, h)
        ctx.save_for_backward(x_tm, w_ih, w_hh, gamma, z, mean, rstd, h)
        return dense_copy(h.transpose(0, 1))  # [T, B, H] -> [B, T, H]

    @staticmethod
    @custom_bwd(device_type="cuda")
    @FLOAT32_BWD
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x_tm, w_ih, w_hh, gamma, z, mean, rstd, h = ctx.saved_tensors
        steps, batch, hidden = h.shape
        g = dense_copy(grad_out.transpose(0, 1))  # dL/dh_t from above: [T, B, H]
        if compiled_loops(g, batch):
            d_gamma, d_beta = gamma.new_empty(hidden), gamma.new_empty(hidden)
            stats = (mean.view(steps, batch), rstd.view(steps, batch))
            arrays = map(as_numpy, (g, h, z, *stats, w_hh, gamma, d_gamma, d_beta))
            _backward_loop(*arrays)
            dz = g  # the loop leaves dL/dz_t in g
        else:
            dz, d_gamma, d_beta = _backward_torch(g, h, z, mean, rstd, w_hh, gamma)
        dz2 = dz.view(steps * batch, hidden)  # [T*B, H]
        h_prev = torch.cat((h.new_zeros(1, batch, hidden), h[:-1])).view(steps * batch, hidden)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (dz2 @ w_ih).view(steps, batch, -1).transpose(0, 1)  # [B, T, F]
        return grad_x, dz2.t() @ x_tm, dz2.t() @ h_prev, dz2.sum(0), d_gamma, d_beta, None


class FusedLayerNormRNN(LayerNormRNN):
    """:class:`~seqforecast.models.norm_rnn.LayerNormRNN` computed by :class:`LayerNormRNNFunction`.

    Same parameters and names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
    ``norm.weight``, ``norm.bias``); ``x [B, T, F] -> (out [B, T, H], h_T [1, B, H])``.
    """

    @classmethod
    def from_plain(cls, layer: LayerNormRNN) -> FusedLayerNormRNN:
        """The fused version of ``layer``, on its own parameters and LayerNorm."""
        return take_over(
            layer, lambda: cls(layer.input_size, layer.hidden_size, eps=layer.norm.eps)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = LayerNormRNNFunction.apply(
            x, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0,
            self.norm.weight, self.norm.bias, self.norm.eps,
        )  # fmt: skip
        return h, h[:, -1].unsqueeze(0)  # [B, T, H], [1, B, H]
