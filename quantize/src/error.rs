//! Errors of the quantizer: every failure carries what went wrong and where.

/// Anything that can fail while loading data, training, quantizing or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data set file is missing or malformed.
    #[error("data set {path}: {msg}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A float-side tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A safetensors file could not be parsed.
    #[error("safetensors: {0}")]
    SafeTensors(#[from] safetensors::SafeTensorError),
    /// A weights file parsed but does not describe the expected model.
    #[error("weights: {0}")]
    Weights(String),
    /// The float model cannot be expressed in the integer format.
    #[error("cannot quantize: {0}")]
    Quantize(String),
    /// An ONNX op that has no mapping to the integer format.
    #[error("unsupported ONNX op {op_type} (node {node:?}): {hint}")]
    UnsupportedOp {
        /// The op type, e.g. `LSTM`.
        op_type: String,
        /// The node's name in the graph.
        node: String,
        /// What is missing and what would make it supported.
        hint: String,
    },
    /// An ONNX file that cannot be read or does not have the structure the importer needs.
    #[error("ONNX model: {0}")]
    Onnx(String),
    /// The float reference runtime (tract) failed to load or run the model.
    #[error("float reference (tract): {0}")]
    Reference(String),
    /// Calibration or evaluation data that does not fit the model.
    #[error("{path}: {msg}")]
    Input {
        /// The file.
        path: String,
        /// What does not fit.
        msg: String,
    },
    /// The integer engine rejected the model or an input.
    #[error(transparent)]
    Ml(#[from] fixpoint_ml::Error),
}

/// Result with the quantizer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }
}
