//! Persistence in redb. Each block is written in one redb transaction together with the state
//! changes it made and the models it registered, so the database is always at a block boundary:
//! a crash (even `kill -9`) mid-block leaves the previous block as head, never half a block.

use std::path::Path;

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, Bytes, U256};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use revm::bytecode::Bytecode;
use revm::state::AccountInfo;
use serde::{Deserialize, Serialize};

use fixpoint_evm::{AccountChange, StateChanges, WorldState};
use fixpoint_precompiles::ChunkKey;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const ACCOUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("accounts");
const STORAGE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("storage");
const CODE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("code");
const MODELS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("models");
/// Consensus data: key "finalized" holds the last finalized consensus block (validators).
const CONSENSUS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("consensus");
/// Chunks of open model uploads that the finalized state names: key `id ‖ owner ‖ index (u64 BE)
/// ‖ keccak256(chunk)` (92 bytes, the model store's key). The v1 table keyed by offset is left
/// alone: its chunks belong to the old state layout.
const CHUNKS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("upload-chunks-v2");

fn chunk_key(k: &ChunkKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(92);
    v.extend_from_slice(k.id.as_slice());
    v.extend_from_slice(k.owner.as_slice());
    v.extend_from_slice(&k.index.to_be_bytes());
    v.extend_from_slice(k.hash.as_slice());
    v
}

fn parse_chunk_key(k: &[u8]) -> Option<ChunkKey> {
    if k.len() != 92 {
        return None;
    }
    Some(ChunkKey {
        id: B256::from_slice(k.get(..32)?),
        owner: Address::from_slice(k.get(32..52)?),
        index: u64::from_be_bytes(k.get(52..60)?.try_into().ok()?),
        hash: B256::from_slice(k.get(60..)?),
    })
}

/// What a finalized block adds beside state: registered models' bytes, the upload chunks it
/// received that its post-state names, and the chunks its post-state no longer names (they go).
#[derive(Debug, Default)]
pub struct BlockExtras<'a> {
    /// Registered models.
    pub models: &'a [Vec<u8>],
    /// Upload chunks to keep.
    pub chunks: &'a [(ChunkKey, std::sync::Arc<[u8]>)],
    /// Upload chunks to delete.
    pub released: &'a [ChunkKey],
    /// The finalized consensus block this block comes from (validators and followers).
    pub consensus: Option<&'a [u8]>,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed.
    #[error("database: {0}")]
    Db(String),
    /// A stored record does not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

fn dbe<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

/// A receipt as stored, with what the RPC needs beyond the consensus receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredReceipt {
    /// EIP-2718 encoded receipt envelope.
    pub envelope: Bytes,
    /// Gas used by the transaction.
    pub gas_used: u64,
    /// Created contract.
    pub contract_address: Option<Address>,
    /// Return or revert data.
    pub output: Bytes,
}

/// A block as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredBlock {
    /// The consensus header.
    pub header: Header,
    /// EIP-2718 encoded transactions.
    pub txs: Vec<Bytes>,
    /// Their recovered senders.
    pub senders: Vec<Address>,
    /// Their receipts.
    pub receipts: Vec<StoredReceipt>,
    /// Inference records, 112-byte encodings (docs/precompiles.md §4).
    pub records: Vec<Bytes>,
}

/// The node's database.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn account_bytes(info: &AccountInfo) -> Vec<u8> {
    let mut v = Vec::with_capacity(72);
    v.extend_from_slice(&info.nonce.to_be_bytes());
    v.extend_from_slice(&info.balance.to_be_bytes::<32>());
    v.extend_from_slice(info.code_hash.as_slice());
    v
}

fn storage_key(address: &Address, slot: &U256) -> Vec<u8> {
    let mut k = address.to_vec();
    k.extend_from_slice(&slot.to_be_bytes::<32>());
    k
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(dbe)?;
        let w = db.begin_write().map_err(dbe)?;
        w.open_table(META).map_err(dbe)?;
        w.open_table(BLOCKS).map_err(dbe)?;
        w.open_table(ACCOUNTS).map_err(dbe)?;
        w.open_table(STORAGE).map_err(dbe)?;
        w.open_table(CODE).map_err(dbe)?;
        w.open_table(MODELS).map_err(dbe)?;
        w.open_table(CHUNKS).map_err(dbe)?;
        w.open_table(CONSENSUS).map_err(dbe)?;
        w.commit().map_err(dbe)?;
        Ok(Self { db })
    }

    /// The head block number, if any block was stored.
    pub fn head(&self) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        Ok(r.open_table(META).map_err(dbe)?.get("head").map_err(dbe)?.map(|g| g.value()))
    }

    /// The chain id the database was created for.
    pub fn chain_id(&self) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        Ok(r.open_table(META).map_err(dbe)?.get("chain_id").map_err(dbe)?.map(|g| g.value()))
    }

    /// Records the chain id (once, at creation).
    pub fn set_chain_id(&self, chain_id: u64) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(dbe)?;
        w.open_table(META).map_err(dbe)?.insert("chain_id", chain_id).map_err(dbe)?;
        w.commit().map_err(dbe)
    }

    /// The last finalized consensus block stored with a block, encoded.
    pub fn consensus_block(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        Ok(r.open_table(CONSENSUS).map_err(dbe)?.get("finalized").map_err(dbe)?.map(|g| g.value().to_vec()))
    }

    /// Every stored block, in order.
    pub fn blocks(&self) -> Result<Vec<StoredBlock>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let t = r.open_table(BLOCKS).map_err(dbe)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(dbe)? {
            let (_, v) = item.map_err(dbe)?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    /// The stored world state (the head block's post-state).
    pub fn state(&self) -> Result<WorldState, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let mut all = StateChanges::default();
        let code = r.open_table(CODE).map_err(dbe)?;
        for item in r.open_table(ACCOUNTS).map_err(dbe)?.iter().map_err(dbe)? {
            let (k, v) = item.map_err(dbe)?;
            let (k, v) = (k.value(), v.value());
            let corrupt = || StoreError::Corrupt("account record".into());
            let (Some(nonce), Some(balance), Some(code_hash)) = (v.get(..8), v.get(8..40), v.get(40..72)) else {
                return Err(corrupt());
            };
            if k.len() != 20 || v.len() != 72 {
                return Err(corrupt());
            }
            let nonce = u64::from_be_bytes(nonce.try_into().map_err(|_| corrupt())?);
            let code_hash = B256::from_slice(code_hash);
            let bytecode =
                code.get(code_hash.as_slice()).map_err(dbe)?.map(|g| Bytecode::new_raw(g.value().to_vec().into()));
            let info = AccountInfo {
                nonce,
                balance: U256::from_be_slice(balance),
                code_hash,
                code: bytecode,
                ..Default::default()
            };
            all.accounts.insert(Address::from_slice(k), AccountChange { info: Some(info), ..Default::default() });
        }
        for item in r.open_table(STORAGE).map_err(dbe)?.iter().map_err(dbe)? {
            let (k, v) = item.map_err(dbe)?;
            let (k, v) = (k.value(), v.value());
            let (Some(address), Some(slot)) = (k.get(..20), k.get(20..)) else {
                return Err(StoreError::Corrupt("storage record".into()));
            };
            if k.len() != 52 || v.len() != 32 {
                return Err(StoreError::Corrupt("storage record".into()));
            }
            let account = all
                .accounts
                .get_mut(&Address::from_slice(address))
                .ok_or_else(|| StoreError::Corrupt("storage of a missing account".into()))?;
            account.storage.insert(U256::from_be_slice(slot), U256::from_be_slice(v));
        }
        let mut state = WorldState::new();
        state.apply(&all);
        Ok(state)
    }

    /// Every stored model's bytes.
    pub fn models(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let t = r.open_table(MODELS).map_err(dbe)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(dbe)? {
            out.push(item.map_err(dbe)?.1.value().to_vec());
        }
        Ok(out)
    }

    /// The chunks of open uploads that the head state names.
    pub fn chunks(&self) -> Result<Vec<(ChunkKey, Vec<u8>)>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let t = r.open_table(CHUNKS).map_err(dbe)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(dbe)? {
            let (k, v) = item.map_err(dbe)?;
            let key = parse_chunk_key(k.value()).ok_or_else(|| StoreError::Corrupt("chunk key".into()))?;
            out.push((key, v.value().to_vec()));
        }
        Ok(out)
    }

    /// Writes block `number` with the state `changes` it made, and what it added beside state, in
    /// one transaction: the work is proportional to the block's changes, not to the state.
    pub fn commit_block(
        &self,
        number: u64,
        block: &StoredBlock,
        changes: &StateChanges,
        extras: &BlockExtras<'_>,
    ) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(dbe)?;
        {
            let encoded = serde_json::to_vec(block).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            w.open_table(BLOCKS).map_err(dbe)?.insert(number, encoded.as_slice()).map_err(dbe)?;
            let mut accounts = w.open_table(ACCOUNTS).map_err(dbe)?;
            let mut storage = w.open_table(STORAGE).map_err(dbe)?;
            let mut code = w.open_table(CODE).map_err(dbe)?;
            for (address, change) in &changes.accounts {
                if change.storage_cleared {
                    let (from, to) = (storage_key(address, &U256::ZERO), storage_key(address, &U256::MAX));
                    storage.retain_in(from.as_slice()..=to.as_slice(), |_, _| false).map_err(dbe)?;
                }
                let Some(info) = &change.info else {
                    accounts.remove(address.as_slice()).map_err(dbe)?;
                    continue;
                };
                accounts.insert(address.as_slice(), account_bytes(info).as_slice()).map_err(dbe)?;
                if let Some(c) = &info.code
                    && !c.is_empty()
                    && code.get(info.code_hash.as_slice()).map_err(dbe)?.is_none()
                {
                    code.insert(info.code_hash.as_slice(), c.original_byte_slice()).map_err(dbe)?;
                }
                for (slot, value) in &change.storage {
                    let key = storage_key(address, slot);
                    if value.is_zero() {
                        storage.remove(key.as_slice()).map_err(dbe)?;
                    } else {
                        storage.insert(key.as_slice(), value.to_be_bytes::<32>().as_slice()).map_err(dbe)?;
                    }
                }
            }
            let mut mt = w.open_table(MODELS).map_err(dbe)?;
            for m in extras.models {
                mt.insert(alloy_primitives::keccak256(m).as_slice(), m.as_slice()).map_err(dbe)?;
            }
            let mut ct = w.open_table(CHUNKS).map_err(dbe)?;
            for (k, bytes) in extras.chunks {
                ct.insert(chunk_key(k).as_slice(), &bytes[..]).map_err(dbe)?;
            }
            for k in extras.released {
                ct.remove(chunk_key(k).as_slice()).map_err(dbe)?;
            }
            if let Some(c) = extras.consensus {
                w.open_table(CONSENSUS).map_err(dbe)?.insert("finalized", c).map_err(dbe)?;
            }
            w.open_table(META).map_err(dbe)?.insert("head", number).map_err(dbe)?;
        }
        w.commit().map_err(dbe)?;
        Ok(())
    }
}
