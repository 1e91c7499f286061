//! fixpoint-node: the client. redb storage, the transaction pool, block production on the
//! `evm` executor, and the Ethereum JSON-RPC server (jsonrpsee) that foundry, viem, ethers and
//! web3.py use unchanged, plus `fixpoint_*` methods for models and inference records.
//!
//! Block execution here is consensus code: it must never panic on a transaction or a peer's
//! block and never use floating point; RPC input errors become JSON-RPC errors and the node
//! keeps serving.

pub mod chain;
pub mod client;
pub mod dev;
pub mod fees;
pub mod follower;
pub mod genesis;
pub mod import;
pub mod keys;
pub mod meta;
pub mod metrics;
pub mod proof;
pub mod rpc;
pub mod solidity;
pub mod startup;
pub mod storage;
pub mod submit;
pub mod trace;
pub mod validator;
