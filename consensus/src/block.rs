//! The block validators agree on: its place in the chain (parent digest, height, the consensus
//! view it was proposed in), the execution environment, the EIP-2718 transactions, and the
//! results the proposer claims (state, receipts and inference-records roots, gas used), which
//! every validator checks by re-executing. Encoding: fixed-width big-endian fields, then
//! `u32` transaction count and each transaction as `u32` length + bytes (docs/consensus.md).
//! The digest is SHA-256 of the encoding.

use alloy_primitives::{Address, B256, Bytes};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, Write};
use commonware_consensus::Heightable;
use commonware_consensus::types::Height;
use commonware_cryptography::sha256::{Digest, Sha256};
use commonware_cryptography::{Digestible, Hasher};

/// Everything a block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockBody {
    /// The parent block's digest.
    pub parent: Digest,
    /// Height (genesis is 0).
    pub height: u64,
    /// The consensus view it was proposed in (two views never share a digest).
    pub view: u64,
    /// Unix seconds, above the parent's.
    pub timestamp: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// EIP-1559 base fee, derived from the parent.
    pub base_fee: u64,
    /// Fee recipient (the proposer's account).
    pub beneficiary: Address,
    /// Claimed post-state root.
    pub state_root: B256,
    /// Claimed receipts root.
    pub receipts_root: B256,
    /// Claimed inference-records root.
    pub records_root: B256,
    /// Claimed gas used.
    pub gas_used: u64,
    /// EIP-2718 encoded transactions.
    pub txs: Vec<Bytes>,
}

impl Default for BlockBody {
    fn default() -> Self {
        Self {
            parent: Digest([0; 32]),
            height: 0,
            view: 0,
            timestamp: 0,
            gas_limit: 0,
            base_fee: 0,
            beneficiary: Address::ZERO,
            state_root: B256::ZERO,
            receipts_root: B256::ZERO,
            records_root: B256::ZERO,
            gas_used: 0,
            txs: Vec::new(),
        }
    }
}

/// Bounds on what a decoded block may hold (the codec's `Cfg`): nothing a peer sends can make
/// a node allocate more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    /// Most transactions.
    pub max_txs: usize,
    /// Largest transaction.
    pub max_tx_bytes: usize,
}

impl Default for BlockLimits {
    fn default() -> Self {
        Self { max_txs: 100_000, max_tx_bytes: 1 << 20 }
    }
}

/// A sealed block: the body and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    body: BlockBody,
    digest: Digest,
}

/// Fixed-width part: parent 32, six u64, beneficiary 20, three roots, gas used, tx count.
const FIXED: usize = 32 + 8 * 5 + 20 + 32 * 3 + 8 + 4;

fn write_body(b: &BlockBody, w: &mut impl BufMut) {
    w.put_slice(b.parent.as_ref());
    for x in [b.height, b.view, b.timestamp, b.gas_limit, b.base_fee] {
        w.put_u64(x);
    }
    w.put_slice(b.beneficiary.as_slice());
    for r in [b.state_root, b.receipts_root, b.records_root] {
        w.put_slice(r.as_slice());
    }
    w.put_u64(b.gas_used);
    // Lengths fit u32: reading enforces the limits, and proposers build within them.
    w.put_u32(u32::try_from(b.txs.len()).unwrap_or(u32::MAX));
    for t in &b.txs {
        w.put_u32(u32::try_from(t.len()).unwrap_or(u32::MAX));
        w.put_slice(t);
    }
}

impl Block {
    /// Seals `body`.
    pub fn new(body: BlockBody) -> Self {
        let mut buf = Vec::with_capacity(FIXED + body.txs.iter().map(|t| 4 + t.len()).sum::<usize>());
        write_body(&body, &mut buf);
        let digest = Sha256::hash(&[&buf]);
        Self { body, digest }
    }

    /// The body.
    pub fn body(&self) -> &BlockBody {
        &self.body
    }

    /// The genesis block for a chain whose genesis state has `state_root`.
    pub fn genesis(state_root: B256, gas_limit: u64, timestamp: u64, base_fee: u64) -> Self {
        Self::new(BlockBody {
            state_root,
            receipts_root: empty_trie_root(),
            records_root: empty_trie_root(),
            gas_limit,
            timestamp,
            base_fee,
            ..Default::default()
        })
    }
}

fn empty_trie_root() -> B256 {
    fixpoint_evm::records_root(&[])
}

impl Write for Block {
    fn write(&self, w: &mut impl BufMut) {
        write_body(&self.body, w);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        FIXED + self.body.txs.iter().map(|t| 4 + t.len()).sum::<usize>()
    }
}

fn need(r: &impl Buf, n: usize) -> Result<(), CodecError> {
    if r.remaining() < n { Err(CodecError::EndOfBuffer) } else { Ok(()) }
}

fn read_b256(r: &mut impl Buf) -> B256 {
    let mut x = [0u8; 32];
    r.copy_to_slice(&mut x);
    B256::from(x)
}

impl Read for Block {
    type Cfg = BlockLimits;

    fn read_cfg(r: &mut impl Buf, cfg: &BlockLimits) -> Result<Self, CodecError> {
        need(r, FIXED)?;
        let mut parent = [0u8; 32];
        r.copy_to_slice(&mut parent);
        let (height, view, timestamp, gas_limit, base_fee) =
            (r.get_u64(), r.get_u64(), r.get_u64(), r.get_u64(), r.get_u64());
        let mut beneficiary = [0u8; 20];
        r.copy_to_slice(&mut beneficiary);
        let (state_root, receipts_root, records_root) = (read_b256(r), read_b256(r), read_b256(r));
        let gas_used = r.get_u64();
        let n = r.get_u32() as usize;
        if n > cfg.max_txs {
            return Err(CodecError::InvalidLength(n));
        }
        let mut txs = Vec::with_capacity(n.min(r.remaining() / 4));
        for _ in 0..n {
            need(r, 4)?;
            let len = r.get_u32() as usize;
            if len > cfg.max_tx_bytes {
                return Err(CodecError::InvalidLength(len));
            }
            need(r, len)?;
            let mut t = vec![0u8; len];
            r.copy_to_slice(&mut t);
            txs.push(Bytes::from(t));
        }
        Ok(Self::new(BlockBody {
            parent: Digest(parent),
            height,
            view,
            timestamp,
            gas_limit,
            base_fee,
            beneficiary: Address::from(beneficiary),
            state_root,
            receipts_root,
            records_root,
            gas_used,
            txs,
        }))
    }
}

impl Digestible for Block {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        self.digest
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        Height::new(self.body.height)
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        self.body.parent
    }
}
