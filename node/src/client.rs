//! A small Ethereum JSON-RPC client for the `fixpoint model` commands: calls, signed EIP-1559
//! transactions (nonce, fees and gas from the node), receipts, and reverts decoded with the
//! precompiles' ABI errors. It speaks only standard `eth_*` methods, so it works against any
//! fixpoint node.

use std::str::FromStr;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolInterface;
use fixpoint_precompiles::abi::IInference::IInferenceErrors;
use fixpoint_precompiles::abi::IModelRegistry::IModelRegistryErrors;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer from the URL.
    #[error("cannot reach a node at {url}: {reason}")]
    Unreachable {
        /// The RPC URL.
        url: String,
        /// Transport error.
        reason: String,
    },
    /// The node answered with an error.
    #[error("the node refused {method}: {message} (code {code})")]
    Rpc {
        /// The method.
        method: String,
        /// JSON-RPC error code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// The call or transaction reverted.
    #[error("reverted: {0}")]
    Reverted(String),
    /// The answer was not what the method returns.
    #[error("unexpected answer to {method}: {reason}")]
    Decode {
        /// The method.
        method: String,
        /// Why.
        reason: String,
    },
    /// A bad argument (key, URL).
    #[error("{0}")]
    Usage(String),
    /// A sent transaction did not make it.
    #[error("{0}")]
    Failed(String),
}

/// Describes revert data with the registry's and inference's ABI errors (e.g.
/// `BadInputLength { expected: 64, got: 2 }`), or as hex.
pub fn describe_revert(data: &[u8]) -> String {
    // The generated enums print `Name(Name { fields })`; keep the inner part.
    let tidy = |s: String| {
        let name_end = s.find('(').unwrap_or(s.len());
        let inner = s.get(name_end + 1..s.len().saturating_sub(1)).unwrap_or_default();
        if inner.starts_with(&s[..name_end]) { inner.to_string() } else { s }
    };
    if let Ok(e) = IInferenceErrors::abi_decode(data) {
        return tidy(format!("{e:?}"));
    }
    if let Ok(e) = IModelRegistryErrors::abi_decode(data) {
        return tidy(format!("{e:?}"));
    }
    if data.is_empty() { "no revert data".into() } else { format!("0x{}", hex::encode(data)) }
}

/// A connection to a node.
#[derive(Debug)]
pub struct Client {
    http: HttpClient,
    url: String,
}

/// A transaction's outcome.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its hash.
    pub hash: B256,
    /// Block it landed in.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
}

impl Client {
    /// A client for `url` (no request is made yet).
    pub fn new(url: &str) -> Result<Self, ClientError> {
        let http = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(60))
            .max_request_size(32 << 20)
            .max_response_size(64 << 20)
            .build(url)
            .map_err(|e| ClientError::Usage(format!("bad RPC URL {url}: {e}")))?;
        Ok(Self { http, url: url.to_string() })
    }

    /// Calls `method` with positional `params`.
    pub async fn request<R: DeserializeOwned>(&self, method: &str, params: Vec<Value>) -> Result<R, ClientError> {
        let mut p = ArrayParams::new();
        for v in params {
            p.insert(v).map_err(|e| ClientError::Usage(e.to_string()))?;
        }
        let v: Value = self.http.request(method, p).await.map_err(|e| self.error(method, e))?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode { method: method.into(), reason: e.to_string() })
    }

    fn error(&self, method: &str, e: jsonrpsee::core::ClientError) -> ClientError {
        match e {
            jsonrpsee::core::ClientError::Call(obj) => {
                let data = obj
                    .data()
                    .and_then(|d| serde_json::from_str::<String>(d.get()).ok())
                    .and_then(|s| hex::decode(s.trim_start_matches("0x")).ok());
                match data {
                    Some(d) if obj.code() == 3 => ClientError::Reverted(describe_revert(&d)),
                    _ => ClientError::Rpc { method: method.into(), code: obj.code(), message: obj.message().into() },
                }
            }
            other => ClientError::Unreachable { url: self.url.clone(), reason: other.to_string() },
        }
    }

    /// The node's chain id.
    pub async fn chain_id(&self) -> Result<u64, ClientError> {
        Ok(self.request::<U64>("eth_chainId", vec![]).await?.to())
    }

    /// `eth_call` of `data` to `to` at the latest block.
    pub async fn call(&self, to: Address, data: &[u8]) -> Result<Bytes, ClientError> {
        self.request("eth_call", vec![json!({ "to": to, "input": Bytes::copy_from_slice(data) }), json!("latest")])
            .await
    }

    /// Signs and sends a transaction calling `to` with `data`, waits for its receipt, and fails
    /// with the decoded reason if it reverted.
    pub async fn send(&self, key: &PrivateKeySigner, to: Address, data: Bytes) -> Result<Sent, ClientError> {
        let from = key.address();
        let chain_id = self.chain_id().await?;
        let nonce: U64 = self.request("eth_getTransactionCount", vec![json!(from), json!("pending")]).await?;
        let req = json!({ "from": from, "to": to, "input": data });
        // Estimation runs the call, so a revert shows here, decoded, before anything is paid.
        let gas: U64 = self.request("eth_estimateGas", vec![req]).await?;
        let gas_price: U256 = self.request("eth_gasPrice", vec![]).await?;
        let tip: U256 = self.request("eth_maxPriorityFeePerGas", vec![]).await?;
        let tx = TxEip1559 {
            chain_id,
            nonce: nonce.to(),
            gas_limit: gas.to::<u64>() + gas.to::<u64>() / 10,
            max_fee_per_gas: (gas_price * U256::from(2)).saturating_to(),
            max_priority_fee_per_gas: tip.saturating_to(),
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input: data,
        };
        let raw = sign(key, tx)?;
        let hash: B256 = self.request("eth_sendRawTransaction", vec![json!(raw)]).await?;
        self.wait(hash, Duration::from_secs(120)).await
    }

    /// Polls for `hash`'s receipt.
    pub async fn wait(&self, hash: B256, timeout: Duration) -> Result<Sent, ClientError> {
        let start = Instant::now();
        loop {
            let r: Option<Value> = self.request("eth_getTransactionReceipt", vec![json!(hash)]).await?;
            if let Some(r) = r {
                let field = |k: &str| {
                    r.get(k).and_then(|v| serde_json::from_value::<U64>(v.clone()).ok()).map(|x| x.to::<u64>())
                };
                let sent = Sent {
                    hash,
                    block: field("blockNumber").unwrap_or_default(),
                    gas_used: field("gasUsed").unwrap_or_default(),
                };
                return if field("status") == Some(1) {
                    Ok(sent)
                } else {
                    Err(ClientError::Failed(format!("transaction {hash} reverted in block {}", sent.block)))
                };
            }
            if start.elapsed() > timeout {
                return Err(ClientError::Failed(format!("transaction {hash} not mined after {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Signs `tx` with `key`: the EIP-2718 bytes for `eth_sendRawTransaction`.
pub fn sign(key: &PrivateKeySigner, tx: TxEip1559) -> Result<Bytes, ClientError> {
    let sig = key.sign_hash_sync(&tx.signature_hash()).map_err(|e| ClientError::Usage(e.to_string()))?;
    Ok(TxEnvelope::Eip1559(tx.into_signed(sig)).encoded_2718().into())
}

/// Parses a hex private key (with or without 0x).
pub fn parse_key(s: &str) -> Result<PrivateKeySigner, ClientError> {
    PrivateKeySigner::from_str(s.trim())
        .map_err(|_| ClientError::Usage("invalid private key: expected 32 bytes of hex".into()))
}
