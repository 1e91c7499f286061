//! A tiny byte-level GPT (issue 15): trained in float with candle, quantized to the canonical
//! integer graph, and evaluated float against integer on held-out text.
//!
//! - [`corpus`]: the committed public-domain text and its fixed train / calibration / held-out split.
//! - [`model`]: the float model (pre-LayerNorm GPT) with a trace of every intermediate value.
//! - [`train`]: AdamW training on one thread with a fixed seed.
//! - [`calibrate`]: activation ranges of the float model on the calibration slice.
//! - [`lower`]: the integer graph (docs/arithmetic.md §4, §6, §7, §11–§16) in the layout the
//!   KV-cached evaluator expects.
//! - [`report`]: top-1 agreement, perplexity and accuracy of float and integer on held-out text.

pub mod calibrate;
pub mod corpus;
pub mod lower;
pub mod model;
pub mod report;
pub mod train;

pub use model::{Config, Gpt};
