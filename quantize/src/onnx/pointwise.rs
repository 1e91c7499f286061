//! Pointwise ONNX activations as real functions, for the exact int8 lookup table (Lut8,
//! docs/arithmetic.md §7): the importer evaluates `f` at the 256 real values an i8 input stands
//! for and stores the quantized results, so whatever floating point this uses stays offline.

use tract_onnx::pb::NodeProto;

use super::graph::attr_f;

/// The ONNX op types mapped as a table (with their attributes read by [`function`]).
pub(crate) const LUT_OPS: [&str; 13] = [
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Gelu",
    "HardSwish",
    "HardSigmoid",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Softsign",
    "Exp",
    "Abs",
    "Neg",
];

/// The error function (Numerical Recipes' `erfc` by Chebyshev fit, |error| < 1.2e-7: far below
/// half an i8 step of any table built here).
pub(crate) fn erf(x: f64) -> f64 {
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

/// The real function of a pointwise node, or `None` if `n` is not one of [`LUT_OPS`].
pub(crate) fn function(n: &NodeProto) -> Option<Box<dyn Fn(f64) -> f64>> {
    let a = |name: &str, d: f32| f64::from(attr_f(n, name, d));
    Some(match n.op_type.as_str() {
        "Sigmoid" => Box::new(sigmoid),
        "Tanh" => Box::new(f64::tanh),
        "Softplus" => Box::new(|x: f64| if x > 30.0 { x } else { x.exp().ln_1p() }),
        "Gelu" => {
            let tanh = super::graph::attr_s(n, "approximate", "none") == "tanh";
            if tanh {
                Box::new(|x: f64| {
                    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044_715 * x.powi(3))).tanh())
                })
            } else {
                Box::new(|x: f64| 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)))
            }
        }
        "HardSwish" => Box::new(|x: f64| x * (x / 6.0 + 0.5).clamp(0.0, 1.0)),
        "HardSigmoid" => {
            let (al, be) = (a("alpha", 0.2), a("beta", 0.5));
            Box::new(move |x: f64| (al * x + be).clamp(0.0, 1.0))
        }
        "LeakyRelu" => {
            let al = a("alpha", 0.01);
            Box::new(move |x: f64| if x >= 0.0 { x } else { al * x })
        }
        "Elu" => {
            let al = a("alpha", 1.0);
            Box::new(move |x: f64| if x >= 0.0 { x } else { al * x.exp_m1() })
        }
        "Selu" => {
            let (al, ga) = (a("alpha", 1.673_263_2), a("gamma", 1.050_701));
            Box::new(move |x: f64| ga * if x > 0.0 { x } else { al * x.exp_m1() })
        }
        "Softsign" => Box::new(|x: f64| x / (1.0 + x.abs())),
        "Exp" => Box::new(f64::exp),
        "Abs" => Box::new(f64::abs),
        "Neg" => Box::new(|x: f64| -x),
        _ => return None,
    })
}

/// `x · sigmoid(x)`: the SiLU (Swish) torch exports as `Sigmoid` then `Mul` of the two.
pub(crate) fn silu(x: f64) -> f64 {
    x * sigmoid(x)
}

/// The i8 table of `f` from input `(s_in, z_in)` to output `(s_out, z_out)`:
/// `table[q + 128] = clamp(z_out + round(f(s_in·(q − z_in)) / s_out))`.
pub(crate) fn table(f: &dyn Fn(f64) -> f64, (s_in, z_in): (f64, i32), (s_out, z_out): (f64, i32)) -> Vec<i8> {
    (-128i32..=127)
        .map(|q| {
            let y = f(s_in * f64::from(q - z_in));
            let v = (y / s_out).round().clamp(-1e9, 1e9) as i64 + i64::from(z_out);
            v.clamp(-128, 127) as i8
        })
        .collect()
}

/// The real range of `f` over the 256 values of an i8 input `(s_in, z_in)`.
pub(crate) fn range(f: &dyn Fn(f64) -> f64, (s_in, z_in): (f64, i32)) -> (f32, f32) {
    (-128i32..=127).map(|q| f(s_in * f64::from(q - z_in)) as f32).fold((0.0, 0.0), |(lo, hi), y| (lo.min(y), hi.max(y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, e) in [(0.0, 0.0), (0.5, 0.520_499_877_8), (1.0, 0.842_700_792_9), (2.0, 0.995_322_265), (-1.0, -0.842_700_792_9)]
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
