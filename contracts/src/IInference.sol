// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title The fixpoint inference precompile (address 0x0F01, see Fixpoint.sol).
/// @notice Runs a registered model synchronously on the deterministic integer engine; every node
/// computes the same output and charges the same gas. Works under CALL and STATICCALL (so from
/// `view` functions and eth_call); every call is recorded in the block's inference records.
/// Packed tensors: each input in order, little-endian, in the model's dtype (1 byte per int8).
/// Spec: docs/precompiles.md; gas: docs/gas.md.
interface IInference {
    /// No model with this id is registered.
    error UnknownModel(bytes32 modelId);
    /// The packed input has the wrong length for the model.
    error BadInputLength(uint256 expected, uint256 got);
    /// The input is larger than any call accepts.
    error InputTooLarge(uint256 size, uint256 max);
    /// Input element `index` does not fit the model's input dtype.
    error InputOutOfRange(uint256 index);
    /// The engine refused to run (should not happen for a registered model); `reason` says why.
    error InferenceFailed(string reason);
    /// The precompile was reached through DELEGATECALL or CALLCODE.
    error DelegateCallNotAllowed();
    /// The calldata does not decode as a call of this interface.
    error BadCalldata();
    /// No function has this selector.
    error UnknownSelector(bytes4 selector);
    /// The model cannot generate text (not causal, or not byte tokens); `reason` says why.
    error NotGenerative(string reason);
    /// `generate` without a prompt.
    error EmptyPrompt();
    /// The prompt and the new tokens need more positions than the model's window.
    error ContextExceeded(uint256 promptLength, uint256 maxTokens, uint256 context);

    /// Runs `modelId` on packed `input`; returns the packed outputs.
    function infer(bytes32 modelId, bytes calldata input) external returns (bytes memory output);

    /// Runs `modelId` on integers (all inputs flattened in order); returns all outputs flattened.
    function inferInts(bytes32 modelId, int256[] calldata input) external returns (int256[] memory output);

    /// The class label: output #0's single value if it has one element (a model ending in its
    /// own ArgMax), else the argmax of output #0 (ties to the lowest index).
    function classify(bytes32 modelId, bytes calldata input) external returns (uint256 label);

    /// Greedy generation by a causal byte-level model (docs/model-format.md §9): the prompt's
    /// bytes are its tokens; returns `maxTokens` new bytes, each the highest logit after the
    /// previous ones (ties to the lowest byte), with a key/value cache inside the call. Needs
    /// `prompt.length + maxTokens - 1` positions at most the model's window. Gas is exact and
    /// known before the call: per position evaluated, the model's step cost (docs/gas.md).
    function generate(bytes32 modelId, bytes calldata prompt, uint32 maxTokens) external returns (bytes memory text);
}
