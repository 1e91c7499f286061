//! Which kernel paths this run covers. Every test that compares paths loops over
//! `Path::available()`, so on a CPU without AVX2 or AVX-512 VNNI those paths would silently go
//! untested. `FIXPOINT_REQUIRE_PATHS=avx2,avx512vnni` (set by `.ci/run` from the CPU's flags)
//! names the paths a run must cover: this test fails if one of them is unavailable, and prints
//! the paths covered either way.

use fixpoint_ml::kernels::Path;

#[test]
fn required_kernel_paths_are_available() {
    let available: Vec<&str> = Path::available().iter().map(|p| p.name()).collect();
    eprintln!("kernel paths covered by this run: {available:?}");
    let required = std::env::var("FIXPOINT_REQUIRE_PATHS").unwrap_or_default();
    for name in required.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let path =
            Path::from_name(name).unwrap_or_else(|| panic!("FIXPOINT_REQUIRE_PATHS names unknown path {name:?}"));
        assert!(
            path.is_available(),
            "kernel path {name} is required but this CPU cannot run it (covered: {available:?})"
        );
    }
    // The two portable paths run everywhere.
    assert!(available.starts_with(&["reference", "portable"]));
}
