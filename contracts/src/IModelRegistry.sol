// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The fixpoint model registry precompile (address 0x0F00, see Fixpoint.sol).
/// @notice Models are canonical integer models (docs/model-format.md) identified by the keccak256
/// of their bytes. Registration parses and verifies a model (canonical encoding, overflow bounds,
/// cost caps); a model is immutable once registered and re-registering it returns the same id.
/// Models that do not fit in one transaction are uploaded in order in chunks and finalized.
/// Spec: docs/precompiles.md.
interface IModelRegistry {
    /// What the chain records about a registered model.
    struct ModelInfo {
        address owner;
        uint64 size;
        uint64 registeredAt;
        uint64 macs;
        uint64 elemOps;
        uint64 bytesRead;
        uint64 peakActivationBytes;
        uint64 inputBytes;
        uint64 outputBytes;
        uint64 warmGas;
    }

    /// One input or output of a model: integer dtype code (0 i8, 1 u8, 2 i16, 3 i32, 4 i64),
    /// shape, and the real scale `multiplier * 2^-shift` around `zeroPoint` (multiplier 0: none).
    struct TensorDesc {
        uint8 dtype;
        uint32[] shape;
        int32 zeroPoint;
        int32 multiplier;
        uint8 shift;
    }

    /// A model was registered.
    event ModelRegistered(bytes32 indexed modelId, address indexed owner, uint64 size);
    /// A chunked upload was opened.
    event UploadStarted(bytes32 indexed modelId, address indexed owner, uint64 size);
    /// A chunked upload was cancelled by its owner.
    event UploadCancelled(bytes32 indexed modelId, address indexed owner);

    /// The model bytes were rejected by the verifier; `reason` says why.
    error ModelRejected(string reason);
    /// The model is larger than the registry accepts.
    error ModelTooLarge(uint64 size, uint64 max);
    /// No model with this id is registered.
    error UnknownModel(bytes32 modelId);
    /// The caller has no open upload of this id.
    error UploadNotStarted(bytes32 modelId);
    /// Chunks must arrive in order: the next one starts at `expected`.
    error UploadOutOfOrder(bytes32 modelId, uint64 expected, uint64 got);
    /// A chunk would run past the declared size.
    error UploadOverflow(bytes32 modelId, uint64 size, uint64 end);
    /// The upload already has the most chunks one upload may have.
    error TooManyChunks(bytes32 modelId, uint64 max);
    /// `finalizeUpload` before every byte arrived.
    error UploadIncomplete(bytes32 modelId, uint64 received, uint64 size);
    /// The uploaded bytes hash to `actual`, not the declared id.
    error HashMismatch(bytes32 expected, bytes32 actual);
    /// A state-changing function was called under STATICCALL.
    error StaticCallNotAllowed();
    /// The precompile was reached through DELEGATECALL or CALLCODE.
    error DelegateCallNotAllowed();
    /// The calldata does not decode as a call of this interface.
    error BadCalldata();
    /// No function has this selector.
    error UnknownSelector(bytes4 selector);

    /// Registers a model that fits in one transaction; returns its id (keccak256 of the bytes).
    function register(bytes calldata model) external returns (bytes32 modelId);

    /// Opens (or restarts, dropping what was received) the caller's chunked upload of a
    /// `size`-byte model whose keccak256 is `modelId`. Uploads are per caller, so nobody can block
    /// another's upload of the same model.
    function beginUpload(bytes32 modelId, uint64 size) external;

    /// Appends `chunk` to the caller's upload at `offset` (which must equal the bytes received).
    function putChunk(bytes32 modelId, uint64 offset, bytes calldata chunk) external;

    /// Checks the upload's hash, verifies the model and registers it; the upload ends. On a
    /// revert (`HashMismatch`, `ModelRejected`) the upload stays open: cancel or restart it.
    function finalizeUpload(bytes32 modelId) external returns (bytes32);

    /// Drops the caller's upload of `modelId` and everything it received.
    function cancelUpload(bytes32 modelId) external;

    /// Whether a model with this id is registered.
    function exists(bytes32 modelId) external view returns (bool);

    /// The registry's record of a model (reverts `UnknownModel` if absent).
    function modelInfo(bytes32 modelId) external view returns (ModelInfo memory);

    /// The model's input and output descriptions.
    function modelIO(bytes32 modelId) external view returns (TensorDesc[] memory inputs, TensorDesc[] memory outputs);
}
