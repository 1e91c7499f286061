// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IInference} from "../src/IInference.sol";

/// A stand-in for the inference precompile inside forge's EVM, which lacks it. It knows two
/// fake models and mimics the real precompile's output layout and custom errors; the real
/// precompile is tested in Rust (precompiles/, evm/) against these same contracts.
contract MockInference {
    bytes32 public constant DIGITS = keccak256("mock digits");
    bytes32 public constant TREES = keccak256("mock trees");
    bytes32 public constant WRITER = keccak256("mock writer");
    /// The mock writer's window.
    uint256 public constant WINDOW = 48;

    /// The mock writer continues with the prompt's last byte plus 1, 2, 3, ... (mod 256), after
    /// the real precompile's checks.
    function generate(bytes32 modelId, bytes calldata prompt, uint32 maxTokens)
        external
        pure
        returns (bytes memory text)
    {
        if (modelId != WRITER) revert IInference.UnknownModel(modelId);
        if (prompt.length == 0) revert IInference.EmptyPrompt();
        if (prompt.length + maxTokens - 1 > WINDOW) {
            revert IInference.ContextExceeded(prompt.length, maxTokens, WINDOW);
        }
        text = new bytes(maxTokens);
        uint8 last = uint8(prompt[prompt.length - 1]);
        for (uint256 i = 0; i < maxTokens; i++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            text[i] = bytes1(uint8((uint256(last) + i + 1) % 256));
        }
    }

    function infer(bytes32 modelId, bytes calldata input) external pure returns (bytes memory) {
        if (modelId == DIGITS) {
            if (input.length != 64) revert IInference.BadInputLength(64, input.length);
            // Label = (sum of pixels) mod 10; logits: 100 at the label, -i elsewhere.
            uint256 sum;
            for (uint256 i = 0; i < 64; i++) {
                sum += uint8(input[i]);
            }
            uint32 label = uint32(sum % 10);
            bytes memory out = new bytes(44);
            _put32(out, 0, label);
            for (uint32 c = 0; c < 10; c++) {
                _put32(out, 4 + 4 * c, c == label ? uint32(100) : uint32(int32(-int32(c))));
            }
            return out;
        }
        if (modelId == TREES) {
            if (input.length != 120) revert IInference.BadInputLength(120, input.length);
            // Benign when feature 0 (first four bytes, little-endian) is below 15 * 2^16.
            uint32 f0 = uint32(uint8(input[0])) | (uint32(uint8(input[1])) << 8) | (uint32(uint8(input[2])) << 16)
                | (uint32(uint8(input[3])) << 24);
            bool benign = int32(f0) < 15 * 65536;
            bytes memory out = new bytes(20);
            _put32(out, 0, benign ? 1 : 0);
            int64 logit = benign ? int64(3) << 32 : -(int64(2) << 32);
            uint64 l = uint64(logit);
            for (uint256 b = 0; b < 8; b++) {
                out[12 + b] = bytes1(uint8(l >> (8 * b)));
            }
            return out;
        }
        revert IInference.UnknownModel(modelId);
    }

    function _put32(bytes memory out, uint256 pos, uint32 v) private pure {
        for (uint256 b = 0; b < 4; b++) {
            out[pos + b] = bytes1(uint8(v >> (8 * b)));
        }
    }
}
