//! x86_64 SIMD kernels. The only `unsafe` code of the crate: each entry point checks the CPU
//! feature at run time before calling its `#[target_feature]` function.

// Tile accumulators are small arrays indexed by const-generic loop bounds.
#![allow(clippy::indexing_slicing)]

pub(crate) mod avx2;
pub(crate) mod avx512vnni;

/// AVX2 present (cached by std after the first call).
pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// AVX-512 F/BW/VNNI present.
pub(crate) fn has_avx512vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}
