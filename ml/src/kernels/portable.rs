//! The portable GEMM: safe Rust shaped so the compiler vectorises it on any target. Computes
//! `Σ a·w` in wrapping i32 and adds the per-channel correction `bias - zp·Σw`.

use crate::error::{Error, Result};

/// Lanes of independent partial sums; wide enough for 512-bit vectors of i32.
const LANES: usize = 16;

/// Dot product of two i8 rows in wrapping i32.
#[inline]
fn dot(a: &[i8], w: &[i8]) -> i32 {
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
pub fn gemm(a: &[i8], m: usize, k: usize, w: &[i8], n: usize, correction: &[i32], out: &mut [i32]) -> Result<()> {
    if k == 0 || n == 0 || a.len() != m * k || w.len() != n * k || out.len() != m * n || correction.len() != n {
        return Err(Error::Internal("portable gemm: shapes do not match"));
    }
    for (a_row, out_row) in a.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        for ((o, w_row), &c) in out_row.iter_mut().zip(w.chunks_exact(k)).zip(correction) {
            *o = c.wrapping_add(dot(a_row, w_row));
        }
    }
    Ok(())
}
