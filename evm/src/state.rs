//! The in-memory world state (revm's `CacheDB` over an empty backend) and its Merkle-Patricia
//! root. Persistence to redb comes with the node; the root is what consensus compares.

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_trie::TrieAccount;
use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
use revm::bytecode::Bytecode;
use revm::database::{AccountState, CacheDB, EmptyDB};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;

/// The world state.
pub type MemState = CacheDB<EmptyDB>;

/// An empty state.
pub fn empty_state() -> MemState {
    CacheDB::new(EmptyDB::default())
}

/// Sets `address`'s balance (creating the account), as genesis allocations do.
pub fn fund(state: &mut MemState, address: Address, balance: U256) {
    let info = state.cache.accounts.get(&address).map(|a| a.info.clone()).unwrap_or_default();
    state.insert_account_info(address, AccountInfo { balance, ..info });
}

/// Puts runtime `code` at `address` (genesis contracts, tests).
pub fn set_code(state: &mut MemState, address: Address, code: Bytes) {
    let info = state.cache.accounts.get(&address).map(|a| a.info.clone()).unwrap_or_default();
    let bytecode = Bytecode::new_raw(code);
    state.insert_account_info(address, AccountInfo { code_hash: bytecode.hash_slow(), code: Some(bytecode), ..info });
}

/// The storage word at `slot` of `address` (zero if absent).
pub fn storage_word(state: &MemState, address: Address, slot: U256) -> U256 {
    state.cache.accounts.get(&address).and_then(|a| a.storage.get(&slot).copied()).unwrap_or_default()
}

/// The accounts the state trie holds, with their storage roots: those that exist and are not
/// empty (EIP-161), each with the root of its non-zero storage. Unordered (the trie sorts).
pub fn trie_accounts(state: &MemState) -> impl Iterator<Item = (Address, TrieAccount)> + '_ {
    state.cache.accounts.iter().filter_map(|(address, a)| {
        if matches!(a.account_state, AccountState::NotExisting) {
            return None;
        }
        let empty = a.info.nonce == 0 && a.info.balance.is_zero() && a.info.code_hash == KECCAK_EMPTY;
        if empty {
            return None;
        }
        let storage = a.storage.iter().filter(|(_, v)| !v.is_zero()).map(|(k, v)| (B256::from(k.to_be_bytes()), *v));
        let account = TrieAccount {
            nonce: a.info.nonce,
            balance: a.info.balance,
            storage_root: storage_root_unhashed(storage),
            code_hash: a.info.code_hash,
        };
        Some((*address, account))
    })
}

/// The state root over [`trie_accounts`].
pub fn state_root(state: &MemState) -> B256 {
    state_root_unhashed(trie_accounts(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::EMPTY_ROOT_HASH;

    #[test]
    fn roots_depend_on_content_not_history() {
        assert_eq!(state_root(&empty_state()), EMPTY_ROOT_HASH);
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut s1 = empty_state();
        fund(&mut s1, a, U256::from(5));
        fund(&mut s1, b, U256::from(7));
        let mut s2 = empty_state();
        fund(&mut s2, b, U256::from(7));
        fund(&mut s2, a, U256::from(5));
        assert_eq!(state_root(&s1), state_root(&s2));
        fund(&mut s2, a, U256::from(6));
        assert_ne!(state_root(&s1), state_root(&s2));
        // An empty account does not count.
        let mut s3 = s1.clone();
        fund(&mut s3, Address::repeat_byte(3), U256::ZERO);
        assert_eq!(state_root(&s1), state_root(&s3));
    }
}
