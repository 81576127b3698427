"""The numba kernel behind :mod:`xentconf.oracle.accel` (imported only where numba is).

Module-level functions, so numba's on-disk cache keeps the compiled code between processes.
Every floating-point operation is written out as in :mod:`xentconf.oracle.vexp` (no
fastmath, no contraction), so the values are those of the numpy path, bit for bit.
"""

from __future__ import annotations

import platform

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from . import dd, vexp
from .vexp import LANES, SEG

clamp, sh, inv_ln2 = vexp.CLAMP, vexp.SH, vexp.INV_LN2
ln2_hi, ln2_lo = vexp.LN2_HI, vexp.LN2_LO
c2, c3, c4, c5, c6, c7 = vexp.C2, vexp.C3, vexp.C4, vexp.C5, vexp.C6, vexp.C7
c8, c9, c10, c11, c12, c13 = vexp.C8, vexp.C9, vexp.C10, vexp.C11, vexp.C12, vexp.C13
a1, a2, a3, a4, a5, a6 = vexp.A1, vexp.A2, vexp.A3, vexp.A4, vexp.A5, vexp.A6
a7, a8, a9, a10, a11 = vexp.A7, vexp.A8, vexp.A9, vexp.A10, vexp.A11
ln2_f64, ln2_tail = vexp.LN2_F64, vexp.LN2_TAIL
w = LANES
seg = SEG
#: The bits of ``sh`` (1.5·2**52). A float64 ``ts`` within 2**51 of ``sh`` has its exponent,
#: so its bits minus these are the integer ``ts − sh``, and an integer ``k`` that small is
#: the float ``bits⁻¹(k + _SH_BITS) − sh``: integer and float conversions by a bit cast and
#: an integer addition. ``np.int64(x)`` and ``np.float64(k)`` would give the same values,
#: but without AVX-512 they have no vector instruction, and a loop that uses them converts
#: element by element (on an AVX2 machine the sparse loss's range kernel took 1.17 times
#: as long at C = 1,000, 1.03–1.05 times at C = 4 and 10).
_SH_BITS = int(np.array(sh).view(np.int64))
jit = nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
# Knuth's 2Sum, the very function the numpy paths call (x − m is x + (−m), the same bits)
_two_sum = nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")(dd._two_sum)


@intrinsic
def _as_f64(typingctx, v):
    """The float64 whose bits are the int64 ``v`` (a bit cast, vectorizable)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _as_f32(typingctx, v):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _opaque(typingctx, v):
    """The float64 ``v`` unchanged, through an empty inline assembly statement that LLVM
    cannot see into (marked as touching no memory, so it is hoisted out of a loop; but
    not out of a branch inside the loop's body, where it stays and keeps the loop from
    vectorizing: choose with :func:`_pick` there, both sides computed).
    The polynomials' coefficients pass through it: as constants, a vectorized loop
    broadcast each one from the constant pool on every iteration (AVX2 has 16 vector
    registers, too few to keep them), an extra instruction per coefficient and per
    vector; as values computed once, LLVM broadcasts them before the loop, and what does
    not fit in registers is read as an operand of the arithmetic itself. The loop over
    ``_exp_narrow`` went from 75 instructions a vector to 46, 1.2 times as fast, on an
    AVX2 machine. The values, and so every result's bits, are the same. Elsewhere than
    x86-64 (whose ``x`` constraint names a vector register) it is the identity."""
    if v != types.float64:
        return None

    def codegen(context, builder, signature, args):
        if not _X86:
            return args[0]
        fty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()])
        asm = ir.InlineAsm(fty, "", "=x,0", side_effect=False)
        return builder.call(asm, [args[0]], attrs=("readnone", "nounwind"))
    return types.float64(types.float64), codegen


@intrinsic
def _pick(typingctx, c, a, b):
    """``a if c else b`` as one LLVM ``select`` (both sides computed, no branch). Written as
    a branch, a choice between a new value and an array's own element (``v if c else
    arr[r]``) became a masked store in the vectorized loop, and a value used on one side
    only had its loads masked. Masked stores are slow on AMD processors: one pass over a
    block's columns keeping each row's maximum ran four times faster reading from one
    array and writing the next (see :func:`_keys_max`) than with the masked store."""
    if not isinstance(c, types.Boolean) or a != b:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])
    return a(c, a, b), codegen


@jit
def row_max32(bits):
    """(max, count of NaN/±inf, shifts exact) of a float32 row from its bits.

    Integer operations only (vectorized): the maximum of an order-preserving key,
    turned back into a float; and the largest and smallest nonzero magnitudes, for the
    numpy path's rule that ``x − m`` is exact when max|x| < 2**28·min|x| (nonzero x).
    """
    key = np.int32(-2147483648)
    kmin = np.int32(2147483647)
    amax = np.int32(0)
    amin = np.int32(0x7F800000)
    nonfinite = 0
    for j in range(bits.shape[0]):
        b = bits[j]
        kj = b ^ ((b >> 31) & 0x7FFFFFFF)
        key = max(key, kj)
        kmin = min(kmin, kj)
        a = b & 0x7FFFFFFF
        amax = max(amax, a)
        amin = min(amin, a if a != 0 else np.int32(0x7F800000))
        nonfinite += (b & 0x7F800000) == 0x7F800000
    big = _as_f32(amax)
    exact = (big < _as_f32(amin) * np.float32(2.0 ** 28)) | (amax == 0)
    m = np.float64(_as_f32(np.int32(key ^ ((key >> 31) & 0x7FFFFFFF))))
    lo = np.float64(_as_f32(np.int32(kmin ^ ((kmin >> 31) & 0x7FFFFFFF))))
    return m, nonfinite, exact, m - lo < 700.0


@jit
def row_max64(bits):
    key = np.int64(-9223372036854775808)
    nonfinite = 0
    for j in range(bits.shape[0]):
        b = bits[j]
        key = max(key, b ^ ((b >> 63) & 0x7FFFFFFFFFFFFFFF))
        nonfinite += (b & 0x7FF0000000000000) == 0x7FF0000000000000
    m = _as_f64(np.int64(key ^ ((key >> 63) & 0x7FFFFFFFFFFFFFFF)))
    return m, nonfinite, False, False


@jit
def slow_max(row):
    """(max over finite, bad) by TF's rules, for rows with a non-finite entry."""
    m = -np.inf
    bad = False
    for j in range(row.shape[0]):
        v = np.float64(row[j])
        if v != v or v == np.inf:
            bad = True
        elif v > m:
            m = v
    return m, bad or m == -np.inf


@jit
def first_index(row, m):
    """The first j with row[j] == m (there is one): 64-element blocks compared as
    vectors, then the block that holds it element by element."""
    c = row.shape[0]
    j0 = 0
    while j0 + 64 <= c:
        hit = 0
        for l in range(64):
            hit += row[j0 + l] == m
        if hit:
            break
        j0 += 64
    for j in range(j0, c):
        if row[j] == m:
            return j
    return 0


@nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _poly(r):
    """exp(r) on the reduced range, vexp's polynomial (the same operations in order; the
    coefficients through :func:`_opaque`)."""
    k2, k3, k4, k5, k6, k7 = _opaque(c2), _opaque(c3), _opaque(c4), _opaque(c5), \
        _opaque(c6), _opaque(c7)
    k8, k9, k10, k11, k12, k13 = _opaque(c8), _opaque(c9), _opaque(c10), _opaque(c11), \
        _opaque(c12), _opaque(c13)
    r2 = r * r
    b0 = (k2 + k3 * r) + (k4 + k5 * r) * r2
    b1 = (k6 + k7 * r) + (k8 + k9 * r) * r2
    b2 = (k10 + k11 * r) + (k12 + k13 * r) * r2
    r4 = r2 * r2
    q = (b0 + b1 * r4) + b2 * (r4 * r4)
    return 1.0 + (r + r2 * q)


#: Below this, vexp's ``exp_nonpos`` is exactly 0 (e^−746 < 2^−1075, half the least
#: subnormal, by a margin far beyond the polynomial's error; the first nonzero result is at
#: about −745.13, and a test checks vexp on a grid below −746)
UNDERFLOW = -746.0


@nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _exp_nonpos(d):
    """vexp's ``exp_nonpos(d)`` for one ``d ≤ 0`` (the same operations in order): clamp,
    reduce, the polynomial, and the two-step scaling by ``2^k`` (exact into subnormals).
    Below :data:`UNDERFLOW` those steps give exactly 0, which is taken instead: there the
    scaling's products are subnormal, and arithmetic on subnormals is slow (a C = 2 block
    whose ``d`` all lay in −740 to −700 took 1.9 times as long as one of ordinary rows)."""
    under = d < UNDERFLOW
    d = _pick(under, 0.0, d)  # any ordinary value: the result is replaced
    sh_ = _opaque(sh)
    dd = max(d, _opaque(clamp))
    ts = dd * _opaque(inv_ln2) + sh_
    kf = ts - sh_
    r = (dd - kf * _opaque(ln2_hi)) - kf * _opaque(ln2_lo)
    p = _poly(r)
    kk = _as_i64(ts) - _SH_BITS  # = kf (see _SH_BITS)
    k1 = kk >> 1
    return _pick(under, 0.0, (p * _as_f64((k1 + 1023) << 52)) * _as_f64((kk - k1 + 1023) << 52))


@jit
def exp_seg(xs, m, ebuf, lbuf):
    """e_j = exp_nonpos(x_j − m) and e_j·|two_sum error| for one segment."""
    for j in range(xs.shape[0]):
        xv = np.float64(xs[j])
        d, lo = _two_sum(xv, -m)
        lo = lo if lo == lo else 0.0  # x = −inf: d = −inf, no error to carry
        e = _exp_nonpos(d)
        ebuf[j] = e
        lbuf[j] = e * abs(lo)


@jit
def exp_seg_exact(xs, m, ebuf):
    """exp_seg for a row whose shifts are all exact: no two_sum (same e_j)."""
    for j in range(xs.shape[0]):
        ebuf[j] = _exp_nonpos(np.float64(xs[j]) - m)


@nb.njit(cache=True, error_model="numpy", nogil=True, inline="always")
def _exp_narrow(d):
    """:func:`_exp_nonpos` for ``−700 ≤ d ≤ 0``: the clamp is idle and ``p·2^kf`` is a
    normal number, the value of the two-step scaling (the same bits, fewer steps)."""
    sh_ = _opaque(sh)
    ts = d * _opaque(inv_ln2) + sh_
    kf = ts - sh_
    r = (d - kf * _opaque(ln2_hi)) - kf * _opaque(ln2_lo)
    return _poly(r) * _as_f64((_as_i64(ts) - _SH_BITS + 1023) << 52)


@jit
def exp_seg_narrow(xs, m, ebuf):
    """exp_seg_exact for a row with max − min < 700: every ``d ≥ −700``
    (:func:`_exp_narrow`)."""
    for j in range(xs.shape[0]):
        ebuf[j] = _exp_narrow(np.float64(xs[j]) - m)


@jit
def count_nonzero(buf, n):
    cnt = 0
    for j in range(n):
        cnt += buf[j] != 0.0
    return cnt


@jit
def halve(buf, nch):
    """Complete binary tree over ``nch`` (a power of two) chunks of LANES, in place."""
    h = nch
    while h > 1:
        h //= 2
        for i in range(h):
            for l in range(w):
                buf[i * w + l] = buf[2 * i * w + l] + buf[(2 * i + 1) * w + l]


@jit
def push(stack, buf, count):
    """Add a segment's node (buf[:LANES]) to a binary-counter stack of left siblings."""
    lvl = 0
    cnt = count
    while cnt & 1:
        for l in range(w):
            buf[l] = stack[lvl, l] + buf[l]
        lvl += 1
        cnt >>= 1
    for l in range(w):
        stack[lvl, l] = buf[l]


@jit
def fold(stack, count, acc):
    """The tree's root from the stack: the partial right siblings are zero padded."""
    have = False
    lvl = 0
    cnt = count
    while cnt:
        if cnt & 1:
            for l in range(w):
                acc[l] = stack[lvl, l] + acc[l] if have else stack[lvl, l]
            have = True
        cnt >>= 1
        lvl += 1
    a = acc  # LANES = 8
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


@jit
def row_max(bits):
    """row_max32 or row_max64 by the width of the bits (chosen when numba compiles)."""
    if bits.itemsize == 4:
        return row_max32(bits)
    return row_max64(bits)


SMALL_BLOCK = 256  # rows of a small-C block (its column buffers stay in L1/L2)
#: The widest rows :func:`small_rows` takes: 16 lane chunks. Row by row, as
#: :func:`sparse_rows` takes wider ones, C = 17 to 64 took 1.2 to 3.1 times as long, 65 to
#: 96 1.2 to 1.4 times; at 128 the two were even
SMALL_C = 16 * w
#: The widest rows whose gradient is computed column by column (:func:`_small_grad_rows`,
#: :func:`_small_dense_grad_rows`; above, it was no faster: 0.76–1.0× at C = 17 to 64)
SMALL_GRAD_C = 2 * w


@intrinsic
def _like(typingctx, v, like):
    """The integer ``v`` as the integer type of ``like`` (numba widens 32-bit integer
    arithmetic to 64 bits; narrowed back, a loop over 32-bit keys runs 16 to a vector)."""
    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], signature.return_type)
    return like(v, like), codegen


def _key_params(bt):
    """(sign shift, magnitude mask, exponent field, largest key, the exponent field taken
    for a subnormal) of the float bits ``bt`` holds, as its integers."""


@overload(_key_params)
def _key_params_impl(bt):
    if bt.dtype == types.int32:
        return lambda bt: (np.int32(31), np.int32(0x7FFFFFFF), np.int32(0x7F800000),
                           np.int32(0x7FFFFFFF), np.int32(1 << 23))
    return lambda bt: (np.int64(63), np.int64(0x7FFFFFFFFFFFFFFF),
                       np.int64(0x7FF0000000000000), np.int64(0x7FFFFFFFFFFFFFFF),
                       np.int64(1 << 52))


@jit
def _keys_max(bt, nr, c, km, kx, nfin):
    """Per row (column ``r`` of ``bt``, the bits of a block's rows by column, float32 or
    float64): the largest order-preserving key (as :func:`row_max32`'s or
    :func:`row_max64`'s) and the first column that holds it, and the count of NaN/±inf,
    each loop across the block's rows; and over the whole block: the smallest key, and
    the span of the exponent fields of the nonzero values (for :func:`small_rows`' quick
    block; a subnormal counts as the least normal exponent, whose lowest bit it has),
    ``(any NaN/±inf, smallest key, exponent span)``. The running key and column move
    between the two rows of ``km`` and ``kx`` (column ``j`` reads row ``(j − 1) & 1`` and
    writes row ``j & 1``, so the answer is in row ``(C − 1) & 1``): updating one array in
    place became a masked store (:func:`_pick`). ``km`` and ``kx`` are integers of the
    bits' width, so that float32 keys run 16 to a 512-bit vector."""
    sgn, mag, expo, kmin, sub = _key_params(bt)
    emax = _like(0, kmin)
    emin = expo
    b0, k0, i0 = bt[0], km[0], kx[0]
    for r in range(nr):
        b = b0[r]
        key = _like(b ^ ((b >> sgn) & mag), b)
        k0[r] = key
        i0[r] = 0
        kmin = min(kmin, key)
        e = _like(b & expo, b)
        nfin[r] = e == expo
        emax = max(emax, e)
        emin = min(emin, _pick(e != 0, e, _pick((b & mag) != 0, sub, expo)))
    for j in range(1, c):
        bj = bt[j]
        jj = _like(j, kmin)
        ks, kd = km[(j - 1) & 1], km[j & 1]
        xs, xd = kx[(j - 1) & 1], kx[j & 1]
        for r in range(nr):
            b = bj[r]
            key = _like(b ^ ((b >> sgn) & mag), b)
            kk = ks[r]
            gt = key > kk  # strictly: the first column of the largest key
            kd[r] = _pick(gt, key, kk)
            xd[r] = _pick(gt, jj, xs[r])
            kmin = min(kmin, key)
            e = _like(b & expo, b)
            nfin[r] += e == expo
            emax = max(emax, e)
            emin = min(emin, _pick(e != 0, e, _pick((b & mag) != 0, sub, expo)))
    anyfin = 0
    for r in range(nr):
        anyfin += nfin[r]
    return anyfin != 0, kmin, emax - emin


def _key_value(key):
    """The float64 value of an order-preserving key of float32 or float64 bits."""


@overload(_key_value)
def _key_value_impl(key):
    if key == types.int32:
        def f32(key):
            return np.float64(_as_f32(_like(key ^ ((key >> 31) & 0x7FFFFFFF), key)))
        return f32
    return lambda key: _as_f64(np.int64(key ^ ((key >> 63) & 0x7FFFFFFFFFFFFFFF)))


@jit
def _lanes_into(buf, nr, c, out):
    """Per row ``r < nr`` (column ``r`` of ``buf``, a block's values by column, its rows
    from ``C`` on zero): the row's lanes, the chunks added (the complete binary tree over
    them, zero chunks padding their count to a power of two, as :func:`halve` adds them),
    then added as :func:`fold` adds them (LANES = 8), into ``out[r]``. A lane past ``C`` is
    ``+0``, as in the numpy path's padding (the values are ``≥ +0``: adding it changes
    nothing). Above two chunks, the tree's sums overwrite rows of ``buf`` below ``C`` (the
    block's own values, no longer needed; the zero rows stay zero)."""
    if c > 8 * w:  # more: halve (in place, as :func:`halve`) down to eight
        h = 16
        while h * w < c:
            h *= 2
        while h > 8:
            h //= 2
            for i in range(h * w):
                p, q = buf[i + (i // w) * w], buf[i + (i // w + 1) * w]
                d = buf[i]
                for r in range(nr):
                    d[r] = p[r] + q[r]
    if c > 4 * w:  # eight chunks (the tree's sums into the first, in one pass)
        for l in range(w):
            p0, p1, p2, p3 = buf[l], buf[l + w], buf[l + 2 * w], buf[l + 3 * w]
            p4, p5, p6, p7 = buf[l + 4 * w], buf[l + 5 * w], buf[l + 6 * w], buf[l + 7 * w]
            for r in range(nr):
                p0[r] = ((p0[r] + p1[r]) + (p2[r] + p3[r])) + ((p4[r] + p5[r]) + (p6[r] + p7[r]))
    elif c > 2 * w:  # four
        for l in range(w):
            p0, p1, p2, p3 = buf[l], buf[l + w], buf[l + 2 * w], buf[l + 3 * w]
            for r in range(nr):
                p0[r] = (p0[r] + p1[r]) + (p2[r] + p3[r])
    b0, b1, b2, b3, b4, b5, b6, b7 = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], \
        buf[6], buf[7]
    if w < c <= 2 * w:
        b8, b9, b10, b11, b12, b13, b14, b15 = buf[8], buf[9], buf[10], buf[11], buf[12], \
            buf[13], buf[14], buf[15]
        for r in range(nr):
            out[r] = (((b0[r] + b8[r]) + (b1[r] + b9[r])) +
                           ((b2[r] + b10[r]) + (b3[r] + b11[r]))) + \
                (((b4[r] + b12[r]) + (b5[r] + b13[r])) + ((b6[r] + b14[r]) + (b7[r] + b15[r])))
    else:
        for r in range(nr):
            out[r] = ((b0[r] + b1[r]) + (b2[r] + b3[r])) + ((b4[r] + b5[r]) + (b6[r] + b7[r]))


def _is_f32(x):
    """Whether ``x`` is a float32 array: a constant in each compiled variant."""


@overload(_is_f32)
def _is_f32_impl(x):
    if x.dtype == types.float32:
        return lambda x: True
    return lambda x: False


#: The exponent span (in float32 exponent fields) of a float32 block whose shifts
#: ``x − m`` are all exact in float64: values of exponents ``e_max`` and ``e_min`` have their
#: lowest bit at ``2^(e_min − 23)`` or above (subnormal ones at ``2^-149``, as the least
#: normal exponent's), and a difference below ``2^(e_max + 2)``, so ``e_max − e_min + 25 ≤
#: 53`` bits hold it exactly
EXACT_SPAN = 27 << 23
NARROW = 700.0  # a block spanning less has every ``x − m ≥ −700``: _exp_narrow's range


@jit
def small_rows(x, bits, lab, t_out, terr_out, m_out, k_out, bad_out, xy_out):
    """:func:`sparse_rows` for C ≤ :data:`SMALL_C` (one segment of 1 to 16 lane chunks), a
    block of rows at a time, column by column: every loop runs across the block's rows, so it
    vectorizes (8 to 16 elements a row were too few, and finding the maximum's index by
    a branch per row cost as much as the rest). The operations on each row are those of
    :func:`sparse_rows` in the same order — the maximum of the order-preserving key, its
    first index, ``e_j`` from ``two_sum``'s difference (the value the exact and narrow
    variants compute too, with ``e_j·|lo_j|`` zero where the shift is exact), the
    maximum's ``e_k`` zeroed, lanes past ``C`` zero — so the bits are the same. The block
    is transposed once, in its own format, and the keys are taken from the transposed
    bits (float32 keys are twice as fast as those of the values widened to float64, and
    the widening, exact, is a free part of the loads of the exponential's loops; a
    second transpose, of the input's bits, cost a sixth of the kernel). The
    maximum and its first column come from the same pass over the keys
    (:func:`_keys_max`); a row whose maximum is +0 looks again for its first zero, which
    may be a −0 (equal to it, as the float comparison of the other paths finds it).

    A float32 block of finite values whose shifts are all exact (:data:`EXACT_SPAN`) and
    that spans less than :data:`NARROW` is a quick one, as whole rows are in
    :func:`sparse_rows`: ``e_j`` by :func:`_exp_narrow`, no ``two_sum`` and no
    error sum (its terms are ``e_j·0``). The lanes are added straight from the block's
    columns into each row's sum (:func:`_lanes_into`)."""
    n, c = x.shape
    nb_ = SMALL_BLOCK
    xt = np.empty((c, nb_), dtype=x.dtype)
    xb = xt.view(bits.dtype)
    pad = w  # the chunks' rows, their count a power of two; rows past C stay zero: the
    while pad < c:  # lanes' padding
        pad *= 2
    et = np.zeros((pad, nb_))
    lt = np.zeros((pad, nb_))
    km = np.empty((2, nb_), dtype=bits.dtype)
    kx = np.empty((2, nb_), dtype=bits.dtype)
    kmax, kt = km[(c - 1) & 1], kx[(c - 1) & 1]  # where _keys_max leaves them
    nfin = np.empty(nb_, dtype=np.int64)
    mt = np.empty(nb_)
    f32 = _is_f32(x)
    for b0 in range(0, n, nb_):
        nr = min(nb_, n - b0)
        blk = x[b0:b0 + nr]
        # the block's rows of each output as views: an index ``b0 + r`` in a loop kept
        # it from vectorizing (numba wraps negative indices, and LLVM does not see that
        # ``b0 + r`` is never one)
        lb, xy, mo, bo = lab[b0:b0 + nr], xy_out[b0:b0 + nr], m_out[b0:b0 + nr], \
            bad_out[b0:b0 + nr]
        to, teo, ko = t_out[b0:b0 + nr], terr_out[b0:b0 + nr], k_out[b0:b0 + nr]
        for r in range(nr):
            xy[r] = np.float64(blk[r, lb[r]])
        for j in range(c):  # column by column: the loop over rows vectorizes
            xj = xt[j]  # (one-dimensional views: indexing a 2-D one in the loop kept
            for r in range(nr):  # several loops from vectorizing, 2-3x slower)
                xj[r] = blk[r, j]
        nonfinite, kmin, span = _keys_max(xb, nr, c, km, kx, nfin)
        top = kmin
        zero = 0
        for r in range(nr):
            m = _key_value(kmax[r])
            top = max(top, kmax[r])
            zero += kmax[r] == 0
            mo[r] = m
            bo[r] = False
            mt[r] = m
        if zero:  # the maximum is +0: a −0 before it is the first index (== +0)
            for r in range(nr):
                if kmax[r] == 0:
                    kt[r] = first_index(blk[r], 0.0)
        if nonfinite:
            for r in range(nr):
                if nfin[r]:
                    m, bad = slow_max(blk[r])
                    mo[r] = m
                    bo[r] = bad
                    mt[r] = 0.0 if bad else m  # a bad row's values are computed and dropped
                    kt[r] = first_index(blk[r], m)
        quick = f32 and not nonfinite and span <= EXACT_SPAN and \
            _key_value(top) - _key_value(kmin) < NARROW
        if quick:
            for j in range(c):
                xj, ej = xt[j], et[j]
                for r in range(nr):
                    e = _exp_narrow(np.float64(xj[r]) - mt[r])
                    ej[r] = _pick(kt[r] == j, 0.0, e)
        else:
            for j in range(c):
                xj, ej, lj = xt[j], et[j], lt[j]
                for r in range(nr):
                    d, lo = _two_sum(np.float64(xj[r]), -mt[r])
                    lo = _pick(lo == lo, lo, 0.0)  # x = −inf: d = −inf, no error to carry
                    e = _exp_nonpos(d)
                    hit = kt[r] == j
                    ej[r] = _pick(hit, 0.0, e)
                    lj[r] = _pick(hit, 0.0, e * abs(lo))
        _lanes_into(et, nr, c, to)
        if quick:
            for r in range(nr):
                teo[r] = 0.0
        else:
            _lanes_into(lt, nr, c, teo)
        if nonfinite:
            for r in range(nr):
                if bo[r]:
                    to[r] = 0.0
                    teo[r] = 0.0
        for r in range(nr):
            ko[r] = _pick(bo[r], 0, np.int64(kt[r]))


@nb.njit(cache=True, error_model="numpy", nogil=True)  # compiled once, called (not inlined)
def sparse_rows(x, bits, lab, t_out, terr_out, m_out, k_out, bad_out, xy_out):
    """The kernel: per row of ``x`` (``bits`` its integer view), see :mod:`.accel`."""
    n, c = x.shape
    if c <= SMALL_C:
        small_rows(x, bits, lab, t_out, terr_out, m_out, k_out, bad_out, xy_out)
        return
    ebuf = np.zeros(seg)
    lbuf = np.zeros(seg)
    stack = np.zeros((64, w))
    lstack = np.zeros((64, w))
    acc = np.zeros(w)
    for i in range(n):
        row = x[i]
        xy_out[i] = np.float64(row[lab[i]])
        m, nonfinite, exact, narrow = row_max(bits[i])
        bad = False
        if nonfinite:
            m, bad = slow_max(row)
            exact = False
        m_out[i] = m
        bad_out[i] = bad
        t_out[i] = 0.0
        terr_out[i] = 0.0
        k_out[i] = 0
        if bad:
            continue
        k = first_index(row, m)
        k_out[i] = k
        nseg = 0
        for s0 in range(0, c, seg):
            n_el = min(seg, c - s0)
            if exact and narrow:
                exp_seg_narrow(row[s0:s0 + n_el], m, ebuf)
            elif exact:
                exp_seg_exact(row[s0:s0 + n_el], m, ebuf)
            else:
                exp_seg(row[s0:s0 + n_el], m, ebuf, lbuf)
            nch = (n_el + w - 1) // w
            npow = 1
            while npow < nch:
                npow *= 2
            for j in range(n_el, npow * w):
                ebuf[j] = 0.0
            if s0 <= k < s0 + n_el:
                ebuf[k - s0] = 0.0
            halve(ebuf, npow)
            push(stack, ebuf, nseg)
            if exact:
                nseg += 1
                continue
            for j in range(n_el, npow * w):
                lbuf[j] = 0.0
            if s0 <= k < s0 + n_el:
                lbuf[k - s0] = 0.0
            if count_nonzero(lbuf, n_el):
                halve(lbuf, npow)
            else:
                for l in range(w):
                    lbuf[l] = 0.0
            push(lstack, lbuf, nseg)
            nseg += 1
        t_out[i] = fold(stack, nseg, acc)
        if not exact:
            terr_out[i] = fold(lstack, nseg, acc)


@jit
def _t_rad(ti, terr_i, c, lev, c_fn, slack, u, eta):
    """The radius of a row's ``t = Σ_{j≠k} e_j`` (``rows._RowSums``' ``t_rad``, the same
    operations in the same order)."""
    return (c_fn * ti + terr_i * slack) * slack + ti * lev * u * slack + c * eta


@jit
def _logs_rad(ti, t_rad, lp, c_fn, slack):
    """The radius of a row's ``log1p(t)`` (``rows._RowSums``' ``logs_rad``)."""
    q = (1 + ti) - t_rad
    q = _pick(q < 1.0, 1.0, q)
    return t_rad / q * slack + c_fn * lp


@jit
def sparse_loss_post(t, terr, lp, m, xy, isbad, nan_rows, ignored, c, lev, c_fn, slack, u,
                     eta, L, R):
    """``rows.sparse_loss_rows`` (with ``rows._RowSums``' radius) from the kernel's row
    values and ``lp = log1p(t)`` (:func:`_log1p_pos`, vexp's), the same operations in the
    same order, then the plan's row rules (``plan.Rows.apply_rules``), written into ``L``
    and ``R``."""
    for i in range(t.shape[0]):
        ti = t[i]
        logs_rad = _logs_rad(ti, _t_rad(ti, terr[i], c, lev, c_fn, slack, u, eta), lp[i], c_fn,
                             slack)
        x = xy[i]
        dy, dylo = _two_sum(x, -m[i])
        a = -dy
        alo = _pick((x > -np.inf) & (x < np.inf), -dylo, 0.0)
        v = lp[i] + a
        rad = logs_rad + u * abs(v) + abs(alo) * slack
        rad = _pick((a == np.inf) | (a == -np.inf), 0.0, rad)
        ign = ignored[i]
        nan = (isbad[i] | nan_rows[i]) & ~ign
        L[i] = _pick(ign, 0.0, _pick(nan, np.nan, v))
        R[i] = _pick(ign | nan, 0.0, rad)


def run(x, labels):
    """(bad, m, k, t, terr, x_y) of the rows of a C-contiguous float32/float64 array;
    ``labels`` in [0, C)."""
    n = x.shape[0]
    t, terr, m, xy = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    k, bad = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.bool_)
    lab = np.ascontiguousarray(labels, dtype=np.int64)
    bits = x.view(np.int32 if x.dtype == np.float32 else np.int64)
    sparse_rows(x, bits, lab, t, terr, m, k, bad, xy)
    return bad, m, k, t, terr, xy


# ------------------------------------------------------------------ rounding and certification

MAGIC = 6755399441055744.0  # 1.5 · 2**52: adding and subtracting it rounds to an integer


@jit
def _round_fmt(x, shift, half, mask, tiny, maxf, up, down):
    """x rounded to ``53 − shift`` bits (ties to even) with the format's subnormals below
    ``tiny`` and overflow to ±inf: ``formats.round_to_format``, one element (``shift`` > 0;
    ``half``, ``mask`` from :func:`_certify_rows`). Both roads are computed and one is
    selected, with no branch, so that the loop over elements vectorizes (10× faster than
    returning early). Float32 (``shift`` 29) in its normal range by the hardware cast, as
    ``certify._round`` does: half the cost of the bits (float32 subnormals keep the scaled
    rounding, immune to flush-to-zero)."""
    y = x * up  # the subnormal range: exact, a power of two times a float64
    rs = abs((y + MAGIC) - MAGIC) * down  # |y| < 2**(p-1): an integer, ties to even
    rs = rs if x > 0 else -rs
    if shift == 29:  # float32: the hardware cast (one IEEE rounding, overflow to ±inf)
        rn = np.float64(np.float32(x))  # where the result is normal (flush-to-zero aside)
    else:
        b = _as_i64(x)  # the normal range: round the significand's bits, ties to even
        b = (b + (half + ((b >> shift) & 1))) & mask
        rn = _as_f64(b)
        big = np.inf if x > 0 else -np.inf
        rn = big if abs(rn) > maxf else rn
    r = rs if abs(x) < tiny else rn
    keep = (x != x) | (x == 0.0) | (abs(x) == np.inf)  # a zero keeps its sign
    return x if keep else r


@intrinsic
def _as_i64(typingctx, v):
    """The int64 whose bits are the float64 ``v``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


#: Below this, a value rounds to ±0 in every format :func:`_certify_rows` rounds to (the
#: least subnormal of each, float32's 2^−149 the smallest, is far above); the steps that
#: would show it are subnormal arithmetic, slow: certifying 2·10⁶ C = 2 losses of random
#: float16 pairs, a fifth of them 0 with the radius ETA (a subnormal), took 13.1 ms
#: against 8.4 for ordinary rows
ZERO_BALL = 2.0 ** -200
_SIGN = np.int64(-9223372036854775808)  # the sign bit of a float64


def _certify_rows(mid, rad, p, emin, maxf, f64, rounded, ok):
    """``certify.certify_ball`` elementwise over flat arrays, on the calling thread (the
    engine splits long arrays over its own threads: each element on its own, so the answer
    does not depend on how)."""
    up = 2.0 ** (p - 1 - emin)
    down = 1.0 / up
    u4 = 4.0 * 2.0 ** -53
    if p == 53:  # float64: rounding is the identity
        for i in range(mid.shape[0]):
            m = mid[i]
            r = rad[i]
            special = ((m != m) | (m == np.inf) | (m == -np.inf)) & (r == 0.0)
            w = 0.0 if r == 0.0 else r * (1.0 + u4) + u4 * abs(m) + 2.0 ** -1074
            good = (((m - w) == (m + w)) | special) & (r == r) & (r != np.inf)
            ok[i] = good & (r == 0.0) if f64 else good
            rounded[i] = m
        return
    shift = 53 - p
    half = (np.int64(1) << (shift - 1)) - 1
    mask = ~((np.int64(1) << shift) - 1)
    tiny = 2.0 ** emin
    if shift == 29 and _certify_f32_cast(mid, rad, tiny, u4, f64, rounded, ok):
        return
    for i in range(mid.shape[0]):
        m0 = mid[i]
        r0 = rad[i]
        # a ball within ZERO_BALL of 0 rounds to ±0 at both ends (certified) and its
        # midpoint to 0 with its sign: computed as the zero of that sign, radius 0
        zero = (abs(m0) < ZERO_BALL) & (r0 < ZERO_BALL)
        m = _pick(zero, _as_f64(_as_i64(m0) & _SIGN), m0)
        r = _pick(zero, 0.0, r0)
        special = ((m != m) | (m == np.inf) | (m == -np.inf)) & (r == 0.0)
        w = 0.0 if r == 0.0 else r * (1.0 + u4) + u4 * abs(m) + 2.0 ** -1074
        lo = _round_fmt(m - w, shift, half, mask, tiny, maxf, up, down)
        hi = _round_fmt(m + w, shift, half, mask, tiny, maxf, up, down)
        good = ((lo == hi) | special) & (r == r) & (r != np.inf)
        if f64:
            good = good & (r0 == 0.0)
        ok[i] = good
        rm = _round_fmt(m, shift, half, mask, tiny, maxf, up, down)
        rounded[i] = m if special else rm


certify_rows = nb.njit(cache=True, error_model="numpy", nogil=True)(_certify_rows)


@jit
def _certify_f32_cast(mid, rad, tiny, u4, f64, rounded, ok):
    """:func:`_certify_rows` into float32 by the hardware cast alone, and whether that was
    its answer everywhere: False where some midpoint is NaN (exact with no radius, which
    the cast's ends would not show), or some midpoint or end of a ball is nonzero and below
    ``tiny`` in magnitude (then the caller redoes the whole array). Elsewhere
    :func:`_round_fmt` is that cast (a zero or an infinity keeps itself through it), and
    an infinite midpoint with no radius has ends that round alike: the same ``rounded``
    and ``ok``, in a loop a quarter as long (2.5 times as fast). Below ``tiny`` the cast
    would round right too, but where flush-to-zero is on it would not, and the general
    loop's scaling does (so does a ball within ZERO_BALL of 0, which has a nonzero end
    there unless it is ``±0 ± 0``)."""
    odd = 0
    for i in range(mid.shape[0]):
        m = mid[i]
        r = rad[i]
        w = 0.0 if r == 0.0 else r * (1.0 + u4) + u4 * abs(m) + 2.0 ** -1074
        a, b = m - w, m + w
        lo = np.float64(np.float32(a))
        hi = np.float64(np.float32(b))
        good = (lo == hi) & (r == r) & (r != np.inf)
        ok[i] = good & (r == 0.0) if f64 else good
        rounded[i] = np.float64(np.float32(m))
        odd += (m != m) | ((abs(m) < tiny) & (m != 0.0)) | ((abs(a) < tiny) & (a != 0.0)) | \
            ((abs(b) < tiny) & (b != 0.0))
    return odd == 0


# ------------------------------------------------------------------ two classes

@jit
def two_class_pre(x0, x1, lab, bad, d, dlo, e):
    """``rows.two_class_rows`` up to the exponential, one row at a time (the same
    operations in the same order: ``two_sum``, then vexp's ``exp_nonpos(−|d|)``). The two
    logits come as contiguous columns and the body has no branches (selects and bitwise
    tests), so the loop vectorizes (rows read in place from ``[N, 2]`` did not: 10× slower)."""
    inf = np.inf
    for i in range(x0.shape[0]):
        a = np.float64(x0[i])
        b = np.float64(x1[i])
        one = lab[i] > 0  # a label clipped into [0, 1] (its row's rules decide the rest)
        zy = b if one else a
        zo = a if one else b
        isbad = (a != a) | (b != b) | (a == inf) | (b == inf) | ((a == -inf) & (b == -inf))
        s, lo = _two_sum(zo, -zy)
        fin = (s > -inf) & (s < inf)
        lo = lo if fin else 0.0
        s = 0.0 if isbad else s
        bad[i] = isbad
        d[i] = s
        dlo[i] = lo
        e[i] = _exp_nonpos(-abs(s))


@jit
def _log1p_reduced(f):
    """Steps 2–4 of vexp's ``log1p_unit`` for one ``f ∈ [−¼, ½)`` (the same operations in
    order; the coefficients through :func:`_opaque`): ``s = f/(2 + f)``, Horner in
    ``z = s²``, its ``l``."""
    s = f / (f + 2.0)
    z = s * s
    h = _opaque(a11) * z + _opaque(a10)
    h = h * z + _opaque(a9)
    h = h * z + _opaque(a8)
    h = h * z + _opaque(a7)
    h = h * z + _opaque(a6)
    h = h * z + _opaque(a5)
    h = h * z + _opaque(a4)
    h = h * z + _opaque(a3)
    h = h * z + _opaque(a2)
    h = h * z + _opaque(a1)
    return f - s * (f - h * z)


@jit
def _log1p_unit(e):
    """vexp's ``log1p_unit(e)`` for one ``e`` in ``[0, 1]`` (the same operations in order):
    the reduction by ``ln 2`` at ``e ≥ ½``, then :func:`_log1p_reduced`."""
    big = e >= 0.5
    lf = _log1p_reduced((e - 1.0) * 0.5 if big else e)
    return (lf + ln2_tail) + ln2_f64 if big else lf


@jit
def _log1p_pos(t):
    """vexp's ``log1p_pos(t)`` for one ``t ≥ 0`` (the same operations in order):
    :func:`_log1p_unit` up to 1; above, ``1 + t`` split into ``2^k·g`` with its rounding
    error carried, :func:`_log1p_reduced` of ``g − 1``, and ``k·ln 2`` in two parts. Both
    roads' steps are taken and one is chosen (one :func:`_log1p_reduced` of the chosen
    ``f``): no branch, so a loop of it vectorizes (with branches it took 1.5 times as
    long)."""
    above = t > 1.0
    big = t >= 0.5
    s = t + 1.0
    err = 1.0 - (s - t)
    b = _as_i64(s)
    kf = _as_f64((b >> 52) - 1023 + _SH_BITS) - sh  # the exponent as a float (_SH_BITS)
    g = _as_f64((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    half = g >= 1.5
    g = g * 0.5 if half else g
    kf = kf + 1.0 if half else kf
    f = (g - 1.0) if above else ((t - 1.0) * 0.5 if big else t)
    lf = _log1p_reduced(f)
    y = kf * ln2_hi + ((lf + err / s) + kf * ln2_lo) if above else \
        ((lf + ln2_tail) + ln2_f64 if big else lf)
    return t if t == np.inf else y


@intrinsic
def _half_to_f64(typingctx, v):
    """The float64 value of the float16 whose bits are the uint16 ``v``: LLVM's exact
    ``fpext`` (x86's F16C conversion, ARM's ``fcvt``; it vectorizes). Reading the bits with
    integer selects instead took as long as the rest of a block's first loop."""
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.DoubleType())
    return types.float64(types.uint16), codegen


def _widen(v):
    """A logit as float64: float32 and float64 as they are, float16 from its bits (numba
    has no float16; ``rows.two_class_into`` passes them as uint16)."""


@overload(_widen)
def _widen_impl(v):
    if v == types.uint16:
        return lambda v: _half_to_f64(v)
    return lambda v: np.float64(v)


@jit
def _two_class_head(src, a, k, lab, x0, x1, isb, d, dlo, e):
    """Rows ``a:a+k`` of ``src`` (``[N, 2]`` logits) up to ``e = exp(−|d|)`` into a
    block's scratch: the logits as contiguous float64 columns, then
    :func:`two_class_pre` (each loop vectorizes; the rows as a view, see
    :func:`small_rows`)."""
    blk = src[a:a + k]
    for i in range(k):
        x0[i] = _widen(blk[i, 0])
        x1[i] = _widen(blk[i, 1])
    two_class_pre(x0[:k], x1[:k], lab[a:a + k], isb[:k], d[:k], dlo[:k], e[:k])


@jit
def _two_class_block(src, a, k, lab, x0, x1, isb, d, dlo, e, lp):
    """:func:`_two_class_head`, then ``lp = log1p(e)`` by :func:`_log1p_unit`."""
    _two_class_head(src, a, k, lab, x0, x1, isb, d, dlo, e)
    for i in range(k):
        lp[i] = _log1p_unit(e[i])


@jit
def two_class_range(src, lab, nan_rows, ignored, exp_rel, c_fn, slack, u, eta, block,
                    L, Lrad, sig, srad, bad, dd):
    """``rows.two_class_rows`` with the row rules for every row of ``src`` (``[N, 2]``
    logits; float16 as uint16 bits) in one call: blocks of ``block`` rows through
    :func:`_two_class_block` and :func:`two_class_post`, written into the ``[N]`` arrays
    ``L`` to ``dd``. One call per row range: no Python, and no hand-over of Python's lock,
    between blocks."""
    n = src.shape[0]
    m = min(n, block)
    x0, x1 = np.empty(m), np.empty(m)
    isb = np.empty(m, dtype=np.bool_)
    d, dlo, e, lp = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    for a in range(0, n, block):
        b = min(n, a + block)
        k = b - a
        _two_class_block(src, a, k, lab, x0, x1, isb, d, dlo, e, lp)
        two_class_post(d[:k], dlo[:k], e[:k], lp[:k], isb[:k], nan_rows[a:b], ignored[a:b],
                       exp_rel, c_fn, slack, u, eta, L[a:b], Lrad[a:b], sig[a:b], srad[a:b],
                       bad[a:b], dd[a:b])


@jit
def _grown(arr, size):
    """``arr`` in a longer array (element by element: numba took seconds to compile a
    slice assignment)."""
    out = np.empty(size, dtype=arr.dtype)
    for i in range(arr.shape[0]):
        out[i] = arr[i]
    return out


@jit
def two_class_range_certified(src, lab, nan_rows, ignored, exp_rel, c_fn, slack, u, eta,
                              block, p, emin, maxf, f64, rounded, ok):
    """:func:`two_class_range` with only the loss wanted (:func:`two_class_loss`, no
    ``σ``), certified into ``rounded`` and ``ok`` while each block is in cache; the values of
    a block stay in its scratch, but for the rows that did not certify: returned as
    ``(count, index, L, Lrad, d, bad)`` (the arrays longer than ``count``)."""
    n = src.shape[0]
    m = min(n, block)
    x0, x1 = np.empty(m), np.empty(m)
    isb = np.empty(m, dtype=np.bool_)
    d, dlo, e, lp = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    L, Lrad = np.empty(m), np.empty(m)
    bd = np.empty(m, dtype=np.bool_)
    count = 0
    mi = np.empty(16, dtype=np.int64)
    mL, mR, md = np.empty(16), np.empty(16), np.empty(16)
    mb = np.empty(16, dtype=np.bool_)
    for a in range(0, n, block):
        b = min(n, a + block)
        k = b - a
        _two_class_block(src, a, k, lab, x0, x1, isb, d, dlo, e, lp)
        two_class_loss(d[:k], dlo[:k], e[:k], lp[:k], isb[:k], nan_rows[a:b], ignored[a:b],
                       exp_rel, c_fn, slack, u, eta, L[:k], Lrad[:k], bd[:k])
        if _certify_count(L[:k], Lrad[:k], p, emin, maxf, f64, rounded[a:b], ok[a:b]) == 0:
            continue
        for i in range(k):
            if ok[a + i]:
                continue
            if count == mi.shape[0]:
                size = 2 * count
                mi, mL, mR = _grown(mi, size), _grown(mL, size), _grown(mR, size)
                md, mb = _grown(md, size), _grown(mb, size)
            mi[count], mL[count], mR[count], md[count], mb[count] = a + i, L[i], Lrad[i], \
                d[i], bd[i]
            count += 1
    return count, mi, mL, mR, md, mb


@jit
def _exp_err(dlo, exp_rel, slack):
    """``rows.two_class_rows``' ``ε``: the exponential's relative error, its own and the
    difference's rounding error ``dlo`` carried into it."""
    return exp_rel + abs(dlo) * slack


@jit
def _sigma(pos, e, eps, slack, u, eta):
    """``rows.two_class_rows``' ``σ(d)`` and its radius, from ``e = exp(−|d|)`` and its
    relative error ``eps``: ``1/(1 + e)`` for ``d > 0``, ``e/(1 + e)`` otherwise."""
    s1 = 1.0 + e
    sg = 1.0 / s1 if pos else e / s1
    return sg, sg * (3 * u + 2 * (eps * e if pos else eps)) * slack + eta


@jit
def two_class_loss(d, dlo, e, lp, isbad, nan_rows, ignored, exp_rel, c_fn, slack, u, eta,
                   L, Lrad, bad):
    """The loss of ``rows.two_class_rows`` and its radius from ``lp = log1p(e)``
    (:func:`_log1p_unit`, vexp's), the same operations in the same order; then the plan's
    row rules as ``plan.Rows.apply_rules`` says them (a NaN row's loss is NaN, an ignored
    row's 0, both with radius 0; ``bad``: either)."""
    for i in range(d.shape[0]):
        di, li = d[i], lp[i]
        eps = _exp_err(dlo[i], exp_rel, slack)
        pos = di > 0
        v = _pick(pos, di + li, li)
        rad = ((c_fn * li + eps * e[i]) * slack + u * v + _pick(pos, abs(dlo[i]), 0.0)) \
            * slack + eta
        rad = _pick((v > -np.inf) & (v < np.inf), rad, 0.0)
        ign = ignored[i]
        nan = (isbad[i] | nan_rows[i]) & ~ign
        L[i] = _pick(ign, 0.0, _pick(nan, np.nan, v))
        Lrad[i] = _pick(ign | nan, 0.0, rad)
        bad[i] = nan | ign


@jit
def two_class_post(d, dlo, e, lp, isbad, nan_rows, ignored, exp_rel, c_fn, slack, u, eta,
                   L, Lrad, sig, srad, bad, dd):
    """:func:`two_class_loss`, then ``σ`` and its radius (:func:`_sigma`) and ``d`` copied
    out: every output of ``rows.two_class_rows`` for a block, written where the caller
    keeps it."""
    two_class_loss(d, dlo, e, lp, isbad, nan_rows, ignored, exp_rel, c_fn, slack, u, eta,
                   L, Lrad, bad)
    for i in range(d.shape[0]):
        sig[i], srad[i] = _sigma(d[i] > 0, e[i], _exp_err(dlo[i], exp_rel, slack), slack, u,
                                 eta)
        dd[i] = d[i]


@jit
def _certify_count(L, Lrad, p, emin, maxf, f64, rounded, ok):
    """:func:`certify_rows` of a block's loss into ``rounded`` and ``ok``; how many rows
    did not certify."""
    certify_rows(L, Lrad, p, emin, maxf, f64, rounded, ok)
    missed = 0
    for i in range(ok.shape[0]):
        missed += 0 if ok[i] else 1
    return missed


@jit
def sparse_loss_post_certified(t, terr, lp, m, xy, isbad, nan_rows, ignored, c, lev, c_fn,
                               slack, u, eta, L, R, p, emin, maxf, f64, rounded, ok):
    """:func:`sparse_loss_post` into a block's scratch, then its loss certified
    (:func:`certify_rows`) into ``rounded`` and ``ok`` while the block is in cache; returns
    how many rows did not certify."""
    sparse_loss_post(t, terr, lp, m, xy, isbad, nan_rows, ignored, c, lev, c_fn, slack, u,
                     eta, L, R)
    return _certify_count(L, R, p, emin, maxf, f64, rounded, ok)


@jit
def _sparse_block(x, bits, lab, a, b, c, lb, t, terr, m, k, bad, xy, lp):
    """Rows ``a:b`` of :func:`sparse_loss_range`: the labels clipped into ``[0, C)`` as
    ``plan.Rows.labels_block`` clips them, :func:`sparse_rows`, and ``lp = log1p(t)``
    (:func:`_log1p_pos`), into the first ``b − a`` elements of the scratch arrays."""
    q = b - a
    top = max(c - 1, 0)
    la = lab[a:b]
    for i in range(q):
        v = la[i]
        lb[i] = 0 if v < 0 else (top if v > top else v)
    sparse_rows(x[a:b], bits[a:b], lb[:q], t[:q], terr[:q], m[:q], k[:q], bad[:q], xy[:q])
    for i in range(q):
        lp[i] = _log1p_pos(t[i])


@jit
def sparse_loss_range(x, bits, lab, nan_rows, ignored, c, lev, c_fn, slack, u, eta, block,
                      L, R):
    """``rows.sparse_loss_rows`` with the row rules for every row of ``x`` (C-contiguous
    float32 or float64 ``[N, C]``, ``bits`` its integer view, ``lab`` the plan's labels)
    in one call: blocks of ``block`` rows through :func:`_sparse_block` and
    :func:`sparse_loss_post`, written into ``L`` and ``R``. As :func:`two_class_range`: no
    Python, and no hand-over of Python's lock, between blocks."""
    n = x.shape[0]
    q = min(n, block)
    t, terr, m, xy, lp = np.empty(q), np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    lb, k = np.empty(q, dtype=np.int64), np.empty(q, dtype=np.int64)
    bad = np.empty(q, dtype=np.bool_)
    for a in range(0, n, block):
        b = min(n, a + block)
        r = b - a
        _sparse_block(x, bits, lab, a, b, c, lb, t, terr, m, k, bad, xy, lp)
        sparse_loss_post(t[:r], terr[:r], lp[:r], m[:r], xy[:r], bad[:r], nan_rows[a:b],
                         ignored[a:b], c, lev, c_fn, slack, u, eta, L[a:b], R[a:b])


@jit
def sparse_loss_range_certified(x, bits, lab, nan_rows, ignored, c, lev, c_fn, slack, u,
                                eta, block, p, emin, maxf, f64, rounded, ok):
    """:func:`sparse_loss_range` with the loss certified into ``rounded`` and ``ok`` block
    by block (:func:`sparse_loss_post_certified`: the values stay in the block's scratch);
    returns how many rows did not certify."""
    n = x.shape[0]
    q = min(n, block)
    t, terr, m, xy, lp = np.empty(q), np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    lb, k = np.empty(q, dtype=np.int64), np.empty(q, dtype=np.int64)
    bad = np.empty(q, dtype=np.bool_)
    L, R = np.empty(q), np.empty(q)
    missed = 0
    for a in range(0, n, block):
        b = min(n, a + block)
        r = b - a
        _sparse_block(x, bits, lab, a, b, c, lb, t, terr, m, k, bad, xy, lp)
        missed += sparse_loss_post_certified(
            t[:r], terr[:r], lp[:r], m[:r], xy[:r], bad[:r], nan_rows[a:b], ignored[a:b], c,
            lev, c_fn, slack, u, eta, L[:r], R[:r], p, emin, maxf, f64, rounded[a:b], ok[a:b])
    return missed


@jit
def two_class_grad_range(src, lab, gam, grad_rad, unit, nan_rows, ignored, exp_rel, slack,
                         u, eta, block, p, emin, maxf, f64, out, ok):
    """The certified backprop rows of a C = 2 plan's row range straight from its logits
    (``src``, ``[N, 2]``; float16 as uint16 bits) in one call, into flat ``[2N]`` ``out``
    and ``ok``, in blocks of ``block`` rows: the difference and the exponential
    (:func:`_two_class_head`), ``σ`` and its radius (:func:`_sigma`, no log1p needed),
    then what ``rows.two_class_bp``, ``engine._scale`` (by ``γ = gam`` with its radius
    ``grad_rad``; ``unit``: ``γ = 1`` exactly, the arrays unread), the row rules
    (``plan.Rows.apply_rules``) and :func:`certify_rows` do in numpy, the same operations
    in the same order. Returns how many elements did not certify."""
    n = src.shape[0]
    m = min(n, block)
    x0, x1 = np.empty(m), np.empty(m)
    isb = np.empty(m, dtype=np.bool_)
    d, dlo, e = np.empty(m), np.empty(m), np.empty(m)
    val, rad = np.empty(2 * m), np.empty(2 * m)
    missed = 0
    for a in range(0, n, block):
        b = min(n, a + block)
        k = b - a
        _two_class_head(src, a, k, lab, x0, x1, isb, d, dlo, e)
        la, ga, gra = lab[a:b], gam[a:b], grad_rad[a:b]  # views (see small_rows)
        ia, na = ignored[a:b], nan_rows[a:b]
        for i in range(k):
            s, sr = _sigma(d[i] > 0, e[i], _exp_err(dlo[i], exp_rel, slack), slack, u, eta)
            b0 = s if la[i] > 0 else -s  # +σ at the other class, −σ at the label
            g = 1.0 if unit else ga[i]
            gr = 0.0 if unit else gra[i]
            ign = ia[i]
            nan = (isb[i] | na[i]) & ~ign
            for j in range(2):
                bj = b0 if j == 0 else -b0
                v = g * bj
                r = abs(g) * sr + gr * abs(bj) + u * abs(v)
                r = r if (v > -np.inf and v < np.inf) else 0.0
                val[2 * i + j] = 0.0 if ign else (np.nan if nan else v)
                rad[2 * i + j] = 0.0 if (ign | nan) else r
        missed += _certify_count(val[:2 * k], rad[:2 * k], p, emin, maxf, f64,
                                 out[2 * a:2 * b], ok[2 * a:2 * b])
    return missed


# ------------------------------------------------------------------ the sparse gradient, C > 2

@jit
def _sparse_grad_row(xr, mi, ki, yi, ti, terr_i, c, lev, c_fn, slack, u, eta, g, gr, val,
                     rad):
    """One row's backprop ``p − onehot(y)`` with its radius, scaled by ``γ = g`` (radius
    ``gr``), into ``val`` and ``rad`` (``c`` elements): what ``rows._Rows.sparse_bp`` and
    ``engine._scale`` do in numpy, the same operations in the same order. ``e_j`` from
    ``two_sum``'s difference (its error ``lo_j``, zero where the shift is exact: the
    numpy path's ``dlo``), ``e_k = 1``; ``rel_e_j = C_FN + |lo_j|·slack`` but 0 where
    ``d_j`` is 0 or −inf; ``p_j = e_j / s`` with ``s = 1 + t``. (Certifying each element
    in this loop, instead of the block's values afterwards, took 1.2–1.4 times as long.)"""
    t_rad, s, s_rad, srel = _s_parts(ti, terr_i, c, lev, c_fn, slack, u, eta)
    ag = abs(g)
    for j in range(c):  # every element as if j ≠ y (no branch: the loop vectorizes; one
        # around _exp_nonpos would keep _opaque's statements in it, and it scalar)
        p, pr = _p_rad(np.float64(xr[j]), mi, j == ki, s, srel, c_fn, slack, u, eta)
        v = g * p
        r = ag * pr + gr * abs(p) + u * abs(v)
        val[j] = v
        rad[j] = r if (v > -np.inf and v < np.inf) else 0.0
    val[yi], rad[yi] = _label_element(np.float64(xr[yi]), mi, ki, yi, ti, t_rad, s, s_rad,
                                      c_fn, slack, u, g, gr)


@jit
def _label_element(xy, mi, ki, yi, ti, t_rad, s, s_rad, c_fn, slack, u, g, gr):
    """The label's element of a row's scaled backprop and its radius: ``−(Σ_{j≠y} e_j)/s``,
    from ``t`` without cancellation (``rows._Rows.sparse_bp``'s, the same operations).
    Every choice is a :func:`_pick`, both sides computed, so that a loop of it over rows
    vectorizes (a branch around the exponential keeps :func:`_opaque`'s statements in it)."""
    d, lo = _two_sum(xy, -mi)  # e_y and rel_e_y, as for the other elements
    lo = _pick(lo == lo, lo, 0.0)
    is_k = yi == ki
    ey = _pick(is_k, 1.0, _exp_nonpos(d))
    rel_y = _pick((d == -np.inf) | (d == 0.0), 0.0, c_fn + abs(lo) * slack)
    num = _pick(is_k, ti, (1 - ey) + ti)
    num_rad = _pick(is_k, t_rad, ey * rel_y + u * (1 - ey) + t_rad + u * num)
    b = -num / s
    br = _pick(num > 0, abs(b) * (num_rad / num + s_rad / s + u) * slack, num_rad / s)
    v = g * b
    r = abs(g) * br + gr * abs(b) + u * abs(v)
    return v, _pick((v > -np.inf) & (v < np.inf), r, 0.0)


@jit
def _cols_into(blk, xt, nr, c):
    """The ``nr`` rows of ``blk`` into the columns' rows of ``xt`` (a transpose)."""
    for j in range(c):
        xj = xt[j]
        for r in range(nr):
            xj[r] = blk[r, j]


@jit
def _s_parts(ti, terr_i, c, lev, c_fn, slack, u, eta):
    """What a row's gradient elements share: ``t``'s radius, ``s = 1 + t``, ``s``'s radius
    and its relative radius (``rows._Rows.p``'s, the same operations)."""
    t_rad = _t_rad(ti, terr_i, c, lev, c_fn, slack, u, eta)
    s = 1 + ti
    s_rad = t_rad + u * s
    return t_rad, s, s_rad, s_rad / s


@jit
def _grad_scalars(tb, teb, nr, c, lev, c_fn, slack, u, eta, unit, gb, grb, trad, sv, srad,
                  srel, gv, agv, grv):
    """Per row of a block, :func:`_s_parts` into ``trad``, ``sv``, ``srad`` and ``srel``, and
    ``γ``, ``|γ|`` and ``γ``'s radius (1, 1 and 0 where ``unit``, ``gb`` and ``grb``
    unread), as the row functions have them."""
    for r in range(nr):
        trad[r], sv[r], srad[r], srel[r] = _s_parts(tb[r], teb[r], c, lev, c_fn, slack, u,
                                                    eta)
    if unit:
        for r in range(nr):
            gv[r] = 1.0
            agv[r] = 1.0
            grv[r] = 0.0
    else:
        for r in range(nr):
            gv[r] = gb[r]
            agv[r] = abs(gb[r])
            grv[r] = grb[r]


@jit
def _p_rad(x, mi, is_k, s, srel, c_fn, slack, u, eta):
    """An element's softmax ``p = e/s`` and its radius, as the row functions have them:
    ``e`` from ``two_sum``'s difference (its error ``lo``, zero where the shift is exact),
    ``e_k = 1``, ``rel_e = C_FN + |lo|·slack`` but 0 where ``d`` is 0 or −inf."""
    d, lo = _two_sum(x, -mi)
    lo = _pick(lo == lo, lo, 0.0)  # x = −inf, or x − m overflowing: no error to carry
    e = _pick(is_k, 1.0, _exp_nonpos(d))
    rel_e = _pick((d == -np.inf) | (d == 0.0), 0.0, c_fn + abs(lo) * slack)
    p = e / s
    return p, p * ((rel_e + srel) + u) * slack + eta


@jit
def _rows_from_cols(vt, rt, vo, ro, nr, c):
    """A block's values and radii by column back into its rows (flat ``vo`` and ``ro``)."""
    for r in range(nr):
        for j in range(c):
            vo[r * c + j] = vt[j, r]
            ro[r * c + j] = rt[j, r]


@jit
def _small_grad_rows(xs, lb, t, terr, m, k, xy, c, lev, c_fn, slack, u, eta, unit, ga, gra,
                     val, rad):
    """:func:`_sparse_grad_row` for every row of ``xs`` (C ≤ 2·LANES), :data:`SMALL_BLOCK`
    rows at a time, column by column, as :func:`small_rows` computes the loss: a row's 3 to
    16 elements were too few for its loop to vectorize well (at C = 10 one vector of 8
    and two elements one by one, and at C = 3 none). The block is transposed, each
    column's elements computed across the rows (the same operations as the row function,
    in the same order, so the same bits), the label's elements by :func:`_label_element`
    across the rows (from ``xy``, the labelled logits as float64), and the values and
    radii written back row by row into ``val`` and ``rad``."""
    n = xs.shape[0]
    nb_ = SMALL_BLOCK
    xt = np.empty((c, nb_), dtype=xs.dtype)
    vt, rt = np.empty((c, nb_)), np.empty((c, nb_))
    trad, sv, srad, srel = np.empty(nb_), np.empty(nb_), np.empty(nb_), np.empty(nb_)
    gv, agv, grv = np.empty(nb_), np.empty(nb_), np.empty(nb_)
    lv, lr = np.empty(nb_), np.empty(nb_)
    for b0 in range(0, n, nb_):
        nr = min(nb_, n - b0)
        b1 = b0 + nr
        mb, kb, tb, teb = m[b0:b1], k[b0:b1], t[b0:b1], terr[b0:b1]
        lbb, xyb = lb[b0:b1], xy[b0:b1]
        _cols_into(xs[b0:b1], xt, nr, c)
        _grad_scalars(tb, teb, nr, c, lev, c_fn, slack, u, eta, unit, ga[b0:b1], gra[b0:b1],
                      trad, sv, srad, srel, gv, agv, grv)
        for j in range(c):
            xj, vj, rj = xt[j], vt[j], rt[j]
            for r in range(nr):
                p, pr = _p_rad(np.float64(xj[r]), mb[r], j == kb[r], sv[r], srel[r], c_fn,
                               slack, u, eta)
                v = gv[r] * p
                rr = agv[r] * pr + grv[r] * abs(p) + u * abs(v)
                vj[r] = v
                rj[r] = _pick((v > -np.inf) & (v < np.inf), rr, 0.0)
        for r in range(nr):
            lv[r], lr[r] = _label_element(xyb[r], mb[r], kb[r], lbb[r], tb[r], trad[r], sv[r],
                                          srad[r], c_fn, slack, u, gv[r], grv[r])
        for r in range(nr):
            yi = lbb[r]
            vt[yi, r] = lv[r]
            rt[yi, r] = lr[r]
        _rows_from_cols(vt, rt, val[b0 * c:b1 * c], rad[b0 * c:b1 * c], nr, c)


@jit
def _small_dense_grad_rows(xs, ys, yrad, per_row, t, terr, m, k, c, lev, c_fn, slack, u, eta,
                           unit, ga, gra, val, rad):
    """:func:`_dense_grad_row` for every row of ``xs`` (C ≤ 2·LANES) column by column, as
    :func:`_small_grad_rows` does the sparse rows: the block's logits and labels (and the
    labels' radii where each row has its own; else ``yrad``'s one row, every row's)
    transposed, each column's elements computed across the rows (the row function's
    operations in its order: the same bits), written back row by row."""
    n = xs.shape[0]
    nb_ = SMALL_BLOCK
    xt = np.empty((c, nb_), dtype=xs.dtype)
    yt, yrt = np.empty((c, nb_)), np.empty((c, nb_))
    if not per_row:
        for j in range(c):
            yrt[j, :] = yrad[0, j]
    vt, rt = np.empty((c, nb_)), np.empty((c, nb_))
    trad, sv, srad, srel = np.empty(nb_), np.empty(nb_), np.empty(nb_), np.empty(nb_)
    gv, agv, grv = np.empty(nb_), np.empty(nb_), np.empty(nb_)
    for b0 in range(0, n, nb_):
        nr = min(nb_, n - b0)
        b1 = b0 + nr
        mb, kb = m[b0:b1], k[b0:b1]
        _cols_into(xs[b0:b1], xt, nr, c)
        _cols_into(ys[b0:b1], yt, nr, c)
        if per_row:
            _cols_into(yrad[b0:b1], yrt, nr, c)
        _grad_scalars(t[b0:b1], terr[b0:b1], nr, c, lev, c_fn, slack, u, eta, unit,
                      ga[b0:b1], gra[b0:b1], trad, sv, srad, srel, gv, agv, grv)
        for j in range(c):
            xj, yj, yrj, vj, rj = xt[j], yt[j], yrt[j], vt[j], rt[j]
            for r in range(nr):
                p, pr = _p_rad(np.float64(xj[r]), mb[r], j == kb[r], sv[r], srel[r], c_fn,
                               slack, u, eta)
                bp = p - yj[r]
                br = pr + yrj[r] + u * abs(bp)
                br = _pick((bp > -np.inf) & (bp < np.inf), br, 0.0)
                v = gv[r] * bp
                rr = agv[r] * br + grv[r] * abs(bp) + u * abs(v)
                vj[r] = v
                rj[r] = _pick((v > -np.inf) & (v < np.inf), rr, 0.0)
        _rows_from_cols(vt, rt, val[b0 * c:b1 * c], rad[b0 * c:b1 * c], nr, c)


@jit
def _grad_rules(val, rad, r, c, bad, nan_rows, ignored):
    """The row rules (``plan.Rows.apply_rules``) on ``r`` gradient rows of ``c`` elements
    (flat ``val`` and ``rad``), after every row has been computed: 0 in an ignored row,
    NaN in a NaN row, radius 0. (Computing only the rows the rules let through kept
    ``_opaque``'s statements in the row loop, and it scalar: 1.05–1.13 times as long at
    C = 3 to 10.)"""
    for i in range(r):
        ign = ignored[i]
        if ign | bad[i] | nan_rows[i]:
            v = 0.0 if ign else np.nan
            for j in range(i * c, (i + 1) * c):
                val[j] = v
                rad[j] = 0.0


@jit
def sparse_grad_range(x, bits, lab, gam, grad_rad, unit, nan_rows, ignored, c, lev, c_fn,
                      slack, u, eta, block, p, emin, maxf, f64, out, ok):
    """The certified gradient (or backprop) rows of a sparse plan's row range at any C
    straight from its logits (``x``: C-contiguous float32 or float64 ``[N, C]``, ``bits``
    its integer view, ``lab`` the plan's labels) in one call, into flat ``[N·C]`` ``out``
    and ``ok``, in blocks of ``block`` rows: the row values (:func:`sparse_rows`), then
    each row's elements (:func:`_sparse_grad_row`, by ``γ = gam`` with its radius
    ``grad_rad``; ``unit``: ``γ = 1`` exactly, the arrays unread) or the row rules
    (``plan.Rows.apply_rules``: 0 in an ignored row, NaN in a NaN row, radius 0), then
    :func:`certify_rows` while the block is in cache: what ``engine._grad_rows`` does in
    numpy, the same operations in the same order. Returns how many elements did not
    certify."""
    n = x.shape[0]
    q = min(n, block)
    t, terr, m, xy = np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    lb, k = np.empty(q, dtype=np.int64), np.empty(q, dtype=np.int64)
    bad = np.empty(q, dtype=np.bool_)
    val, rad = np.empty(q * c), np.empty(q * c)
    top = max(c - 1, 0)
    missed = 0
    for a in range(0, n, block):
        b = min(n, a + block)
        r = b - a
        for i in range(r):
            v = lab[a + i]
            lb[i] = 0 if v < 0 else (top if v > top else v)
        sparse_rows(x[a:b], bits[a:b], lb[:r], t[:r], terr[:r], m[:r], k[:r], bad[:r], xy[:r])
        if c <= SMALL_GRAD_C:
            _small_grad_rows(x[a:b], lb, t, terr, m, k, xy, c, lev, c_fn, slack, u, eta,
                             unit, gam[a:b], grad_rad[a:b], val, rad)
        else:
            for i in range(r):
                vi = val[i * c:(i + 1) * c]
                ri = rad[i * c:(i + 1) * c]
                g = 1.0 if unit else gam[a + i]
                gr = 0.0 if unit else grad_rad[a + i]
                _sparse_grad_row(x[a + i], m[i], k[i], lb[i], t[i], terr[i], c, lev, c_fn,
                                 slack, u, eta, g, gr, vi, ri)
        _grad_rules(val, rad, r, c, bad, nan_rows[a:b], ignored[a:b])
        missed += _certify_count(val[:r * c], rad[:r * c], p, emin, maxf, f64,
                                 out[a * c:b * c], ok[a * c:b * c])
    return missed


# ------------------------------------------------------------------ the dense loss

@jit
def _pairwise_in_place(buf, n):
    """``certify.pairwise_sum`` of ``buf[:n]``, in place (``buf`` is scratch): at each
    level adjacent pairs added, an odd count's last element plus a zero (a −0 becomes +0,
    as there); ``0`` for ``n = 0``."""
    if n == 0:
        return 0.0
    m = n
    while m > 1:
        h = m // 2
        for i in range(h):
            buf[i] = buf[2 * i] + buf[2 * i + 1]
        if m % 2:
            buf[h] = buf[m - 1] + 0.0
            h += 1
        m = h
    return buf[0]


@jit
def _dense_row(xr, yr_, yrad, mi, ti, terr_i, lpi, xla, c, lev, plev, c_fn, slack, u, eta,
               tb, mb, rb):
    """One row of ``rows._Rows.dense_loss`` from the kernel's row values (the same
    operations in the same order): ``t``'s radius and ``log1p(t)``'s as ``rows._RowSums``
    has them, then per element ``d + dlo = x − m`` (``two_sum``; ``dlo = 0`` where ``x`` or
    ``d`` is not finite, as ``rows._numpy_rows`` has them; a bad row's values are
    replaced by the row rules), the term ``y·(log1p(t) − d)`` and its radius, and the
    three pairwise sums. Returns ``(L, rad)``."""
    logs_rad = _logs_rad(ti, _t_rad(ti, terr_i, c, lev, c_fn, slack, u, eta), lpi, c_fn, slack)
    big = False
    for j in range(c):
        xv = np.float64(xr[j])
        d, dlo = _two_sum(xv, -mi)
        fin_x = (xv > -np.inf) & (xv < np.inf) & (d > -np.inf) & (d < np.inf)
        dlo = _pick(fin_x, dlo, 0.0)
        a = lpi - d
        a_rad = logs_rad + u * a + abs(dlo) * slack
        yv = yr_[j]
        term = yv * a
        if xla:
            term = _pick(yv == 0, 0.0, term)
        at = abs(term)
        fin = at < np.inf  # neither ±inf nor NaN
        tb[j] = term
        mb[j] = _pick(fin, at, 0.0)
        rj = _pick(fin, abs(yv) * a_rad + u * at + yrad[j] * a, 0.0)
        if xla:  # a zero label's term is exactly 0 (its a may be +inf: 0·inf is NaN)
            rj = _pick((yv == 0) & (yrad[j] == 0), 0.0, rj)
        rb[j] = rj
        big |= fin & (at > 1e300)
    v = _pairwise_in_place(tb, c)
    mag = _pairwise_in_place(mb, c)
    rad = _pairwise_in_place(rb, c) * slack + plev * u * mag * slack
    rad = _pick((v > -np.inf) & (v < np.inf), rad, 0.0)
    return v, _pick(big, np.inf, rad)


@jit
def dense_loss_range(x, bits, y, yrad, xla, nan_rows, ignored, c, lev, plev, c_fn, slack, u,
                     eta, block, L, R):
    """``rows._Rows.dense_loss`` with the row rules (``plan.Rows.apply_rules``) for every
    row of ``x`` (C-contiguous float32 or float64 ``[N, C]``, ``bits`` its integer view;
    ``y`` and ``yrad`` the labels as the engine smooths them, C-contiguous float64; ``yrad``
    may be one row, every row's), in one call: blocks of ``block`` rows through
    :func:`sparse_rows` (its row values; the labelled logit is not read), ``log1p(t)``
    (:func:`_log1p_pos`) and :func:`_dense_row`, written into ``L`` and ``R``: the same
    bits as the numpy path."""
    n = x.shape[0]
    per_row = yrad.shape[0] > 1  # else one row of label radii, every row's
    q = min(n, block)
    t, terr, m, xy, lp = np.empty(q), np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    lb, k = np.zeros(q, dtype=np.int64), np.empty(q, dtype=np.int64)
    bad = np.empty(q, dtype=np.bool_)
    tb, mb, rb = np.empty(c), np.empty(c), np.empty(c)
    for a in range(0, n, block):
        b = min(n, a + block)
        r = b - a
        sparse_rows(x[a:b], bits[a:b], lb[:r], t[:r], terr[:r], m[:r], k[:r], bad[:r],
                    xy[:r])
        for i in range(r):
            lp[i] = _log1p_pos(t[i])
        for i in range(r):
            g = a + i
            v, rad = _dense_row(x[g], y[g], yrad[g if per_row else 0], m[i], t[i], terr[i],
                                lp[i], xla, c, lev, plev, c_fn, slack, u, eta, tb, mb, rb)
            ign = ignored[g]
            nan = (bad[i] | nan_rows[g]) & ~ign
            L[g] = _pick(ign, 0.0, _pick(nan, np.nan, v))
            R[g] = _pick(ign | nan, 0.0, rad)


@jit
def _dense_grad_row(xr, yr_, yrad, mi, ki, ti, terr_i, c, lev, c_fn, slack, u, eta, g, gr,
                    val, rad):
    """One row's dense backprop ``p − y`` with its radius, scaled by ``γ = g`` (radius
    ``gr``), into ``val`` and ``rad``: what ``rows._Rows.dense_bp`` (with ``_Rows.p``) and
    ``engine._scale`` do in numpy, the same operations in the same order; ``p_j`` as
    :func:`_sparse_grad_row` has it, then ``p_j − y_j`` with the radius ``p``'s plus
    ``y``'s (``yrad``, the smoothing's) plus one rounding."""
    _t, s, _s_rad, srel = _s_parts(ti, terr_i, c, lev, c_fn, slack, u, eta)
    ag = abs(g)
    for j in range(c):
        p, pr = _p_rad(np.float64(xr[j]), mi, j == ki, s, srel, c_fn, slack, u, eta)
        bp = p - yr_[j]
        br = pr + yrad[j] + u * abs(bp)
        br = _pick((bp > -np.inf) & (bp < np.inf), br, 0.0)
        v = g * bp
        r = ag * br + gr * abs(bp) + u * abs(v)
        val[j] = v
        rad[j] = _pick((v > -np.inf) & (v < np.inf), r, 0.0)


@jit
def dense_grad_range(x, bits, y, yrad, gam, grad_rad, unit, nan_rows, ignored, c, lev, c_fn,
                     slack, u, eta, block, p, emin, maxf, f64, out, ok):
    """:func:`sparse_grad_range` for a dense plan (``y`` and ``yrad`` the labels as the
    engine smooths them, C-contiguous float64 ``[N, C]``; ``yrad`` may be one row, every
    row's): the row values
    (:func:`sparse_rows`; the labelled logit is not read), each row's elements
    (:func:`_dense_grad_row`), the row rules, then :func:`certify_rows` while the block is
    in cache: what ``engine._grad_rows`` does in numpy, the same operations in the same
    order. Returns how many elements did not certify."""
    n = x.shape[0]
    per_row = yrad.shape[0] > 1  # else one row of label radii, every row's
    q = min(n, block)
    t, terr, m, xy = np.empty(q), np.empty(q), np.empty(q), np.empty(q)
    lb, k = np.zeros(q, dtype=np.int64), np.empty(q, dtype=np.int64)
    bad = np.empty(q, dtype=np.bool_)
    val, rad = np.empty(q * c), np.empty(q * c)
    missed = 0
    for a in range(0, n, block):
        b = min(n, a + block)
        r = b - a
        sparse_rows(x[a:b], bits[a:b], lb[:r], t[:r], terr[:r], m[:r], k[:r], bad[:r], xy[:r])
        if c <= SMALL_GRAD_C:
            _small_dense_grad_rows(x[a:b], y[a:b], yrad[a:b] if per_row else yrad, per_row, t,
                                   terr, m, k, c, lev, c_fn, slack, u, eta, unit, gam[a:b],
                                   grad_rad[a:b], val, rad)
        else:
            for i in range(r):
                g = 1.0 if unit else gam[a + i]
                gr = 0.0 if unit else grad_rad[a + i]
                _dense_grad_row(x[a + i], y[a + i], yrad[a + i if per_row else 0], m[i],
                                k[i], t[i], terr[i], c, lev, c_fn, slack, u, eta, g, gr,
                                val[i * c:(i + 1) * c], rad[i * c:(i + 1) * c])
        _grad_rules(val, rad, r, c, bad, nan_rows[a:b], ignored[a:b])
        missed += _certify_count(val[:r * c], rad[:r * c], p, emin, maxf, f64,
                                 out[a * c:b * c], ok[a * c:b * c])
    return missed
