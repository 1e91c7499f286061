//! What the `fixpoint model` commands know about a model beyond its canonical bytes: its
//! inputs and outputs (from the file or from the chain's `modelIO`), its gas, and the optional
//! sidecar `model.fxp.json` that `fixpoint model import` writes (feature names, class labels,
//! where the model came from). See docs/import.md.
//!
//! **Why a sidecar and not a container.** A `.fxp` file is exactly the canonical model bytes
//! the registry takes (docs/model-format.md): `keccak256(file)` is the model id, `register`,
//! `fixpoint-model inspect|verify|run` and genesis files read it unchanged, and the parser
//! rejects any other encoding. Names and labels are off-chain conveniences that must not change
//! the id (renaming a CSV column must not make a new model), so they live beside the file.
//! Nothing needed to *run* the model is only in the sidecar: every input's scale and zero point
//! are in the model itself, so `call --csv-row <id>` and the Solidity bindings work from the
//! chain alone.
//!
//! **The quantization rule** (one rule, the same in [`quantize_decimal`] and in the generated
//! Solidity, so the CLI and a contract give the same integers for the same decimal text): a
//! feature written in decimal is taken as `X = x·10^18` exactly (more than 18 decimals are
//! rounded half away from zero), and for an input with scale `m·2^-shift` and zero point `zp`
//! (`m = 0`: scale 1)
//!
//! ```text
//! q = clamp(R(X·2^shift / (10^18·m)) + zp, dtype range)
//! ```
//!
//! where `R` rounds half away from zero for int8 inputs (the importer's `round(x/s)`) and rounds
//! down for int32 inputs (tree features `floor(x·2^F)`, which keeps every split exact). The
//! importer's own report quantizes the f32 value with the f64 scale; the two differ only when
//! `x/s` lies within ~10^-6 of a rounding boundary.

use std::path::{Path, PathBuf};

use alloy_primitives::{B256, I256, U256};
use anyhow::{Context, Result, bail};
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::gas;
use serde::{Deserialize, Serialize};

/// Format tag of the sidecar.
pub const META_FORMAT: &str = "fixpoint-model-meta/1";

/// Decimals of the fixed-point reals the bindings and `--csv-row` take.
pub const DECIMALS: u32 = 18;

/// One model input or output: dtype code (0 i8, 1 u8, 2 i16, 3 i32, 4 i64), shape, and the real
/// scale `multiplier·2^-shift` around `zero_point` (multiplier 0: no scale).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tensor {
    /// Element type code.
    pub dtype: u8,
    /// Shape.
    pub shape: Vec<u32>,
    /// The integer standing for 0.0.
    pub zero_point: i32,
    /// Scale numerator (0 or in `[2^30, 2^31)`).
    pub multiplier: i32,
    /// Scale exponent.
    pub shift: u8,
}

impl Tensor {
    /// Elements.
    pub fn len(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per element.
    pub fn width(&self) -> usize {
        [1, 1, 2, 4, 8].get(usize::from(self.dtype)).copied().unwrap_or(1)
    }

    /// Solidity / Rust name of the element type.
    pub fn dtype_name(&self) -> &'static str {
        ["int8", "uint8", "int16", "int32", "int64"].get(usize::from(self.dtype)).copied().unwrap_or("?")
    }

    /// Inclusive integer range of the dtype.
    pub fn range(&self) -> (i128, i128) {
        match self.dtype {
            0 => (-128, 127),
            1 => (0, 255),
            2 => (-32768, 32767),
            3 => (i128::from(i32::MIN), i128::from(i32::MAX)),
            _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
        }
    }

    /// The real value of one integer step, for display (`None` without a scale).
    pub fn scale(&self) -> Option<f64> {
        (self.multiplier != 0).then(|| f64::from(self.multiplier) / 2f64.powi(i32::from(self.shift)))
    }

    /// Whether the quantization rule rounds down (int32 tree features) rather than to nearest.
    pub fn floors(&self) -> bool {
        self.dtype == 3
    }

    fn from_desc(t: &R::TensorDesc) -> Self {
        Self {
            dtype: t.dtype,
            shape: t.shape.clone(),
            zero_point: t.zeroPoint,
            multiplier: t.multiplier,
            shift: t.shift,
        }
    }

    fn from_model(dtype: fixpoint_ml::DType, shape: &[usize], q: &fixpoint_ml::format::Quant) -> Self {
        Self {
            dtype: dtype as u8,
            shape: shape.iter().map(|&d| d as u32).collect(),
            zero_point: q.zero_point,
            multiplier: q.multiplier,
            shift: q.shift,
        }
    }
}

/// Everything the commands need to talk about a model, from its file or from the chain.
#[derive(Debug, Clone)]
pub struct ModelView {
    /// keccak256 of the canonical bytes.
    pub id: B256,
    /// Size of the canonical bytes.
    pub size: u64,
    /// Inputs, in order.
    pub inputs: Vec<Tensor>,
    /// Outputs, in order.
    pub outputs: Vec<Tensor>,
    /// Gas of a warm inference (docs/gas.md; what `modelInfo.warmGas` says).
    pub warm_gas: u64,
    /// Warm plus the first-use-in-block surcharge for the model's size.
    pub cold_gas: u64,
}

impl ModelView {
    /// From canonical model bytes (verified here, as the registry would).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let engine = fixpoint_ml::Engine::load(bytes, &fixpoint_ml::Limits::default())
            .map_err(|e| anyhow::anyhow!("not a valid fixpoint model: {e}"))?;
        let m = engine.model();
        let inputs = m.inputs.iter().map(|i| Tensor::from_model(i.dtype, &i.shape, &i.quant)).collect();
        let infos = engine.verified().output_infos();
        let outputs =
            m.outputs.iter().zip(&infos).map(|(o, v)| Tensor::from_model(v.dtype, &v.shape, &o.quant)).collect();
        let warm_gas = gas::warm_infer_gas(engine.cost(), m.nodes.len() as u64);
        let size = bytes.len() as u64;
        Ok(Self {
            id: alloy_primitives::keccak256(bytes),
            size,
            inputs,
            outputs,
            warm_gas,
            cold_gas: warm_gas.saturating_add(gas::cold_surcharge(size)),
        })
    }

    /// From the registry's `modelInfo` and `modelIO` answers.
    pub fn from_chain(id: B256, info: &R::ModelInfo, io: &R::modelIOReturn) -> Self {
        let size = info.size;
        Self {
            id,
            size,
            inputs: io.inputs.iter().map(Tensor::from_desc).collect(),
            outputs: io.outputs.iter().map(Tensor::from_desc).collect(),
            warm_gas: info.warmGas,
            cold_gas: info.warmGas.saturating_add(gas::cold_surcharge(size)),
        }
    }

    /// Input elements over all inputs.
    pub fn features(&self) -> usize {
        self.inputs.iter().map(Tensor::len).sum()
    }

    /// Packed input bytes.
    pub fn input_bytes(&self) -> usize {
        self.inputs.iter().map(|t| t.len() * t.width()).sum()
    }

    /// The input tensor of each flattened input element.
    pub fn feature_tensors(&self) -> Vec<&Tensor> {
        self.inputs.iter().flat_map(|t| std::iter::repeat_n(t, t.len())).collect()
    }

    /// Whether the model looks like a classifier: output #0 is one integer (the label) and
    /// another output follows (the scores), as every imported classifier is laid out.
    pub fn is_classifier(&self) -> bool {
        self.outputs.len() >= 2 && self.outputs.first().is_some_and(|o| o.len() == 1 && o.multiplier == 0)
    }

    /// Unpacks packed output bytes into one integer list per output.
    pub fn unpack_outputs(&self, packed: &[u8]) -> Result<Vec<Vec<i64>>> {
        let mut at = 0usize;
        let mut outs = Vec::with_capacity(self.outputs.len());
        for t in &self.outputs {
            let w = t.width();
            let mut v = Vec::with_capacity(t.len());
            for _ in 0..t.len() {
                let b = packed.get(at..at + w).context("output shorter than the model's outputs")?;
                let neg = t.dtype != 1 && b.last().is_some_and(|x| x & 0x80 != 0);
                let mut buf = [if neg { 0xff } else { 0 }; 8];
                buf[..w].copy_from_slice(b);
                v.push(i64::from_le_bytes(buf));
                at += w;
            }
            outs.push(v);
        }
        Ok(outs)
    }
}

/// The sidecar `fixpoint model import` writes beside `model.fxp` (`model.fxp.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// [`META_FORMAT`].
    pub format: String,
    /// A name for generated code (e.g. the Solidity library), from the output file name.
    pub name: String,
    /// The model id: keccak256 of the `.fxp` bytes.
    pub id: B256,
    /// `classification` or `regression`.
    pub task: String,
    /// Feature names in input order (the calibration CSV's header), if it had one.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Class labels in score order (classifiers whose ONNX file names them).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// `(C, H, W)` when CSV rows are images in ONNX's CHW order and the model reads HWC.
    #[serde(default)]
    pub chw: Option<[usize; 3]>,
    /// How the importer encodes a float row (exact f64 scales; informational).
    pub encoding: String,
    /// The ONNX file and its keccak256.
    pub source: String,
    /// Gas of a warm inference.
    pub warm_gas: u64,
    /// Gas of a cold inference.
    pub cold_gas: u64,
}

impl Meta {
    /// Where the sidecar of `model` lives.
    pub fn path_for(model: &Path) -> PathBuf {
        let mut s = model.as_os_str().to_owned();
        s.push(".json");
        PathBuf::from(s)
    }

    /// Reads a sidecar; it must name `id`.
    pub fn load(path: &Path, id: B256) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let m: Meta =
            serde_json::from_str(&text).with_context(|| format!("{} is not a model sidecar", path.display()))?;
        if m.format != META_FORMAT {
            bail!("{}: unknown format {:?} (expected {META_FORMAT})", path.display(), m.format);
        }
        if m.id != id {
            bail!("{} describes model {}, not {id}", path.display(), m.id);
        }
        Ok(m)
    }

    /// Label of class `i`.
    pub fn label(&self, i: usize) -> Option<&str> {
        self.classes.as_ref().and_then(|c| c.get(i)).map(String::as_str)
    }
}

/// A model file and its sidecar, if there is one next to it.
pub fn load_file(path: &Path) -> Result<(Vec<u8>, ModelView, Option<Meta>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let view = ModelView::from_bytes(&bytes).with_context(|| path.display().to_string())?;
    let side = Meta::path_for(path);
    let meta = if side.exists() { Some(Meta::load(&side, view.id)?) } else { None };
    Ok((bytes, view, meta))
}

/// Parses decimal text (`-1.25`, `3e-2`, `7`) into `x·10^18`, exactly; digits past the 18th
/// decimal round half away from zero.
pub fn parse_fixed(s: &str) -> Result<I256> {
    let t = s.trim();
    let bad = || anyhow::anyhow!("`{s}` is not a decimal number");
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (body, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let digits: String = int.chars().chain(frac.chars()).collect();
    let digits = digits.trim_start_matches('0');
    // value = digits · 10^(exp − len(frac)); we want value · 10^18.
    let pow = exp - frac.len() as i32 + DECIMALS as i32;
    if digits.len() > 60 || pow > 60 {
        bail!("`{s}` is too large");
    }
    let d = if digits.is_empty() { U256::ZERO } else { U256::from_str_radix(digits, 10).map_err(|_| bad())? };
    let ten = U256::from(10u8);
    let v = if pow >= 0 {
        d.checked_mul(ten.pow(U256::from(pow))).ok_or_else(|| anyhow::anyhow!("`{s}` is too large"))?
    } else if -pow > 70 {
        U256::ZERO
    } else {
        let div = ten.pow(U256::from(-pow));
        (d + div / U256::from(2u8)) / div
    };
    let v = I256::try_from(v).map_err(|_| anyhow::anyhow!("`{s}` is too large"))?;
    Ok(if neg { -v } else { v })
}

/// The quantization rule of the module doc: `x` is a real as `x·10^18`.
pub fn quantize_fixed(x: I256, t: &Tensor) -> Result<i64> {
    let (m, shift) = if t.multiplier == 0 { (1i64, 0u8) } else { (i64::from(t.multiplier), t.shift) };
    let num = x
        .checked_mul(I256::ONE << usize::from(shift))
        .ok_or_else(|| anyhow::anyhow!("value too large for this input's scale"))?;
    let den = I256::try_from(10u128.pow(DECIMALS)).map_err(|_| anyhow::anyhow!("scale"))? * I256::try_from(m)?;
    let a = num.unsigned_abs();
    let d = den.unsigned_abs();
    let mag = if t.floors() && num.is_negative() {
        (a + d - U256::from(1u8)) / d
    } else if t.floors() {
        a / d
    } else {
        (a + d / U256::from(2u8)) / d
    };
    let (lo, hi) = t.range();
    // Saturate before converting: anything past the dtype's range clamps anyway.
    let mag = i128::try_from(mag.min(U256::from(1u128 << 100))).unwrap_or(1 << 100);
    let q = if num.is_negative() { -mag } else { mag } + i128::from(t.zero_point);
    Ok(q.clamp(lo, hi) as i64)
}

/// Parses one decimal row (`1.2,3.4,…`) and quantizes it into the model's packed input
/// (docs/model-format.md §8); `chw` reorders an image row from ONNX's CHW to the model's HWC.
pub fn quantize_decimal(view: &ModelView, row: &str, chw: Option<[usize; 3]>) -> Result<(Vec<i64>, Vec<u8>)> {
    let mut xs = row.split(',').map(|c| parse_fixed(c).context("--csv-row")).collect::<Result<Vec<_>>>()?;
    if xs.len() != view.features() {
        bail!("--csv-row has {} values, the model takes {} features", xs.len(), view.features());
    }
    if let Some([c, h, w]) = chw
        && c * h * w == xs.len()
    {
        let mut hwc = xs.clone();
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    hwc[(y * w + x) * c + ch] = xs[(ch * h + y) * w + x];
                }
            }
        }
        xs = hwc;
    }
    let mut ints = Vec::with_capacity(xs.len());
    let mut packed = Vec::with_capacity(view.input_bytes());
    for (x, t) in xs.iter().zip(view.feature_tensors()) {
        let q = quantize_fixed(*x, t)?;
        ints.push(q);
        packed.extend_from_slice(&q.to_le_bytes()[..t.width()]);
    }
    Ok((ints, packed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i8q(m: i32, shift: u8, zp: i32) -> Tensor {
        Tensor { dtype: 0, shape: vec![1], zero_point: zp, multiplier: m, shift }
    }

    #[test]
    fn decimals_parse_exactly() {
        let e18 = I256::try_from(10u128.pow(18)).unwrap();
        assert_eq!(parse_fixed("1").unwrap(), e18);
        assert_eq!(parse_fixed("-2.5").unwrap(), -(e18 * I256::try_from(5).unwrap()) / I256::try_from(2).unwrap());
        assert_eq!(parse_fixed("6.3").unwrap(), I256::try_from(6_300_000_000_000_000_000u128).unwrap());
        assert_eq!(parse_fixed("1e-18").unwrap(), I256::ONE);
        assert_eq!(parse_fixed("5e-19").unwrap(), I256::ONE, "half away from zero");
        assert_eq!(parse_fixed(" 0.0 ").unwrap(), I256::ZERO);
        for bad in ["", "-", "1.2.3", "abc", "1e", "0x10", "1e999"] {
            assert!(parse_fixed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rule_rounds_like_the_importer() {
        // Scale 1/2 (m = 2^30, shift 31): x = 1.25 → 2.5 → 3 (half away), −1.25 → −3.
        let t = i8q(1 << 30, 31, 0);
        assert_eq!(quantize_fixed(parse_fixed("1.25").unwrap(), &t).unwrap(), 3);
        assert_eq!(quantize_fixed(parse_fixed("-1.25").unwrap(), &t).unwrap(), -3);
        assert_eq!(quantize_fixed(parse_fixed("1000").unwrap(), &t).unwrap(), 127, "clamped");
        let zp = i8q(1 << 30, 31, -5);
        assert_eq!(quantize_fixed(parse_fixed("1").unwrap(), &zp).unwrap(), -3);
        // Tree features floor: x·2^2 with x = −0.1 → −0.4 → −1.
        let tree = Tensor { dtype: 3, shape: vec![1], zero_point: 0, multiplier: 1 << 30, shift: 32 };
        assert_eq!(quantize_fixed(parse_fixed("-0.1").unwrap(), &tree).unwrap(), -1);
        assert_eq!(quantize_fixed(parse_fixed("0.3").unwrap(), &tree).unwrap(), 1);
        // No scale: the integer itself.
        let raw = Tensor { dtype: 0, shape: vec![1], zero_point: 0, multiplier: 0, shift: 0 };
        assert_eq!(quantize_fixed(parse_fixed("13").unwrap(), &raw).unwrap(), 13);
    }
}
