//! The reference kernels: the definition of correct, written to be checked by eye.
//! Every other path must equal these bit for bit.

use crate::error::{Error, Result};
use crate::work::Counter;

/// `out[i][j] = bias[j] + Σ_t (a[i][t] - a_zp)·w[j][t]`, each step wrapping in i32.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    a: &[i8],
    m: usize,
    k: usize,
    a_zp: i32,
    w: &[i8],
    n: usize,
    bias: Option<&[i32]>,
    out: &mut [i32],
    work: &Counter,
) -> Result<()> {
    if k == 0 || n == 0 || a.len() != m * k || w.len() != n * k || out.len() != m * n {
        return Err(Error::Internal("reference gemm: shapes do not match"));
    }
    for (a_row, out_row) in a.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
        work.steps(n);
        work.macs(n * k);
        for (j, (o, w_row)) in out_row.iter_mut().zip(w.chunks_exact(k)).enumerate() {
            let mut acc = bias.and_then(|b| b.get(j)).copied().unwrap_or(0);
            for (&x, &wt) in a_row.iter().zip(w_row) {
                let d = i32::from(x).wrapping_sub(a_zp);
                acc = acc.wrapping_add(d.wrapping_mul(i32::from(wt)));
            }
            *o = acc;
        }
    }
    Ok(())
}
