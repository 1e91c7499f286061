//! EIP-1186 proofs (`eth_getProof`): an account and some of its storage slots proven against the
//! state root, with alloy-trie's hash builder retaining the nodes on the path to each key. The
//! leaves are exactly those `fixpoint_evm::state_root` hashes, so a proof checks against the
//! block header any Ethereum light client reads.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_rlp::Encodable;
use alloy_trie::proof::ProofRetainer;
use alloy_trie::{EMPTY_ROOT_HASH, HashBuilder, Nibbles, TrieAccount};
use fixpoint_evm::MemState;
use fixpoint_evm::state::trie_accounts;
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

/// Nodes on the path to each of `targets` in the trie of `leaves` (hashed keys → RLP values):
/// the trie is hashed once for all of them.
fn path_nodes(mut leaves: Vec<(Nibbles, Vec<u8>)>, targets: &[B256]) -> Vec<Vec<Bytes>> {
    leaves.sort_by_key(|l| l.0);
    let targets: Vec<Nibbles> = targets.iter().map(|t| Nibbles::unpack(*t)).collect();
    let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(targets.clone()));
    for (k, v) in &leaves {
        hb.add_leaf(*k, v);
    }
    let _root = hb.root();
    let nodes = hb.take_proof_nodes();
    targets.iter().map(|t| nodes.matching_nodes_sorted(t).into_iter().map(|(_, node)| node).collect()).collect()
}

fn rlp<T: Encodable>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Proves `address` and `slots` in `state`.
pub fn prove(state: &MemState, address: Address, slots: &[B256]) -> AccountProof {
    let leaves: Vec<(Nibbles, Vec<u8>)> =
        trie_accounts(state).map(|(a, acc)| (Nibbles::unpack(keccak256(a)), rlp(&acc))).collect();
    let account = trie_accounts(state).find(|(a, _)| *a == address).map(|(_, acc)| acc).unwrap_or(TrieAccount {
        nonce: 0,
        balance: U256::ZERO,
        storage_root: EMPTY_ROOT_HASH,
        code_hash: KECCAK_EMPTY,
    });
    let proof = path_nodes(leaves, &[keccak256(address)]).into_iter().next().unwrap_or_default();
    let slots_of = state.cache.accounts.get(&address);
    let storage_leaves: Vec<(Nibbles, Vec<u8>)> = slots_of
        .map(|a| {
            a.storage
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (Nibbles::unpack(keccak256(B256::from(k.to_be_bytes()))), rlp(v)))
                .collect()
        })
        .unwrap_or_default();
    let hashed: Vec<B256> = slots.iter().map(keccak256).collect();
    let storage = slots
        .iter()
        .zip(path_nodes(storage_leaves, &hashed))
        .map(|(key, proof)| StorageProof {
            key: *key,
            value: slots_of.and_then(|a| a.storage.get(&U256::from_be_bytes(key.0))).copied().unwrap_or_default(),
            proof,
        })
        .collect();
    AccountProof { address, account, proof, storage }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::proof::verify_proof;
    use fixpoint_evm::state::{empty_state, fund};

    #[test]
    fn proofs_verify_against_the_state_root_and_absences_too() {
        let mut state = empty_state();
        for i in 1..=40u8 {
            fund(&mut state, Address::repeat_byte(i), U256::from(i));
        }
        let holder = Address::repeat_byte(7);
        for s in 0..30u64 {
            state.insert_account_storage(holder, U256::from(s), U256::from(s * 3)).unwrap();
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
