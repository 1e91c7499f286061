//! The world state and its Merkle-Patricia root, kept up to date block by block.
//!
//! Accounts, storage and code live in persistent maps (imbl's HAMT) and the account and storage
//! tries in [`crate::trie`]: cloning a state is O(1), a block executes over an overlay of its
//! parent (revm's `CacheDB` over a clone of the parent, which it only reads), and its post-state
//! is the parent with the block's [`StateChanges`] applied, sharing every untouched account,
//! slot and trie node with it. The root after a block hashes only the trie nodes its changes
//! created, so a block's cost grows with what it touches, not with the size of the state, and
//! the states of recent blocks kept for queries cost only what they do not share.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::TrieAccount;
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::database::{AccountState, CacheDB};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

use rayon::prelude::*;

use crate::trie::Trie;

/// An account as loaded from storage: address, fields (with code), non-zero storage words.
pub type LoadedAccount = (Address, AccountInfo, Vec<(U256, U256)>);

/// The world state (cheap to clone: clones share everything).
#[derive(Clone, Default)]
pub struct WorldState {
    accounts: imbl::HashMap<Address, Arc<Account>>,
    codes: imbl::HashMap<B256, Bytecode>,
    trie: Trie,
}

impl std::fmt::Debug for WorldState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldState").field("accounts", &self.accounts.len()).field("trie", &self.trie).finish()
    }
}

/// One account: its fields, its non-zero storage and the trie over that storage.
#[derive(Clone, Debug, Default)]
pub struct Account {
    /// Nonce, balance, code hash and code.
    pub info: AccountInfo,
    storage: imbl::HashMap<U256, U256>,
    storage_trie: Trie,
}

impl Account {
    /// The root of the account's storage trie.
    pub fn storage_root(&self) -> B256 {
        self.storage_trie.root()
    }

    /// Its non-zero storage slots (unordered).
    pub fn storage(&self) -> impl Iterator<Item = (&U256, &U256)> {
        self.storage.iter()
    }

    /// Whether the state trie leaves it out: EIP-161's empty account (no nonce, balance or code).
    pub fn is_empty(&self) -> bool {
        self.info.nonce == 0 && self.info.balance.is_zero() && self.info.code_hash == KECCAK_EMPTY
    }

    /// Its entry in the state trie.
    pub fn trie_account(&self) -> TrieAccount {
        TrieAccount {
            nonce: self.info.nonce,
            balance: self.info.balance,
            storage_root: self.storage_root(),
            code_hash: self.info.code_hash,
        }
    }
}

/// What a block (or genesis) changed, by account, in address order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// The changed accounts.
    pub accounts: BTreeMap<Address, AccountChange>,
}

/// How one account changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// Its fields now; `None`: it no longer exists (storage gone too).
    pub info: Option<AccountInfo>,
    /// Its storage was wiped (a contract created at this address) before `storage` applies.
    pub storage_cleared: bool,
    /// Slots written, with their new values (zero: deleted).
    pub storage: BTreeMap<U256, U256>,
}

impl StateChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Changed slots, over all accounts.
    pub fn slots(&self) -> usize {
        self.accounts.values().map(|a| a.storage.len()).sum()
    }
}

/// `code_hash` as revm fills it: zero means no code.
fn normalized(mut info: AccountInfo) -> AccountInfo {
    if info.code_hash.is_zero() {
        info.code_hash = KECCAK_EMPTY;
    }
    if let Some(code) = &info.code
        && !code.is_empty()
        && info.code_hash == KECCAK_EMPTY
    {
        info.code_hash = code.hash_slow();
    }
    info
}

fn same_fields(a: &AccountInfo, b: &AccountInfo) -> bool {
    a.nonce == b.nonce && a.balance == b.balance && a.code_hash == b.code_hash
}

/// Slots an account must have had written for its storage root to be hashed on several threads
/// (below, the fork-join costs more than it saves).
const PARALLEL_STORAGE_ROOT: usize = 64;

fn slot_key(slot: &U256) -> B256 {
    keccak256(slot.to_be_bytes::<32>())
}

impl WorldState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state holding `accounts` (distinct), each with its storage (distinct slots; zero words
    /// are left out), the tries
    /// built bottom-up in one pass over sorted keys (what loading a stored state needs: applying
    /// the accounts one by one would copy a trie path per key). The same state as applying them.
    pub fn from_accounts(accounts: Vec<LoadedAccount>) -> Self {
        let built: Vec<(Address, Arc<Account>)> = accounts
            .into_par_iter()
            .map(|(address, info, storage)| {
                let storage: Vec<(U256, U256)> = storage.into_iter().filter(|(_, v)| !v.is_zero()).collect();
                let entries =
                    storage.iter().map(|(k, v)| (slot_key(k), alloy_rlp::encode_fixed_size(v).to_vec())).collect();
                let storage_trie = Trie::from_entries(entries);
                storage_trie.root_parallel();
                let account = Account { info: normalized(info), storage: storage.into_iter().collect(), storage_trie };
                (address, Arc::new(account))
            })
            .collect();
        let entries = built
            .iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(address, a)| (keccak256(address), alloy_rlp::encode(a.trie_account())))
            .collect();
        let trie = Trie::from_entries(entries);
        let mut codes = imbl::HashMap::new();
        for (_, a) in &built {
            if let Some(code) = a.info.code.as_ref().filter(|c| !c.is_empty()) {
                codes.insert(a.info.code_hash, code.clone());
            }
        }
        Self { accounts: built.into_iter().collect(), codes, trie }
    }

    /// Number of accounts (empty ones included).
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether no account exists.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The account at `address`.
    pub fn account(&self, address: &Address) -> Option<&Account> {
        self.accounts.get(address).map(|a| &**a)
    }

    /// Its nonce (0 if absent).
    pub fn nonce(&self, address: &Address) -> u64 {
        self.account(address).map_or(0, |a| a.info.nonce)
    }

    /// Its balance (0 if absent).
    pub fn balance(&self, address: &Address) -> U256 {
        self.account(address).map_or(U256::ZERO, |a| a.info.balance)
    }

    /// Its code (empty if none).
    pub fn code(&self, address: &Address) -> Bytes {
        self.account(address)
            .and_then(|a| a.info.code.as_ref().or_else(|| self.codes.get(&a.info.code_hash)))
            .map(|c| c.original_bytes())
            .unwrap_or_default()
    }

    /// The storage word at `slot` of `address` (zero if absent).
    pub fn storage(&self, address: &Address, slot: &U256) -> U256 {
        self.account(address).and_then(|a| a.storage.get(slot).copied()).unwrap_or_default()
    }

    /// Code by hash.
    pub fn code_by_hash(&self, hash: &B256) -> Option<&Bytecode> {
        self.codes.get(hash)
    }

    /// The state root: Ethereum's, over every non-empty account (EIP-161) with the root of its
    /// non-zero storage.
    pub fn root(&self) -> B256 {
        self.trie.root_parallel()
    }

    /// The state trie's nodes on the path to `address` (an EIP-1186 account proof).
    pub fn account_proof(&self, address: &Address) -> Vec<Bytes> {
        self.trie.proof(&keccak256(address))
    }

    /// The storage trie's nodes of `address` on the path to `slot`.
    pub fn storage_proof(&self, address: &Address, slot: &U256) -> Vec<Bytes> {
        self.account(address).map(|a| a.storage_trie.proof(&slot_key(slot))).unwrap_or_default()
    }

    /// Applies `changes`: the accounts, slots and trie paths they name are replaced, everything
    /// else is shared with the state before.
    pub fn apply(&mut self, changes: &StateChanges) {
        for (address, change) in &changes.accounts {
            let key = keccak256(address);
            let Some(info) = &change.info else {
                if self.accounts.remove(address).is_some() {
                    self.trie.remove(&key);
                }
                continue;
            };
            let mut account = match self.accounts.get(address) {
                Some(a) if !change.storage_cleared => (**a).clone(),
                _ => Account::default(),
            };
            account.info = normalized(info.clone());
            if let Some(code) = &account.info.code
                && !code.is_empty()
                && !self.codes.contains_key(&account.info.code_hash)
            {
                self.codes.insert(account.info.code_hash, code.clone());
            }
            for (slot, value) in &change.storage {
                if value.is_zero() {
                    if account.storage.remove(slot).is_some() {
                        account.storage_trie.remove(&slot_key(slot));
                    }
                } else {
                    account.storage.insert(*slot, *value);
                    account.storage_trie.insert(&slot_key(slot), alloy_rlp::encode_fixed_size(value).to_vec());
                }
            }
            if change.storage.len() >= PARALLEL_STORAGE_ROOT {
                account.storage_trie.root_parallel();
            }
            if account.is_empty() {
                self.trie.remove(&key);
            } else {
                self.trie.insert(&key, alloy_rlp::encode(account.trie_account()));
            }
            self.accounts.insert(*address, Arc::new(account));
        }
    }

    /// What revm's cache over this state changed: accounts it wrote, slots whose value differs,
    /// accounts it destroyed. Accounts and slots it only read are left out.
    pub fn changes(&self, cache: &revm::database::Cache) -> StateChanges {
        let mut out = StateChanges::default();
        for (address, acc) in &cache.accounts {
            let before = self.account(address);
            let change = match acc.account_state {
                AccountState::NotExisting => {
                    before.map(|_| AccountChange { info: None, storage_cleared: true, storage: BTreeMap::new() })
                }
                AccountState::StorageCleared => Some(AccountChange {
                    info: Some(normalized(acc.info.clone())),
                    storage_cleared: true,
                    storage: acc.storage.iter().filter(|(_, v)| !v.is_zero()).map(|(k, v)| (*k, *v)).collect(),
                }),
                AccountState::Touched | AccountState::None => {
                    let storage: BTreeMap<U256, U256> = acc
                        .storage
                        .iter()
                        .filter(|(k, v)| before.and_then(|b| b.storage.get(*k)).copied().unwrap_or_default() != **v)
                        .map(|(k, v)| (*k, *v))
                        .collect();
                    let info = normalized(acc.info.clone());
                    let changed = before.is_none_or(|b| !same_fields(&b.info, &info));
                    (changed || !storage.is_empty()).then(|| AccountChange {
                        info: Some(info),
                        storage_cleared: false,
                        storage,
                    })
                }
            };
            if let Some(c) = change {
                out.accounts.insert(*address, c);
            }
        }
        out
    }

    /// The whole state as changes to an empty one (a genesis state to persist).
    pub fn as_changes(&self) -> StateChanges {
        let accounts = self
            .accounts
            .iter()
            .map(|(address, a)| {
                let storage = a.storage.iter().map(|(k, v)| (*k, *v)).collect();
                (*address, AccountChange { info: Some(a.info.clone()), storage_cleared: false, storage })
            })
            .collect();
        StateChanges { accounts }
    }

    /// Sets `address`'s balance (creating the account), as genesis allocations do.
    pub fn fund(&mut self, address: Address, balance: U256) {
        let info = self.account(&address).map(|a| a.info.clone()).unwrap_or_default();
        self.set_info(address, AccountInfo { balance, ..info });
    }

    /// Sets `address`'s nonce (creating the account).
    pub fn set_nonce(&mut self, address: Address, nonce: u64) {
        let info = self.account(&address).map(|a| a.info.clone()).unwrap_or_default();
        self.set_info(address, AccountInfo { nonce, ..info });
    }

    /// Puts runtime `code` at `address` (genesis contracts, tests).
    pub fn set_code(&mut self, address: Address, code: Bytes) {
        let info = self.account(&address).map(|a| a.info.clone()).unwrap_or_default();
        let bytecode = Bytecode::new_raw(code);
        self.set_info(address, AccountInfo { code_hash: bytecode.hash_slow(), code: Some(bytecode), ..info });
    }

    /// Writes storage word `slot` of `address` (creating the account).
    pub fn set_storage(&mut self, address: Address, slot: U256, value: U256) {
        let info = self.account(&address).map(|a| a.info.clone()).unwrap_or_default();
        let change =
            AccountChange { info: Some(info), storage_cleared: false, storage: BTreeMap::from([(slot, value)]) };
        self.apply(&StateChanges { accounts: BTreeMap::from([(address, change)]) });
    }

    fn set_info(&mut self, address: Address, info: AccountInfo) {
        let change = AccountChange { info: Some(info), ..Default::default() };
        self.apply(&StateChanges { accounts: BTreeMap::from([(address, change)]) });
    }
}

/// revm reads the state through this: accounts with their code, storage words, code by hash.
impl DatabaseRef for WorldState {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Infallible> {
        Ok(self.account(&address).map(|a| a.info.clone()))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Infallible> {
        Ok(self.codes.get(&code_hash).cloned().unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Infallible> {
        Ok(self.storage(&address, &index))
    }

    /// What revm's `EmptyDB` answers, which the chain has always used: BLOCKHASH is
    /// `keccak256(decimal(number))` (docs/precompiles.md).
    fn block_hash_ref(&self, number: u64) -> Result<B256, Infallible> {
        Ok(keccak256(number.to_string().as_bytes()))
    }
}

/// A block's execution state: revm's cache over a clone of the parent.
pub type Overlay = CacheDB<WorldState>;

/// The state root of `state`.
pub fn state_root(state: &WorldState) -> B256 {
    state.root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::EMPTY_ROOT_HASH;
    use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};

    /// The root from scratch with alloy-trie's hash builder, as the chain computed it before the
    /// incremental trie.
    fn reference(state: &WorldState) -> B256 {
        state_root_unhashed(state.accounts.iter().filter(|(_, a)| !a.is_empty()).map(|(address, a)| {
            let storage = a.storage.iter().map(|(k, v)| (B256::from(k.to_be_bytes()), *v));
            let account = TrieAccount {
                nonce: a.info.nonce,
                balance: a.info.balance,
                storage_root: storage_root_unhashed(storage),
                code_hash: a.info.code_hash,
            };
            (*address, account)
        }))
    }

    /// Loading a state in one pass gives the state applying it account by account gives: the
    /// same root (and the reference's), fields, storage and code; empty accounts and zero words
    /// included in the input.
    #[test]
    fn a_state_built_from_accounts_is_the_one_applied() {
        let mut x = 0x0000_b01d_face_5eed_u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accounts = Vec::new();
        for i in 0..300u64 {
            let address = Address::from_slice(&keccak256(i.to_be_bytes())[12..]);
            let mut info = AccountInfo { nonce: rnd() % 3, balance: U256::from(rnd() % 5), ..Default::default() };
            if i % 17 == 0 {
                let code = Bytecode::new_raw(Bytes::from(vec![0x60, i as u8, 0x00]));
                info.code_hash = code.hash_slow();
                info.code = Some(code);
            }
            let slots = if i == 7 { 2000 } else { rnd() % 6 };
            let storage: BTreeMap<U256, U256> =
                (0..slots).map(|_| (U256::from(rnd() % 4096), U256::from(rnd() % 3))).collect();
            let storage: Vec<(U256, U256)> = storage.into_iter().collect();
            accounts.push((address, info, storage));
        }
        let mut applied = WorldState::new();
        for (address, info, storage) in &accounts {
            let change = AccountChange {
                info: Some(info.clone()),
                storage_cleared: false,
                storage: storage.iter().copied().collect(),
            };
            applied.apply(&StateChanges { accounts: BTreeMap::from([(*address, change)]) });
        }
        let built = WorldState::from_accounts(accounts.clone());
        assert_eq!(built.root(), applied.root());
        assert_eq!(built.root(), reference(&applied));
        assert_eq!(built.len(), applied.len());
        for (address, _, storage) in &accounts {
            let (a, b) = (built.account(address).unwrap(), applied.account(address).unwrap());
            assert_eq!((&a.info, a.storage_root()), (&b.info, b.storage_root()));
            assert_eq!(built.code(address), applied.code(address));
            for (slot, _) in storage {
                assert_eq!(built.storage(address, slot), applied.storage(address, slot));
            }
        }
    }

    #[test]
    fn roots_depend_on_content_not_history() {
        assert_eq!(WorldState::new().root(), EMPTY_ROOT_HASH);
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut s1 = WorldState::new();
        s1.fund(a, U256::from(5));
        s1.fund(b, U256::from(7));
        let mut s2 = WorldState::new();
        s2.fund(b, U256::from(7));
        s2.fund(a, U256::from(5));
        assert_eq!(s1.root(), s2.root());
        s2.fund(a, U256::from(6));
        assert_ne!(s1.root(), s2.root());
        // An empty account does not count.
        let mut s3 = s1.clone();
        s3.fund(Address::repeat_byte(3), U256::ZERO);
        assert_eq!(s1.root(), s3.root());
        assert_eq!(s1.root(), reference(&s1));
    }

    #[test]
    fn incremental_roots_equal_roots_from_scratch() {
        let mut s = WorldState::new();
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..400 {
            let address = Address::with_last_byte((rnd() % 48) as u8);
            match rnd() % 6 {
                0 => s.fund(address, U256::from(rnd() % 3)),
                1 => s.set_nonce(address, rnd() % 2),
                2 => s.set_code(address, Bytes::from(vec![0x60, (rnd() % 4) as u8])),
                3 => {
                    let change = AccountChange { info: None, ..Default::default() };
                    s.apply(&StateChanges { accounts: BTreeMap::from([(address, change)]) });
                }
                _ => s.set_storage(address, U256::from(rnd() % 20), U256::from(rnd() % 3)),
            }
            if step % 10 == 0 {
                assert_eq!(s.root(), reference(&s), "step {step}");
            }
        }
        assert_eq!(s.root(), reference(&s));
    }

    #[test]
    fn a_clone_keeps_its_root_when_the_original_changes() {
        let mut s = WorldState::new();
        for i in 0..50u8 {
            s.fund(Address::repeat_byte(i), U256::from(i));
            s.set_storage(Address::repeat_byte(1), U256::from(i), U256::from(i));
        }
        let kept = s.clone();
        let root = kept.root();
        s.fund(Address::repeat_byte(9), U256::from(1000));
        s.set_storage(Address::repeat_byte(1), U256::from(3), U256::ZERO);
        assert_eq!(kept.root(), root);
        assert_eq!(kept.root(), reference(&kept));
        assert_ne!(s.root(), root);
        assert_eq!(s.root(), reference(&s));
    }
}
