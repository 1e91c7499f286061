//! One validator's engines, wired as commonware's marshal harness wires them: p2p channels,
//! the backfill resolver, block broadcast, the finalization and block archives, marshal, the
//! `Inline` wrapper around our [`App`], and simplex. Generic over the runtime and the network,
//! so the deterministic simulation and a real node run the same code (docs/consensus.md).

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use commonware_broadcast::buffered;
use commonware_consensus::marshal::core::Actor;
use commonware_consensus::marshal::resolver::p2p as resolver;
use commonware_consensus::marshal::standard::Inline;
use commonware_consensus::marshal::{self, Start};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::{self, Engine, Floor, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::types::{Epoch, FixedEpocher, ViewDelta};
use commonware_cryptography::certificate::{ConstantProvider, Verifier as _};
use commonware_cryptography::ed25519::PrivateKey;
use commonware_cryptography::sha256::Sha256;
use commonware_cryptography::{Digested, Digestible, Signer};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Metrics, Spawner, Storage, Supervisor};
use commonware_storage::archive::immutable;
use commonware_utils::ordered::Set;
use commonware_utils::{NZDuration, NZU16, NZU64, NZUsize};

use crate::app::{App, PublicKey, Scheme};
use crate::block::{Block, BlockLimits};
use crate::finalizer::Finalizer;
use crate::shared::Shared;

/// The p2p channel ids.
pub mod channel {
    /// Simplex votes.
    pub const VOTES: u64 = 0;
    /// Simplex certificates.
    pub const CERTIFICATES: u64 = 1;
    /// Simplex's own resolver.
    pub const RESOLVER: u64 = 2;
    /// Block broadcast.
    pub const BLOCKS: u64 = 3;
    /// Marshal backfill.
    pub const BACKFILL: u64 = 4;
    /// Transaction gossip ([`crate::gossip`]).
    pub const TXS: u64 = 5;
}

/// The five registered channels, in [`channel`] order.
pub struct Channels<S, R> {
    /// Votes.
    pub votes: (S, R),
    /// Certificates.
    pub certificates: (S, R),
    /// Simplex resolver.
    pub resolver: (S, R),
    /// Block broadcast.
    pub blocks: (S, R),
    /// Marshal backfill.
    pub backfill: (S, R),
}

/// What a validator needs besides its runtime and network.
#[derive(Clone)]
pub struct ValidatorConfig {
    /// Signing namespace (chain-specific).
    pub namespace: Vec<u8>,
    /// This validator's key.
    pub key: PrivateKey,
    /// The validator set.
    pub participants: Set<PublicKey>,
    /// Block 0.
    pub genesis: Block,
    /// Storage partition prefix.
    pub partition_prefix: String,
}

/// An immutable archive's configuration under `prefix-name-*` partitions.
fn archive_cfg<C>(prefix: &str, name: &str, codec_config: C, page_cache: CacheRef) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 64,
        freezer_table_resize_frequency: 10,
        freezer_table_resize_chunk_size: 10,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache,
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 1 << 20,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: NZU64!(10),
        codec_config,
        replay_buffer: NZUsize!(1 << 16),
        freezer_key_write_buffer: NZUsize!(1 << 16),
        freezer_value_write_buffer: NZUsize!(1 << 16),
        ordinal_write_buffer: NZUsize!(1 << 16),
    }
}

/// Marshal's mailbox: finalized blocks and their certificates by height.
pub type Marshal = marshal::core::Mailbox<Scheme, marshal::standard::Standard<Block>>;

/// Starts one validator's engines on `context`; they run as its children until it is aborted.
/// Returns marshal's mailbox (`None` if the validator could not start: not in the set, storage).
pub async fn start_validator<E, S, R, B, P>(
    context: E,
    cfg: ValidatorConfig,
    shared: Arc<Shared>,
    blocker: B,
    peers: P,
    channels: Channels<S, R>,
) -> Option<Marshal>
where
    E: Spawner + Metrics + Clock + Storage + Supervisor + rand_core::CryptoRng,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
{
    let ValidatorConfig { namespace, key, participants, genesis, partition_prefix: prefix } = cfg;
    let me = key.public_key();
    // Not in the validator set: nothing to sign with.
    let scheme = Scheme::signer(&namespace, participants.clone(), key)?;
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(64));
    let mailbox: NonZeroUsize = NZUsize!(1024);
    let resolver = resolver::init(
        context.child("resolver"),
        resolver::Config {
            public_key: me.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size: mailbox,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );
    let (broadcast, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size: mailbox,
            deque_size: 10,
            priority: false,
            codec_config: BlockLimits::default(),
            peer_provider: peers,
            strategy: Sequential,
        },
    );
    broadcast.start(channels.blocks);
    let Ok(finalizations) = immutable::Archive::init(
        context.child("finalizations"),
        archive_cfg(&prefix, "finalizations", Scheme::certificate_codec_config_unbounded(), page_cache.clone()),
    )
    .await
    else {
        return None;
    };
    let Ok(finalized_blocks) = immutable::Archive::init(
        context.child("blocks"),
        archive_cfg(&prefix, "blocks", BlockLimits::default(), page_cache.clone()),
    )
    .await
    else {
        return None;
    };
    let epocher = FixedEpocher::new(NZU64!(u64::MAX / 2));
    let genesis_digest = genesis.digest();
    let (actor, marshal_mailbox, _floor) = Actor::init(
        context.child("marshal"),
        finalizations,
        finalized_blocks,
        marshal::Config {
            provider: ConstantProvider::new(Scheme::verifier(&namespace, participants.clone())),
            epocher: epocher.clone(),
            start: Start::Genesis(Digested::precomputed(genesis, genesis_digest)),
            partition_prefix: format!("{prefix}-marshal"),
            mailbox_size: mailbox,
            view_retention: ViewDelta::new(10),
            prunable_items_per_section: NZU64!(10),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(1 << 16),
            key_write_buffer: NZUsize!(1 << 16),
            value_write_buffer: NZUsize!(1 << 16),
            block_codec_config: BlockLimits::default(),
            max_repair: NZUsize!(10),
            max_pending_acks: NZUsize!(16),
            strategy: Sequential,
        },
    )
    .await;
    actor.start(Finalizer::new(shared.clone()), buffer, resolver);
    let inline = Inline::new(context.child("application"), App::new(shared), marshal_mailbox.clone(), epocher);
    let engine = Engine::new(
        context.child("simplex"),
        simplex::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: inline.clone(),
            relay: inline.clone(),
            reporter: inline,
            track_historical_votes: false,
            strategy: Sequential,
            partition: format!("{prefix}-simplex"),
            mailbox_size: mailbox,
            epoch: Epoch::zero(),
            floor: Floor::Genesis(genesis_digest),
            replay_buffer: NZUsize!(1 << 16),
            write_buffer: NZUsize!(1 << 16),
            page_cache,
            leader_timeout: Duration::from_secs(1),
            certification_timeout: Duration::from_secs(2),
            timeout_retry: Duration::from_secs(5),
            view_retention: ViewDelta::new(10),
            skip: SkipPolicy::Enabled { timeout: Duration::from_secs(10), budget: SkipBudget::Participants },
            fetch_timeout: NZDuration!(Duration::from_secs(1)),
            fetch_retry_delay: Duration::from_millis(100),
            forward: ForwardPolicy::Disabled,
        },
    );
    engine.start(channels.votes, channels.certificates, channels.resolver);
    Some(marshal_mailbox)
}
