//! Validators on commonware's simulated network, shared by the simulation tests
//! (tests/sim.rs, tests/faults.rs) and the scale bench (benches/scale.rs): each validator's
//! channels are registered through a [`Tap`], a sender that can withhold a channel's messages
//! from chosen peers (a byzantine leader, lost messages) and reports every message it sends to
//! an [`Observer`] (bytes counted at the sender: payload × recipients, before the simulated
//! link's loss), then the validator's engines start as a real node starts them.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};

use commonware_actor::{Feedback, Unreliable};
use commonware_cryptography::Signer;
use commonware_cryptography::ed25519::PrivateKey;
use commonware_p2p::simulated::Oracle;
use commonware_p2p::{CheckedSender, LimitedSender, Recipients};
use commonware_runtime::{IoBufs, Quota, deterministic};
use commonware_utils::{NZU32, ordered::Set};
use fixpoint_consensus::app::PublicKey;
use fixpoint_consensus::engine::{self, Channels, ValidatorConfig, channel};
use fixpoint_consensus::{Block, Shared};

/// Every channel's rate limit for a few validators: high enough never to bind.
pub const QUOTA: Quota = Quota::per_second(NZU32!(1_000_000));
/// The rate limit for many validators: a channel's receive queue holds a second's quota from
/// every peer (marshal's backfill handler allocates it up front), so 1,000,000 a second would
/// take gigabytes at 100 validators; 256 messages a second from each peer on each channel is
/// still far above what a validator sends (a few votes and one block a view).
pub const SCALE_QUOTA: Quota = Quota::per_second(NZU32!(256));

/// Starts commonware's simulated network for the validators with keys from seeds `0..n`, every
/// ordered pair `(a, b)` joined by `link(a, b)`: their keys, the participant set and the
/// network's oracle.
pub async fn start_network(
    context: &deterministic::Context,
    n: usize,
    link: impl Fn(usize, usize) -> commonware_p2p::simulated::Link,
) -> (Vec<PrivateKey>, Set<PublicKey>, Oracle<PublicKey, deterministic::Context>) {
    use commonware_runtime::Supervisor as _;
    let keys: Vec<PrivateKey> = (0..n as u64).map(PrivateKey::from_seed).collect();
    let pks: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    let participants: Set<PublicKey> = Set::try_from(pks.clone()).expect("distinct keys");
    let (network, oracle) = commonware_p2p::simulated::Network::new_with_peers(
        context.child("network"),
        commonware_p2p::simulated::Config {
            max_size: 8 << 20,
            max_peers_per_set: commonware_utils::NZUsize!(n),
            disconnect_on_block: true,
            tracked_peer_sets: commonware_utils::NZUsize!(1),
        },
        participants.iter().cloned(),
    )
    .await;
    network.start();
    for (a, pa) in pks.iter().enumerate() {
        for (b, pb) in pks.iter().enumerate() {
            if a != b {
                oracle.add_link(pa.clone(), pb.clone(), link(a, b)).await.expect("link");
            }
        }
    }
    (keys, participants, oracle)
}

/// The peers a validator's block and vote messages do not reach (set by a test: a byzantine
/// leader withholding its proposal, or an honest validator's messages lost in the network).
pub type Withheld = Arc<Mutex<Vec<PublicKey>>>;

/// Sees every message a validator sends.
pub trait Observer: Send + Sync {
    /// Validator `from` sent `message` on `channel` to `recipients` peers.
    fn sent(&self, from: usize, channel: u64, message: &[u8], recipients: usize);
}

/// A channel sender that drops what it sends to the peers in `withheld` and shows the rest to
/// its observer.
#[derive(Clone)]
pub struct Tap<S> {
    inner: S,
    /// Every other validator (what `Recipients::All` means).
    others: Vec<PublicKey>,
    withheld: Withheld,
    from: usize,
    channel: u64,
    observer: Option<Arc<dyn Observer>>,
}

/// A [`Tap`]'s checked send.
pub struct TapChecked<C> {
    inner: C,
    from: usize,
    channel: u64,
    observer: Option<Arc<dyn Observer>>,
}

impl<S: LimitedSender<PublicKey = PublicKey>> LimitedSender for Tap<S> {
    type PublicKey = PublicKey;
    type Checked<'a>
        = TapChecked<S::Checked<'a>>
    where
        S: 'a;

    fn check(&mut self, recipients: Recipients<PublicKey>) -> Result<Self::Checked<'_>, std::time::SystemTime> {
        let withheld = self.withheld.lock().unwrap().clone();
        let (from, channel, observer) = (self.from, self.channel, self.observer.clone());
        let inner = if withheld.is_empty() {
            self.inner.check(recipients)?
        } else {
            let to = match recipients {
                Recipients::All => self.others.clone(),
                Recipients::Some(v) => v,
                Recipients::One(p) => vec![p],
            };
            self.inner.check(Recipients::Some(to.into_iter().filter(|p| !withheld.contains(p)).collect()))?
        };
        Ok(TapChecked { inner, from, channel, observer })
    }
}

impl<C: CheckedSender<PublicKey = PublicKey>> CheckedSender for TapChecked<C> {
    type PublicKey = PublicKey;

    fn recipients(&self) -> Vec<PublicKey> {
        self.inner.recipients()
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        let Some(observer) = self.observer else { return self.inner.send(message, priority) };
        let recipients = self.inner.recipients().len();
        let message = message.into().coalesce();
        observer.sent(self.from, self.channel, message.as_ref(), recipients);
        self.inner.send(message, priority)
    }
}

/// One validator to start on the simulated network.
pub struct Node {
    /// Its index in the simulation (what observers see).
    pub index: usize,
    /// Its key.
    pub key: PrivateKey,
    /// Its node state.
    pub shared: Arc<Shared>,
    /// Peers its votes and blocks do not reach.
    pub withheld: Withheld,
    /// Sees the messages it sends, if anything does.
    pub observer: Option<Arc<dyn Observer>>,
}

/// Registers `node`'s channels on the simulated network and starts its engines (the same
/// `start_validator` a real node runs), signing in `namespace`, each channel limited to `quota`.
pub async fn start_validator(
    context: deterministic::Context,
    oracle: &Oracle<PublicKey, deterministic::Context>,
    namespace: &[u8],
    participants: Set<PublicKey>,
    genesis: Block,
    node: Node,
    quota: Quota,
) {
    let Node { index, key, shared, withheld, observer } = node;
    let me = key.public_key();
    let control = oracle.control(me.clone());
    let others: Vec<PublicKey> = participants.iter().filter(|p| **p != me).cloned().collect();
    let mut reg = Vec::new();
    for ch in [channel::VOTES, channel::CERTIFICATES, channel::RESOLVER, channel::BLOCKS, channel::BACKFILL] {
        let (inner, receiver) = control.register(ch, quota).await.unwrap();
        let withheld =
            if ch == channel::VOTES || ch == channel::BLOCKS { withheld.clone() } else { Withheld::default() };
        let tap = Tap { inner, others: others.clone(), withheld, from: index, channel: ch, observer: observer.clone() };
        reg.push((tap, receiver));
    }
    let mut reg = reg.into_iter();
    let mut next = || reg.next().unwrap();
    let channels = Channels { votes: next(), certificates: next(), resolver: next(), blocks: next(), backfill: next() };
    let cfg = ValidatorConfig {
        namespace: namespace.to_vec(),
        key,
        participants,
        genesis,
        partition_prefix: format!("v{me}"),
    };
    engine::start_validator(context, cfg, shared, oracle.control(me), oracle.manager(), channels).await;
}
