//! Every available path against the reference, bit for bit, over random shapes and values.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

fn random_i8(rng: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.random::<i8>()).collect()
}

fn check(rng: &mut ChaCha8Rng, m: usize, n: usize, k: usize, with_bias: bool) {
    let a = random_i8(rng, m * k);
    let w = random_i8(rng, n * k);
    let zp = rng.random_range(-128..=127);
    let bias: Option<Vec<i32>> = with_bias.then(|| (0..n).map(|_| rng.random_range(-(1 << 24)..(1 << 24))).collect());
    let mut expect = vec![0i32; m * n];
    reference::gemm(&a, m, k, zp, &w, n, bias.as_deref(), &mut expect, &Counter::new()).unwrap();
    for path in Path::available() {
        let pw = PackedWeights::new(path, &w, n, k).unwrap();
        let mut got = vec![0i32; m * n];
        gemm(&a, m, zp, &pw, bias.as_deref(), &mut got, &Counter::new()).unwrap();
        assert_eq!(got, expect, "path {path:?} differs at m={m} n={n} k={k} zp={zp}");
    }
}

#[test]
fn all_paths_equal_reference_on_random_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    for _ in 0..300 {
        let m = rng.random_range(1..=20);
        let n = rng.random_range(1..=70);
        let k = rng.random_range(1..=300);
        let bias = rng.random();
        check(&mut rng, m, n, k, bias);
    }
}

#[test]
fn all_paths_equal_reference_on_tile_edges() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for m in [1, 2, 5, 6, 7, 8, 9, 16, 17] {
        for n in [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48] {
            for k in [1, 2, 3, 4, 5, 63, 64, 65] {
                check(&mut rng, m, n, k, true);
            }
        }
    }
}

#[test]
fn extreme_values_wrap_identically() {
    // All -128 activations with zero point 127 and all -128 weights: the largest products.
    // With k large the true sum exceeds i32, so this checks that every path wraps the same way
    // (the verifier would reject such a model; the kernels must still agree).
    let (m, n, k) = (3, 17, 70_000);
    let a = vec![-128i8; m * k];
    let w = vec![-128i8; n * k];
    let mut expect = vec![0i32; m * n];
    reference::gemm(&a, m, k, 127, &w, n, None, &mut expect, &Counter::new()).unwrap();
    let exact: i64 = (-128i64 - 127) * -128 * k as i64;
    assert_eq!(expect[0], exact as i32, "reference wraps mod 2^32");
    for path in Path::available() {
        let pw = PackedWeights::new(path, &w, n, k).unwrap();
        let mut got = vec![0i32; m * n];
        gemm(&a, m, 127, &pw, None, &mut got, &Counter::new()).unwrap();
        assert_eq!(got, expect, "path {path:?}");
    }
}

#[test]
fn reference_matches_hand_computed_product() {
    // a = [[1, 2, 3]], zp = 1 -> [0, 1, 2]; w rows [1, 1, 1] and [-1, 0, 2]; bias [10, -10].
    let mut out = [0i32; 2];
    reference::gemm(&[1, 2, 3], 1, 3, 1, &[1, 1, 1, -1, 0, 2], 2, Some(&[10, -10]), &mut out, &Counter::new()).unwrap();
    assert_eq!(out, [13, -6]);
}

#[test]
fn shape_mismatch_is_an_error_not_a_panic() {
    let pw = PackedWeights::new(Path::Portable, &[1, 2, 3, 4], 2, 2).unwrap();
    let mut out = [0i32; 4];
    assert!(gemm(&[1, 2, 3], 2, 0, &pw, None, &mut out, &Counter::new()).is_err());
    assert!(PackedWeights::new(Path::Portable, &[1, 2, 3], 2, 2).is_err());
}
