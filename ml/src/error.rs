//! Errors of the engine. Every failure on outside input (model bytes, inputs) is one of these,
//! never a panic.

use crate::tensor::DType;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why a model was rejected or a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes end before the structure they describe (docs/model-format.md §2).
    #[error("truncated model: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Byte offset where reading stopped.
        offset: usize,
        /// Bytes that were missing.
        needed: usize,
    },
    /// The file does not start with `FXPM`.
    #[error("bad magic: not a fixpoint model")]
    BadMagic,
    /// A format version this engine does not implement.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
    /// An arithmetic profile this engine does not implement.
    #[error("unsupported arithmetic profile {0}")]
    UnsupportedProfile(u16),
    /// Bytes left after the last section.
    #[error("{0} trailing bytes after the model")]
    TrailingBytes(usize),
    /// An encoding that is valid-looking but not the one canonical encoding.
    #[error("non-canonical encoding: {0}")]
    NonCanonical(String),
    /// A field holds a value outside its domain.
    #[error("invalid field at offset {offset}: {what}")]
    InvalidField {
        /// Byte offset of the field.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// An unknown op code.
    #[error("unknown op code {0}")]
    UnknownOp(u8),
    /// An unknown dtype code.
    #[error("unknown dtype code {0}")]
    UnknownDType(u8),
    /// A graph reference that points nowhere or forward.
    #[error("op {op}: {what}")]
    BadReference {
        /// Index of the op.
        op: usize,
        /// What is wrong.
        what: String,
    },
    /// An op whose inputs or attributes do not fit together.
    #[error("op {op} ({name}): {what}")]
    InvalidOp {
        /// Index of the op.
        op: usize,
        /// The op's name.
        name: &'static str,
        /// What is wrong.
        what: String,
    },
    /// The overflow proof failed: wrapping i32 accumulation could wrap (docs/arithmetic.md §3).
    #[error("op {op} ({name}): output channel {channel} may overflow i32: bound {bound} >= 2^31")]
    AccumulatorOverflow {
        /// Index of the op.
        op: usize,
        /// The op's name.
        name: &'static str,
        /// Output channel whose bound fails.
        channel: usize,
        /// The bound `max|x - zp| * sum|w| + |bias|`.
        bound: i128,
    },
    /// The model exceeds a hard cap (size, ops, MACs, memory).
    #[error("model exceeds limit: {what} is {value}, limit {limit}")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The model's figure.
        value: u64,
        /// The cap.
        limit: u64,
    },
    /// The caller passed the wrong number of inputs.
    #[error("expected {expected} inputs, got {got}")]
    InputCount {
        /// Inputs the model takes.
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// An input has the wrong dtype or shape.
    #[error("input {index}: expected {expected_dtype:?} {expected_shape:?}, got {got_dtype:?} {got_shape:?}")]
    InputMismatch {
        /// Which input.
        index: usize,
        /// Dtype the model takes.
        expected_dtype: DType,
        /// Shape the model takes.
        expected_shape: Vec<usize>,
        /// Dtype given.
        got_dtype: DType,
        /// Shape given.
        got_shape: Vec<usize>,
    },
    /// Packed input bytes of the wrong length.
    #[error("packed input is {got} bytes, the model takes {expected}")]
    InputLength {
        /// Bytes the model takes.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A Gather index outside its table (the input decides it, so the run fails; never the
    /// verifier).
    #[error("Gather: index {index} is outside the table's {rows} rows")]
    IndexOutOfRange {
        /// The index given.
        index: i64,
        /// Rows in the table.
        rows: usize,
    },
    /// The model cannot generate: an op has no row-by-row form (crate::decode).
    #[error("not a causal model: op {op} ({name}): {what}")]
    NotCausal {
        /// Index of the op.
        op: usize,
        /// The op's name.
        name: &'static str,
        /// Why.
        what: String,
    },
    /// The model's inputs or outputs are not those of a generative model (crate::decode).
    #[error("not a generative model: {0}")]
    NotGenerative(&'static str),
    /// A generation without a prompt.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// A generation longer than the model's window.
    #[error("{prompt} prompt tokens and {tokens} new ones need more than the model's {context} positions")]
    ContextExceeded {
        /// Prompt tokens (or positions already evaluated).
        prompt: usize,
        /// New tokens asked for.
        tokens: usize,
        /// The window.
        context: usize,
    },
    /// A token outside the model's vocabulary's dtype.
    #[error("token {token} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The token.
        token: u32,
        /// Logits per position.
        vocab: usize,
    },
    /// An internal invariant failed; a bug, reported instead of panicking.
    #[error("internal error: {0}")]
    Internal(&'static str),
}
