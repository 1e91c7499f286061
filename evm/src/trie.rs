//! A persistent Merkle-Patricia trie over fixed-length (32-byte, hashed) keys, with each node's
//! hash cached in the node. An update copies the nodes on its key's path that an older version
//! shares (one this version already copied is updated in place) and shares the rest, so a version is cloned in O(1), kept versions cost only the
//! nodes they do not share, and a root after `k` updates hashes only the `O(k · depth)` nodes the
//! updates created. Node encodings are alloy-trie's (`LeafNodeRef`, `ExtensionNodeRef`,
//! `BranchNodeRef`), so the roots are Ethereum's; the tests check them against alloy-trie's
//! `HashBuilder` over random insertions and deletions.

use std::sync::{Arc, OnceLock};

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_trie::nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode};
use alloy_trie::{EMPTY_ROOT_HASH, Nibbles, TrieMask};
use rayon::prelude::*;

/// One version of a trie (cheap to clone: versions share their nodes).
#[derive(Clone, Default)]
pub struct Trie {
    root: Option<Arc<Node>>,
}

impl std::fmt::Debug for Trie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trie").field("root", &self.root()).finish()
    }
}

#[derive(Clone)]
struct Node {
    kind: Kind,
    /// `rlp(node)` if shorter than 32 bytes, else `rlp(keccak(rlp(node)))`; computed on demand.
    rlp: OnceLock<RlpNode>,
}

#[derive(Clone)]
enum Kind {
    Leaf { path: Nibbles, value: Box<[u8]> },
    Extension { path: Nibbles, child: Arc<Node> },
    Branch { children: Box<[Option<Arc<Node>>; 16]> },
}

type Children = Box<[Option<Arc<Node>>; 16]>;

fn node(kind: Kind) -> Arc<Node> {
    Arc::new(Node { kind, rlp: OnceLock::new() })
}

fn leaf(path: Nibbles, value: Box<[u8]>) -> Arc<Node> {
    node(Kind::Leaf { path, value })
}

/// `child` under `prefix`: itself if the prefix is empty.
fn under(prefix: Nibbles, child: Arc<Node>) -> Arc<Node> {
    if prefix.is_empty() { child } else { node(Kind::Extension { path: prefix, child }) }
}

/// `node` moved under `prefix`, merging paths so the trie stays canonical.
fn prepend(prefix: Nibbles, n: Arc<Node>) -> Arc<Node> {
    match &n.kind {
        Kind::Leaf { path, value } => leaf(prefix.join(path), value.clone()),
        Kind::Extension { path, child } => under(prefix.join(path), child.clone()),
        Kind::Branch { .. } => under(prefix, n),
    }
}

/// Nibble `i` of `path` as a child index. Keys are all 64 nibbles long, so the index exists
/// wherever this is called; 0 otherwise (never reached).
fn nibble(path: &Nibbles, i: usize) -> usize {
    debug_assert!(i < path.len());
    usize::from(path.get(i).unwrap_or_default())
}

fn set(children: &mut Children, i: usize, child: Option<Arc<Node>>) {
    if let Some(c) = children.get_mut(i) {
        *c = child;
    }
}

/// A branch holding `a` and `b` at the nibble (index `common`) where their full paths (equal
/// length, different) first differ.
fn fork(a: (Nibbles, Arc<Node>), b: (Nibbles, Arc<Node>), common: usize) -> Arc<Node> {
    let mut children: Children = Box::default();
    for (path, n) in [a, b] {
        set(&mut children, nibble(&path, common), Some(n));
    }
    node(Kind::Branch { children })
}

/// What inserting does at a node: replace it by a new subtrie, or go down into its child.
enum Step {
    Replace(Arc<Node>),
    Down(usize),
}

/// This version's own copy of `n` (a copy if another version shares it, which later updates of
/// this version then reuse in place), its cached hash cleared since it is about to change.
fn own(n: &mut Arc<Node>) -> &mut Node {
    let node = Arc::make_mut(n);
    node.rlp = OnceLock::new();
    node
}

/// Sets `path` to `value` in the non-empty subtrie `n`: copies the nodes on the path that other
/// versions share, mutates those this version already owns.
fn insert(n: &mut Arc<Node>, path: Nibbles, mut value: Box<[u8]>) {
    let step = match &n.kind {
        Kind::Leaf { path: p, .. } if *p == path => Step::Replace(leaf(path, std::mem::take(&mut value))),
        Kind::Leaf { path: p, value: v } => {
            let common = p.common_prefix_length(&path);
            let old = leaf(p.slice(common + 1..), v.clone());
            let new = leaf(path.slice(common + 1..), std::mem::take(&mut value));
            Step::Replace(under(path.slice(..common), fork((*p, old), (path, new), common)))
        }
        Kind::Extension { path: p, child } => {
            let common = p.common_prefix_length(&path);
            if common == p.len() {
                Step::Down(common)
            } else {
                let old = under(p.slice(common + 1..), child.clone());
                let new = leaf(path.slice(common + 1..), std::mem::take(&mut value));
                Step::Replace(under(path.slice(..common), fork((*p, old), (path, new), common)))
            }
        }
        Kind::Branch { .. } => Step::Down(1),
    };
    let skip = match step {
        Step::Replace(node) => {
            *n = node;
            return;
        }
        Step::Down(skip) => skip,
    };
    match &mut own(n).kind {
        Kind::Extension { child, .. } => insert(child, path.slice(skip..), value),
        Kind::Branch { children } => {
            if let Some(slot) = children.get_mut(nibble(&path, 0)) {
                match slot {
                    Some(child) => insert(child, path.slice(1..), value),
                    None => *slot = Some(leaf(path.slice(1..), value)),
                }
            }
        }
        Kind::Leaf { .. } => {}
    }
}

/// The node without `path`: `None` if `path` is absent (nothing changes), `Some(None)` if the
/// node is now empty.
fn remove(n: &Arc<Node>, path: Nibbles) -> Option<Option<Arc<Node>>> {
    match &n.kind {
        Kind::Leaf { path: p, .. } => (*p == path).then_some(None),
        Kind::Extension { path: p, child } => {
            if !path.starts_with(p) {
                return None;
            }
            let child = remove(child, path.slice(p.len()..))?;
            Some(child.map(|c| prepend(*p, c)))
        }
        Kind::Branch { children } => {
            let i = nibble(&path, 0);
            let child = children.get(i).and_then(Option::as_ref)?;
            let new = remove(child, path.slice(1..))?;
            let mut children = children.clone();
            set(&mut children, i, new);
            let mut left = children.iter().enumerate().filter_map(|(j, c)| c.as_ref().map(|c| (j, c)));
            let first = left.next();
            if left.next().is_some() {
                return Some(Some(node(Kind::Branch { children })));
            }
            // One child left: the branch collapses into it.
            Some(first.map(|(j, c)| {
                let mut prefix = Nibbles::new();
                prefix.push(u8::try_from(j).unwrap_or_default());
                prepend(prefix, c.clone())
            }))
        }
    }
}

/// The node's full RLP encoding, written to `out` (children by reference).
fn encode(n: &Node, out: &mut Vec<u8>) -> RlpNode {
    match &n.kind {
        Kind::Leaf { path, value } => LeafNodeRef::new(path, value).rlp(out),
        Kind::Extension { path, child } => {
            let c = rlp(child);
            ExtensionNodeRef::new(path, &c).rlp(out)
        }
        Kind::Branch { children } => {
            let mut stack = Vec::with_capacity(16);
            let mut mask = TrieMask::default();
            for (i, c) in children.iter().enumerate() {
                if let Some(c) = c {
                    stack.push(rlp(c));
                    mask.set_bit(u8::try_from(i).unwrap_or_default());
                }
            }
            BranchNodeRef::new(&stack, mask).rlp(out)
        }
    }
}

/// How many levels below the root [`Trie::root`] hands to separate rayon tasks: up to 16² subtries.
const PARALLEL_LEVELS: usize = 2;

/// Hashes the unhashed nodes under `n`, the subtries `PARALLEL_LEVELS` below the root in parallel
/// (the encodings are those [`rlp`] computes: each node's cache is filled once, by one task).
fn hash_parallel(n: &Node, level: usize) {
    if n.rlp.get().is_some() {
        return;
    }
    match &n.kind {
        Kind::Branch { children } if level < PARALLEL_LEVELS => {
            children.par_iter().flatten().for_each(|c| hash_parallel(c, level + 1));
        }
        Kind::Extension { child, .. } if level < PARALLEL_LEVELS => hash_parallel(child, level + 1),
        _ => {}
    }
    rlp(n);
}

/// The node's reference in its parent, cached.
fn rlp(n: &Node) -> RlpNode {
    n.rlp
        .get_or_init(|| {
            let mut out = Vec::new();
            encode(n, &mut out)
        })
        .clone()
}

/// Entries by path, sorted, distinct, values taken out as the nodes are built.
type Entries = [(Nibbles, Box<[u8]>)];

/// The subtrie of `entries` (sorted, distinct, all sharing their first `depth` nibbles) below
/// `depth`, each node built once; with `parallel`, the subtries under its top branch are built
/// on rayon's threads.
fn build(entries: &mut Entries, depth: usize, parallel: bool) -> Option<Arc<Node>> {
    let (first, last) = (entries.first()?.0, entries.last()?.0);
    if entries.len() == 1 {
        let value = entries.first_mut().map(|(_, v)| std::mem::take(v)).unwrap_or_default();
        return Some(leaf(first.slice(depth..), value));
    }
    // Sorted: the prefix the first and last share is the one all share; distinct keys of 64
    // nibbles differ before the end.
    let common = first.common_prefix_length(&last);
    let mut parts: Vec<&mut Entries> = Vec::with_capacity(16);
    let mut rest: &mut Entries = entries;
    for i in 0..16 {
        let n = rest.iter().take_while(|(p, _)| nibble(p, common) == i).count();
        let (part, after) = std::mem::take(&mut rest).split_at_mut(n);
        parts.push(part);
        rest = after;
    }
    let built: Vec<Option<Arc<Node>>> = if parallel {
        parts.into_par_iter().map(|p| build(p, common + 1, false)).collect()
    } else {
        parts.into_iter().map(|p| build(p, common + 1, false)).collect()
    };
    let mut children: Children = Box::default();
    for (i, c) in built.into_iter().enumerate() {
        set(&mut children, i, c);
    }
    Some(under(first.slice(depth..common), node(Kind::Branch { children })))
}

impl Trie {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// The trie of `entries` (any order; of equal keys the last counts; values RLP-encoded,
    /// non-empty), built bottom-up: each node made once, no path copied, the subtries under the
    /// first nibble on rayon's threads. The same trie as inserting them one by one.
    pub fn from_entries(entries: Vec<(B256, Vec<u8>)>) -> Self {
        let mut entries: Vec<(Nibbles, Box<[u8]>)> =
            entries.into_iter().map(|(k, v)| (Nibbles::unpack(k), v.into_boxed_slice())).collect();
        entries.reverse();
        // Stable: of equal keys the last given is now first, and dedup keeps it.
        entries.sort_by_key(|e| e.0);
        entries.dedup_by(|later, kept| later.0 == kept.0);
        Self { root: build(&mut entries, 0, true) }
    }

    /// Whether the trie holds no key.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Sets `key` to `value` (already RLP-encoded, non-empty).
    pub fn insert(&mut self, key: &B256, value: Vec<u8>) {
        let (path, value) = (Nibbles::unpack(key), value.into_boxed_slice());
        match &mut self.root {
            Some(root) => insert(root, path, value),
            None => self.root = Some(leaf(path, value)),
        }
    }

    /// Removes `key` (nothing if absent).
    pub fn remove(&mut self, key: &B256) {
        if let Some(r) = &self.root
            && let Some(new) = remove(r, Nibbles::unpack(key))
        {
            self.root = new;
        }
    }

    /// The root hash: hashes the nodes created since their last hashing, once.
    pub fn root(&self) -> B256 {
        self.root_with(rlp)
    }

    /// [`Self::root`], with the subtries under the top two levels hashed on rayon's threads: for
    /// tries with many changes since the last root (the state trie after a block, a contract's
    /// storage after many writes). The same root, bit for bit.
    pub fn root_parallel(&self) -> B256 {
        self.root_with(|n| {
            hash_parallel(n, 0);
            rlp(n)
        })
    }

    fn root_with(&self, hash: impl FnOnce(&Node) -> RlpNode) -> B256 {
        match &self.root {
            None => EMPTY_ROOT_HASH,
            Some(n) => {
                let r = hash(n);
                if r.is_hash() { B256::from_slice(r.get(1..).unwrap_or_default()) } else { keccak256(&r[..]) }
            }
        }
    }

    /// The value at `key`.
    pub fn get(&self, key: &B256) -> Option<&[u8]> {
        let path = Nibbles::unpack(key);
        let mut at = self.root.as_ref()?;
        let mut depth = 0;
        loop {
            match &at.kind {
                Kind::Leaf { path: p, value } => {
                    return (path.slice(depth..) == *p).then_some(&value[..]);
                }
                Kind::Extension { path: p, child } => {
                    if !path.slice(depth..).starts_with(p) {
                        return None;
                    }
                    depth += p.len();
                    at = child;
                }
                Kind::Branch { children } => {
                    at = children.get(nibble(&path, depth)).and_then(Option::as_ref)?;
                    depth += 1;
                }
            }
        }
    }

    /// The nodes (full RLP encodings) from the root along `key`'s path, as far as it goes, less
    /// those embedded in their parent: an EIP-1186 proof of the key's value or of its absence.
    pub fn proof(&self, key: &B256) -> Vec<Bytes> {
        let path = Nibbles::unpack(key);
        let mut out = Vec::new();
        let mut at = self.root.as_ref();
        let mut depth = 0;
        while let Some(n) = at {
            let mut buf = Vec::new();
            let reference = encode(n, &mut buf);
            // A node shorter than 32 bytes sits inside its parent's encoding: not listed again.
            if out.is_empty() || reference.is_hash() {
                out.push(Bytes::from(buf));
            }
            at = match &n.kind {
                Kind::Leaf { .. } => None,
                Kind::Extension { path: p, child } => {
                    let rest = path.slice(depth..);
                    depth += p.len();
                    rest.starts_with(p).then_some(child)
                }
                Kind::Branch { children } => {
                    let child = children.get(nibble(&path, depth)).and_then(Option::as_ref);
                    depth += 1;
                    child
                }
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::HashBuilder;
    use std::collections::BTreeMap;

    fn reference(entries: &BTreeMap<B256, Vec<u8>>) -> B256 {
        let mut hb = HashBuilder::default();
        for (k, v) in entries {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        hb.root()
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Keys drawn from a small pool of prefixes, so that extensions, long shared paths, branch
    /// collapses and leaf merges all happen.
    fn key(rng: &mut Rng) -> B256 {
        let mut k = B256::ZERO;
        let shape = rng.next() % 4;
        for (i, b) in k.0.iter_mut().enumerate() {
            let r = rng.next() as u8;
            *b = match shape {
                0 => r,                          // random
                1 if i < 30 => 0xAB,             // long shared prefix
                2 if i < 2 => (r & 0x11) | 0x20, // few distinct first nibbles
                _ => r & 0x03,                   // small alphabet
            };
        }
        k
    }

    #[test]
    fn roots_equal_the_hash_builder_over_random_updates() {
        let mut rng = Rng(0x5eed_1234_5678_9abc);
        for round in 0..40 {
            let mut trie = Trie::new();
            let mut model = BTreeMap::new();
            let mut kept: Vec<(Trie, B256)> = Vec::new();
            let ops = 1 + round * 10;
            for _ in 0..ops {
                let k = key(&mut rng);
                if rng.next().is_multiple_of(3) && !model.is_empty() {
                    // Remove an existing key (or a missing one, a no-op).
                    let victim = if rng.next().is_multiple_of(2) { *model.keys().next().unwrap() } else { k };
                    model.remove(&victim);
                    trie.remove(&victim);
                } else {
                    let len = 1 + (rng.next() % 40) as usize; // short values make inline nodes
                    let v = alloy_rlp::encode(vec![rng.next() as u8; len]);
                    model.insert(k, v.clone());
                    trie.insert(&k, v);
                }
                if rng.next().is_multiple_of(7) {
                    kept.push((trie.clone(), reference(&model)));
                }
            }
            assert_eq!(trie.root(), reference(&model), "round {round}");
            for (k, v) in &model {
                assert_eq!(trie.get(k), Some(&v[..]));
            }
            // Older versions are unaffected by later updates.
            for (t, want) in kept {
                assert_eq!(t.root(), want);
            }
        }
    }

    #[test]
    fn parallel_roots_equal_the_hash_builder_before_and_after_more_updates() {
        let mut rng = Rng(0x9a7a_11e1_0000_0001);
        for round in 0..12 {
            let mut trie = Trie::new();
            let mut model = BTreeMap::new();
            // Sizes from a single leaf to tries whose top two levels are full branches.
            for _ in 0..(1 + round * round * 40) {
                let (k, v) = (key(&mut rng), alloy_rlp::encode(vec![rng.next() as u8; 1 + (rng.next() % 40) as usize]));
                model.insert(k, v.clone());
                trie.insert(&k, v);
            }
            assert_eq!(trie.root_parallel(), reference(&model), "round {round}, nothing hashed before");
            // Some subtries hashed, some changed since: only the changed ones are recomputed.
            for _ in 0..(1 + round * 5) {
                let k = key(&mut rng);
                if rng.next().is_multiple_of(2) && !model.is_empty() {
                    let victim = *model.keys().nth((rng.next() as usize) % model.len()).unwrap();
                    model.remove(&victim);
                    trie.remove(&victim);
                } else {
                    let v = alloy_rlp::encode(vec![rng.next() as u8; 1 + (rng.next() % 40) as usize]);
                    model.insert(k, v.clone());
                    trie.insert(&k, v);
                }
            }
            assert_eq!(trie.root_parallel(), reference(&model), "round {round}, after more updates");
            assert_eq!(trie.root(), reference(&model));
        }
    }

    /// A trie built in one pass holds what inserting the same entries one by one holds: the
    /// same root, values and proofs, and later updates behave the same on it.
    #[test]
    fn a_trie_built_from_entries_is_the_one_inserts_build() {
        let mut rng = Rng(0xb01c_0000_0000_0001);
        for round in 0..30 {
            let mut inserted = Trie::new();
            let mut given = Vec::new();
            let mut model = BTreeMap::new();
            for _ in 0..(round * round * 7) {
                let (k, v) = (key(&mut rng), alloy_rlp::encode(vec![rng.next() as u8; 1 + (rng.next() % 40) as usize]));
                model.insert(k, v.clone());
                inserted.insert(&k, v.clone());
                given.push((k, v));
            }
            let mut built = Trie::from_entries(given);
            assert_eq!(built.root(), reference(&model), "round {round}");
            assert_eq!(built.root(), inserted.root());
            for k in model.keys().take(20) {
                assert_eq!(built.get(k), inserted.get(k));
                assert_eq!(built.proof(k), inserted.proof(k));
            }
            for _ in 0..10 {
                let k = key(&mut rng);
                if rng.next().is_multiple_of(2) && !model.is_empty() {
                    let victim = *model.keys().nth((rng.next() as usize) % model.len()).unwrap();
                    model.remove(&victim);
                    built.remove(&victim);
                } else {
                    let v = alloy_rlp::encode(k.0);
                    model.insert(k, v.clone());
                    built.insert(&k, v);
                }
            }
            assert_eq!(built.root_parallel(), reference(&model), "round {round}, after updates");
        }
    }

    #[test]
    fn removing_everything_gives_the_empty_root() {
        let mut rng = Rng(99);
        let mut trie = Trie::new();
        let keys: Vec<B256> = (0..200).map(|_| key(&mut rng)).collect();
        for k in &keys {
            trie.insert(k, alloy_rlp::encode(k.0));
        }
        assert_ne!(trie.root(), EMPTY_ROOT_HASH);
        for k in &keys {
            trie.remove(k);
        }
        assert!(trie.is_empty());
        assert_eq!(trie.root(), EMPTY_ROOT_HASH);
    }

    #[test]
    fn proofs_verify_for_present_and_absent_keys() {
        let mut rng = Rng(7);
        let mut trie = Trie::new();
        let keys: Vec<B256> = (0..300).map(|_| key(&mut rng)).collect();
        for (i, k) in keys.iter().enumerate() {
            trie.insert(k, alloy_rlp::encode(vec![i as u8; 1 + i % 5]));
        }
        let root = trie.root();
        for k in keys.iter().take(50) {
            let value = trie.get(k).map(<[u8]>::to_vec);
            alloy_trie::proof::verify_proof(root, Nibbles::unpack(k), value, &trie.proof(k)).unwrap();
        }
        for _ in 0..50 {
            let k = key(&mut rng);
            if trie.get(&k).is_none() {
                alloy_trie::proof::verify_proof(root, Nibbles::unpack(k), None, &trie.proof(&k)).unwrap();
            }
        }
    }
}
