//! AVX-512 VNNI GEMM with `vpdpbusd` (u8 × s8 → i32, four products per lane, wrapping).
//!
//! `a` is shifted to u8 by `a ^ 0x80 = a + 128`, so `Σ (a+128)·w = Σ a·w + 128·Σw`; the caller's
//! correction subtracts `(zp + 128)·Σw`. Weights are packed `[n/16][k/4][16 lanes][4]`: one
//! 64-byte load gives 4 consecutive k for 16 output channels. The tile is 8 rows × 32 channels
//! (16 accumulators). Padding (k to a multiple of 4, n to 16) is zero in the weights, so the
//! padded products vanish.

use core::arch::x86_64::*;

use crate::error::{Error, Result};

const LANES: usize = 16;
const MR: usize = 8;

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

/// Packs row-major `w[n][k]` into `[n/16][k/4][16][4]`, zero-padded.
pub(crate) fn pack(w: &[i8], n: usize, k: usize) -> Vec<i8> {
    let (nb, kg) = (ceil_div(n, LANES), ceil_div(k, 4));
    let mut out = vec![0i8; nb * kg * 64];
    for (j, row) in w.chunks_exact(k).enumerate().take(n) {
        let (b, lane) = (j / LANES, j % LANES);
        for (t, &x) in row.iter().enumerate() {
            let idx = (b * kg + t / 4) * 64 + lane * 4 + t % 4;
            if let Some(slot) = out.get_mut(idx) {
                *slot = x;
            }
        }
    }
    out
}

/// `out[i][j] = correction[j] + Σ_t (a[i][t] + 128)·w[j][t]` (wrapping i32).
pub(crate) fn gemm(
    a: &[i8],
    m: usize,
    k: usize,
    packed: &[i8],
    n: usize,
    correction: &[i32],
    out: &mut [i32],
) -> Result<()> {
    let (nb, kg) = (ceil_div(n, LANES), ceil_div(k, 4));
    if !super::has_avx512vnni() {
        return Err(Error::Internal("avx512vnni kernel called on a CPU without it"));
    }
    if packed.len() != nb * kg * 64 || a.len() != m * k || out.len() != m * n || correction.len() != n {
        return Err(Error::Internal("avx512vnni gemm: shapes do not match"));
    }
    // A as u8 rows padded to a multiple of 4 (the pad multiplies zero weights).
    let kp = kg * 4;
    let mut au = vec![0u8; m * kp];
    for (dst, src) in au.chunks_exact_mut(kp).zip(a.chunks_exact(k)) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s.to_le_bytes()[0] ^ 0x80;
        }
    }
    let mut corr = vec![0i32; nb * LANES];
    corr.iter_mut().zip(correction).for_each(|(d, &s)| *d = s);
    // SAFETY: the CPU has AVX-512 F/BW/VNNI (checked above), and every buffer has the size the
    // kernel indexes: au = m·kp, packed = nb·kg·64, corr = nb·16, out = m·n (checked above).
    unsafe { gemm_inner(&au, m, kp, packed, nb, kg, &corr, n, out) };
    Ok(())
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_inner(
    au: &[u8],
    m: usize,
    kp: usize,
    packed: &[i8],
    nb: usize,
    kg: usize,
    corr: &[i32],
    n: usize,
    out: &mut [i32],
) {
    let mut b = 0;
    while b < nb {
        let nr = if b + 1 < nb { 2 } else { 1 };
        let mut i = 0;
        while i < m {
            let mr = (m - i).min(MR);
            // SAFETY: rows i..i+mr and blocks b..b+nr are in bounds by the loop conditions.
            unsafe {
                match (mr, nr) {
                    (8, 2) => tile::<8, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (8, _) => tile::<8, 1>(au, i, kp, packed, b, kg, corr, n, out),
                    (7, 2) => tile::<7, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (7, _) => tile::<7, 1>(au, i, kp, packed, b, kg, corr, n, out),
                    (6, 2) => tile::<6, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (6, _) => tile::<6, 1>(au, i, kp, packed, b, kg, corr, n, out),
                    (5, 2) => tile::<5, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (5, _) => tile::<5, 1>(au, i, kp, packed, b, kg, corr, n, out),
                    (4, 2) => tile::<4, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (4, _) => tile::<4, 1>(au, i, kp, packed, b, kg, corr, n, out),
                    (3, 2) => tile::<3, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (3, _) => tile::<3, 1>(au, i, kp, packed, b, kg, corr, n, out),
                    (2, 2) => tile::<2, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (2, _) => tile::<2, 1>(au, i, kp, packed, b, kg, corr, n, out),
                    (_, 2) => tile::<1, 2>(au, i, kp, packed, b, kg, corr, n, out),
                    (_, _) => tile::<1, 1>(au, i, kp, packed, b, kg, corr, n, out),
                }
            }
            i += mr;
        }
        b += nr;
    }
}

/// One tile: rows `i..i+R` of A times weight blocks `b..b+C` (16 channels each).
///
/// # Safety
/// AVX-512 F/BW/VNNI present; `i + R <= m`, `b + C <= nb`, buffers sized as in `gemm`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<const R: usize, const C: usize>(
    au: &[u8],
    i: usize,
    kp: usize,
    packed: &[i8],
    b: usize,
    kg: usize,
    corr: &[i32],
    n: usize,
    out: &mut [i32],
) {
    let mut acc = [[_mm512_setzero_si512(); C]; R];
    let a0 = au.as_ptr().wrapping_add(i * kp);
    let w0 = packed.as_ptr().wrapping_add(b * kg * 64);
    for g in 0..kg {
        let mut wv = [_mm512_setzero_si512(); C];
        for c in 0..C {
            // SAFETY: block b+c < nb and g < kg, so the 64 bytes lie inside `packed`.
            wv[c] = unsafe { _mm512_loadu_si512(w0.add((c * kg + g) * 64).cast()) };
        }
        for r in 0..R {
            // SAFETY: row i+r < m and g*4+4 <= kp, so the 4 bytes lie inside `au`.
            let quad = unsafe { a0.add(r * kp + g * 4).cast::<i32>().read_unaligned() };
            let av = _mm512_set1_epi32(quad);
            for c in 0..C {
                acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], av, wv[c]);
            }
        }
    }
    for c in 0..C {
        let col = (b + c) * LANES;
        // SAFETY: corr has nb·16 entries and col + 16 <= nb·16.
        let cv = unsafe { _mm512_loadu_si512(corr.as_ptr().add(col).cast()) };
        let valid = n.saturating_sub(col).min(LANES);
        for r in 0..R {
            let v = _mm512_add_epi32(acc[r][c], cv);
            let row = (i + r) * n + col;
            if valid == LANES {
                // SAFETY: row + 16 <= (i+r+1)·n <= m·n = out.len().
                unsafe { _mm512_storeu_si512(out.as_mut_ptr().add(row).cast(), v) };
            } else {
                let mask: __mmask16 = ((1u32 << valid) - 1) as __mmask16;
                // SAFETY: the mask writes only the `valid` lanes, which lie inside row i+r of out.
                unsafe { _mm512_mask_storeu_epi32(out.as_mut_ptr().add(row), mask, v) };
            }
        }
    }
}
