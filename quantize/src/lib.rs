//! fixpoint-quantize: the offline half of fixpoint's ML story. It loads the committed public
//! data sets, trains float models with candle (MLP, CNN) or in plain f64 (boosted trees), saves
//! them as safetensors, calibrates activation ranges and lowers them to canonical integer models
//! (docs/model-format.md) that `fixpoint-ml` runs bit-exactly. Floats are allowed here and only
//! here: nothing in this crate may ever be linked into consensus code, and nothing it produces
//! is trusted without the engine's own verifier.

pub mod data;
pub mod ensemble;
pub mod error;
pub mod eval;
pub mod gbdt;
pub mod gpt;
pub mod lower;
pub mod multiplier;
pub mod net;
pub mod onnx;
pub mod pointwise;
pub mod task;

pub use error::{Error, Result};
pub use task::{FloatModel, Task};
