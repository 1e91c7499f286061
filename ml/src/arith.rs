//! The arithmetic primitives every op shares (docs/arithmetic.md §4–§6). Exact integer math:
//! products are formed in i128 so no intermediate can overflow, whatever the operands.

/// Smallest allowed normalised requantization multiplier, 2^30 (docs/arithmetic.md §4).
pub const MULTIPLIER_MIN: i64 = 1 << 30;
/// One past the largest allowed requantization multiplier, 2^31.
pub const MULTIPLIER_END: i64 = 1 << 31;
/// Smallest allowed requantization shift.
pub const SHIFT_MIN: u8 = 1;
/// Largest allowed requantization shift.
pub const SHIFT_MAX: u8 = 62;

/// `floor((v + 2^(n-1)) / 2^n)`: division by 2^n rounding half toward +infinity
/// (docs/arithmetic.md §4). `n` must be in `1..=62`; other shifts are clamped into that range,
/// which the verifier makes unreachable.
pub fn round_shift(v: i128, n: u8) -> i128 {
    let n = u32::from(n.clamp(SHIFT_MIN, SHIFT_MAX));
    (v + (1i128 << (n - 1))) >> n
}

/// Single-rounding requantization: `clamp(zp + round_shift(v * m, n), lo, hi)`
/// (docs/arithmetic.md §4). Returns an i32; callers narrow after the clamp.
pub fn requantize(v: i64, m: i32, n: u8, zp: i32, lo: i32, hi: i32) -> i32 {
    let scaled = round_shift(i128::from(v) * i128::from(m), n);
    clamp_i128(i128::from(zp) + scaled, lo, hi)
}

/// [`requantize`] of an i32 accumulator in i64 arithmetic, the hot path of the fused
/// requantization. Exact: `|v·m| <= 2^62` and the rounding term is at most `2^61`, so the sum
/// stays below `2^63`; the result equals [`requantize`] for every input (tested exhaustively at
/// the extremes and on random values).
#[inline]
pub fn requantize_i32(v: i32, m: i32, n: u8, zp: i32, lo: i32, hi: i32) -> i32 {
    let n = u32::from(n.clamp(SHIFT_MIN, SHIFT_MAX));
    let scaled = (i64::from(v) * i64::from(m) + (1i64 << (n - 1))) >> n;
    let s = i64::from(zp) + scaled;
    if s <= i64::from(lo) {
        lo
    } else if s >= i64::from(hi) {
        hi
    } else {
        // In (lo, hi), so it fits an i32.
        i32::try_from(s).unwrap_or(lo)
    }
}

/// Clamps an i128 into `[lo, hi]` (lo <= hi is the caller's invariant; if broken, `lo` wins).
pub fn clamp_i128(v: i128, lo: i32, hi: i32) -> i32 {
    if v <= i128::from(lo) {
        lo
    } else if v >= i128::from(hi) {
        hi
    } else {
        // In (lo, hi), so it fits an i32.
        i32::try_from(v).unwrap_or(lo)
    }
}

/// Narrows a value already clamped into the i8 range.
pub fn to_i8(v: i32) -> i8 {
    i8::try_from(v.clamp(-128, 127)).unwrap_or(0)
}

/// Division rounding half away from zero, for averages (docs/arithmetic.md §5). `d > 0`.
pub fn div_round_half_away(s: i64, d: i64) -> i64 {
    if d <= 0 {
        return 0;
    }
    if s >= 0 { (s + d / 2) / d } else { -((-s + d / 2) / d) }
}

/// Largest `|x - zp|` over all i8 `x`: the factor of the overflow bound (docs/arithmetic.md §3).
pub fn max_abs_diff_i8(zp: i32) -> i64 {
    (127 - i64::from(zp)).max(i64::from(zp) + 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_shift_is_half_up() {
        // 5/2 = 2.5 -> 3, -5/2 = -2.5 -> -2, 7/4 = 1.75 -> 2, -7/4 -> -2
        assert_eq!(round_shift(5, 1), 3);
        assert_eq!(round_shift(-5, 1), -2);
        assert_eq!(round_shift(7, 2), 2);
        assert_eq!(round_shift(-7, 2), -2);
        assert_eq!(round_shift(-6, 2), -1); // -1.5 -> -1
    }

    #[test]
    fn requantize_matches_exact_rational_rounding() {
        // y = round(v * m / 2^n) with half up, checked against a direct rational computation.
        for v in [-100_000i64, -1, 0, 1, 77, 123_456, i64::from(i32::MAX)] {
            for (m, n) in [(1 << 30, 31u8), (1_518_500_250, 38), (2_147_483_647, 62)] {
                let num = i128::from(v) * i128::from(m);
                let den = 1i128 << n;
                // floor(num/den + 1/2) = floor((2num + den) / 2den)
                let expect = (2 * num + den).div_euclid(2 * den);
                let got = requantize(v, m, n, 0, i32::MIN, i32::MAX);
                assert_eq!(i128::from(got), expect.clamp(i128::from(i32::MIN), i128::from(i32::MAX)));
            }
        }
    }

    #[test]
    fn i64_requantize_equals_the_i128_definition() {
        let edges_v = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];
        let edges_m = [i32::MIN, -(1 << 30), 0, 1 << 30, i32::MAX];
        for &v in &edges_v {
            for &m in &edges_m {
                for n in [0u8, 1, 2, 31, 61, 62, 63, 255] {
                    for (zp, lo, hi) in [(0, -128, 127), (-128, -128, 127), (5, i32::MIN, i32::MAX), (0, 10, -10)] {
                        assert_eq!(requantize_i32(v, m, n, zp, lo, hi), requantize(i64::from(v), m, n, zp, lo, hi));
                    }
                }
            }
        }
        // A cheap deterministic generator: splitmix64.
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        for _ in 0..200_000 {
            let (v, m) = (next() as i32, next() as i32);
            let n = (next() % 64) as u8;
            let zp = (next() % 256) as i32 - 128;
            assert_eq!(requantize_i32(v, m, n, zp, -128, 127), requantize(i64::from(v), m, n, zp, -128, 127));
        }
    }

    #[test]
    fn average_rounds_half_away_from_zero() {
        assert_eq!(div_round_half_away(5, 2), 3);
        assert_eq!(div_round_half_away(-5, 2), -3);
        assert_eq!(div_round_half_away(4, 3), 1);
        assert_eq!(div_round_half_away(-5, 3), -2);
        assert_eq!(div_round_half_away(1, 3), 0);
    }
}
