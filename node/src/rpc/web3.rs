//! The `web3` namespace: the client's version and keccak-256.

use alloy_primitives::{B256, Bytes, keccak256};
use jsonrpsee::proc_macros::rpc;

use super::RpcResult;

/// The `web3` methods.
#[rpc(server, namespace = "web3")]
pub trait Web3Api {
    /// `fixpoint/v<version>`.
    #[method(name = "clientVersion")]
    fn client_version(&self) -> RpcResult<String>;
    /// keccak-256 of the given bytes.
    #[method(name = "sha3")]
    fn sha3(&self, data: Bytes) -> RpcResult<B256>;
}

/// The `web3` namespace (stateless).
#[derive(Debug, Clone, Copy)]
pub struct Web3Rpc;

impl Web3ApiServer for Web3Rpc {
    fn client_version(&self) -> RpcResult<String> {
        Ok(format!("fixpoint/v{}", env!("CARGO_PKG_VERSION")))
    }

    fn sha3(&self, data: Bytes) -> RpcResult<B256> {
        Ok(keccak256(&data))
    }
}
