// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DigitRecognizer} from "../src/examples/DigitRecognizer.sol";

/// The forge cheatcodes this script uses.
interface ScriptVm {
    function envBytes32(string calldata name) external view returns (bytes32);
    function startBroadcast() external;
    function stopBroadcast() external;
}

/// Deploys the example dapp bound to a registered model:
/// `MODEL_ID=0x... forge script contracts/script/DeployDigitRecognizer.s.sol --broadcast
///  --rpc-url http://127.0.0.1:8545 --private-key <key>`.
contract DeployDigitRecognizer {
    ScriptVm internal constant vm = ScriptVm(address(uint160(uint256(keccak256("hevm cheat code")))));
    bool public constant IS_SCRIPT = true;

    function run() external returns (DigitRecognizer app) {
        bytes32 modelId = vm.envBytes32("MODEL_ID");
        vm.startBroadcast();
        app = new DigitRecognizer(modelId);
        vm.stopBroadcast();
    }
}
