// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixpoint} from "../Fixpoint.sol";
import {IInference} from "../IInference.sol";

/// @title Recognizes handwritten digits on chain and keeps a public record of every prediction.
/// @notice The model is an 8x8-pixel digit classifier (pixels 0..16, as in the UCI digits set)
/// whose outputs are `[label i32[1], logits i32[10]]`, e.g. `fixpoint-model` task digits-mlp.
contract DigitRecognizer {
    /// One recorded prediction.
    struct Prediction {
        address submitter;
        uint8 digit;
        int32 logit;
        uint64 blockNumber;
    }

    /// The registered model used for every prediction.
    bytes32 public immutable modelId;
    /// Predictions by keccak256 of the packed image.
    mapping(bytes32 => Prediction) public predictions;
    /// Number of predictions recorded.
    uint256 public recorded;

    /// A digit was recognized and recorded.
    event DigitRecognized(bytes32 indexed imageHash, address indexed submitter, uint8 digit, int32 logit);

    /// Pixel `index` is above 16.
    error PixelOutOfRange(uint256 index, uint8 value);
    /// The model's output is not `[label, logits[10]]`.
    error UnexpectedOutput(uint256 length);

    constructor(bytes32 modelId_) {
        modelId = modelId_;
    }

    /// Packs 64 pixels (0..16) as the model's int8 input.
    function pack(uint8[64] calldata pixels) public pure returns (bytes memory input) {
        input = new bytes(64);
        for (uint256 i = 0; i < 64; i++) {
            if (pixels[i] > 16) revert PixelOutOfRange(i, pixels[i]);
            input[i] = bytes1(pixels[i]);
        }
    }

    /// The digit and its logit, without recording (a STATICCALL to the precompile: usable from
    /// eth_call at no cost to the caller).
    function predict(uint8[64] calldata pixels) public view returns (uint8 digit, int32 logit) {
        bytes memory input = pack(pixels);
        (bool ok, bytes memory ret) =
            address(Fixpoint.INFERENCE).staticcall(abi.encodeCall(IInference.infer, (modelId, input)));
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return _decode(abi.decode(ret, (bytes)));
    }

    /// Recognizes a digit and records the prediction.
    function recognize(uint8[64] calldata pixels) external returns (uint8 digit) {
        bytes memory input = pack(pixels);
        int32 logit;
        (digit, logit) = _decode(Fixpoint.INFERENCE.infer(modelId, input));
        bytes32 imageHash = keccak256(input);
        predictions[imageHash] = Prediction(msg.sender, digit, logit, uint64(block.number));
        recorded += 1;
        emit DigitRecognized(imageHash, msg.sender, digit, logit);
    }

    /// Like `recognize` without recording, but never reverts on an inference error: returns the
    /// precompile's error selector instead (zero on success).
    function tryPredict(uint8[64] calldata pixels) external returns (uint8 digit, bytes4 err) {
        (bool ok, bytes memory out) = Fixpoint.tryInfer(modelId, pack(pixels));
        if (!ok) return (0, Fixpoint.errorSelector(out));
        (digit,) = _decode(out);
    }

    function _decode(bytes memory out) private pure returns (uint8 digit, int32 logit) {
        if (out.length != 44) revert UnexpectedOutput(out.length);
        int32 label = Fixpoint.readInt32(out, 0, 0);
        if (label < 0 || label > 9) revert UnexpectedOutput(out.length);
        // forge-lint: disable-next-line(unsafe-typecast)
        digit = uint8(uint32(label)); // 0 <= label <= 9, checked above
        logit = Fixpoint.readInt32(out, 4, digit);
    }
}
