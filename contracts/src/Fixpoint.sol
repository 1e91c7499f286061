// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IInference} from "./IInference.sol";
import {IModelRegistry} from "./IModelRegistry.sol";

/// @title Addresses of the fixpoint precompiles, and helpers for calling them.
/// @notice 0x0F00/0x0F01 sit clear of Ethereum's precompiles (0x01–0x11, and P256VERIFY at 0x100).
library Fixpoint {
    /// The model registry precompile.
    IModelRegistry internal constant REGISTRY = IModelRegistry(address(0x0F00));
    /// The inference precompile.
    IInference internal constant INFERENCE = IInference(address(0x0F01));

    /// Packs int8 values, one byte each, as the engine reads an i8 input.
    function packInt8(int8[] memory xs) internal pure returns (bytes memory out) {
        out = new bytes(xs.length);
        for (uint256 i = 0; i < xs.length; i++) {
            out[i] = bytes1(uint8(xs[i]));
        }
    }

    /// Packs int32 values little-endian, as the engine reads an i32 input.
    function packInt32(int32[] memory xs) internal pure returns (bytes memory out) {
        out = new bytes(xs.length * 4);
        for (uint256 i = 0; i < xs.length; i++) {
            uint32 v = uint32(xs[i]);
            for (uint256 b = 0; b < 4; b++) {
                // forge-lint: disable-next-line(unsafe-typecast)
                out[i * 4 + b] = bytes1(uint8(v >> (8 * b))); // keeps the low byte, as intended
            }
        }
    }

    /// The little-endian int32 at element `index` of packed bytes starting at byte `offset`.
    function readInt32(bytes memory data, uint256 offset, uint256 index) internal pure returns (int32) {
        uint256 pos = offset + index * 4;
        require(pos + 4 <= data.length, "Fixpoint: read past end");
        uint32 v;
        for (uint256 b = 0; b < 4; b++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            v |= uint32(uint8(data[pos + b])) << uint32(8 * b); // b < 4: 8 * b fits
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        return int32(v); // two's-complement reinterpretation, as intended
    }

    /// The little-endian int64 at element `index` of packed bytes starting at byte `offset`.
    function readInt64(bytes memory data, uint256 offset, uint256 index) internal pure returns (int64) {
        uint256 pos = offset + index * 8;
        require(pos + 8 <= data.length, "Fixpoint: read past end");
        uint64 v;
        for (uint256 b = 0; b < 8; b++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            v |= uint64(uint8(data[pos + b])) << uint64(8 * b); // b < 8: 8 * b fits
        }
        // forge-lint: disable-next-line(unsafe-typecast)
        return int64(v); // two's-complement reinterpretation, as intended
    }

    /// Index of the largest of `n` int32 values at `offset` (ties to the lowest index).
    function argmaxInt32(bytes memory data, uint256 offset, uint256 n) internal pure returns (uint256 best) {
        int32 top = readInt32(data, offset, 0);
        for (uint256 i = 1; i < n; i++) {
            int32 v = readInt32(data, offset, i);
            if (v > top) {
                top = v;
                best = i;
            }
        }
    }

    /// Calls `infer` without reverting: `ok` false carries the precompile's revert data (an
    /// IInference custom error) in `output`.
    function tryInfer(bytes32 modelId, bytes memory input) internal returns (bool ok, bytes memory output) {
        bytes memory ret;
        (ok, ret) = address(INFERENCE).call(abi.encodeCall(IInference.infer, (modelId, input)));
        output = ok ? abi.decode(ret, (bytes)) : ret;
    }

    /// The selector of revert data (zero if shorter than four bytes).
    function errorSelector(bytes memory revertData) internal pure returns (bytes4 sel) {
        if (revertData.length >= 4) {
            sel = bytes4(revertData[0]) | (bytes4(revertData[1]) >> 8) | (bytes4(revertData[2]) >> 16)
                | (bytes4(revertData[3]) >> 24);
        }
    }
}
