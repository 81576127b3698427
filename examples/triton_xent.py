"""A Triton softmax cross-entropy kernel, judged by xentconf as a callable target.

One program per row: a first pass over the row keeps an online maximum and the sum of
exponentials (rescaled whenever the maximum grows), the loss is ``logsumexp − x_label``,
and a second pass writes the logits gradient ``softmax − onehot``. It accumulates in
float32 (float64 for float64 logits) and follows the signature of
``tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features, labels) -> (loss, backprop)``
on torch tensors. Without a GPU, Triton's interpreter runs it on the CPU::

    TRITON_INTERPRET=1 xentconf run --target triton_xent:sparse_xent \\
        --api raw_sparse --array torch           # examples/ on sys.path (PYTHONPATH)

and with one, ``--device cuda`` compiles it for the GPU.
"""

import os

import torch

if not torch.cuda.is_available():  # no GPU: Triton's interpreter runs the kernel on the CPU
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402


@triton.jit
def _xent_rows(x_ptr, labels_ptr, loss_ptr, grad_ptr, C, stride,
               BLOCK: tl.constexpr, ACC: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row * stride
    g_row = grad_ptr + row * stride
    label = tl.load(labels_ptr + row).to(tl.int64)
    m = tl.full((), float("-inf"), ACC)
    s = tl.zeros((), ACC)
    for start in range(0, C, BLOCK):  # online max and sum
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(x_row + offs, mask=offs < C, other=float("-inf")).to(ACC)
        m_new = tl.maximum(m, tl.max(x, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), 0)
        m = m_new
    lse = m + tl.log(s)
    x_label = tl.load(x_row + label).to(ACC)
    tl.store(loss_ptr + row, lse - x_label)
    for start in range(0, C, BLOCK):  # softmax − onehot
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(x_row + offs, mask=offs < C, other=float("-inf")).to(ACC)
        g = tl.exp(x - lse) - tl.where(offs == label, 1.0, 0.0).to(ACC)
        tl.store(g_row + offs, g, mask=offs < C)


def sparse_xent(features: torch.Tensor, labels: torch.Tensor):
    """(loss[B], backprop[B, C]) of ``features`` [B, C] and integer ``labels`` [B]."""
    x = features.contiguous()
    b, c = x.shape
    loss = torch.empty(b, dtype=x.dtype, device=x.device)
    grad = torch.empty_like(x)
    if b:
        acc = tl.float64 if x.dtype == torch.float64 else tl.float32
        _xent_rows[(b,)](x, labels.contiguous(), loss, grad, c, x.stride(0),
                         BLOCK=min(1024, triton.next_power_of_2(max(c, 1))), ACC=acc)
    return loss, grad
