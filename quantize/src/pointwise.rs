//! Pointwise activations as real functions, for the exact int8 lookup table (Lut8,
//! docs/arithmetic.md §7): the quantizer evaluates `f` at the 256 real values an i8 input stands
//! for and stores the quantized results, so whatever floating point this uses stays offline.

/// The error function (Numerical Recipes' `erfc` by Chebyshev fit, |error| < 1.2e-7: far below
/// half an i8 step of any table built here).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A pointwise function of one real, lowered to an exact Lut8 table (docs/arithmetic.md §7).
/// Parameters are stored as f32 bit patterns so that layers stay `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointwise {
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x·Φ(x)` (erf form).
    Gelu,
    /// GELU's tanh approximation.
    GeluTanh,
    /// `x·sigmoid(x)` (SiLU, Swish).
    Silu,
    /// `x·clamp(x/6 + 1/2, 0, 1)`.
    HardSwish,
    /// `clamp(alpha·x + beta, 0, 1)`.
    HardSigmoid {
        /// f32 bits of alpha.
        alpha: u32,
        /// f32 bits of beta.
        beta: u32,
    },
    /// `x` for `x ≥ 0`, else `alpha·x`.
    LeakyRelu {
        /// f32 bits of alpha.
        alpha: u32,
    },
    /// `x` for `x ≥ 0`, else `alpha·(e^x − 1)`.
    Elu {
        /// f32 bits of alpha.
        alpha: u32,
    },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `clamp(x, lo, hi)`.
    Clip {
        /// f32 bits of the lower bound (−∞ for none).
        lo: u32,
        /// f32 bits of the upper bound (+∞ for none).
        hi: u32,
    },
    /// `max(x, 0)`.
    Relu,
}

impl Pointwise {
    /// The function's value at `x`.
    pub fn eval(self, x: f64) -> f64 {
        let f = |bits: u32| f64::from(f32::from_bits(bits));
        match self {
            Pointwise::Sigmoid => sigmoid(x),
            Pointwise::Tanh => x.tanh(),
            Pointwise::Softplus => {
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            Pointwise::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            Pointwise::GeluTanh => {
                0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044_715 * x.powi(3))).tanh())
            }
            Pointwise::Silu => silu(x),
            Pointwise::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Pointwise::HardSigmoid { alpha, beta } => (f(alpha) * x + f(beta)).clamp(0.0, 1.0),
            Pointwise::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    f(alpha) * x
                }
            }
            Pointwise::Elu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    f(alpha) * x.exp_m1()
                }
            }
            Pointwise::Softsign => x / (1.0 + x.abs()),
            Pointwise::Clip { lo, hi } => x.max(f(lo)).min(f(hi)),
            Pointwise::Relu => x.max(0.0),
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Pointwise::Sigmoid => "Sigmoid",
            Pointwise::Tanh => "Tanh",
            Pointwise::Softplus => "Softplus",
            Pointwise::Gelu => "Gelu",
            Pointwise::GeluTanh => "Gelu(tanh)",
            Pointwise::Silu => "SiLU",
            Pointwise::HardSwish => "HardSwish",
            Pointwise::HardSigmoid { .. } => "HardSigmoid",
            Pointwise::LeakyRelu { .. } => "LeakyRelu",
            Pointwise::Elu { .. } => "Elu",
            Pointwise::Softsign => "Softsign",
            Pointwise::Clip { .. } => "Clip",
            Pointwise::Relu => "Relu",
        }
    }
}

/// `x · sigmoid(x)`: the SiLU (Swish) torch exports as `Sigmoid` then `Mul` of the two.
pub fn silu(x: f64) -> f64 {
    x * sigmoid(x)
}

/// The i8 table of `f` from input `(s_in, z_in)` to output `(s_out, z_out)`:
/// `table[q + 128] = clamp(z_out + round(f(s_in·(q − z_in)) / s_out))`.
pub fn table(f: &dyn Fn(f64) -> f64, (s_in, z_in): (f64, i32), (s_out, z_out): (f64, i32)) -> Vec<i8> {
    (-128i32..=127)
        .map(|q| {
            let y = f(s_in * f64::from(q - z_in));
            let v = (y / s_out).round().clamp(-1e9, 1e9) as i64 + i64::from(z_out);
            v.clamp(-128, 127) as i8
        })
        .collect()
}

/// The real range of `f` over the 256 values of an i8 input `(s_in, z_in)`.
pub fn range(f: &dyn Fn(f64) -> f64, (s_in, z_in): (f64, i32)) -> (f32, f32) {
    (-128i32..=127).map(|q| f(s_in * f64::from(q - z_in)) as f32).fold((0.0, 0.0), |(lo, hi), y| (lo.min(y), hi.max(y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, e) in
            [(0.0, 0.0), (0.5, 0.520_499_877_8), (1.0, 0.842_700_792_9), (2.0, 0.995_322_265), (-1.0, -0.842_700_792_9)]
        {
            assert!((erf(x) - e).abs() < 2e-7, "erf({x}) = {} vs {e}", erf(x));
        }
    }

    #[test]
    fn identity_table_is_exact() {
        let t = table(&|x| x, (0.5, 3), (0.5, 3));
        assert!(t.iter().zip(-128i32..).all(|(&v, q)| i32::from(v) == q));
    }
}
