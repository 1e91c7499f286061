//! 2-D sliding-window geometry shared by Conv2D, MaxPool and AvgPool (docs/arithmetic.md §5).
//! Layout is HWC; output size `(H + pad_top + pad_bottom - dilation·(kernel-1) - 1) / stride + 1`.

use crate::error::Result;
use crate::format::{Reader, Writer};

/// Kernel size, stride, dilation and explicit padding, all u16 in the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel height.
    pub kernel_h: u16,
    /// Kernel width.
    pub kernel_w: u16,
    /// Vertical stride.
    pub stride_h: u16,
    /// Horizontal stride.
    pub stride_w: u16,
    /// Vertical dilation.
    pub dilation_h: u16,
    /// Horizontal dilation.
    pub dilation_w: u16,
    /// Rows of padding above.
    pub pad_top: u16,
    /// Columns of padding on the left.
    pub pad_left: u16,
    /// Rows of padding below.
    pub pad_bottom: u16,
    /// Columns of padding on the right.
    pub pad_right: u16,
}

impl Window {
    /// A `kh × kw` window with stride 1, no dilation, no padding.
    pub fn new(kernel_h: u16, kernel_w: u16) -> Self {
        Self {
            kernel_h,
            kernel_w,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
        }
    }

    /// Reads the ten u16 fields.
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            kernel_h: r.u16()?,
            kernel_w: r.u16()?,
            stride_h: r.u16()?,
            stride_w: r.u16()?,
            dilation_h: r.u16()?,
            dilation_w: r.u16()?,
            pad_top: r.u16()?,
            pad_left: r.u16()?,
            pad_bottom: r.u16()?,
            pad_right: r.u16()?,
        })
    }

    /// Writes the ten u16 fields.
    pub fn write(&self, w: &mut Writer) {
        for v in [
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.dilation_h,
            self.dilation_w,
            self.pad_top,
            self.pad_left,
            self.pad_bottom,
            self.pad_right,
        ] {
            w.u16(v);
        }
    }

    /// Output (height, width) for an `h × w` input, or a reason it is invalid.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize), String> {
        if self.kernel_h == 0 || self.kernel_w == 0 || self.stride_h == 0 || self.stride_w == 0 {
            return Err("kernel and stride must be at least 1".into());
        }
        if self.dilation_h == 0 || self.dilation_w == 0 {
            return Err("dilation must be at least 1".into());
        }
        let dim = |n: usize, k: u16, s: u16, d: u16, p0: u16, p1: u16| -> Option<usize> {
            let extent = usize::from(d) * (usize::from(k) - 1) + 1;
            let padded = n + usize::from(p0) + usize::from(p1);
            padded.checked_sub(extent).map(|r| r / usize::from(s) + 1)
        };
        let oh = dim(h, self.kernel_h, self.stride_h, self.dilation_h, self.pad_top, self.pad_bottom);
        let ow = dim(w, self.kernel_w, self.stride_w, self.dilation_w, self.pad_left, self.pad_right);
        match (oh, ow) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!("window larger than the padded {h}x{w} input")),
        }
    }

    /// Input row for output row `oy` and kernel row `ky`, None when it falls in padding.
    pub fn in_row(&self, oy: usize, ky: usize, h: usize) -> Option<usize> {
        (oy * usize::from(self.stride_h) + ky * usize::from(self.dilation_h))
            .checked_sub(usize::from(self.pad_top))
            .filter(|&y| y < h)
    }

    /// Input column for output column `ox` and kernel column `kx`, None when in padding.
    pub fn in_col(&self, ox: usize, kx: usize, w: usize) -> Option<usize> {
        (ox * usize::from(self.stride_w) + kx * usize::from(self.dilation_w))
            .checked_sub(usize::from(self.pad_left))
            .filter(|&x| x < w)
    }

    /// Pools: no dilation and every pad smaller than the kernel, so no window is all padding.
    pub fn check_pool(&self) -> Result<(), String> {
        if self.dilation_h != 1 || self.dilation_w != 1 {
            return Err("pooling windows take no dilation".into());
        }
        if self.pad_top >= self.kernel_h
            || self.pad_bottom >= self.kernel_h
            || self.pad_left >= self.kernel_w
            || self.pad_right >= self.kernel_w
        {
            return Err("pooling padding must be smaller than the kernel".into());
        }
        Ok(())
    }
}

/// Reads `[H, W, C]` from a rank-3 shape.
pub(crate) fn hwc(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape {
        [h, w, c] => Some((*h, *w, *c)),
        _ => None,
    }
}
