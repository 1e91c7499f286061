//! ONNX pointwise activation nodes as [`Pointwise`] functions (each becomes a Lut8 table).

use tract_onnx::pb::NodeProto;

use super::graph::{Graph, attr, attr_f, attr_s};
pub(crate) use crate::pointwise::Pointwise;

/// The function of a pointwise node, or `None` if `n` is not one. `Clip` reads its bounds from
/// constant inputs (opset ≥ 11) or attributes.
pub(crate) fn function(g: &Graph, n: &NodeProto) -> Option<Pointwise> {
    let bits = |name: &str, d: f32| attr_f(n, name, d).to_bits();
    Some(match n.op_type.as_str() {
        "Sigmoid" => Pointwise::Sigmoid,
        "Tanh" => Pointwise::Tanh,
        "Softplus" => Pointwise::Softplus,
        "Gelu" if attr_s(n, "approximate", "none") == "tanh" => Pointwise::GeluTanh,
        "Gelu" => Pointwise::Gelu,
        "HardSwish" => Pointwise::HardSwish,
        "HardSigmoid" => Pointwise::HardSigmoid { alpha: bits("alpha", 0.2), beta: bits("beta", 0.5) },
        "LeakyRelu" => Pointwise::LeakyRelu { alpha: bits("alpha", 0.01) },
        "Elu" => Pointwise::Elu { alpha: bits("alpha", 1.0) },
        "Softsign" => Pointwise::Softsign,
        "Clip" => {
            let bound = |i: usize, name: &str, d: f32| -> Option<u32> {
                match n.input.get(i).filter(|s| !s.is_empty()) {
                    Some(_) => g
                        .const_input(n, i)
                        .and_then(|c| c.floats())
                        .and_then(|v| v.first().map(|&x| (x as f32).to_bits())),
                    None => Some(attr(n, name).map_or(d, |a| a.f).to_bits()),
                }
            };
            Pointwise::Clip { lo: bound(1, "min", f32::NEG_INFINITY)?, hi: bound(2, "max", f32::INFINITY)? }
        }
        _ => return None,
    })
}
