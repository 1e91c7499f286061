//! GEMM kernels for FullyConnected and Conv2D: `out[m][n] = bias[n] + Σ_k (a[m][k] - zp)·w[n][k]`
//! in wrapping i32 (docs/arithmetic.md §3).
//!
//! Every path gives the same bits. Integer addition mod 2^32 is associative and commutative, so
//! any order of products, any tiling and any rewrite `Σ a·w - zp·Σ w` agree exactly; the
//! verifier's overflow proof then makes the wrapped value the true one. Paths:
//!
//! - [`Path::Reference`]: the definition, a plain triple loop ([`reference`]), easy to check by eye.
//! - [`Path::Portable`]: plain Rust written for the auto-vectoriser ([`portable`]); every target.
//! - [`Path::Avx2`]: sign-extend to i16 and `vpmaddwd` (exact: |pair sum| ≤ 2·128·128).
//! - [`Path::Avx512Vnni`]: `vpdpbusd` on `a ^ 0x80` (u8) × w (s8), minus `128·Σw`. Never the
//!   saturating `vpdpbusds`, never `vpmaddubsw` (saturates to i16).
//!
//! The path is chosen once at start-up ([`Path::detect`]); the SIMD code is the only `unsafe`
//! in the crate and lives in `x86_64/`, behind run-time feature checks.

pub mod portable;
pub mod reference;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::error::{Error, Result};
use crate::work::Counter;

/// An implementation of the GEMM kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// The scalar definition.
    Reference,
    /// Portable Rust, auto-vectorised for whatever target it is built for.
    Portable,
    /// x86_64 AVX2.
    Avx2,
    /// x86_64 AVX-512 VNNI.
    Avx512Vnni,
}

impl Path {
    /// All paths, fastest last.
    pub const ALL: [Path; 4] = [Path::Reference, Path::Portable, Path::Avx2, Path::Avx512Vnni];

    /// True if this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Path::Reference | Path::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => x86_64::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512Vnni => x86_64::has_avx512vnni(),
            #[cfg(not(target_arch = "x86_64"))]
            Path::Avx2 | Path::Avx512Vnni => false,
        }
    }

    /// Paths this CPU can run.
    pub fn available() -> Vec<Path> {
        Self::ALL.into_iter().filter(|p| p.is_available()).collect()
    }

    /// The fastest available path, or the one named by `FIXPOINT_KERNEL`
    /// (`reference|portable|avx2|avx512vnni`) when that is set and available.
    pub fn detect() -> Path {
        if let Some(p) = std::env::var("FIXPOINT_KERNEL").ok().and_then(|s| Self::from_name(&s))
            && p.is_available()
        {
            return p;
        }
        Self::available().last().copied().unwrap_or(Path::Portable)
    }

    /// Parses a path name.
    pub fn from_name(s: &str) -> Option<Path> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Path::Reference => "reference",
            Path::Portable => "portable",
            Path::Avx2 => "avx2",
            Path::Avx512Vnni => "avx512vnni",
        }
    }
}

#[derive(Debug, Clone)]
enum Layout {
    /// Row-major `[n][k]`, as stored in the model (reference).
    Plain(Vec<i8>),
    /// Row-major `[n][k]` widened to i16 (portable).
    Wide(Vec<i16>),
    /// `[n/8][k/2][8][2]` as i16, zero-padded (AVX2).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    PairsI16(Vec<i16>),
    /// `[n/16][k/4][16][4]` bytes, zero-padded (VNNI).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Quads(Vec<i8>),
}

/// A weight matrix `[n][k]` laid out for one path, with its row sums. Built once per model.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    path: Path,
    n: usize,
    k: usize,
    row_sums: Vec<i32>,
    layout: Layout,
}

impl PackedWeights {
    /// Packs `w` (`n` rows of `k`) for `path`. Fails if the path is unavailable here.
    pub fn new(path: Path, w: &[i8], n: usize, k: usize) -> Result<Self> {
        if n == 0 || k == 0 || n.checked_mul(k) != Some(w.len()) {
            return Err(Error::Internal("weight matrix shape does not match its data"));
        }
        if !path.is_available() {
            return Err(Error::Internal("kernel path not available on this CPU"));
        }
        let row_sums =
            w.chunks_exact(k).map(|row| row.iter().fold(0i32, |s, &x| s.wrapping_add(i32::from(x)))).collect();
        let layout = match path {
            Path::Reference => Layout::Plain(w.to_vec()),
            Path::Portable => Layout::Wide(portable::widen(w)),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => Layout::PairsI16(x86_64::avx2::pack(w, n, k)),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512Vnni => Layout::Quads(x86_64::avx512vnni::pack(w, n, k)),
            #[cfg(not(target_arch = "x86_64"))]
            Path::Avx2 | Path::Avx512Vnni => return Err(Error::Internal("kernel path not available")),
        };
        Ok(Self { path, n, k, row_sums, layout })
    }

    /// The path these weights are packed for.
    pub fn path(&self) -> Path {
        self.path
    }

    /// Output channels.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Reduction length.
    pub fn k(&self) -> usize {
        self.k
    }
}

/// `out[m][n] = bias[n] + Σ_k (a[m][k] - a_zp)·w[n][k]`, wrapping i32, on the weights' path.
/// `a` is `m × k` row-major; `out` is `m × n`. Counts its work into `work` (crate::work): one
/// call, `m·n` dot products of `k` MACs, and what each path allocates.
pub fn gemm(
    a: &[i8],
    m: usize,
    a_zp: i32,
    w: &PackedWeights,
    bias: Option<&[i32]>,
    out: &mut [i32],
    work: &Counter,
) -> Result<()> {
    let (n, k) = (w.n, w.k);
    if m == 0 || m.checked_mul(k) != Some(a.len()) || m.checked_mul(n) != Some(out.len()) {
        return Err(Error::Internal("gemm operand shapes do not match"));
    }
    if bias.is_some_and(|b| b.len() != n) {
        return Err(Error::Internal("bias length does not match output channels"));
    }
    // Everything but the reference folds zero point and bias into one per-channel term:
    // Σ (a - zp)·w + bias = Σ a·w + (bias - zp·Σw)   (mod 2^32).
    work.calls(1);
    let correction = |extra: i32| -> Vec<i32> {
        work.alloc(n * 4);
        work.elems(n);
        let zp = a_zp.wrapping_add(extra);
        w.row_sums
            .iter()
            .enumerate()
            .map(|(j, &s)| {
                let b = bias.and_then(|b| b.get(j)).copied().unwrap_or(0);
                b.wrapping_sub(zp.wrapping_mul(s))
            })
            .collect()
    };
    match (&w.layout, w.path) {
        (Layout::Plain(wp), _) => reference::gemm(a, m, k, a_zp, wp, n, bias, out, work),
        (Layout::Wide(wp), _) => portable::gemm(a, m, k, wp, n, &correction(0), out, work),
        // The SIMD kernels are counted here, by their logical shape: they are faster than the
        // portable path on every shape, which is what gas is priced for (docs/gas.md).
        #[cfg(target_arch = "x86_64")]
        (Layout::PairsI16(wp), _) => {
            simd_work(work, m, n, k);
            x86_64::avx2::gemm(a, m, k, wp, n, &correction(0), out)
        }
        #[cfg(target_arch = "x86_64")]
        (Layout::Quads(wp), _) => {
            simd_work(work, m, n, k);
            x86_64::avx512vnni::gemm(a, m, k, wp, n, &correction(128), out)
        }
        #[allow(unreachable_patterns)]
        _ => Err(Error::Internal("kernel path not available")),
    }
}

/// The work of a SIMD GEMM call by its logical shape: the activations are repacked once
/// (counted like the portable path's widening), then `m·n` dot products of `k`.
#[cfg(target_arch = "x86_64")]
fn simd_work(work: &Counter, m: usize, n: usize, k: usize) {
    work.alloc(m * k * 2);
    work.steps(m * n);
    work.macs(m * n * k);
}

#[cfg(test)]
mod tests;
