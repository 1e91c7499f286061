//! EIP-1186 proofs (`eth_getProof`): an account and some of its storage slots proven against the
//! state root, read off the paths of the state's own tries (`fixpoint_evm::trie`), whose root is
//! the block header's, so a proof checks against the header any Ethereum light client reads.

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount};
use fixpoint_evm::WorldState;
use revm::primitives::KECCAK_EMPTY;

/// One storage slot's value and proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageProof {
    /// The slot.
    pub key: B256,
    /// Its value (zero if unset).
    pub value: U256,
    /// Trie nodes from the storage root to the slot (or to where it would be).
    pub proof: Vec<Bytes>,
}

/// An account's fields and proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// The account.
    pub address: Address,
    /// Its trie entry (zeros, empty code and storage if absent).
    pub account: TrieAccount,
    /// Trie nodes from the state root to the account.
    pub proof: Vec<Bytes>,
    /// The requested slots.
    pub storage: Vec<StorageProof>,
}

/// Proves `address` and `slots` in `state`: the nodes on each key's path in the state's tries,
/// which keep their hashes, so a proof costs the depth of the trie, not its size.
pub fn prove(state: &WorldState, address: Address, slots: &[B256]) -> AccountProof {
    let holder = state.account(&address).filter(|a| !a.is_empty());
    let account = holder.map(|a| a.trie_account()).unwrap_or(TrieAccount {
        nonce: 0,
        balance: U256::ZERO,
        storage_root: EMPTY_ROOT_HASH,
        code_hash: KECCAK_EMPTY,
    });
    let storage = slots
        .iter()
        .map(|key| {
            let slot = U256::from_be_bytes(key.0);
            StorageProof {
                key: *key,
                value: holder.map(|_| state.storage(&address, &slot)).unwrap_or_default(),
                proof: if holder.is_some() { state.storage_proof(&address, &slot) } else { Vec::new() },
            }
        })
        .collect();
    AccountProof { address, account, proof: state.account_proof(&address), storage }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::keccak256;
    use alloy_rlp::Encodable;
    use alloy_trie::Nibbles;
    use alloy_trie::proof::verify_proof;

    fn rlp<T: Encodable>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode(&mut out);
        out
    }

    #[test]
    fn proofs_verify_against_the_state_root_and_absences_too() {
        let mut state = WorldState::new();
        for i in 1..=40u8 {
            state.fund(Address::repeat_byte(i), U256::from(i));
        }
        let holder = Address::repeat_byte(7);
        for s in 0..30u64 {
            state.set_storage(holder, U256::from(s), U256::from(s * 3));
        }
        let root = fixpoint_evm::state_root(&state);
        let slot = |s: u64| B256::from(U256::from(s).to_be_bytes());
        let p = prove(&state, holder, &[slot(5), slot(0), slot(99)]);
        verify_proof(root, Nibbles::unpack(keccak256(holder)), Some(rlp(&p.account)), &p.proof).unwrap();
        let sr = p.account.storage_root;
        assert_ne!(sr, EMPTY_ROOT_HASH);
        // Slot 5 holds 15; slot 0 holds zero (absent from the trie), as does 99.
        assert_eq!(p.storage[0].value, U256::from(15));
        verify_proof(sr, Nibbles::unpack(keccak256(slot(5))), Some(rlp(&U256::from(15))), &p.storage[0].proof).unwrap();
        for sp in &p.storage[1..] {
            assert!(sp.value.is_zero());
            verify_proof(sr, Nibbles::unpack(keccak256(sp.key)), None, &sp.proof).unwrap();
        }
        // A wrong value does not verify.
        assert!(
            verify_proof(sr, Nibbles::unpack(keccak256(slot(5))), Some(rlp(&U256::from(16))), &p.storage[0].proof)
                .is_err()
        );
        // An absent account: exclusion proof.
        let ghost = Address::repeat_byte(0xEE);
        let g = prove(&state, ghost, &[]);
        assert_eq!(g.account.code_hash, KECCAK_EMPTY);
        verify_proof(root, Nibbles::unpack(keccak256(ghost)), None, &g.proof).unwrap();
    }
}
