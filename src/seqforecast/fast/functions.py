"""The autograd Functions of the fused tanh-RNN and GRU layers, with hand-written BPTT.

Eager ``nn.RNN`` / ``nn.GRU`` on CPU run each time step as several small ops, each
recorded in the autograd graph and replayed one by one in backward. For the chapter's
tiny models (20 units, batch 32, 50 steps) that per-op overhead, not the arithmetic,
sets the speed. Here each layer and sequence is one ``torch.autograd.Function``:

- forward: the input projection of the whole sequence is one matmul (the compiled tanh-RNN
  loop instead adds it per step, next to the recurrent product); the time loop runs in
  place into preallocated buffers, with autograd off;
- backward: the time loop (BPTT) computes the pre-activation gradients only; weight,
  bias and input gradients are then whole-sequence matmuls and sums.

The two time loops of each Function run as one compiled numba call each
(:mod:`seqforecast.fast.kernels`) for float32/float64 CPU tensors when numba is
installed (the ``fast`` extra) and ``SEQFORECAST_NUMBA`` is not ``0``; otherwise as
small in-place torch ops, kept here as the fallback and the readable reference.
Under autocast the Functions compute in float32 (see :data:`FLOAT32_FWD`). The layers
that apply them are in :mod:`seqforecast.fast.fused`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.amp import custom_bwd, custom_fwd
from torch.autograd.function import once_differentiable

from seqforecast.fast import kernels
from seqforecast.fast.jit import as_numpy, compiled_loops

# Under CPU autocast the Functions take float32 inputs and run with autocast off (torch's
# recipe for custom Functions): their in-place loops and compiled kernels need one dtype
# throughout, and a recurrence carried in bfloat16 would drift over the time steps.
FLOAT32_FWD = custom_fwd(device_type="cpu", cast_inputs=torch.float32)
FLOAT32_BWD = custom_bwd(device_type="cpu")


def dense_copy(t: torch.Tensor) -> torch.Tensor:
    """A dense copy that owns its memory (``contiguous()`` may return ``t`` itself)."""
    return t.clone(memory_format=torch.contiguous_format)


def input_projection(x: Tensor, w_ih: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """``x [B, T, F]`` time-major, ``x_tm [T*B, F]``, and its input projection
    ``x W_ih^T + bias``, ``[T, B, G]`` for ``w_ih [G, F]``: one matmul for the sequence."""
    batch, steps, n_in = x.shape
    x_tm = x.transpose(0, 1).reshape(steps * batch, n_in)  # [T*B, F]
    return x_tm, torch.addmm(bias, x_tm, w_ih.t()).view(steps, batch, -1)  # [T, B, G]


class TanhRNNFunction(torch.autograd.Function):
    """``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, ``h_{-1} = 0``.

    Inputs ``x [B, T, F]``, ``w_ih [H, F]``, ``w_hh [H, H]``, ``b_ih [H]``, ``b_hh [H]``.
    Output ``h [B, T, H]`` (every step's state; a strided view, as ``nn.RNN``'s output).

    The compiled loops work unit-major, ``[H, T, B]`` (see :func:`kernels.step_matmul_add`
    why): ``h`` is returned as a permuted view of that buffer, so a fused layer above reads
    it as its unit-major input without a copy, and every whole-sequence gradient is one
    matmul on views. The torch loops work time-major, ``[T, B, H]``.
    """

    @staticmethod
    @FLOAT32_FWD
    def forward(
        ctx: Any, x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
    ) -> Tensor:
        batch, steps, _ = x.shape
        hidden = w_hh.shape[0]
        ctx.unit_major = compiled_loops(x, batch)
        if ctx.unit_major:
            x_u = x.detach().permute(2, 1, 0).contiguous()  # [F, T, B]; a view above a fused layer
            h = x.new_empty(hidden, steps, batch)  # [H, T, B]
            weights = (as_numpy(w) for w in (w_ih, w_hh, b_ih, b_hh))
            kernels.tanh_rnn_forward(x_u.numpy(), *weights, h.numpy())
            ctx.save_for_backward(x_u, w_ih, w_hh, h)
            return h.permute(2, 1, 0)  # [H, T, B] -> [B, T, H]
        x_tm, h = input_projection(x, w_ih, b_ih + b_hh)  # [T*B, F], [T, B, H]
        w_hh_t = w_hh.t()
        hs = h.unbind(0)  # T views [B, H], made once instead of indexing in the loop
        prev = hs[0].tanh_()
        for h_t in hs[1:]:
            prev = h_t.addmm_(prev, w_hh_t).tanh_()  # [B, H]: in place, no allocation
        ctx.save_for_backward(x_tm, w_ih, w_hh, h)
        return dense_copy(h.transpose(0, 1))  # [T, B, H] -> [B, T, H]

    @staticmethod
    @FLOAT32_BWD
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if ctx.unit_major:
            return _tanh_rnn_backward_unit_major(ctx, grad_out)
        x_tm, w_ih, w_hh, h = ctx.saved_tensors
        steps, batch, hidden = h.shape
        g = dense_copy(grad_out.transpose(0, 1))  # dL/dh_t from above: [T, B, H]
        deriv = 1 - h * h  # tanh' for every step: [T, B, H]
        gs, ds = g.unbind(0), deriv.unbind(0)
        nxt = gs[-1].mul_(ds[-1])
        for t in range(steps - 2, -1, -1):
            nxt = gs[t].addmm_(nxt, w_hh).mul_(ds[t])  # pre-activation gradient [B, H]
        g2 = g.view(steps * batch, hidden)  # [T*B, H]
        grad_b = g2.sum(0)  # [H]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (g2 @ w_ih).view(steps, batch, -1).transpose(0, 1)  # [B, T, F]
        # W_hh multiplies h_{t-1}; step 0 sees h_{-1} = 0, so steps 1.. are the whole sum.
        grad_w_hh = g2[batch:].t() @ h[:-1].reshape(-1, hidden)  # [H, H]
        return grad_x, g2.t() @ x_tm, grad_w_hh, grad_b, grad_b


def _tanh_rnn_backward_unit_major(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """:class:`TanhRNNFunction`'s backward after its compiled (unit-major) forward."""
    x_u, w_ih, w_hh, h = ctx.saved_tensors
    hidden, steps, batch = h.shape
    g = as_numpy(grad_out.permute(2, 1, 0))  # [H, T, B]; read only, so a view may do
    d = torch.empty_like(h)  # pre-activation gradients: [H, T, B]
    kernels.tanh_rnn_backward(g, h.numpy(), as_numpy(w_hh.t()), d.numpy())
    d2 = d.view(hidden, steps * batch)  # [H, T*B]
    grad_b = d2.sum(1)  # [H]
    grad_x = None
    if ctx.needs_input_grad[0]:
        grad_x = (w_ih.t() @ d2).view(-1, steps, batch).permute(2, 1, 0)  # [B, T, F]
    # W_hh multiplies h_{t-1}; step 0 sees h_{-1} = 0, so steps 1.. are the whole sum.
    # Slicing time keeps [H, (T-1)*B] a strided view: no copies.
    grad_w_hh = d[:, 1:].reshape(hidden, -1) @ h[:, :-1].reshape(hidden, -1).t()  # [H, H]
    grad_w_ih = d2 @ x_u.view(-1, steps * batch).t()  # [H, F]
    return grad_x, grad_w_ih, grad_w_hh, grad_b, grad_b


class GRUFunction(torch.autograd.Function):
    """``nn.GRU`` equations (gate order r, z, n), ``h_{-1} = 0``.

    ``r, z = σ(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z})``,
    ``n = tanh(x W_in^T + b_in + r ⊙ (h W_hn^T + b_hn))``, ``h' = (1 - z) ⊙ n + z ⊙ h``.
    Inputs ``x [B, T, F]``, ``w_ih [3H, F]``, ``w_hh [3H, H]``, ``b_ih, b_hh [3H]``.
    Output ``h [B, T, H]``.
    """

    @staticmethod
    @FLOAT32_FWD
    def forward(
        ctx: Any, x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
    ) -> Tensor:
        x_tm, gi = input_projection(x, w_ih, b_ih)  # [T*B, F], [T, B, 3H]
        steps, batch, hidden = *gi.shape[:2], w_hh.shape[1]
        if compiled_loops(x, batch):
            h, n, ghn = (x.new_empty(steps, batch, hidden) for _ in range(3))  # [T, B, H]
            rz = x.new_empty(steps, batch, 2 * hidden)  # [T, B, 2H]
            kernels.gru_forward(*map(as_numpy, (gi, w_hh.t(), b_hh, h, rz, n, ghn)))
        else:
            h, rz, n, ghn = _gru_loop(gi, w_hh, b_hh)
        ctx.save_for_backward(x_tm, w_ih, w_hh, h, rz, n, ghn)
        return dense_copy(h.transpose(0, 1))  # [B, T, H]

    @staticmethod
    @FLOAT32_BWD
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_tm, w_ih, w_hh, h, rz, n, ghn = ctx.saved_tensors
        steps, batch, hidden = h.shape
        g = dense_copy(grad_out.transpose(0, 1))  # dL/dh_t, BPTT carry added in place
        if compiled_loops(h, batch):
            d_gi, d_gh = (h.new_empty(steps, batch, 3 * hidden) for _ in range(2))
            saved = (as_numpy(t) for t in (h, rz, n, ghn, w_hh))
            kernels.gru_backward(g.numpy(), *saved, d_gi.numpy(), d_gh.numpy())
        else:
            d_gi, d_gh = _gru_bptt_loop(g, h, rz, n, ghn, w_hh)
        d_gi, d_gh = d_gi.view(steps * batch, -1), d_gh.view(steps * batch, -1)  # [T*B, 3H]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (d_gi @ w_ih).view(steps, batch, -1).transpose(0, 1)  # [B, T, F]
        # W_hh multiplies h_{t-1}; step 0 sees h_{-1} = 0, so steps 1.. are the whole sum.
        grad_w_hh = d_gh[batch:].t() @ h[:-1].reshape(-1, hidden)  # [3H, H]
        return grad_x, d_gi.t() @ x_tm, grad_w_hh, d_gi.sum(0), d_gh.sum(0)


def _gru_loop(gi: Tensor, w_hh: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The GRU recurrence as torch ops (reference for :func:`kernels.gru_forward`).

    ``gi [T, B, 3H]`` (``x W_ih^T + b_ih``), ``w_hh [3H, H]``, ``b_hh [3H]`` ->
    ``h [T, B, H]``, ``rz [T, B, 2H]`` (r, z gates), ``n [T, B, H]``, ``ghn [T, B, H]``
    (``h_{t-1} W_hn^T + b_hn``).
    """
    steps, batch, hidden3 = gi.shape
    hidden, h2 = hidden3 // 3, 2 * hidden3 // 3
    rz = (gi[..., :h2] + b_hh[:h2]).contiguous()  # becomes the r, z gates: [T, B, 2H]
    n = dense_copy(gi[..., h2:])  # becomes the n gate: [T, B, H]
    ghn = dense_copy(b_hh[h2:].expand(steps, batch, hidden))  # h W_hn^T + b_hn: [T, B, H]
    w_rz_t, w_n_t = w_hh[:h2].t(), w_hh[h2:].t()
    prev = gi.new_zeros(batch, hidden)
    states = []
    for rz_t, n_t, ghn_t in zip(rz.unbind(0), n.unbind(0), ghn.unbind(0), strict=True):
        # every op writes a contiguous [B, *] buffer in place
        r_z = rz_t.addmm_(prev, w_rz_t).sigmoid_()  # [B, 2H]
        n_t.addcmul_(r_z[:, :hidden], ghn_t.addmm_(prev, w_n_t)).tanh_()  # [B, H]
        prev = (prev - n_t).mul_(r_z[:, hidden:]).add_(n_t)  # (1 - z) n + z h_{t-1}
        states.append(prev)
    return torch.stack(states), rz, n, ghn  # h: [T, B, H]


def _gru_bptt_loop(
    g: Tensor, h: Tensor, rz: Tensor, n: Tensor, ghn: Tensor, w_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """GRU backward through time as torch ops (reference for :func:`kernels.gru_backward`).

    ``g [T, B, H]`` (dL/dh_t; the carry is added in place), ``h [T, B, H]`` (states),
    :func:`_gru_loop`'s ``rz, n, ghn``, ``w_hh [3H, H]`` ->
    ``d_gi [T, B, 3H]`` (r, z, n pre-activations) and ``d_gh [T, B, 3H]`` (r, z pre-activations
    and ``h W_hn^T + b_hn``).
    """
    steps, batch, hidden = g.shape
    r, z = rz[..., :hidden], rz[..., hidden:]  # [T, B, H] each
    h_prev = torch.cat((h.new_zeros(1, batch, hidden), h[:-1]))  # [T, B, H]
    # Factors that do not depend on the incoming gradient, [T, B, 2, H]:
    # dh -> (n, z) pre-activations, and n pre-activation -> (r pre-activation, h W_hn^T).
    to_nz = torch.stack(((1 - z) * (1 - n * n), (h_prev - n) * z * (1 - z)), dim=2)
    n_to_rg = torch.stack((ghn * r * (1 - r), r), dim=2)
    w_rg = torch.cat((w_hh[:hidden], w_hh[2 * hidden :]))  # rows of W_hr and W_hn: [2H, H]
    w_z = w_hh[hidden : 2 * hidden]  # [H, H]
    d_nz, d_rg = [], []
    gs, zs = g.unbind(0), z.unbind(0)  # T views [B, H]
    gs3 = g.unsqueeze(2).unbind(0)  # the same, as [B, 1, H]
    to_nz, n_to_rg = to_nz.unbind(0), n_to_rg.unbind(0)
    for t in range(steps - 1, -1, -1):
        nz = gs3[t] * to_nz[t]  # [B, 2, H]: d n_pre, d z_pre
        rg = nz[:, :1] * n_to_rg[t]  # [B, 2, H]: d r_pre, d (h W_hn^T + b_hn)
        if t > 0:
            carry = gs[t - 1].addcmul_(gs[t], zs[t])
            carry.addmm_(rg.view(batch, -1), w_rg).addmm_(nz[:, 1], w_z)
        d_nz.append(nz)
        d_rg.append(rg)
    nz, rg = torch.stack(d_nz[::-1]), torch.stack(d_rg[::-1])  # [T, B, 2, H]
    d_gi = torch.cat((rg[:, :, 0], nz[:, :, 1], nz[:, :, 0]), -1)  # [T, B, 3H]
    d_gh = torch.cat((rg[:, :, 0], nz[:, :, 1], rg[:, :, 1]), -1)  # [T, B, 3H]
    return d_gi, d_gh
