//! Real scale factors as the integer `multiplier · 2^-shift` pairs of docs/arithmetic.md §4.

use fixpoint_ml::arith::{SHIFT_MAX, SHIFT_MIN};
use fixpoint_ml::format::Quant;

use crate::error::{Error, Result};

/// `(m, n)` with `m ∈ [2^30, 2^31)` and `real ≈ m · 2^-n`, `n` in `min_shift..=max_shift`;
/// relative error at most 2^-31. Errors if `real` is not positive and finite or needs a shift
/// outside the range.
pub fn to_fixed(real: f64, min_shift: i32, max_shift: i32) -> Result<(i32, u8)> {
    if !(real.is_finite() && real > 0.0) {
        return Err(Error::Quantize(format!("scale {real} must be positive and finite")));
    }
    // real = f · 2^e with f in [0.5, 1): scaling by powers of two is exact in f64.
    let (mut f, mut e) = (real, 0i32);
    while f >= 1.0 {
        f /= 2.0;
        e += 1;
    }
    while f < 0.5 {
        f *= 2.0;
        e -= 1;
    }
    let mut m = (f * 2f64.powi(31)).round() as i64;
    let mut n = 31 - e;
    if m == 1 << 31 {
        m = 1 << 30;
        n -= 1;
    }
    if n < min_shift || n > max_shift {
        return Err(Error::Quantize(format!(
            "scale {real:e} needs shift {n}, outside {min_shift}..={max_shift} (ratio of scales too extreme)"
        )));
    }
    Ok((m as i32, n as u8))
}

/// The multiplier and shift of a requantization by `real` (shift in `[1, 62]`).
pub fn requant_multiplier(real: f64) -> Result<(i32, u8)> {
    to_fixed(real, i32::from(SHIFT_MIN), i32::from(SHIFT_MAX))
}

/// The multipliers `(m_a, m_b)` and their shared shift `n` of the integer Add
/// (docs/arithmetic.md §6) for the ratios `a = s_a/s_out` and `b = s_b/s_out`: the larger one
/// gets `m ∈ [2^30, 2^31)` as in [`requant_multiplier`], the other `round(ratio·2^n)` on the
/// same shift (relative error at most 2^-31 of the larger term).
pub fn add_multipliers(a: f64, b: f64) -> Result<(i32, i32, u8)> {
    if !(a.is_finite() && a > 0.0 && b.is_finite() && b > 0.0) {
        return Err(Error::Quantize(format!("Add ratios {a}, {b} must be positive and finite")));
    }
    let (m, n) = requant_multiplier(a.max(b))?;
    let other = (a.min(b) * 2f64.powi(i32::from(n))).round().min(f64::from(i32::MAX)) as i32;
    Ok(if a >= b { (m, other, n) } else { (other, m, n) })
}

/// The format's description of a value with real scale `scale` and zero point `zero_point`.
pub fn quant(scale: f64, zero_point: i32) -> Result<Quant> {
    let (multiplier, shift) = to_fixed(scale, 0, 127)?;
    Ok(Quant { zero_point, multiplier, shift })
}

/// The real scale a [`Quant`] stands for (0 when it has none).
pub fn scale_of(q: &Quant) -> f64 {
    f64::from(q.multiplier) * 2f64.powi(-i32::from(q.shift))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn add_multipliers_share_one_shift() {
        let (ma, mb, n) = add_multipliers(0.75, 0.3).unwrap();
        assert!((1 << 30..1 << 31).contains(&i64::from(ma)));
        assert!((f64::from(ma) * 2f64.powi(-i32::from(n)) - 0.75).abs() < 1e-9);
        assert!((f64::from(mb) * 2f64.powi(-i32::from(n)) - 0.3).abs() < 1e-9);
        let (ma2, mb2, n2) = add_multipliers(0.3, 0.75).unwrap();
        assert_eq!((ma2, mb2, n2), (mb, ma, n));
        assert!(add_multipliers(0.0, 1.0).is_err());
    }

    #[test]
    fn exact_powers_and_known_values() {
        assert_eq!(to_fixed(1.0 / 16.0, 0, 127).unwrap(), (1 << 30, 34));
        assert_eq!(to_fixed(0.5, 0, 127).unwrap(), (1 << 30, 31));
        assert_eq!(to_fixed(1.0, 0, 127).unwrap(), (1 << 30, 30));
        // 0.75 = 3·2^29 / 2^31.
        assert_eq!(to_fixed(0.75, 0, 127).unwrap(), (3 << 29, 31));
        // Just below a power of two rounds up to it and renormalises.
        assert_eq!(to_fixed(1.0 - 1e-12, 0, 127).unwrap(), (1 << 30, 30));
    }

    #[test]
    fn random_scales_are_within_half_an_ulp() {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..10_000 {
            let real = 2f64.powf(r.random_range(-40.0..20.0));
            let (m, n) = to_fixed(real, 0, 127).unwrap();
            assert!((1 << 30..=i32::MAX).contains(&m));
            let back = f64::from(m) * 2f64.powi(-i32::from(n));
            assert!(((back - real) / real).abs() <= 2f64.powi(-31), "{real} -> {m}·2^-{n}");
        }
    }

    #[test]
    fn rejects_bad_scales() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(to_fixed(bad, 0, 127).is_err());
        }
        assert!(requant_multiplier(2f64.powi(40)).is_err());
        assert!(requant_multiplier(2f64.powi(-40)).is_err());
        assert!(requant_multiplier(2f64.powi(-20)).is_ok());
    }
}
