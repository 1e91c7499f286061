//! Persistence in redb. Each block is written in one redb transaction together with the state
//! changes it made and the models it registered, so the database is always at a block boundary:
//! a crash (even `kill -9`) mid-block leaves the previous block as head, never half a block.
//!
//! A block's state changes are appended as one row keyed by its height (`state-changes`): a
//! block's write touches the B-tree's last pages whatever the size of the state. A background
//! thread ([`Store::start_folding`]) folds those rows into the account and storage tables in
//! small transactions of their own, deleting each row in the transaction that folds it; opening
//! the store replays the rows not yet folded (docs/node.md, "State that scales").

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use revm::bytecode::Bytecode;
use revm::state::AccountInfo;
use serde::{Deserialize, Serialize};

use fixpoint_evm::state::LoadedAccount;
use fixpoint_evm::{AccountChange, StateChanges, WorldState};
use fixpoint_precompiles::ChunkKey;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const ACCOUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("accounts");
const STORAGE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("storage");
const CODE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("code");
const MODELS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("models");
/// Each block's state changes ([`encode_changes`]), by height, until folded into `accounts` and
/// `storage`; meta key "folded" is the height whose post-state those tables hold.
const CHANGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("state-changes");
/// Block hash → number, for the blocks up to the folded height (the chain keeps newer ones).
const BLOCK_HASHES: TableDefinition<'_, &[u8], u64> = TableDefinition::new("block-hashes");
/// Transaction hash → its block's number (8 bytes) and index in the block (4), big-endian.
const TX_LOCATIONS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("tx-locations");
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
    /// The folding thread, if started; dropped (stopped and joined) before the database.
    folder: Option<Folder>,
    db: Arc<Database>,
}

/// The thread folding change sets into the tables: woken after each block, stopped on drop.
#[derive(Debug)]
struct Folder {
    wake: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Folder {
    fn drop(&mut self) {
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Entries (accounts and slots) folded per transaction at most, so a block's own write never
/// waits long for redb's one writer: about two blocks of the state benchmark.
pub const FOLD_ENTRIES: usize = 4096;

/// How long the folding thread waits after a block before folding, gathering the blocks that
/// follow: each fold transaction syncs, and redb has one writer, so a fold per block would
/// double the syncs blocks wait behind (the dev chain under load seals a block every few
/// milliseconds); this bounds them to about ten a second.
pub const FOLD_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The change-set row format: per account, `address (20) ‖ flags (1: bit 0 fields follow, bit 1
/// storage cleared) ‖ [nonce (8 BE) ‖ balance (32 BE) ‖ code hash (32)] ‖ slots (4 BE) ‖ (slot
/// (32 BE) ‖ value (32 BE))*`, accounts in address order.
pub fn encode_changes(changes: &StateChanges) -> Vec<u8> {
    let mut v = Vec::with_capacity(changes.accounts.len() * 100 + changes.slots() * 64);
    for (address, change) in &changes.accounts {
        v.extend_from_slice(address.as_slice());
        v.push(u8::from(change.info.is_some()) | (u8::from(change.storage_cleared) << 1));
        if let Some(info) = &change.info {
            v.extend_from_slice(&account_bytes(info));
        }
        v.extend_from_slice(&u32::try_from(change.storage.len()).unwrap_or(u32::MAX).to_be_bytes());
        for (slot, value) in &change.storage {
            v.extend_from_slice(&slot.to_be_bytes::<32>());
            v.extend_from_slice(&value.to_be_bytes::<32>());
        }
    }
    v
}

/// Reads [`encode_changes`]' format back; accounts' code is left out (`code` is `None`).
pub fn decode_changes(mut bytes: &[u8]) -> Result<StateChanges, StoreError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], StoreError> {
        let Some((head, rest)) = b.split_at_checked(n) else {
            return Err(StoreError::Corrupt("change set truncated".into()));
        };
        *b = rest;
        Ok(head)
    }
    let mut out = StateChanges::default();
    while !bytes.is_empty() {
        let address = Address::from_slice(take(&mut bytes, 20)?);
        let flags = take(&mut bytes, 1)?.first().copied().unwrap_or_default();
        if flags > 3 {
            return Err(StoreError::Corrupt(format!("change set flags {flags}")));
        }
        let info = if flags & 1 == 1 { Some(parse_account(take(&mut bytes, 72)?, None)?) } else { None };
        let count = u32::from_be_bytes(take(&mut bytes, 4)?.try_into().unwrap_or_default());
        let mut storage = std::collections::BTreeMap::new();
        for _ in 0..count {
            let slot = U256::from_be_slice(take(&mut bytes, 32)?);
            storage.insert(slot, U256::from_be_slice(take(&mut bytes, 32)?));
        }
        out.accounts.insert(address, AccountChange { info, storage_cleared: flags & 2 == 2, storage });
    }
    Ok(out)
}

/// An account row (`nonce ‖ balance ‖ code hash`, 72 bytes) with its `code`.
fn parse_account(v: &[u8], code: Option<Bytecode>) -> Result<AccountInfo, StoreError> {
    let corrupt = || StoreError::Corrupt("account record".into());
    let (Some(nonce), Some(balance), Some(code_hash)) = (v.get(..8), v.get(8..40), v.get(40..72)) else {
        return Err(corrupt());
    };
    if v.len() != 72 {
        return Err(corrupt());
    }
    Ok(AccountInfo {
        nonce: u64::from_be_bytes(nonce.try_into().map_err(|_| corrupt())?),
        balance: U256::from_be_slice(balance),
        code_hash: B256::from_slice(code_hash),
        code,
        ..Default::default()
    })
}

/// Writes `changes` into the account and storage tables of `w`.
fn write_state(w: &redb::WriteTransaction, changes: &StateChanges) -> Result<(), StoreError> {
    let mut accounts = w.open_table(ACCOUNTS).map_err(dbe)?;
    let mut storage = w.open_table(STORAGE).map_err(dbe)?;
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
        for (slot, value) in &change.storage {
            let key = storage_key(address, slot);
            if value.is_zero() {
                storage.remove(key.as_slice()).map_err(dbe)?;
            } else {
                storage.insert(key.as_slice(), value.to_be_bytes::<32>().as_slice()).map_err(dbe)?;
            }
        }
    }
    Ok(())
}

/// Writes the code `changes` deploy that `w` does not hold yet.
fn write_code(w: &redb::WriteTransaction, changes: &StateChanges) -> Result<(), StoreError> {
    let mut code = w.open_table(CODE).map_err(dbe)?;
    for info in changes.accounts.values().filter_map(|c| c.info.as_ref()) {
        if let Some(c) = &info.code
            && !c.is_empty()
            && code.get(info.code_hash.as_slice()).map_err(dbe)?.is_none()
        {
            code.insert(info.code_hash.as_slice(), c.original_byte_slice()).map_err(dbe)?;
        }
    }
    Ok(())
}

/// The height the account and storage tables are at: meta "folded", or the head in a database
/// written before change sets (which wrote the tables with each block).
fn folded(meta: &impl ReadableTable<&'static str, u64>) -> Result<Option<u64>, StoreError> {
    Ok(match meta.get("folded").map_err(dbe)? {
        Some(f) => Some(f.value()),
        None => meta.get("head").map_err(dbe)?.map(|g| g.value()),
    })
}

fn decode_block(bytes: &[u8]) -> Result<StoredBlock, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Indexes block `number`'s hash and its transactions' hashes.
fn index_block(w: &redb::WriteTransaction, number: u64, block: &StoredBlock) -> Result<(), StoreError> {
    w.open_table(BLOCK_HASHES).map_err(dbe)?.insert(block.header.hash_slow().as_slice(), number).map_err(dbe)?;
    let mut txs = w.open_table(TX_LOCATIONS).map_err(dbe)?;
    for (i, raw) in block.txs.iter().enumerate() {
        let mut at = number.to_be_bytes().to_vec();
        at.extend_from_slice(&u32::try_from(i).map_err(dbe)?.to_be_bytes());
        txs.insert(keccak256(raw).as_slice(), at.as_slice()).map_err(dbe)?;
    }
    Ok(())
}

/// Indexes every stored block up to `upto` if the hash index is empty: a database written
/// before the indexes existed.
fn backfill_indexes(w: &redb::WriteTransaction, upto: u64) -> Result<(), StoreError> {
    if !w.open_table(BLOCK_HASHES).map_err(dbe)?.is_empty().map_err(dbe)? {
        return Ok(());
    }
    let blocks = w.open_table(BLOCKS).map_err(dbe)?;
    for item in blocks.range(..=upto).map_err(dbe)? {
        let (k, v) = item.map_err(dbe)?;
        index_block(w, k.value(), &decode_block(v.value())?)?;
    }
    Ok(())
}

/// Folds the oldest change sets into the tables, whole sets up to about `max_entries` entries
/// (at least one set), and indexes their blocks' and transactions' hashes, in one transaction
/// that also deletes the sets; returns how many it folded.
/// Durable on its own: left to the next block's commit, the pages it dirtied (a leaf page per
/// changed key, scattered over the tables) would be synced on the block's critical path. A crash
/// before it commits loses the fold and its deletions together, which the next open replays.
fn fold(db: &Database, max_entries: usize) -> Result<usize, StoreError> {
    let w = db.begin_write().map_err(dbe)?;
    let mut sets = 0;
    {
        let mut meta = w.open_table(META).map_err(dbe)?;
        let Some(mut at) = folded(&meta)? else { return Ok(0) };
        let mut rows = w.open_table(CHANGES).map_err(dbe)?;
        let mut entries = 0;
        while entries < max_entries {
            let Some(row) = rows.get(at + 1).map_err(dbe)?.map(|g| g.value().to_vec()) else { break };
            let changes = decode_changes(&row)?;
            write_state(&w, &changes)?;
            let block = w.open_table(BLOCKS).map_err(dbe)?.get(at + 1).map_err(dbe)?.map(|g| g.value().to_vec());
            let block = block.ok_or_else(|| StoreError::Corrupt(format!("change set {} without its block", at + 1)))?;
            index_block(&w, at + 1, &decode_block(&block)?)?;
            rows.remove(at + 1).map_err(dbe)?;
            entries += changes.accounts.len() + changes.slots();
            at += 1;
            sets += 1;
        }
        meta.insert("folded", at).map_err(dbe)?;
    }
    if sets == 0 {
        w.abort().map_err(dbe)?;
        return Ok(0);
    }
    w.commit().map_err(dbe)?;
    Ok(sets)
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
        w.open_table(CHANGES).map_err(dbe)?;
        w.open_table(TX_LOCATIONS).map_err(dbe)?;
        let upto = folded(&w.open_table(META).map_err(dbe)?)?;
        if let Some(upto) = upto {
            backfill_indexes(&w, upto)?;
        }
        w.commit().map_err(dbe)?;
        Ok(Self { folder: None, db: Arc::new(db) })
    }

    /// Starts the thread that folds change sets into the tables [`FOLD_PAUSE`] after a block,
    /// in pieces of [`FOLD_ENTRIES`]; it stops when the store is dropped. A store that never starts it
    /// replays every change set on open.
    pub fn start_folding(&mut self) {
        if self.folder.is_some() {
            return;
        }
        let (wake, woken) = mpsc::channel::<()>();
        let db = self.db.clone();
        let thread = std::thread::Builder::new().name("fold".into()).spawn(move || {
            while woken.recv().is_ok() {
                let until = std::time::Instant::now() + FOLD_PAUSE;
                while let Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) =
                    woken.recv_timeout(until.saturating_duration_since(std::time::Instant::now()))
                {
                    if std::time::Instant::now() >= until {
                        break;
                    }
                }
                loop {
                    match fold(&db, FOLD_ENTRIES) {
                        Ok(0) => break,
                        Ok(_) => std::thread::yield_now(),
                        Err(e) => {
                            tracing::error!(error = %e, "folding state changes failed; they stay as change sets");
                            return;
                        }
                    }
                }
            }
        });
        match thread {
            Ok(t) => self.folder = Some(Folder { wake: Some(wake), thread: Some(t) }),
            Err(e) => tracing::error!(error = %e, "cannot start the folding thread; change sets are replayed on open"),
        }
    }

    /// Folds pending change sets now, up to about `max_entries` accounts and slots; returns how
    /// many sets it folded (what the folding thread does; for benchmarks and tests).
    pub fn fold(&self, max_entries: usize) -> Result<usize, StoreError> {
        fold(&self.db, max_entries)
    }

    /// Change sets written and not yet folded.
    pub fn unfolded(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        r.open_table(CHANGES).map_err(dbe)?.len().map_err(dbe)
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

    /// The stored blocks from `first` on, in order.
    pub fn blocks_from(&self, first: u64) -> Result<Vec<StoredBlock>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let t = r.open_table(BLOCKS).map_err(dbe)?;
        let mut out = Vec::new();
        for item in t.range(first..).map_err(dbe)? {
            out.push(decode_block(item.map_err(dbe)?.1.value())?);
        }
        Ok(out)
    }

    /// Stored block `number`.
    pub fn block(&self, number: u64) -> Result<Option<StoredBlock>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let t = r.open_table(BLOCKS).map_err(dbe)?;
        t.get(number).map_err(dbe)?.map(|g| decode_block(g.value())).transpose()
    }

    /// The number of the block with header hash `hash`, among the blocks up to [`Self::folded`].
    pub fn block_number(&self, hash: &B256) -> Result<Option<u64>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        Ok(r.open_table(BLOCK_HASHES).map_err(dbe)?.get(hash.as_slice()).map_err(dbe)?.map(|g| g.value()))
    }

    /// The block number and index of the transaction with hash `hash`, among the blocks up to
    /// [`Self::folded`].
    pub fn tx_location(&self, hash: &B256) -> Result<Option<(u64, usize)>, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let t = r.open_table(TX_LOCATIONS).map_err(dbe)?;
        let Some(g) = t.get(hash.as_slice()).map_err(dbe)? else { return Ok(None) };
        let v = g.value();
        let (Some(n), Some(i)) = (v.get(..8), v.get(8..12)) else {
            return Err(StoreError::Corrupt("transaction location".into()));
        };
        let n = u64::from_be_bytes(n.try_into().map_err(dbe)?);
        let i = u32::from_be_bytes(i.try_into().map_err(dbe)?);
        Ok(Some((n, usize::try_from(i).map_err(dbe)?)))
    }

    /// The height the account and storage tables and the hash indexes are at.
    pub fn folded(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        Ok(folded(&r.open_table(META).map_err(dbe)?)?.unwrap_or_default())
    }

    /// The stored world state (the head block's post-state): the account and storage tables,
    /// then the change sets not yet folded into them, in height order.
    pub fn state(&self) -> Result<WorldState, StoreError> {
        let r = self.db.begin_read().map_err(dbe)?;
        let code = r.open_table(CODE).map_err(dbe)?;
        let code_of = |hash: &B256| -> Result<Option<Bytecode>, StoreError> {
            if *hash == revm::primitives::KECCAK_EMPTY {
                return Ok(None);
            }
            Ok(code.get(hash.as_slice()).map_err(dbe)?.map(|g| Bytecode::new_raw(g.value().to_vec().into())))
        };
        // Both tables are in address order: each account's slots follow it.
        let mut accounts: Vec<LoadedAccount> = Vec::new();
        for item in r.open_table(ACCOUNTS).map_err(dbe)?.iter().map_err(dbe)? {
            let (k, v) = item.map_err(dbe)?;
            let (k, v) = (k.value(), v.value());
            if k.len() != 20 {
                return Err(StoreError::Corrupt("account record".into()));
            }
            let mut info = parse_account(v, None)?;
            info.code = code_of(&info.code_hash)?;
            accounts.push((Address::from_slice(k), info, Vec::new()));
        }
        let mut at = 0;
        for item in r.open_table(STORAGE).map_err(dbe)?.iter().map_err(dbe)? {
            let (k, v) = item.map_err(dbe)?;
            let (k, v) = (k.value(), v.value());
            let (Some(address), Some(slot)) = (k.get(..20), k.get(20..)) else {
                return Err(StoreError::Corrupt("storage record".into()));
            };
            if k.len() != 52 || v.len() != 32 {
                return Err(StoreError::Corrupt("storage record".into()));
            }
            while accounts.get(at).is_some_and(|a| a.0.as_slice() < address) {
                at += 1;
            }
            let account = accounts
                .get_mut(at)
                .filter(|a| a.0.as_slice() == address)
                .ok_or_else(|| StoreError::Corrupt("storage of a missing account".into()))?;
            account.2.push((U256::from_be_slice(slot), U256::from_be_slice(v)));
        }
        let mut state = WorldState::from_accounts(accounts);
        let folded = folded(&r.open_table(META).map_err(dbe)?)?.unwrap_or_default();
        for item in r.open_table(CHANGES).map_err(dbe)?.range(folded + 1..).map_err(dbe)? {
            let mut changes = decode_changes(item.map_err(dbe)?.1.value())?;
            for info in changes.accounts.values_mut().filter_map(|c| c.info.as_mut()) {
                info.code = code_of(&info.code_hash)?;
            }
            state.apply(&changes);
        }
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
    /// one durable transaction. The changes go in as one change-set row (genesis, which may be
    /// large, straight into the tables), so the work grows with the block, not with the state;
    /// the folding thread, if started, is woken to fold them into the tables.
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
            write_code(&w, changes)?;
            if number == 0 {
                write_state(&w, changes)?;
                index_block(&w, 0, block)?;
                w.open_table(META).map_err(dbe)?.insert("folded", 0).map_err(dbe)?;
            } else {
                let row = encode_changes(changes);
                w.open_table(CHANGES).map_err(dbe)?.insert(number, row.as_slice()).map_err(dbe)?;
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
        if let Some(wake) = self.folder.as_ref().and_then(|f| f.wake.as_ref()) {
            // A stopped folder only means the sets wait for the next open.
            let _ = wake.send(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn code(n: u64) -> Bytecode {
        Bytecode::new_raw(Bytes::from(vec![0x60, n as u8, 0x00]))
    }

    /// A block's worth of changes over a small address space: new and changed accounts, written
    /// and deleted slots, deployed code, destroyed accounts, storage wiped and rewritten.
    fn changes(rng: &mut Rng) -> StateChanges {
        let mut out = StateChanges::default();
        for _ in 0..1 + rng.next() % 12 {
            let address = Address::with_last_byte((rng.next() % 24) as u8);
            let kind = rng.next() % 8;
            let info = (kind != 0).then(|| {
                let mut info =
                    AccountInfo { nonce: rng.next() % 5, balance: U256::from(rng.next() % 1000), ..Default::default() };
                if kind == 1 {
                    let c = code(rng.next() % 3);
                    info.code_hash = c.hash_slow();
                    info.code = Some(c);
                }
                info
            });
            let storage: BTreeMap<U256, U256> =
                (0..rng.next() % 6).map(|_| (U256::from(rng.next() % 16), U256::from(rng.next() % 3))).collect();
            let storage_cleared = kind == 0 || kind == 2;
            out.accounts.insert(address, AccountChange { info, storage_cleared, storage });
        }
        out
    }

    fn block() -> StoredBlock {
        StoredBlock { header: Default::default(), txs: vec![], senders: vec![], receipts: vec![], records: vec![] }
    }

    #[test]
    fn change_sets_round_trip_and_truncated_ones_are_refused() {
        let mut rng = Rng(0x0c4a_46e5_e75a_11ce);
        for _ in 0..200 {
            let mut c = changes(&mut rng);
            let bytes = encode_changes(&c);
            // Code is stored by hash, not in the set.
            for info in c.accounts.values_mut().filter_map(|a| a.info.as_mut()) {
                info.code = None;
            }
            assert_eq!(decode_changes(&bytes).unwrap(), c);
            // Inside the first account record and inside the last one (a cut between records is a
            // shorter valid set).
            for cut in [1, 20, 21, bytes.len() - 1] {
                if cut < bytes.len() {
                    assert!(decode_changes(&bytes[..cut]).is_err(), "a set cut at {cut} of {} decodes", bytes.len());
                }
            }
        }
        let mut bad = encode_changes(&changes(&mut rng));
        bad[20] = 7;
        assert!(matches!(decode_changes(&bad), Err(StoreError::Corrupt(_))));
    }

    /// The head state is what the blocks made of genesis, whether their change sets were folded
    /// into the tables, partly folded, or only replayed on open; the code they deployed included.
    #[test]
    fn a_restart_has_the_head_state_folded_or_not() {
        let dir = std::env::temp_dir().join(format!("fixpoint-store-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.redb");
        let _ = std::fs::remove_file(&path);
        let mut rng = Rng(0x5eed_f01d);
        let mut want = WorldState::new();
        for i in 0..30u8 {
            want.fund(Address::with_last_byte(i), U256::from(i));
            want.set_storage(Address::with_last_byte(i), U256::from(1), U256::from(i) + U256::from(1));
        }
        let store = Store::open(&path).unwrap();
        store.commit_block(0, &block(), &want.as_changes(), &BlockExtras::default()).unwrap();
        let loaded = |want: &WorldState| {
            let got = Store::open(&path).unwrap().state().unwrap();
            assert_eq!(got.root(), want.root());
            for i in 0..24 {
                let a = Address::with_last_byte(i);
                assert_eq!(got.code(&a), want.code(&a), "code of {a}");
            }
        };
        let mut height = 0;
        let mut blocks = |store: &Store, want: &mut WorldState, count: usize| {
            for _ in 0..count {
                height += 1;
                let c = changes(&mut rng);
                want.apply(&c);
                store.commit_block(height, &block(), &c, &BlockExtras::default()).unwrap();
            }
        };
        blocks(&store, &mut want, 20);
        assert_eq!(store.unfolded().unwrap(), 20);
        drop(store);
        loaded(&want);

        let store = Store::open(&path).unwrap();
        assert_eq!(store.fold(1).unwrap(), 1, "at least one set, however small the budget");
        assert_eq!(store.fold(usize::MAX).unwrap(), 19);
        assert_eq!(store.fold(usize::MAX).unwrap(), 0);
        blocks(&store, &mut want, 5);
        drop(store);
        loaded(&want);

        // With the folding thread: it folds after each block, and stops with the store.
        let mut store = Store::open(&path).unwrap();
        store.start_folding();
        blocks(&store, &mut want, 40);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.unfolded().unwrap() > 0 {
            assert!(std::time::Instant::now() < deadline, "the folding thread folds every set");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        blocks(&store, &mut want, 3);
        drop(store);
        loaded(&want);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Block and transaction hashes are indexed as their blocks fold (genesis at once), and a
    /// database without the indexes (written before them) gets them on open.
    #[test]
    fn hash_indexes_follow_the_fold_and_are_backfilled() {
        let dir = std::env::temp_dir().join(format!("fixpoint-index-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.redb");
        let _ = std::fs::remove_file(&path);
        let numbered = |n: u64| StoredBlock {
            header: Header { number: n, ..Default::default() },
            txs: (0..3u8).map(|i| Bytes::from(vec![n as u8, i])).collect(),
            ..block()
        };
        let tx = |n: u64, i: u8| keccak256([n as u8, i]);
        let store = Store::open(&path).unwrap();
        for n in 0..6 {
            store.commit_block(n, &numbered(n), &StateChanges::default(), &BlockExtras::default()).unwrap();
        }
        let hash = |n: u64| numbered(n).header.hash_slow();
        assert_eq!(store.block_number(&hash(0)).unwrap(), Some(0), "genesis is indexed at once");
        assert_eq!(store.tx_location(&tx(0, 2)).unwrap(), Some((0, 2)));
        assert_eq!(store.block_number(&hash(3)).unwrap(), None, "not before its change set folds");
        assert_eq!(store.fold(usize::MAX).unwrap(), 5);
        let indexed = |store: &Store| {
            for n in 0..6 {
                assert_eq!(store.block_number(&hash(n)).unwrap(), Some(n));
                assert_eq!(store.block(n).unwrap().unwrap().header.number, n);
                for i in 0..3 {
                    assert_eq!(store.tx_location(&tx(n, i)).unwrap(), Some((n, usize::from(i))));
                }
            }
            assert_eq!(store.tx_location(&tx(9, 0)).unwrap(), None);
        };
        indexed(&store);
        let w = store.db.begin_write().unwrap();
        w.delete_table(BLOCK_HASHES).unwrap();
        w.delete_table(TX_LOCATIONS).unwrap();
        w.commit().unwrap();
        assert_eq!(store.block_number(&hash(1)).ok().flatten(), None, "the indexes are gone");
        drop(store);
        indexed(&Store::open(&path).unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }
}
