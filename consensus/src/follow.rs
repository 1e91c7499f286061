//! Following the chain without voting (docs/consensus.md §followers): a finalized block is
//! accepted when its finalization certificate, signed by a quorum of the genesis validator set,
//! verifies and names the block's digest; the follower then re-executes it like any block. No
//! trust in whoever served it.

use commonware_codec::{Decode as _, Encode as _};
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::Digestible;
use commonware_cryptography::certificate::Verifier as _;
use commonware_cryptography::sha256::Digest;
use commonware_parallel::Sequential;
use commonware_utils::ordered::Set;

use crate::app::{PublicKey, Scheme};
use crate::block::{Block, BlockLimits};

/// A finalization certificate over a block digest.
pub type Certificate = Finalization<Scheme, Digest>;

/// Why a served block is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// The block bytes do not decode.
    #[error("the block does not decode: {0}")]
    Block(String),
    /// The certificate bytes do not decode.
    #[error("the finalization certificate does not decode: {0}")]
    Encoding(String),
    /// The signatures do not verify against the validator set.
    #[error("the finalization certificate does not verify against the validator set")]
    Signatures,
    /// No block, or the blocks are not a chain (each the parent of the next).
    #[error("the served blocks are not a chain ending in the certified block")]
    Broken,
    /// The certificate finalizes another block.
    #[error("the certificate finalizes {certified}, not this block ({block})")]
    OtherBlock {
        /// Digest in the certificate.
        certified: Digest,
        /// Digest of the served block.
        block: Digest,
    },
}

/// Checks served blocks against the validator set.
#[derive(Debug, Clone)]
pub struct Checker {
    verifier: Scheme,
}

/// The encoding of a certificate, as validators serve it.
pub fn encode_certificate(c: &Certificate) -> Vec<u8> {
    c.encode().to_vec()
}

impl Checker {
    /// A checker for the chain with signing `namespace` and validator set `participants`.
    pub fn new(namespace: &[u8], participants: Set<PublicKey>) -> Self {
        Self { verifier: Scheme::verifier(namespace, participants) }
    }

    /// The block in `block`, if `certificate` is a valid finalization of it.
    pub fn check(
        &self,
        rng: &mut impl rand_core::CryptoRng,
        block: Vec<u8>,
        certificate: Vec<u8>,
    ) -> Result<Block, FollowError> {
        let mut blocks = self.check_chain(rng, vec![block], certificate)?;
        blocks.pop().ok_or(FollowError::Broken)
    }

    /// The blocks in `blocks` (consecutive heights, oldest first), if `certificate` is a valid
    /// finalization of the last and each one is the parent of the next: finalizing a block
    /// finalizes its ancestors, and not every height has a certificate of its own.
    pub fn check_chain(
        &self,
        rng: &mut impl rand_core::CryptoRng,
        blocks: Vec<Vec<u8>>,
        certificate: Vec<u8>,
    ) -> Result<Vec<Block>, FollowError> {
        let limits = BlockLimits::default();
        let blocks = blocks
            .into_iter()
            .map(|b| Block::decode_cfg(b, &limits).map_err(|e| FollowError::Block(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let last = blocks.last().ok_or(FollowError::Broken)?;
        let cfg = Scheme::certificate_codec_config_unbounded();
        let c = Certificate::decode_cfg(certificate, &cfg).map_err(|e| FollowError::Encoding(e.to_string()))?;
        if c.proposal.payload != last.digest() {
            return Err(FollowError::OtherBlock { certified: c.proposal.payload, block: last.digest() });
        }
        for pair in blocks.windows(2) {
            if let [parent, child] = pair
                && (child.body().parent != parent.digest()
                    || parent.body().height.checked_add(1) != Some(child.body().height))
            {
                return Err(FollowError::Broken);
            }
        }
        if !c.verify(rng, &self.verifier, &Sequential) {
            return Err(FollowError::Signatures);
        }
        Ok(blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_consensus::simplex::types::{Finalize, Proposal};
    use commonware_consensus::types::{Epoch, Round, View};
    use commonware_cryptography::Signer as _;
    use commonware_cryptography::ed25519::PrivateKey;
    use commonware_utils::iter::NonEmpty;

    const NS: &[u8] = b"fixpoint-3871";

    fn set(keys: &[PrivateKey]) -> Set<PublicKey> {
        Set::try_from(keys.iter().map(|k| k.public_key()).collect::<Vec<_>>()).unwrap()
    }

    /// A finalization of `digest` signed by `signers` of the set `keys`.
    fn certify(keys: &[PrivateKey], signers: usize, digest: Digest) -> Vec<u8> {
        let proposal = Proposal::new(Round::new(Epoch::zero(), View::new(3)), View::new(2), digest);
        let votes: Vec<Finalize<Scheme, Digest>> = keys[..signers]
            .iter()
            .map(|k| {
                let s = Scheme::signer(NS, set(keys), k.clone()).unwrap();
                Finalize::sign(&s, proposal.clone()).unwrap()
            })
            .collect();
        let verifier = Scheme::verifier(NS, set(keys));
        let cert =
            Certificate::from_owned_finalizes(&verifier, NonEmpty::try_new(votes.into_iter()).unwrap(), &Sequential);
        encode_certificate(&cert.expect("quorum"))
    }

    #[test]
    fn a_certified_block_is_accepted_and_anything_else_refused() {
        let keys: Vec<PrivateKey> = (0..4).map(PrivateKey::from_seed).collect();
        let checker = Checker::new(NS, set(&keys));
        let mut rng = rand_core::UnwrapErr(commonware_utils::test_rng());
        let block = Block::genesis(alloy_primitives::B256::repeat_byte(1), 30_000_000, 1, 7);
        let other = Block::genesis(alloy_primitives::B256::repeat_byte(2), 30_000_000, 1, 7);
        let bytes = block.encode().to_vec();
        let good = certify(&keys, 3, block.digest());
        assert_eq!(checker.check(&mut rng, bytes.clone(), good.clone()), Ok(block.clone()));
        // A certificate for another block.
        let wrong = certify(&keys, 3, other.digest());
        assert!(matches!(checker.check(&mut rng, bytes.clone(), wrong), Err(FollowError::OtherBlock { .. })));
        // A quorum of another validator set.
        let strangers: Vec<PrivateKey> = (10..14).map(PrivateKey::from_seed).collect();
        let forged = certify(&strangers, 3, block.digest());
        assert_eq!(checker.check(&mut rng, bytes.clone(), forged), Err(FollowError::Signatures));
        // Tampered signatures, truncated bytes, a block that does not decode.
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(checker.check(&mut rng, bytes.clone(), flipped).is_err());
        assert!(matches!(
            checker.check(&mut rng, bytes.clone(), good[..good.len() - 3].to_vec()),
            Err(FollowError::Encoding(_))
        ));
        assert!(matches!(checker.check(&mut rng, bytes[..10].to_vec(), good.clone()), Err(FollowError::Block(_))));

        // Ancestors without certificates of their own, finalized by their descendant's.
        let child = |p: &Block| {
            Block::new(crate::BlockBody { parent: p.digest(), height: p.body().height + 1, ..p.body().clone() })
        };
        let (b1, b2) = (child(&block), child(&child(&block)));
        let mid = child(&block);
        let chain = vec![bytes.clone(), mid.encode().to_vec(), b2.encode().to_vec()];
        let cert2 = certify(&keys, 3, b2.digest());
        assert_eq!(
            checker.check_chain(&mut rng, chain.clone(), cert2.clone()).unwrap(),
            vec![block.clone(), b1, b2.clone()]
        );
        // A gap or a foreign block in between breaks it; so does a certificate for the first.
        let gapped = vec![bytes.clone(), b2.encode().to_vec()];
        assert_eq!(checker.check_chain(&mut rng, gapped, cert2.clone()), Err(FollowError::Broken));
        let foreign = vec![other.encode().to_vec(), mid.encode().to_vec(), b2.encode().to_vec()];
        assert_eq!(checker.check_chain(&mut rng, foreign, cert2), Err(FollowError::Broken));
        assert!(matches!(checker.check_chain(&mut rng, chain, good), Err(FollowError::OtherBlock { .. })));
        assert_eq!(checker.check_chain(&mut rng, vec![], certify(&keys, 3, block.digest())), Err(FollowError::Broken));
    }
}
