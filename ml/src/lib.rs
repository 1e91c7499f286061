//! `fixpoint-ml`: the deterministic integer inference engine of fixpoint.
//!
//! It defines the canonical model format ([`format`], spec in `docs/model-format.md`), the
//! registration-time verifier ([`verify`]: shapes, overflow bounds, cost), the ops ([`ops`], one
//! per file, semantics in `docs/arithmetic.md`), the kernels ([`kernels`]: a scalar reference and
//! bit-identical fast paths) and the interpreter ([`Engine`]). Every validator runs this code on
//! every inference, so it must never use floating point, never depend on iteration order of a
//! hash map, never panic on a model or an input however malformed, and never give two machines
//! two answers. It knows nothing of the EVM.
#![deny(clippy::float_arithmetic, clippy::float_cmp, clippy::as_underscore)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod arith;
pub mod decode;
pub mod engine;
pub mod error;
pub mod format;
pub mod io;
pub mod kernels;
pub mod ops;
pub mod tensor;
pub mod verify;
pub mod work;

pub use decode::{Generation, Plan};
pub use engine::{Engine, OpTrace};
pub use error::{Error, Result};
pub use format::{Model, ModelId, model_id};
pub use tensor::{DType, Tensor, TensorData};
pub use verify::{Cost, Limits, Verified, verify};
pub use work::{Counter, Work};
