// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Fixpoint} from "../Fixpoint.sol";

/// @title A screening desk: clinics submit a case's measurements and get a tamper-evident,
/// reproducible screening from a registered tree-ensemble model.
/// @notice The model reads 30 measurements as int32 fixed point (value * 2^16, floor) and outputs
/// `[label i32[1], scores i64[2]]` with scores at 2^-32 (label 1 = benign, 0 = malignant), e.g.
/// `fixpoint-model` task cancer-gbdt. A second opinion is only a re-run away: anyone can call
/// `preview` with the same measurements and get the same answer, bit for bit.
contract ScreeningDesk {
    /// One recorded screening.
    struct Screening {
        address clinic;
        bool benign;
        int64 logit;
        uint64 blockNumber;
        bytes32 inputHash;
    }

    /// The registered model.
    bytes32 public immutable modelId;
    /// Screenings by case id.
    mapping(bytes32 => Screening) public screenings;

    /// A case was screened.
    event Screened(bytes32 indexed caseId, address indexed clinic, bool benign, int64 logit);

    /// Each case is screened once.
    error AlreadyScreened(bytes32 caseId);
    /// The model's output is not `[label, scores[2]]`.
    error UnexpectedOutput(uint256 length);

    constructor(bytes32 modelId_) {
        modelId = modelId_;
    }

    /// Packs the measurements as the model's int32 input.
    function pack(int32[30] calldata features) public pure returns (bytes memory input) {
        int32[] memory xs = new int32[](30);
        for (uint256 i = 0; i < 30; i++) {
            xs[i] = features[i];
        }
        input = Fixpoint.packInt32(xs);
    }

    /// Screens and records a case.
    function screen(bytes32 caseId, int32[30] calldata features) external returns (bool benign, int64 logit) {
        if (screenings[caseId].clinic != address(0)) revert AlreadyScreened(caseId);
        bytes memory input = pack(features);
        (benign, logit) = _decode(Fixpoint.INFERENCE.infer(modelId, input));
        screenings[caseId] = Screening(msg.sender, benign, logit, uint64(block.number), keccak256(input));
        emit Screened(caseId, msg.sender, benign, logit);
    }

    /// The screening without recording it.
    function preview(int32[30] calldata features) external view returns (bool benign, int64 logit) {
        (bool ok, bytes memory ret) = address(Fixpoint.INFERENCE)
            .staticcall(abi.encodeWithSignature("infer(bytes32,bytes)", modelId, pack(features)));
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return _decode(abi.decode(ret, (bytes)));
    }

    function _decode(bytes memory out) private pure returns (bool benign, int64 logit) {
        if (out.length != 20) revert UnexpectedOutput(out.length);
        benign = Fixpoint.readInt32(out, 0, 0) == 1;
        logit = Fixpoint.readInt64(out, 4, 1);
    }
}
