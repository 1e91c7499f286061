//! AVX2 GEMM with `vpmaddwd`: a and w sign-extended to i16, each instruction adds
//! `a[k]·w[k] + a[k+1]·w[k+1]` (|·| ≤ 2·128·128, exact) into eight i32 lanes.
//!
//! Weights are packed `[n/8][k/2][8 lanes][2]` as i16; A is widened to i16 rows padded to an
//! even length. The tile is 6 rows × 16 channels (12 accumulators). The caller's correction
//! adds `bias - zp·Σw`.

use core::arch::x86_64::*;

use crate::error::{Error, Result};

const LANES: usize = 8;

/// Packs row-major `w[n][k]` into `[n/8][k/2][8][2]` i16, zero-padded.
pub(crate) fn pack(w: &[i8], n: usize, k: usize) -> Vec<i16> {
    let (nb, kq) = (n.div_ceil(LANES), k.div_ceil(2));
    let mut out = vec![0i16; nb * kq * 16];
    for (j, row) in w.chunks_exact(k).enumerate().take(n) {
        let (b, lane) = (j / LANES, j % LANES);
        for (t, &x) in row.iter().enumerate() {
            let idx = (b * kq + t / 2) * 16 + lane * 2 + t % 2;
            if let Some(slot) = out.get_mut(idx) {
                *slot = i16::from(x);
            }
        }
    }
    out
}

/// `out[i][j] = correction[j] + Σ_t a[i][t]·w[j][t]` (wrapping i32).
pub(crate) fn gemm(
    a: &[i8],
    m: usize,
    k: usize,
    packed: &[i16],
    n: usize,
    correction: &[i32],
    out: &mut [i32],
) -> Result<()> {
    let (nb, kq) = (n.div_ceil(LANES), k.div_ceil(2));
    if !super::has_avx2() {
        return Err(Error::Internal("avx2 kernel called on a CPU without it"));
    }
    if packed.len() != nb * kq * 16 || a.len() != m * k || out.len() != m * n || correction.len() != n {
        return Err(Error::Internal("avx2 gemm: shapes do not match"));
    }
    let kp = kq * 2;
    let mut aw = vec![0i16; m * kp];
    for (dst, src) in aw.chunks_exact_mut(kp).zip(a.chunks_exact(k)) {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = i16::from(s));
    }
    let mut corr = vec![0i32; nb * LANES];
    corr.iter_mut().zip(correction).for_each(|(d, &s)| *d = s);
    // SAFETY: AVX2 is present (checked above); buffers are sized as the kernel indexes them:
    // aw = m·kp, packed = nb·kq·16, corr = nb·8, out = m·n.
    unsafe { gemm_inner(&aw, m, kp, packed, nb, kq, &corr, n, out) };
    Ok(())
}

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_inner(
    aw: &[i16],
    m: usize,
    kp: usize,
    packed: &[i16],
    nb: usize,
    kq: usize,
    corr: &[i32],
    n: usize,
    out: &mut [i32],
) {
    let mut b = 0;
    while b < nb {
        let nr = if b + 1 < nb { 2 } else { 1 };
        let mut i = 0;
        while i < m {
            let mr = (m - i).min(6);
            // SAFETY: rows i..i+mr and blocks b..b+nr are in bounds by the loop conditions.
            unsafe {
                match (mr, nr) {
                    (6, 2) => tile::<6, 2>(aw, i, kp, packed, b, kq, corr, n, out),
                    (6, _) => tile::<6, 1>(aw, i, kp, packed, b, kq, corr, n, out),
                    (5, 2) => tile::<5, 2>(aw, i, kp, packed, b, kq, corr, n, out),
                    (5, _) => tile::<5, 1>(aw, i, kp, packed, b, kq, corr, n, out),
                    (4, 2) => tile::<4, 2>(aw, i, kp, packed, b, kq, corr, n, out),
                    (4, _) => tile::<4, 1>(aw, i, kp, packed, b, kq, corr, n, out),
                    (3, 2) => tile::<3, 2>(aw, i, kp, packed, b, kq, corr, n, out),
                    (3, _) => tile::<3, 1>(aw, i, kp, packed, b, kq, corr, n, out),
                    (2, 2) => tile::<2, 2>(aw, i, kp, packed, b, kq, corr, n, out),
                    (2, _) => tile::<2, 1>(aw, i, kp, packed, b, kq, corr, n, out),
                    (_, 2) => tile::<1, 2>(aw, i, kp, packed, b, kq, corr, n, out),
                    (_, _) => tile::<1, 1>(aw, i, kp, packed, b, kq, corr, n, out),
                }
            }
            i += mr;
        }
        b += nr;
    }
}

/// One tile: rows `i..i+R` of A times weight blocks `b..b+C` (8 channels each).
///
/// # Safety
/// AVX2 present; `i + R <= m`, `b + C <= nb`, buffers sized as in `gemm`.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<const R: usize, const C: usize>(
    aw: &[i16],
    i: usize,
    kp: usize,
    packed: &[i16],
    b: usize,
    kq: usize,
    corr: &[i32],
    n: usize,
    out: &mut [i32],
) {
    let mut acc = [[_mm256_setzero_si256(); C]; R];
    let a0 = aw.as_ptr().wrapping_add(i * kp);
    let w0 = packed.as_ptr().wrapping_add(b * kq * 16);
    for g in 0..kq {
        let mut wv = [_mm256_setzero_si256(); C];
        for c in 0..C {
            // SAFETY: block b+c < nb and g < kq: 16 i16 inside `packed`.
            wv[c] = unsafe { _mm256_loadu_si256(w0.add((c * kq + g) * 16).cast()) };
        }
        for r in 0..R {
            // SAFETY: row i+r < m, 2g+2 <= kp: two i16 inside `aw`.
            let pair = unsafe { a0.add(r * kp + g * 2).cast::<i32>().read_unaligned() };
            let av = _mm256_set1_epi32(pair);
            for c in 0..C {
                acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(av, wv[c]));
            }
        }
    }
    for c in 0..C {
        let col = (b + c) * LANES;
        // SAFETY: corr has nb·8 entries and col + 8 <= nb·8.
        let cv = unsafe { _mm256_loadu_si256(corr.as_ptr().add(col).cast()) };
        let valid = n.saturating_sub(col).min(LANES);
        for r in 0..R {
            let v = _mm256_add_epi32(acc[r][c], cv);
            let row = (i + r) * n + col;
            if valid == LANES {
                // SAFETY: row + 8 <= (i+r+1)·n <= out.len().
                unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(row).cast(), v) };
            } else {
                let mut tmp = [0i32; LANES];
                // SAFETY: tmp holds 8 i32.
                unsafe { _mm256_storeu_si256(tmp.as_mut_ptr().cast(), v) };
                if let Some(dst) = out.get_mut(row..row + valid) {
                    dst.copy_from_slice(&tmp[..valid]);
                }
            }
        }
    }
}
