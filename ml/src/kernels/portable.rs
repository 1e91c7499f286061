//! The portable GEMM: safe Rust shaped so the compiler vectorises it on any target. Computes
//! `Σ a·w` in wrapping i32 and adds the per-channel correction `bias - zp·Σw`.
//!
//! Operands are widened to i16 first (weights once at load, activations per call): a sum of
//! `i32(i16)·i32(i16)` products is the idiom compilers lower to `pmaddwd` even on baseline SSE2,
//! where i8 operands would need several unpack steps per product.

use crate::error::{Error, Result};
use crate::work::Counter;

/// Lanes of independent partial sums; wide enough for 512-bit vectors of i32.
const LANES: usize = 16;

/// Widens i8 to i16 (the portable weight layout).
pub fn widen(v: &[i8]) -> Vec<i16> {
    v.iter().map(|&x| i16::from(x)).collect()
}

/// Dot product of two widened rows in wrapping i32.
#[inline]
fn dot(a: &[i16], w: &[i16]) -> i32 {
    let mut lanes = [0i32; LANES];
    let mut ac = a.chunks_exact(LANES);
    let mut wc = w.chunks_exact(LANES);
    for (ca, cw) in (&mut ac).zip(&mut wc) {
        for ((l, &x), &y) in lanes.iter_mut().zip(ca).zip(cw) {
            *l = l.wrapping_add(i32::from(x) * i32::from(y));
        }
    }
    let mut s = lanes.iter().fold(0i32, |s, &l| s.wrapping_add(l));
    for (&x, &y) in ac.remainder().iter().zip(wc.remainder()) {
        s = s.wrapping_add(i32::from(x) * i32::from(y));
    }
    s
}

/// `out[i][j] = correction[j] + Σ_t a[i][t]·w[j][t]` (wrapping i32).
/// `w` is the widened `[n][k]` weight matrix.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    a: &[i8],
    m: usize,
    k: usize,
    w: &[i16],
    n: usize,
    correction: &[i32],
    out: &mut [i32],
    work: &Counter,
) -> Result<()> {
    if k == 0 || n == 0 || a.len() != m * k || w.len() != n * k || out.len() != m * n || correction.len() != n {
        return Err(Error::Internal("portable gemm: shapes do not match"));
    }
    work.alloc(a.len() * 2);
    let a = widen(a);
    for (a_row, out_row) in a.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        work.steps(n);
        work.macs(n * k);
        for ((o, w_row), &c) in out_row.iter_mut().zip(w.chunks_exact(k)).zip(correction) {
            *o = c.wrapping_add(dot(a_row, w_row));
        }
    }
    Ok(())
}
