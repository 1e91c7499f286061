//! Shared by the consensus tests and the verify benchmark: model vectors and signed
//! transactions.
#![allow(dead_code, unreachable_pub, missing_docs)]

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use fixpoint_evm::ChainSpec;

/// Case 0 of a model vector (tests/vectors/models/NAME.json): model, input, output bytes.
pub fn model_case(name: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    // The crate directory at run time (cargo sets it), so a test binary reused from another
    // checkout sharing the target directory reads this checkout's files.
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from);
    let path = crate_dir.join(format!("../tests/vectors/models/{name}.json"));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("vector")).expect("json");
    let h = |k: &str| hex::decode(doc["cases"][0][k].as_str().expect("hex")).expect("hex");
    (h("model"), h("input"), h("output"))
}

/// An EIP-1559 call on the dev chain, signed by `k`: EIP-2718 bytes.
pub fn signed_call(k: &PrivateKeySigner, nonce: u64, to: Address, input: Vec<u8>, gas: u64) -> Bytes {
    let t = TxEip1559 {
        chain_id: ChainSpec::DEV.chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: input.into(),
    };
    let sig = k.sign_hash_sync(&t.signature_hash()).expect("sign");
    TxEnvelope::Eip1559(t.into_signed(sig)).encoded_2718().into()
}
