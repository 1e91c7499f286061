//! The node's chain: the head state, the block history, block production and the queries the
//! RPC serves. Blocks are Ethereum-shaped (alloy-consensus headers with transactions, receipts
//! and state roots, logs bloom, base fee); the inference-records root rides in `extra_data`.

use std::sync::Arc;

use alloy_consensus::proofs::calculate_transaction_root;
use alloy_consensus::transaction::Recovered;
use alloy_consensus::{EMPTY_OMMER_ROOT_HASH, Header, ReceiptEnvelope, TxEnvelope};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_evm::Evm;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256, keccak256};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_trie::EMPTY_ROOT_HASH;
use fixpoint_consensus::Block as ConsensusBlock;
use fixpoint_consensus::Executed;
use fixpoint_evm::{BlockEnvInput, ChainSpec, StateChanges, TxOutcome, WorldState};
use fixpoint_precompiles::{INFERENCE_ADDRESS, InferenceRecord, ModelStore, REGISTRY_ADDRESS, Scope, ScopeOutcome};
use revm::bytecode::Bytecode;
use revm::context::TxEnv;
use revm::context_interface::result::ExecutionResult;
use revm::database::CacheDB;

use crate::genesis::GenesisState;
use crate::storage::{BlockExtras, Store, StoreError, StoredBlock, StoredReceipt};

/// A block held in memory for queries.
#[derive(Debug, Clone)]
pub struct Block {
    /// Header hash.
    pub hash: B256,
    /// The header.
    pub header: Header,
    /// Transactions with senders.
    pub txs: Vec<Recovered<TxEnvelope>>,
    /// Receipts, in order.
    pub receipts: Vec<StoredReceipt>,
    /// Decoded receipt envelopes.
    pub envelopes: Vec<ReceiptEnvelope>,
    /// Inference records.
    pub records: Vec<InferenceRecord>,
}

impl Block {
    fn from_stored(s: StoredBlock) -> Result<Self, StoreError> {
        let corrupt = |e: String| StoreError::Corrupt(e);
        let mut txs = Vec::new();
        for (raw, sender) in s.txs.iter().zip(&s.senders) {
            let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(|e| corrupt(e.to_string()))?;
            txs.push(Recovered::new_unchecked(tx, *sender));
        }
        let envelopes = s
            .receipts
            .iter()
            .map(|r| ReceiptEnvelope::decode_2718(&mut r.envelope.as_ref()).map_err(|e| corrupt(e.to_string())))
            .collect::<Result<_, _>>()?;
        let records = s
            .records
            .iter()
            .map(|r| InferenceRecord::decode(r).ok_or_else(|| corrupt("record".into())))
            .collect::<Result<_, _>>()?;
        Ok(Self { hash: s.header.hash_slow(), header: s.header, txs, receipts: s.receipts, envelopes, records })
    }

    /// The environment this block was executed in.
    pub fn env(&self) -> BlockEnvInput {
        let h = &self.header;
        BlockEnvInput {
            number: h.number,
            timestamp: h.timestamp,
            gas_limit: h.gas_limit,
            base_fee: h.base_fee_per_gas.unwrap_or_default(),
            beneficiary: h.beneficiary,
            prev_randao: h.mix_hash,
        }
    }

    fn to_stored(&self) -> StoredBlock {
        StoredBlock {
            header: self.header.clone(),
            txs: self.txs.iter().map(|t| t.inner().encoded_2718().into()).collect(),
            senders: self.txs.iter().map(|t| t.signer()).collect(),
            receipts: self.receipts.clone(),
            records: self.records.iter().map(|r| Bytes::copy_from_slice(&r.encode())).collect(),
        }
    }
}

/// Header fields that come from execution (or, for an imported block, from consensus).
struct Parts {
    state_root: B256,
    receipts_root: B256,
    records_root: B256,
    gas_used: u64,
    logs_bloom: Bloom,
    /// The consensus digest of the parent block (validators and followers; zero on a dev chain),
    /// in `parent_beacon_block_root` as Ethereum puts its consensus layer's parent root there.
    consensus_parent: Option<B256>,
}

/// A block built and persisted, not yet the in-memory head.
#[derive(Debug)]
pub struct NextBlock {
    /// The block.
    pub block: Block,
    /// Its post-state.
    pub state: WorldState,
}

/// Why a block could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Execution refused the block.
    #[error(transparent)]
    Exec(#[from] fixpoint_evm::ExecError),
    /// The data directory holds a chain with another genesis.
    #[error(
        "the data directory holds another chain (genesis {stored}, this genesis is {given}): use another --datadir"
    )]
    GenesisMismatch {
        /// Stored genesis hash.
        stored: B256,
        /// The given genesis's hash.
        given: B256,
    },
    /// The data directory holds a chain with another chain id.
    #[error("the data directory holds chain id {stored}, not {given}")]
    ChainIdMismatch {
        /// Stored.
        stored: u64,
        /// Given.
        given: u64,
    },
    /// The database does not match its own head.
    #[error("database inconsistent: {0}")]
    Inconsistent(String),
}

/// The chain held by a node: an immutable value, cheap to clone (persistent maps and vectors,
/// shared states), so each new head is a new version and a query works on the version it took,
/// never holding up the next (see `rpc::Node::chain`).
#[derive(Debug, Clone)]
pub struct Chain {
    /// Chain parameters.
    pub spec: ChainSpec,
    /// Block gas limit.
    pub gas_limit: u64,
    /// The database (shared by every version).
    pub store: Arc<Store>,
    /// Model bytes by id.
    pub models: Arc<ModelStore>,
    /// The head state (shared: a query takes a snapshot and runs without holding the chain).
    pub state: Arc<WorldState>,
    /// The newest blocks, oldest first, the head last: at least [`RECENT_BLOCKS`] and every block
    /// the database has not indexed yet (older ones are read from it on demand).
    recent: imbl::Vector<Arc<Block>>,
    /// Block hash → number, for `recent`.
    by_hash: imbl::HashMap<B256, u64>,
    /// Transaction hash → (block, index), for `recent`.
    tx_index: imbl::HashMap<B256, (u64, usize)>,
    /// Post-states of the blocks before the head, newest last, at most [`RECENT_STATES`].
    history: imbl::Vector<(u64, Arc<WorldState>)>,
}

/// How many of the newest blocks a chain keeps in memory (with those the database has not yet
/// indexed); older blocks are read from the database when asked for.
pub const RECENT_BLOCKS: usize = 128;

/// How many past blocks' states are kept in memory for queries at older block tags.
pub const RECENT_STATES: usize = 128;

/// The base fee of the first block.
pub const INITIAL_BASE_FEE: u64 = 1_000_000_000;

impl Chain {
    /// The header of block 0 for `genesis`.
    pub fn genesis_header(genesis: &GenesisState, gas_limit: u64, timestamp: u64) -> Header {
        Header {
            parent_hash: B256::ZERO,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            state_root: fixpoint_evm::state_root(&genesis.state),
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            number: 0,
            gas_limit,
            timestamp,
            base_fee_per_gas: Some(INITIAL_BASE_FEE),
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: Some(EMPTY_REQUESTS_HASH),
            extra_data: fixpoint_evm::records_root(&[]).to_vec().into(),
            ..Default::default()
        }
    }

    /// Opens the chain in `store`, writing block 0 from `genesis` if the store is empty. A store
    /// holding another chain (other genesis or chain id) is refused, and so is one whose state
    /// does not match its head's state root.
    pub fn open(
        spec: ChainSpec,
        gas_limit: u64,
        store: Store,
        genesis: &GenesisState,
        timestamp: u64,
    ) -> Result<Self, ChainError> {
        let models = Arc::new(ModelStore::default());
        let header = Self::genesis_header(genesis, gas_limit, timestamp);
        let genesis_hash = header.hash_slow();
        if store.head()?.is_none() {
            let block = StoredBlock { header, txs: vec![], senders: vec![], receipts: vec![], records: vec![] };
            store.set_chain_id(spec.chain_id)?;
            let extras = BlockExtras { models: &genesis.models, ..Default::default() };
            store.commit_block(0, &block, &genesis.state.as_changes(), &extras)?;
        }
        if let Some(stored) = store.chain_id()?
            && stored != spec.chain_id
        {
            return Err(ChainError::ChainIdMismatch { stored, given: spec.chain_id });
        }
        for m in store.models()? {
            models.insert(m.into());
        }
        for (key, bytes) in store.chunks()? {
            if !models.restore_chunk(key, bytes.into()) {
                return Err(ChainError::Inconsistent(format!("stored chunk {key:?} does not match its hash")));
            }
        }
        let mut chain = Self {
            spec,
            gas_limit,
            state: Arc::new(store.state()?),
            store: Arc::new({
                let mut store = store;
                store.start_folding();
                store
            }),
            models,
            recent: imbl::Vector::new(),
            by_hash: imbl::HashMap::new(),
            tx_index: imbl::HashMap::new(),
            history: imbl::Vector::new(),
        };
        let head = chain.store.head()?.unwrap_or_default();
        let first = head.saturating_sub(RECENT_BLOCKS as u64 - 1).min(chain.store.folded()? + 1);
        for b in chain.store.blocks_from(first)? {
            let b = Block::from_stored(b)?;
            chain.index(&b);
            chain.recent.push_back(Arc::new(b));
        }
        let stored = chain.store.block(0)?.map(|b| b.header.hash_slow()).unwrap_or_default();
        if stored != genesis_hash {
            return Err(ChainError::GenesisMismatch { stored, given: genesis_hash });
        }
        let (want, got) = (chain.head().header.state_root, fixpoint_evm::state_root(&chain.state));
        if want != got {
            return Err(ChainError::Inconsistent(format!(
                "the stored state has root {got}, the head block {} says {want}",
                chain.head().header.number
            )));
        }
        Ok(chain)
    }

    fn index(&mut self, b: &Block) {
        self.by_hash.insert(b.hash, b.header.number);
        for (i, t) in b.txs.iter().enumerate() {
            self.tx_index.insert(*t.inner().tx_hash(), (b.header.number, i));
        }
    }

    /// The head block.
    pub fn head(&self) -> &Block {
        // Genesis is written on open, so there is always a head.
        self.recent.back().unwrap_or_else(|| unreachable!("chain without genesis"))
    }

    /// The base fee the next block will have.
    pub fn next_base_fee(&self) -> u64 {
        self.head().header.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(INITIAL_BASE_FEE)
    }

    /// The environment of the next block.
    pub fn next_env(&self, timestamp: u64) -> BlockEnvInput {
        let head = &self.head().header;
        BlockEnvInput {
            number: head.number + 1,
            timestamp: timestamp.max(head.timestamp + 1),
            gas_limit: self.gas_limit,
            base_fee: self.next_base_fee(),
            beneficiary: Address::ZERO,
            prev_randao: keccak256(self.head().hash),
        }
    }

    /// Turns finalized consensus block `block`, which this node executed as `executed`, into
    /// the next block and writes it (with the consensus block, to restart from) to the
    /// database; [`Chain::apply`] then makes it the head. `None` if the chain already has it.
    pub fn import(&self, block: &ConsensusBlock, executed: &Executed) -> Result<Option<NextBlock>, ChainError> {
        let body = block.body();
        let head = self.head().header.number;
        if body.height <= head {
            return Ok(None);
        }
        if body.height != head + 1 || executed.txs.len() != body.txs.len() {
            return Err(ChainError::Inconsistent(format!(
                "finalized block {} ({} transactions, {} executed) does not follow head {head}",
                body.height,
                body.txs.len(),
                executed.txs.len()
            )));
        }
        let mut txs = Vec::with_capacity(body.txs.len());
        for (raw, out) in body.txs.iter().zip(&executed.txs) {
            let tx = TxEnvelope::decode_2718(&mut raw.as_ref()).map_err(|e| ChainError::Inconsistent(e.to_string()))?;
            txs.push(Recovered::new_unchecked(tx, out.from));
        }
        let env = fixpoint_consensus::execute::block_env(body);
        let parts = Parts {
            state_root: body.state_root,
            receipts_root: body.receipts_root,
            records_root: body.records_root,
            gas_used: body.gas_used,
            logs_bloom: executed.logs_bloom,
            consensus_parent: Some(B256::from_slice(body.parent.as_ref())),
        };
        let assembled = self.assemble(&env, txs, &executed.txs, executed.records.clone(), &parts);
        let encoded = commonware_codec::Encode::encode(block);
        self.commit(assembled, executed.state.clone(), &executed.changes, &executed.scope, Some(&encoded)).map(Some)
    }

    /// The block with header fields from `env` and `parts`, on top of the head.
    fn assemble(
        &self,
        env: &BlockEnvInput,
        txs: Vec<Recovered<TxEnvelope>>,
        outcomes: &[TxOutcome],
        records: Vec<InferenceRecord>,
        parts: &Parts,
    ) -> Block {
        let header = Header {
            parent_hash: self.head().hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: env.beneficiary,
            state_root: parts.state_root,
            transactions_root: calculate_transaction_root(&txs.iter().map(|t| t.inner().clone()).collect::<Vec<_>>()),
            receipts_root: parts.receipts_root,
            logs_bloom: parts.logs_bloom,
            difficulty: U256::ZERO,
            number: env.number,
            gas_limit: env.gas_limit,
            gas_used: parts.gas_used,
            timestamp: env.timestamp,
            extra_data: parts.records_root.to_vec().into(),
            mix_hash: env.prev_randao,
            nonce: Default::default(),
            base_fee_per_gas: Some(env.base_fee),
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(parts.consensus_parent.unwrap_or_default()),
            requests_hash: Some(EMPTY_REQUESTS_HASH),
            ..self.head().header.clone()
        };
        let receipts: Vec<StoredReceipt> = outcomes
            .iter()
            .map(|t| StoredReceipt {
                envelope: t.receipt.encoded_2718().into(),
                gas_used: t.gas_used,
                contract_address: t.contract_address,
                output: t.output.clone(),
            })
            .collect();
        Block {
            hash: header.hash_slow(),
            header,
            envelopes: outcomes.iter().map(|t| t.receipt.clone()).collect(),
            txs,
            receipts,
            records,
        }
    }

    /// Writes `block` with post-state `state` and what its execution staged.
    fn commit(
        &self,
        block: Block,
        state: WorldState,
        changes: &StateChanges,
        scope: &ScopeOutcome,
        consensus: Option<&[u8]>,
    ) -> Result<NextBlock, ChainError> {
        let models: Vec<Vec<u8>> = scope.models.iter().map(|(_, b)| b.to_vec()).collect();
        // The chunks the post-state names are kept; those it released go (docs/precompiles.md).
        let (chunks, released) = scope.persistence(|slot| state.storage(&REGISTRY_ADDRESS, &slot));
        let extras = BlockExtras { models: &models, chunks: &chunks, released: &released, consensus };
        self.store.commit_block(block.header.number, &block.to_stored(), changes, &extras)?;
        Ok(NextBlock { block, state })
    }

    /// Makes a block from [`Chain::build`] the head; returns its hash.
    pub fn apply(&mut self, next: NextBlock) -> B256 {
        let old = std::mem::replace(&mut self.state, Arc::new(next.state));
        self.history.push_back((self.head().header.number, old));
        if self.history.len() > RECENT_STATES {
            self.history.pop_front();
        }
        self.index(&next.block);
        let hash = next.block.hash;
        self.recent.push_back(Arc::new(next.block));
        self.forget_indexed();
        hash
    }

    /// Drops from memory the oldest blocks beyond [`RECENT_BLOCKS`] that the database has
    /// indexed (they are read from it from now on).
    fn forget_indexed(&mut self) {
        if self.recent.len() <= RECENT_BLOCKS {
            return;
        }
        let folded = match self.store.folded() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the indexed height; blocks stay in memory");
                return;
            }
        };
        while self.recent.len() > RECENT_BLOCKS
            && let Some(b) = self.recent.front().filter(|b| b.header.number <= folded).cloned()
        {
            self.by_hash.remove(&b.hash);
            for t in &b.txs {
                self.tx_index.remove(t.inner().tx_hash());
            }
            self.recent.pop_front();
        }
    }

    /// The block number of the oldest block held in memory.
    fn first_recent(&self) -> u64 {
        self.recent.front().map_or(0, |b| b.header.number)
    }

    /// Block by number: from memory if recent, else read from the database.
    pub fn block(&self, number: u64) -> Option<Arc<Block>> {
        let head = self.head().header.number;
        if number > head {
            return None;
        }
        let first = self.first_recent();
        if number >= first {
            return usize::try_from(number - first).ok().and_then(|i| self.recent.get(i)).cloned();
        }
        let stored = self.store.block(number).and_then(|b| b.map(Block::from_stored).transpose());
        match stored {
            Ok(b) => b.map(Arc::new),
            Err(e) => {
                tracing::error!(number, error = %e, "cannot read a stored block");
                None
            }
        }
    }

    /// The number of the block with hash `hash`, if this version of the chain has it.
    fn number_of(&self, hash: &B256) -> Option<u64> {
        if let Some(n) = self.by_hash.get(hash) {
            return Some(*n);
        }
        let n = self.store.block_number(hash).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the block hash index");
            None
        })?;
        (n <= self.head().header.number).then_some(n)
    }

    /// Block by hash.
    pub fn block_by_hash(&self, hash: &B256) -> Option<Arc<Block>> {
        self.block(self.number_of(hash)?)
    }

    /// A transaction's block number and index, if this version of the chain has it.
    fn tx_location(&self, hash: &B256) -> Option<(u64, usize)> {
        if let Some(at) = self.tx_index.get(hash) {
            return Some(*at);
        }
        let (n, i) = self.store.tx_location(hash).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the transaction index");
            None
        })?;
        (n <= self.head().header.number).then_some((n, i))
    }

    /// Whether a transaction with `hash` is in a block.
    pub fn contains_tx(&self, hash: &B256) -> bool {
        self.tx_location(hash).is_some()
    }

    /// A transaction's block and index.
    pub fn locate(&self, hash: &B256) -> Option<(Arc<Block>, usize)> {
        let (n, i) = self.tx_location(hash)?;
        Some((self.block(n)?, i))
    }

    /// The state after block `number`: the head's, or one of the recent ones kept in memory.
    pub fn state_at(&self, number: u64) -> Option<&Arc<WorldState>> {
        if number == self.head().header.number {
            return Some(&self.state);
        }
        self.history.iter().find(|(n, _)| *n == number).map(|(_, s)| s)
    }

    /// What a call on top of block `number` needs, taken under the chain's read lock in O(1)
    /// (a shared snapshot of the state): the call itself then runs without holding the chain,
    /// so finalization never waits behind it. `overrides` are applied to a layer over the
    /// snapshot; they may not touch the precompiles' accounts (their storage is the registry,
    /// whose records fix what inference costs).
    pub fn simulation(&self, number: u64, overrides: Option<&StateOverride>) -> Result<Simulation, SimError> {
        let (Some(state), Some(block)) = (self.state_at(number), self.block(number)) else {
            return Err(SimError::StateGone(number));
        };
        let env = BlockEnvInput {
            number: number + 1,
            timestamp: block.header.timestamp + 1,
            gas_limit: self.gas_limit,
            base_fee: 0,
            beneficiary: Address::ZERO,
            prev_randao: keccak256(block.hash),
        };
        let mut base = CacheDB::new(state.clone());
        if let Some(o) = overrides {
            apply_overrides(&mut base, o)?;
        }
        Ok(Simulation { base: Arc::new(base), env, spec: self.spec, models: self.models.clone() })
    }

    /// Nonce of `address` at the head.
    pub fn nonce(&self, address: &Address) -> u64 {
        self.state.nonce(address)
    }

    /// Balance of `address` at the head.
    pub fn balance(&self, address: &Address) -> U256 {
        self.state.balance(address)
    }
}

/// A snapshot to run calls on (eth_call, estimateGas, fixpoint_infer): see [`Chain::simulation`].
#[derive(Debug, Clone)]
pub struct Simulation {
    base: Arc<CacheDB<Arc<WorldState>>>,
    env: BlockEnvInput,
    spec: ChainSpec,
    models: Arc<ModelStore>,
}

impl Simulation {
    /// The chain's id.
    pub fn chain_id(&self) -> u64 {
        self.spec.chain_id
    }

    /// The block gas limit.
    pub fn gas_limit(&self) -> u64 {
        self.env.gas_limit
    }

    /// Runs `tx` without committing: base fee and gas price zero, so no balance is needed for
    /// fees, the nonce the sender's. `Err` is a transaction revm refuses outright (e.g. value
    /// above the balance). What the call registers or uploads stays in its own scope.
    pub fn run(&self, tx: TxEnv) -> Result<(ExecutionResult, Vec<InferenceRecord>), SimError> {
        let (result, records, _) = self.inspect(tx, revm::inspector::NoOpInspector)?;
        Ok((result, records))
    }

    /// [`Simulation::run`] with `inspector` watching the call (`debug_traceCall`); returns it.
    pub fn inspect<I>(
        &self,
        mut tx: TxEnv,
        inspector: I,
    ) -> Result<(ExecutionResult, Vec<InferenceRecord>, I), SimError>
    where
        I: revm::inspector::Inspector<alloy_evm::eth::EthEvmContext<CacheDB<Arc<CacheDB<Arc<WorldState>>>>>>,
    {
        use revm::DatabaseRef as _;
        tx.gas_price = 0;
        tx.gas_priority_fee = None;
        let nonce = self.base.basic_ref(tx.caller).map_err(|e: std::convert::Infallible| match e {})?;
        tx.nonce = nonce.map_or(0, |a| a.nonce);
        let scope = Scope::new(self.models.clone());
        let mut evm = fixpoint_evm::create_evm_with_inspector(
            CacheDB::new(self.base.clone()),
            &self.spec,
            &self.env,
            &scope,
            inspector,
        );
        let result = evm.transact(tx).map_err(SimError::Refused)?.result;
        Ok((result, scope.records(), evm.into_inner().inspector))
    }
}

/// Why a call over RPC could not run (before any EVM result: a revert or halt is a result).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The block's state is no longer kept.
    #[error("state of block {0} not available: this node keeps the last {RECENT_STATES}")]
    StateGone(u64),
    /// A state override touches a precompile's account (its storage fixes what inference costs).
    #[error("state overrides may not touch the precompile at {0}")]
    PrecompileOverride(Address),
    /// geth's `movePrecompileToAddress`, which this node does not have.
    #[error("movePrecompileToAddress is not supported")]
    MovePrecompile,
    /// An override with both a full `state` and a `stateDiff`.
    #[error("account {0} has both state and stateDiff")]
    StateAndDiff(Address),
    /// revm refused the transaction outright (e.g. value above the balance); its reason.
    #[error("{0}")]
    Refused(fixpoint_evm::TxRejection),
}

/// Applies eth_call state overrides (geth's format) to `state`.
fn apply_overrides(state: &mut CacheDB<Arc<WorldState>>, overrides: &StateOverride) -> Result<(), SimError> {
    // Reading the in-memory snapshot cannot fail.
    let db = |e: std::convert::Infallible| match e {};
    for (address, o) in overrides {
        if *address == REGISTRY_ADDRESS || *address == INFERENCE_ADDRESS {
            return Err(SimError::PrecompileOverride(*address));
        }
        if o.move_precompile_to.is_some() {
            return Err(SimError::MovePrecompile);
        }
        if o.state.is_some() && o.state_diff.is_some() {
            return Err(SimError::StateAndDiff(*address));
        }
        let mut info = state.load_account(*address).map_err(db)?.info.clone();
        if let Some(b) = o.balance {
            info.balance = b;
        }
        if let Some(n) = o.nonce {
            info.nonce = n;
        }
        if let Some(code) = &o.code {
            let bytecode = Bytecode::new_raw(code.clone());
            info.code_hash = bytecode.hash_slow();
            info.code = Some(bytecode);
        }
        state.insert_account_info(*address, info);
        if let Some(full) = &o.state {
            let slots = full.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            state.replace_account_storage(*address, slots).map_err(db)?;
        }
        for (k, v) in o.state_diff.iter().flatten() {
            state.insert_account_storage(*address, (*k).into(), (*v).into()).map_err(db)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FOLD_ENTRIES;
    use alloy_consensus::{SignableTransaction, Transaction as _, TxEip1559};
    use alloy_primitives::{Signature, TxKind};
    use alloy_sol_types::SolCall;
    use fixpoint_precompiles::abi::IModelRegistry as R;

    use fixpoint_consensus::{BlockLimits, Executor, PendingTx};

    use crate::dev::dev_accounts;
    use crate::genesis::Genesis;

    fn pending(t: TxEip1559, from: Address) -> PendingTx {
        let envelope = TxEnvelope::Eip1559(t.into_signed(Signature::test_signature()));
        let raw = envelope.encoded_2718().into();
        PendingTx { raw, tx: Recovered::new_unchecked(envelope, from) }
    }

    fn transfer(from: Address, nonce: u64) -> PendingTx {
        let t = TxEip1559 {
            chain_id: ChainSpec::DEV.chain_id,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::repeat_byte(0x42)),
            value: U256::from(1),
            access_list: Default::default(),
            input: Default::default(),
        };
        pending(t, from)
    }

    fn executor(chain: &Chain) -> Executor {
        Executor {
            spec: chain.spec,
            gas_limit: chain.gas_limit,
            limits: BlockLimits::default(),
            models: chain.models.clone(),
        }
    }

    /// Seals `txs` on `parent` the way the dev chain's sealer does (the consensus executor's
    /// `build`, then the import its sink performs), and returns the block's consensus form.
    fn seal(chain: &mut Chain, parent: &ConsensusBlock, txs: Vec<PendingTx>) -> (ConsensusBlock, Vec<B256>) {
        let (block, out, refused) = executor(chain).build(parent, &chain.state, 1, 1, Address::ZERO, txs);
        let executed = Executed::new(block.body().height, out, Default::default());
        let next = chain.import(&block, &executed).unwrap().unwrap();
        chain.apply(next);
        executed.finalize_models(&chain.models);
        (block, refused)
    }

    fn genesis_block(chain: &Chain) -> ConsensusBlock {
        ConsensusBlock::genesis(chain.state.root(), chain.gas_limit, 0, INITIAL_BASE_FEE)
    }

    /// Issue 14's dev-mode bug: one refused transaction dropped every later transaction of the
    /// batch, other senders' included. On the one producer it alone is left out.
    #[test]
    fn a_refused_transaction_leaves_the_rest_of_the_batch_in_the_block() {
        let dir = std::env::temp_dir().join(format!("fixpoint-chain-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let accounts = dev_accounts(2);
        let genesis =
            Genesis::dev(ChainSpec::DEV.chain_id, 30_000_000, &accounts).build(std::path::Path::new(".")).unwrap();
        let store = Store::open(&dir.join("chain.redb")).unwrap();
        let mut chain = Chain::open(ChainSpec::DEV, 30_000_000, store, &genesis, 0).unwrap();
        let (a, b) = (accounts[0].address, accounts[1].address);
        let batch = vec![transfer(a, 0), transfer(a, 5), transfer(b, 0), transfer(b, 1)];
        let refused_hash = batch[1].hash();
        let parent = genesis_block(&chain);
        let (_, refused) = seal(&mut chain, &parent, batch);
        let included: Vec<(Address, u64)> = chain.head().txs.iter().map(|t| (t.signer(), t.inner().nonce())).collect();
        assert_eq!(included, vec![(a, 0), (b, 0), (b, 1)]);
        assert_eq!(refused, vec![refused_hash]);
        std::fs::remove_dir_all(&dir).ok();
    }

    const ALICE: Address = Address::repeat_byte(0xA1);

    /// A query works on the version of the chain it took, which later blocks leave as it was,
    /// and finalization does not wait for it (behind a reader-writer lock the sink would block
    /// for as long as the query held its read).
    #[test]
    fn finalization_does_not_wait_for_a_query_holding_the_chain() {
        use fixpoint_consensus::Sink as _;
        let dir = std::env::temp_dir().join(format!("fixpoint-snapshot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let chain = open(&dir.join("chain.redb"));
        let parent = genesis_block(&chain);
        let (block, out, refused) =
            executor(&chain).build(&parent, &chain.state, 1, 1, Address::ZERO, vec![transfer(ALICE, 0)]);
        assert!(refused.is_empty());
        let executed = Executed::new(block.body().height, out, Default::default());
        let node = crate::rpc::Node::new(chain);
        let held = node.chain();
        let (done, finished) = std::sync::mpsc::channel();
        let sink = node.clone();
        std::thread::spawn(move || done.send(sink.finalized(&block, &executed).is_ok()));
        let finalized = finished.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(finalized, Ok(true), "the block is finalized while a query holds the chain");
        assert_eq!((held.head().header.number, held.nonce(&ALICE)), (0, 0), "the query's version is unchanged");
        let now = node.chain();
        assert_eq!((now.head().header.number, now.nonce(&ALICE)), (1, 1));
        assert!(now.block_by_hash(&now.head().hash).is_some() && held.block_by_hash(&now.head().hash).is_none());
        drop((held, now, node));
        std::fs::remove_dir_all(&dir).ok();
    }

    fn call(nonce: u64, data: Vec<u8>) -> PendingTx {
        let t = TxEip1559 {
            chain_id: ChainSpec::DEV.chain_id,
            nonce,
            gas_limit: 1_000_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(REGISTRY_ADDRESS),
            value: U256::ZERO,
            access_list: Default::default(),
            input: data.into(),
        };
        pending(t, ALICE)
    }

    fn open(path: &std::path::Path) -> Chain {
        let mut state = WorldState::new();
        state.fund(ALICE, U256::from(10u128.pow(24)));
        let genesis = GenesisState { state, models: vec![], model_ids: vec![], validators: vec![] };
        Chain::open(ChainSpec::DEV, 30_000_000, Store::open(path).unwrap(), &genesis, 0).unwrap()
    }

    /// Seals `txs` on the head, each of which must succeed.
    fn block(chain: &mut Chain, parent: &mut ConsensusBlock, txs: Vec<PendingTx>) {
        let (b, refused) = seal(chain, parent, txs);
        assert!(refused.is_empty());
        assert!(chain.head().receipts.iter().all(|r| r.output.is_empty()), "every call succeeds");
        *parent = b;
    }

    /// Chunks are written with the finalized block that names them, survive a restart, and are
    /// deleted with the block that ends their upload (here a cancel); a restart's dropped chunk
    /// goes the same way.
    #[test]
    fn persisted_chunks_follow_the_finalized_state_across_restarts() {
        let dir = std::env::temp_dir().join(format!("fixpoint-chunks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.redb");
        let id = B256::repeat_byte(7);
        let put = |nonce, offset: u64, b: &[u8]| {
            call(nonce, R::putChunkCall { modelId: id, offset, chunk: b.to_vec().into() }.abi_encode())
        };
        let mut chain = open(&path);
        let mut parent = genesis_block(&chain);
        block(
            &mut chain,
            &mut parent,
            vec![
                call(0, R::beginUploadCall { modelId: id, size: 6 }.abi_encode()),
                put(1, 0, b"abc"),
                put(2, 3, b"de"),
            ],
        );
        assert_eq!(chain.models.chunk_count(), 2);
        drop(chain);
        let mut chain = open(&path);
        assert_eq!(chain.models.chunk_count(), 2, "the chunks survive a restart");
        assert_eq!(chain.store.chunks().unwrap().len(), 2);
        // Restart the upload: both chunks go, in memory and on disk.
        block(
            &mut chain,
            &mut parent,
            vec![call(3, R::beginUploadCall { modelId: id, size: 6 }.abi_encode()), put(4, 0, b"xyz")],
        );
        assert_eq!(chain.models.chunk_count(), 1);
        assert_eq!(chain.store.chunks().unwrap().len(), 1);
        block(&mut chain, &mut parent, vec![call(5, R::cancelUploadCall { modelId: id }.abi_encode())]);
        assert_eq!(chain.models.chunk_count(), 0);
        drop(chain);
        let chain = open(&path);
        assert_eq!(chain.models.chunk_count(), 0, "a cancelled upload leaves nothing on disk");
        drop(chain);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Past [`RECENT_BLOCKS`], blocks the database has indexed leave memory and are read from it:
    /// by number, by hash and by transaction hash, the same blocks as before, in this process
    /// and after a restart; a version of the chain does not see blocks newer than its head.
    #[test]
    fn old_blocks_are_read_from_the_database() {
        let dir = std::env::temp_dir().join(format!("fixpoint-old-blocks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.redb");
        let mut chain = open(&path);
        let mut parent = genesis_block(&chain);
        let total = RECENT_BLOCKS as u64 + 8;
        let mut seen = Vec::new();
        for nonce in 0..total {
            let tx = transfer(ALICE, nonce);
            let hash = tx.hash();
            block(&mut chain, &mut parent, vec![tx]);
            seen.push((chain.head().header.number, chain.head().hash, hash));
            if nonce == 0 {
                // Everything folded (the folding thread may have done part): the next blocks
                // may drop the first ones.
                while chain.store.fold(FOLD_ENTRIES).unwrap() > 0 {}
            }
        }
        while chain.store.fold(FOLD_ENTRIES).unwrap() > 0 {}
        let held = chain.clone();
        block(&mut chain, &mut parent, vec![transfer(ALICE, total)]);
        assert_eq!(chain.recent.len(), RECENT_BLOCKS, "indexed blocks beyond the window leave memory");
        assert_eq!(chain.first_recent(), total + 1 - RECENT_BLOCKS as u64 + 1);
        let check = |chain: &Chain| {
            for (number, hash, tx) in &seen {
                let b = chain.block(*number).unwrap();
                assert_eq!((b.header.number, b.hash), (*number, *hash));
                assert_eq!(chain.block_by_hash(hash).unwrap().header.number, *number);
                let (b, i) = chain.locate(tx).unwrap();
                assert_eq!((b.header.number, i, b.txs[i].inner().tx_hash()), (*number, 0, tx));
                assert!(chain.contains_tx(tx));
            }
            assert!(chain.block_by_hash(&B256::repeat_byte(7)).is_none());
            assert!(!chain.contains_tx(&B256::repeat_byte(7)));
        };
        check(&chain);
        let newest = (chain.head().hash, *chain.head().txs[0].inner().tx_hash());
        assert!(held.block(total + 1).is_none() && held.block_by_hash(&newest.0).is_none());
        assert!(!held.contains_tx(&newest.1), "an older version does not see the newer block's transaction");
        drop((chain, held));
        let chain = open(&path);
        check(&chain);
        assert!(chain.recent.len() <= RECENT_BLOCKS + 1, "a restart loads the window, not every block");
        assert_eq!(chain.block_by_hash(&newest.0).unwrap().header.number, total + 1);
        drop(chain);
        std::fs::remove_dir_all(&dir).ok();
    }
}
