//! Conv2D (code 2), grouped (depthwise when groups = C), HWC layout.
//!
//! `acc[oy, ox, oc] = bias[oc] + Σ_{ky,kx,c} (x[iy, ix, g·Cg + c] - zp)·w[oc, ky, kx, c]` with
//! `iy = oy·stride_h + ky·dilation_h - pad_top` (likewise ix), `g = oc / (OC/groups)`; padded
//! positions contribute nothing. Wrapping i32 with the per-channel overflow proof of
//! FullyConnected (docs/arithmetic.md §3, §5). The reference path runs this loop as written;
//! the others lower it to im2col (padding filled with `zp`, so it contributes zero) and GEMM.

use super::fully_connected::{gemm_cost, prove_no_overflow};
use super::requantize::{read_opt, refs_opt, write_opt};
use super::window::hwc;
use super::{EvalCx, InferCx, OpCost, Operator, Requant, ValueInfo, Window, i8_data, i32_data, mul, one};
use crate::error::{Error, Result};
use crate::format::{NO_TENSOR, Reader, Writer};
use crate::kernels::{PackedWeights, Path, gemm};
use crate::tensor::{DType, Tensor, TensorData};
use crate::work::Counter;

/// Attributes of Conv2D.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conv2d {
    /// Tensor id of the i8 weights `[OC, KH, KW, C/groups]`.
    pub weights: u32,
    /// Tensor id of the i32 bias `[OC]`, or `NO_TENSOR`.
    pub bias: u32,
    /// Input zero point, in the i8 range.
    pub input_zero_point: i32,
    /// Geometry; `kernel_h`/`kernel_w` must equal the weights' KH/KW.
    pub window: Window,
    /// Groups: C and OC are both divisible by it.
    pub groups: u32,
    /// Fused requantization to i8; `None` outputs the i32 accumulator.
    pub requant: Option<Requant>,
}

struct Geometry {
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    groups: usize,
}

impl Geometry {
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    fn ocg(&self) -> usize {
        self.oc / self.groups
    }
    fn patch(&self) -> usize {
        self.kh * self.kw * self.cg()
    }

    /// The most work either evaluation does (what they count into the run's counter).
    fn cost(&self) -> OpCost {
        let rows = self.oh * self.ow;
        let (g, cells) = (self.groups as u64, self.kh * self.kw);
        // GEMM paths: three buffers; per group one step, per row one step plus one per window
        // cell and one for the copy-out, `patch` im2col fills (the im2col buffer is rewritten
        // by every group, so its fills are element steps, not just allocated bytes), one GEMM call.
        let per_group = gemm_cost(rows, self.ocg(), self.patch())
            + OpCost {
                elem_ops: mul(&[rows, self.patch()]),
                steps: mul(&[rows, cells + 2]).saturating_add(1),
                ..OpCost::default()
            };
        let gemm_path = OpCost {
            macs: per_group.macs.saturating_mul(g),
            elem_ops: per_group.elem_ops.saturating_mul(g),
            steps: per_group.steps.saturating_mul(g),
            calls: per_group.calls.saturating_mul(g).saturating_add(3),
            bytes: per_group
                .bytes
                .saturating_mul(g)
                .saturating_add(mul(&[rows, self.patch()]))
                .saturating_add(mul(&[rows, self.ocg(), 4]))
                .saturating_add(mul(&[rows, self.oc, 4])),
            ..OpCost::default()
        };
        // The reference loop (one step per output, kernel row and cell) is the definition the
        // tests check the other paths against, not a path validators run: only its MACs are
        // within this bound (docs/gas.md prices the portable path).
        gemm_path
    }
}

impl Conv2d {
    fn geometry(&self, x_shape: &[usize], w_shape: &[usize]) -> Result<Geometry, String> {
        let (h, w, c) = hwc(x_shape).ok_or_else(|| format!("input must be [H, W, C], is {x_shape:?}"))?;
        let groups = usize::try_from(self.groups).map_err(|_| "groups too large".to_string())?;
        if groups == 0 || c % groups != 0 {
            return Err(format!("groups {groups} must divide input channels {c}"));
        }
        let (oc, kh, kw) = match w_shape {
            [oc, kh, kw, cg] if *cg == c / groups => (*oc, *kh, *kw),
            s => return Err(format!("weights must be [OC, KH, KW, {}], are {s:?}", c / groups)),
        };
        if oc % groups != 0 {
            return Err(format!("groups {groups} must divide output channels {oc}"));
        }
        if kh != usize::from(self.window.kernel_h) || kw != usize::from(self.window.kernel_w) {
            return Err(format!(
                "window kernel {}x{} differs from weights {kh}x{kw}",
                self.window.kernel_h, self.window.kernel_w
            ));
        }
        let (oh, ow) = self.window.output_size(h, w)?;
        Ok(Geometry { h, w, c, oh, ow, oc, kh, kw, groups })
    }

    /// The definition, loop by loop.
    fn eval_reference(&self, g: &Geometry, x: &[i8], wt: &[i8], bias: Option<&[i32]>, work: &Counter) -> Vec<i32> {
        let zp = self.input_zero_point;
        work.alloc(g.oh * g.ow * g.oc * 4);
        let mut out = vec![0i32; g.oh * g.ow * g.oc];
        let mut idx = 0;
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                for oc in 0..g.oc {
                    let grp = oc / g.ocg();
                    let mut acc = bias.and_then(|b| b.get(oc)).copied().unwrap_or(0);
                    work.steps(1 + g.kh);
                    for ky in 0..g.kh {
                        let Some(iy) = self.window.in_row(oy, ky, g.h) else { continue };
                        work.steps(g.kw);
                        for kx in 0..g.kw {
                            let Some(ix) = self.window.in_col(ox, kx, g.w) else { continue };
                            work.macs(g.cg());
                            for c in 0..g.cg() {
                                let xv = x.get((iy * g.w + ix) * g.c + grp * g.cg() + c).copied().unwrap_or(0);
                                let wv = wt.get(((oc * g.kh + ky) * g.kw + kx) * g.cg() + c).copied().unwrap_or(0);
                                acc = acc.wrapping_add(i32::from(xv).wrapping_sub(zp).wrapping_mul(i32::from(wv)));
                            }
                        }
                    }
                    if let Some(o) = out.get_mut(idx) {
                        *o = acc;
                    }
                    idx += 1;
                }
            }
        }
        out
    }

    /// im2col per group, then GEMM against that group's packed weights.
    fn eval_gemm(
        &self,
        g: &Geometry,
        x: &[i8],
        packed: &[PackedWeights],
        bias: Option<&[i32]>,
        work: &Counter,
    ) -> Result<Vec<i32>> {
        let zp = i8::try_from(self.input_zero_point).map_err(|_| Error::Internal("zero point out of i8 range"))?;
        let (rows, patch, ocg) = (g.oh * g.ow, g.patch(), g.ocg());
        work.alloc(rows * patch);
        work.alloc(rows * ocg * 4);
        work.alloc(rows * g.oc * 4);
        let mut cols = vec![0i8; rows * patch];
        let mut acc = vec![0i32; rows * ocg];
        let mut out = vec![0i32; rows * g.oc];
        for grp in 0..g.groups {
            let pw = packed.get(grp).ok_or(Error::Internal("Conv2D weights not prepared"))?;
            // This group's im2col: a step per row and per window cell, `patch` fills per row.
            work.steps(1 + rows * (1 + g.kh * g.kw));
            work.elems(rows * patch);
            let mut dst = cols.chunks_exact_mut(patch.max(1));
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let Some(row) = dst.next() else { return Err(Error::Internal("im2col row count")) };
                    let mut cells = row.chunks_exact_mut(g.cg().max(1));
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let Some(cell) = cells.next() else { return Err(Error::Internal("im2col cell count")) };
                            match (self.window.in_row(oy, ky, g.h), self.window.in_col(ox, kx, g.w)) {
                                (Some(iy), Some(ix)) => {
                                    let start = (iy * g.w + ix) * g.c + grp * g.cg();
                                    let Some(src) = x.get(start..start + g.cg()) else {
                                        return Err(Error::Internal("im2col read"));
                                    };
                                    if let [one] = cell {
                                        *one = src.first().copied().unwrap_or(zp);
                                    } else {
                                        cell.copy_from_slice(src);
                                    }
                                }
                                _ => cell.fill(zp),
                            }
                        }
                    }
                }
            }
            let gb = bias.and_then(|b| b.get(grp * ocg..(grp + 1) * ocg));
            gemm(&cols, rows, self.input_zero_point, pw, gb, &mut acc, work)?;
            work.steps(rows);
            for (o_row, a_row) in out.chunks_exact_mut(g.oc).zip(acc.chunks_exact(ocg)) {
                if let Some(dst) = o_row.get_mut(grp * ocg..(grp + 1) * ocg) {
                    dst.copy_from_slice(a_row);
                }
            }
        }
        Ok(out)
    }
}

impl Operator for Conv2d {
    const CODE: u8 = 2;
    const NAME: &'static str = "Conv2D";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            weights: r.u32()?,
            bias: r.u32()?,
            input_zero_point: r.i32()?,
            window: Window::read(r)?,
            groups: r.u32()?,
            requant: read_opt(r)?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.u32(self.weights);
        w.u32(self.bias);
        w.i32(self.input_zero_point);
        self.window.write(w);
        w.u32(self.groups);
        write_opt(w, self.requant.as_ref());
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.push(self.weights);
        out.push(self.bias);
        refs_opt(self.requant.as_ref(), out);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "input", &[DType::I8])?;
        let w = cx.tensor(self.weights, "weights", DType::I8, None)?;
        let g = self.geometry(&x.shape, w.shape()).map_err(|e| cx.err(e))?;
        let bias = if self.bias == NO_TENSOR {
            None
        } else {
            cx.tensor(self.bias, "bias", DType::I32, Some(&[g.oc]))?.as_i32()
        };
        if !(-128..=127).contains(&self.input_zero_point) {
            return Err(cx.err(format!("input zero point {} not in the i8 range", self.input_zero_point)));
        }
        prove_no_overflow(cx, w.as_i8().unwrap_or(&[]), g.patch(), bias, self.input_zero_point)?;
        let dtype = match &self.requant {
            Some(rq) => {
                rq.check(cx, g.oc)?;
                DType::I8
            }
            None => DType::I32,
        };
        let mut cost = g.cost() + OpCost { calls: 1, ..OpCost::default() };
        if self.requant.is_some() {
            cost = cost + Requant::rows_cost(mul(&[g.oh, g.ow, g.oc]), g.oc);
        }
        Ok((ValueInfo { dtype, shape: vec![g.oh, g.ow, g.oc] }, cost))
    }

    fn prepare(&self, tensors: &[Tensor], path: Path) -> Result<Vec<PackedWeights>> {
        let w = usize::try_from(self.weights)
            .ok()
            .and_then(|i| tensors.get(i))
            .ok_or(Error::Internal("weights missing"))?;
        let groups = usize::try_from(self.groups).map_err(|_| Error::Internal("groups"))?;
        let (oc, patch) = match w.shape() {
            [oc, kh, kw, cg] => (*oc, kh * kw * cg),
            _ => return Err(Error::Internal("weights not rank 4")),
        };
        let ocg = oc / groups.max(1);
        i8_data(w)?.chunks_exact((ocg * patch).max(1)).map(|gw| PackedWeights::new(path, gw, ocg, patch)).collect()
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let w = cx.tensor(self.weights)?;
        let g = self
            .geometry(x.shape(), w.shape())
            .map_err(|_| Error::Internal("Conv2D geometry changed after verification"))?;
        let bias = cx.opt_tensor(self.bias)?.map(i32_data).transpose()?;
        let acc = if cx.path == Path::Reference {
            self.eval_reference(&g, i8_data(x)?, i8_data(w)?, bias, cx.work)
        } else {
            self.eval_gemm(&g, i8_data(x)?, cx.packed, bias, cx.work)?
        };
        cx.work.calls(1);
        let shape = vec![g.oh, g.ow, g.oc];
        match &self.requant {
            None => Tensor::new(shape, TensorData::I32(acc)),
            Some(rq) => Tensor::new(shape, TensorData::I8(rq.resolve(cx)?.apply_rows(&acc, g.oc, cx.work))),
        }
    }
}
