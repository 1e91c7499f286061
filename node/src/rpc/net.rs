//! The `net` namespace: the network id (the chain id, as a decimal string) and whether the node
//! listens.

use std::sync::Arc;

use jsonrpsee::proc_macros::rpc;

use super::{Node, RpcResult};

/// The `net` methods.
#[rpc(server, namespace = "net")]
pub trait NetApi {
    /// The chain id as a decimal string (geth's network id).
    #[method(name = "version")]
    fn version(&self) -> RpcResult<String>;
    /// Always `true`: a node serving RPC listens.
    #[method(name = "listening")]
    fn listening(&self) -> RpcResult<bool>;
}

/// The `net` namespace over a node.
#[derive(Debug, Clone)]
pub struct NetRpc(pub Arc<Node>);

impl NetApiServer for NetRpc {
    fn version(&self) -> RpcResult<String> {
        Ok(self.0.chain().spec.chain_id.to_string())
    }

    fn listening(&self) -> RpcResult<bool> {
        Ok(true)
    }
}
