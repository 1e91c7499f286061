// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// Reaches a precompile in the ways a contract can (CALL with a gas cap, STATICCALL,
/// DELEGATECALL) and reports success and return or revert data, for the Rust tests that run the
/// real precompiles.
contract Prober {
    event Probed(bool ok, bytes data);

    function callWith(address target, bytes calldata data, uint256 gas) external returns (bool ok, bytes memory ret) {
        (ok, ret) = target.call{gas: gas}(data);
        emit Probed(ok, ret);
    }

    function staticWith(address target, bytes calldata data) external returns (bool ok, bytes memory ret) {
        (ok, ret) = target.staticcall(data);
        emit Probed(ok, ret);
    }

    function delegateWith(address target, bytes calldata data) external returns (bool ok, bytes memory ret) {
        (ok, ret) = target.delegatecall(data);
        emit Probed(ok, ret);
    }
}
