//! A validator network at scale on commonware's simulated WAN, shared by the scale bench
//! (benches/scale.rs) and the fault tests (tests/faults.rs), which include it beside `common`,
//! `simnet` and ml's `adversarial`: N validators spread round-robin over five regions
//! ([`REGIONS`], one-way latencies in [`LATENCY_MS`]), the real simplex + marshal + `App` of
//! every validator (`simnet`), blocks filled with inference calls (digits MLP,
//! digits CNN, the worst-priced model the gas schedule admits) and transfers, and a [`Recorder`]
//! that sees every message sent and every block finalized, with the simulated time of each.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use commonware_codec::Decode as _;
use commonware_cryptography::Digestible as _;
use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::PrivateKey;
use commonware_cryptography::sha256::Digest;
use commonware_p2p::simulated::{Link, Oracle};
use commonware_runtime::{Clock, Handle, Runner as _, Spawner, Supervisor as _, deterministic};
use commonware_utils::{ordered::Set, probability::Probability};
use fixpoint_consensus::app::PublicKey;
use fixpoint_consensus::engine::channel;
use fixpoint_consensus::mocks::Proposer;
use fixpoint_consensus::{Block, BlockLimits, Executed, Executor, PendingTx, Shared, Sink, SinkError};
use fixpoint_evm::{ChainSpec, WorldState};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, ModelStore, REGISTRY_ADDRESS};

use crate::common::{model_case, signed_call as tx};
use crate::simnet::{Node, Observer, SCALE_QUOTA, Withheld, start_network, start_validator};

/// The signing namespace of the simulated chain.
pub const NAMESPACE: &[u8] = b"fixpoint-scale";
/// Block gas limit.
pub const GAS_LIMIT: u64 = 30_000_000;

/// The regions validators sit in (validator `i` in region `i % 5`).
pub const REGIONS: [&str; 5] = ["us-east", "us-west", "eu-west", "ap-northeast", "sa-east"];

/// One-way latency between regions, ms: about half the round-trip times public cloud providers
/// publish between such regions (not measured here); 2 ms inside a region.
pub const LATENCY_MS: [[u64; 5]; 5] =
    [[2, 33, 35, 75, 58], [33, 2, 63, 50, 88], [35, 63, 2, 105, 90], [75, 50, 105, 2, 128], [58, 88, 90, 128, 2]];

/// The link from region `a` to region `b`: jitter (standard deviation) a tenth of the latency,
/// `loss_per_mille` of messages lost between regions, none inside one.
pub fn link(a: usize, b: usize, loss_per_mille: u64) -> Link {
    let ms = LATENCY_MS[a][b];
    let loss = if a == b { 0 } else { loss_per_mille };
    Link {
        latency: Duration::from_millis(ms),
        jitter: Duration::from_micros(ms * 100),
        success_rate: Probability::new(1000 - loss, 1000).expect("a probability"),
    }
}

/// What validators do wrong in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// The last `f` validators crash once the measured phase starts.
    Crash(usize),
    /// The last `f` validators propose tampered blocks (the byzantine variants in turn).
    Byzantine(usize),
    /// Region 4 is cut off from the others for a while, then the links come back.
    Partition,
}

/// The byzantine variants, given out in turn.
pub const VARIANTS: [Proposer; 5] = [
    Proposer::WrongStateRoot,
    Proposer::WrongInferenceOutput,
    Proposer::WrongRecordsRoot,
    Proposer::InvalidTransaction,
    Proposer::FutureTimestamp,
];

/// Transaction kinds in the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One call of the digits MLP.
    Mlp,
    /// One call of the digits CNN.
    Cnn,
    /// One call of the worst-priced model (13.2M warm gas: at most two per block).
    Heavy,
    /// A 1-wei transfer.
    Transfer,
}

/// How many of each kind make one "unit" of load, about a block's worth of gas.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// MLP calls.
    pub mlp: usize,
    /// CNN calls.
    pub cnn: usize,
    /// Worst-priced model calls.
    pub heavy: usize,
    /// Transfers.
    pub transfers: usize,
}

impl Mix {
    /// About 30M gas: one worst-priced call (13.9M with calldata), 100 MLP calls (~4.6M), 60 CNN
    /// calls (~5.4M), 200 transfers (4.2M).
    pub const FULL: Mix = Mix { mlp: 100, cnn: 60, heavy: 1, transfers: 200 };
    /// A light mix for the fault tests (kept quick in the test profile).
    pub const LIGHT: Mix = Mix { mlp: 8, cnn: 4, heavy: 0, transfers: 8 };

    /// The kinds of one unit, interleaved so that any prefix holds a bit of each.
    pub fn slots(&self) -> Vec<Kind> {
        let mut v: Vec<(u64, Kind)> = Vec::new();
        for (n, k) in
            [(self.heavy, Kind::Heavy), (self.mlp, Kind::Mlp), (self.cnn, Kind::Cnn), (self.transfers, Kind::Transfer)]
        {
            // Spread each kind evenly over [0, 1) (as a fraction of 2^20).
            for i in 0..n {
                v.push((((2 * i as u64 + 1) << 20) / (2 * n as u64), k));
            }
        }
        v.sort_by_key(|(p, _)| *p);
        v.into_iter().map(|(_, k)| k).collect()
    }
}

/// A user of the workload: one per slot of the unit.
pub fn user(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("scale user {i}"))).expect("key")
}

/// The models and their calls.
pub struct Workload {
    /// Registration transactions (users 0..3, nonce 0).
    pub registrations: Vec<Bytes>,
    mlp: (Vec<u8>, u64),
    cnn: (Vec<u8>, u64),
    heavy: Option<(Vec<u8>, u64)>,
    slots: Vec<Kind>,
    /// Units generated so far.
    pub units: u64,
}

impl Workload {
    /// The workload of `mix` (the worst-priced model built only when the mix calls it).
    pub fn new(mix: Mix) -> Self {
        let (mlp, mlp_in, _) = model_case("digits-mlp");
        let (cnn, cnn_in, _) = model_case("digits-cnn");
        let call = |m: &[u8], input: Vec<u8>| I::inferCall { modelId: keccak256(m), input: input.into() }.abi_encode();
        let mut registrations = vec![
            tx(&user(0), 0, REGISTRY_ADDRESS, R::registerCall { model: mlp.clone().into() }.abi_encode(), 10_000_000),
            tx(&user(1), 0, REGISTRY_ADDRESS, R::registerCall { model: cnn.clone().into() }.abi_encode(), 10_000_000),
        ];
        let heavy = (mix.heavy > 0).then(|| {
            let case =
                crate::adversarial::conv(1, 1, 1 << 16, 1 << 16, 1 << 16, fixpoint_ml::ops::Window::new(1, 1), false)
                    .expect("the verifier accepts it");
            let model = case.model.to_bytes();
            let engine = fixpoint_ml::Engine::load(&model, &fixpoint_ml::Limits::default()).expect("loads");
            let input = vec![0u8; fixpoint_ml::io::input_len(engine.model())];
            let data = call(&model, input);
            let warm = fixpoint_precompiles::gas::warm_infer_gas(engine.cost(), engine.model().nodes.len() as u64);
            let cold = fixpoint_precompiles::gas::cold_surcharge(model.len() as u64);
            let floor = 21_000 + 10 * data.len() as u64;
            let gas = (21_000 + 16 * data.len() as u64 + warm + cold).max(floor) + 50_000;
            let reg = R::registerCall { model: model.into() }.abi_encode();
            registrations.push(tx(&user(2), 0, REGISTRY_ADDRESS, reg, 10_000_000));
            (data, gas)
        });
        Self {
            registrations,
            mlp: (call(&mlp, mlp_in), 80_000),
            cnn: (call(&cnn, cnn_in), 400_000),
            heavy,
            slots: mix.slots(),
            units: 0,
        }
    }

    /// The next unit of load: slot `j` sent by user `j` (nonces follow on from the
    /// registrations).
    pub fn next_unit(&mut self) -> Vec<Bytes> {
        let unit = self.units;
        self.units += 1;
        self.slots
            .iter()
            .enumerate()
            .map(|(j, kind)| {
                let nonce = unit + u64::from(j < self.registrations.len());
                let (to, data, gas) = match kind {
                    Kind::Mlp => (INFERENCE_ADDRESS, self.mlp.0.clone(), self.mlp.1),
                    Kind::Cnn => (INFERENCE_ADDRESS, self.cnn.0.clone(), self.cnn.1),
                    Kind::Heavy => {
                        let (d, g) = self.heavy.as_ref().expect("the mix has heavy calls");
                        (INFERENCE_ADDRESS, d.clone(), *g)
                    }
                    Kind::Transfer => (Address::repeat_byte(0x42), Vec::new(), 21_000),
                };
                tx(&user(j), nonce, to, data, gas)
            })
            .collect()
    }

    /// Users that send.
    pub fn users(&self) -> usize {
        self.slots.len().max(self.registrations.len())
    }
}

/// Genesis: every user funded.
pub fn genesis(users: usize) -> (Block, WorldState) {
    let mut state = WorldState::new();
    for i in 0..users {
        state.fund(user(i).address(), U256::from(10u128.pow(24)));
    }
    // Timestamp 0: the deterministic clock starts at the Unix epoch.
    (Block::genesis(fixpoint_evm::state_root(&state), GAS_LIMIT, 0, 1_000_000_000), state)
}

/// A validator's executor, with a model store of its own.
pub fn executor() -> Executor {
    Executor {
        spec: ChainSpec::DEV,
        gas_limit: GAS_LIMIT,
        limits: BlockLimits::default(),
        models: Arc::new(ModelStore::default()),
    }
}

/// Bytes sent, by channel group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes3 {
    /// Votes, certificates and simplex's resolver.
    pub consensus: u64,
    /// Block broadcast.
    pub blocks: u64,
    /// Marshal backfill.
    pub backfill: u64,
}

impl Bytes3 {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.consensus + self.blocks + self.backfill
    }

    /// `self - earlier`.
    pub fn since(&self, earlier: &Bytes3) -> Bytes3 {
        Bytes3 {
            consensus: self.consensus - earlier.consensus,
            blocks: self.blocks - earlier.blocks,
            backfill: self.backfill - earlier.backfill,
        }
    }
}

/// A finalized block as the first validator to persist it saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its digest.
    pub digest: Digest,
    /// Transactions.
    pub txs: usize,
    /// Gas used.
    pub gas_used: u64,
    /// Inference calls.
    pub calls: usize,
}

#[derive(Default)]
struct Log {
    /// Bytes each validator sent.
    sent: Vec<Bytes3>,
    /// When each block digest was first broadcast (its proposal).
    proposed: HashMap<Digest, SystemTime>,
    /// When each validator finalized each height.
    finalized: Vec<BTreeMap<u64, SystemTime>>,
    /// Each finalized height's block.
    blocks: BTreeMap<u64, Seen>,
}

/// Sees every message sent and every block finalized, with the simulated time.
pub struct Recorder {
    clock: Mutex<deterministic::Context>,
    log: Mutex<Log>,
}

impl Recorder {
    /// A recorder for `n` validators reading the simulated clock of `clock`.
    pub fn new(clock: deterministic::Context, n: usize) -> Arc<Self> {
        let log = Log { sent: vec![Bytes3::default(); n], finalized: vec![BTreeMap::new(); n], ..Default::default() };
        Arc::new(Self { clock: Mutex::new(clock), log: Mutex::new(log) })
    }

    fn now(&self) -> SystemTime {
        self.clock.lock().unwrap().current()
    }

    /// Bytes sent so far by each validator.
    pub fn sent(&self) -> Vec<Bytes3> {
        self.log.lock().unwrap().sent.clone()
    }

    /// Proposal-to-finalization latencies of the heights in `heights` at validators `who`.
    pub fn latencies(&self, heights: std::ops::RangeInclusive<u64>, who: &[usize]) -> Vec<Duration> {
        let log = self.log.lock().unwrap();
        let mut out = Vec::new();
        for h in heights {
            let Some(seen) = log.blocks.get(&h) else { continue };
            let Some(proposed) = log.proposed.get(&seen.digest) else { continue };
            for v in who {
                if let Some(t) = log.finalized[*v].get(&h) {
                    out.push(t.duration_since(*proposed).unwrap_or_default());
                }
            }
        }
        out
    }

    /// The finalized blocks at `heights`.
    pub fn blocks(&self, heights: std::ops::RangeInclusive<u64>) -> Vec<Seen> {
        let log = self.log.lock().unwrap();
        heights.filter_map(|h| log.blocks.get(&h).cloned()).collect()
    }

    /// A sink for validator `index`.
    pub fn sink(self: &Arc<Self>, index: usize) -> Arc<dyn Sink> {
        Arc::new(Finality { index, recorder: self.clone() })
    }
}

impl Observer for Recorder {
    fn sent(&self, from: usize, ch: u64, message: &[u8], recipients: usize) {
        let bytes = (message.len() * recipients) as u64;
        let proposal = (ch == channel::BLOCKS)
            .then(|| Block::decode_cfg(message.to_vec(), &BlockLimits::default()).ok().map(|b| b.digest()))
            .flatten();
        let now = proposal.map(|_| self.now());
        let mut log = self.log.lock().unwrap();
        let s = &mut log.sent[from];
        match ch {
            channel::BLOCKS => s.blocks += bytes,
            channel::BACKFILL => s.backfill += bytes,
            _ => s.consensus += bytes,
        }
        if let (Some(d), Some(t)) = (proposal, now) {
            log.proposed.entry(d).or_insert(t);
        }
    }
}

/// A validator's sink: records when it finalized each height.
struct Finality {
    index: usize,
    recorder: Arc<Recorder>,
}

impl Sink for Finality {
    fn finalized(&self, block: &Block, executed: &Executed) -> Result<(), SinkError> {
        let now = self.recorder.now();
        let h = block.body().height;
        let mut log = self.recorder.log.lock().unwrap();
        log.finalized[self.index].insert(h, now);
        log.blocks.entry(h).or_insert_with(|| Seen {
            digest: block.digest(),
            txs: block.body().txs.len(),
            gas_used: block.body().gas_used,
            calls: executed.records.len(),
        });
        Ok(())
    }
}

/// N validators on the simulated WAN.
pub struct Cluster {
    pub context: deterministic::Context,
    pub oracle: Oracle<PublicKey, deterministic::Context>,
    pub n: usize,
    pub keys: Vec<PrivateKey>,
    pub participants: Set<PublicKey>,
    pub genesis: Block,
    pub shared: Vec<Arc<Shared>>,
    pub handles: Vec<Option<Handle<()>>>,
    pub recorder: Arc<Recorder>,
    pub workload: Workload,
    /// Validators that are down (crashed): they get no transactions.
    pub down: Vec<bool>,
    /// Validators proposing tampered blocks.
    pub byzantine: Vec<bool>,
    loss_per_mille: u64,
    /// Transactions submitted, with the time.
    pub submitted: Vec<(B256, SystemTime)>,
}

impl Cluster {
    /// `n` validators (the last `byzantine` proposing tampered blocks, the variants in turn)
    /// linked by the WAN matrix with `loss_per_mille` cross-region loss; not started yet.
    pub async fn new(
        context: deterministic::Context,
        n: usize,
        mix: Mix,
        byzantine: usize,
        loss_per_mille: u64,
    ) -> Self {
        let (keys, participants, oracle) = start_network(&context, n, |a, b| link(a % 5, b % 5, loss_per_mille)).await;
        let workload = Workload::new(mix);
        let (genesis, state) = genesis(workload.users());
        let recorder = Recorder::new(context.child("recorder"), n);
        let byz: Vec<bool> = (0..n).map(|i| i >= n - byzantine).collect();
        let shared = (0..n)
            .map(|i| {
                let fault = if byz[i] { VARIANTS[(n - 1 - i) % VARIANTS.len()] } else { Proposer::Honest };
                let beneficiary = Address::with_last_byte((i % 250) as u8 + 1);
                let s = Shared::with_proposer(executor(), &genesis, state.clone(), fault, beneficiary);
                s.set_sink(recorder.sink(i));
                s
            })
            .collect();
        Self {
            context,
            oracle,
            n,
            keys,
            participants,
            genesis,
            shared,
            handles: (0..n).map(|_| None).collect(),
            recorder,
            workload,
            down: vec![false; n],
            byzantine: byz,
            loss_per_mille,
            submitted: Vec::new(),
        }
    }

    /// Starts validator `i` as one supervised task.
    pub fn start(&mut self, i: usize) {
        let (oracle, key, participants, shared, genesis) = (
            self.oracle.clone(),
            self.keys[i].clone(),
            self.participants.clone(),
            self.shared[i].clone(),
            self.genesis.clone(),
        );
        let observer: Arc<dyn Observer> = self.recorder.clone();
        let handle = self.context.child("validator").with_attribute("index", i).spawn(move |ctx| async move {
            let node = Node { index: i, key, shared, withheld: Withheld::default(), observer: Some(observer) };
            start_validator(ctx.child("node"), &oracle, NAMESPACE, participants, genesis, node, SCALE_QUOTA).await;
            futures::future::pending::<()>().await
        });
        self.handles[i] = Some(handle);
        self.down[i] = false;
    }

    /// Starts every validator.
    pub fn start_all(&mut self) {
        for i in 0..self.n {
            self.start(i);
        }
    }

    /// Kills validator `i`.
    pub async fn crash(&mut self, i: usize) {
        if let Some(h) = self.handles[i].take() {
            h.abort();
            let _ = h.await;
        }
        self.down[i] = true;
    }

    /// Validators that are up and honest.
    pub fn honest(&self) -> Vec<usize> {
        (0..self.n).filter(|i| !self.down[*i] && !self.byzantine[*i]).collect()
    }

    /// Validators in region `r`.
    pub fn region(&self, r: usize) -> Vec<usize> {
        (0..self.n).filter(|i| i % 5 == r).collect()
    }

    /// Cuts (`heal` false) or restores the links between region `r` and the others.
    pub async fn cut_region(&self, r: usize, heal: bool) {
        let pks: Vec<PublicKey> = self.keys.iter().map(|k| k.public_key()).collect();
        for a in self.region(r) {
            for b in (0..self.n).filter(|b| b % 5 != r) {
                for (x, y) in [(a, b), (b, a)] {
                    if heal {
                        let l = link(x % 5, y % 5, self.loss_per_mille);
                        let _ = self.oracle.add_link(pks[x].clone(), pks[y].clone(), l).await;
                    } else {
                        let _ = self.oracle.remove_link(pks[x].clone(), pks[y].clone()).await;
                    }
                }
            }
        }
    }

    /// Gives `txs` to every validator that is up (decoded and recovered once); how many the
    /// first of them admitted (a refusal is printed: it means the workload is wrong).
    pub fn submit(&mut self, txs: Vec<Bytes>) -> usize {
        let now = self.context.current();
        self.submitted.extend(txs.iter().map(|t| (keccak256(t), now)));
        let pending = PendingTx::decode_all(txs);
        let mut first = None;
        for (i, s) in self.shared.iter().enumerate() {
            if self.down[i] {
                continue;
            }
            if first.is_some() {
                s.submit_decoded(pending.clone());
                continue;
            }
            let mut added = 0;
            for t in &pending {
                match s.offer(t.clone()) {
                    fixpoint_consensus::mempool::Offered::Added => added += 1,
                    other => eprintln!("validator {i} did not admit a workload transaction: {other:?}"),
                }
            }
            first = Some(added);
        }
        first.unwrap_or(0)
    }

    /// The lowest finalized height among `who`.
    pub fn height(&self, who: &[usize]) -> u64 {
        who.iter().map(|i| self.shared[*i].head().0.body().height).min().unwrap_or(0)
    }

    /// Keeps `backlog` units pending (with a workload) and waits until `who` all finalized
    /// `height`, or `deadline` (simulated) passes; whether they did.
    pub async fn drive(&mut self, who: &[usize], height: u64, backlog: usize, deadline: Duration) -> bool {
        let end = self.context.current() + deadline;
        let per_unit = self.workload.slots.len();
        loop {
            let feeder = who.first().copied().unwrap_or(0);
            // At most `backlog` units a tick, so that a workload the pool refuses cannot run away.
            for _ in 0..backlog {
                if self.shared[feeder].pending() >= backlog * per_unit {
                    break;
                }
                let unit = self.workload.next_unit();
                if self.submit(unit) == 0 {
                    break;
                }
            }
            if self.height(who) >= height {
                return true;
            }
            if self.context.current() > end {
                return false;
            }
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers the models (a block or two) and waits until `who` finalized them.
    pub async fn register_models(&mut self, who: &[usize]) -> bool {
        let regs = self.workload.registrations.clone();
        let n = regs.len();
        self.submit(regs);
        let end = self.context.current() + Duration::from_secs(120);
        loop {
            let done = who.iter().all(|i| {
                let f = self.shared[*i].finalized();
                f.iter().map(|b| b.txs).sum::<usize>() >= n
            });
            if done {
                return true;
            }
            if self.context.current() > end {
                return false;
            }
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Checks that validators `who` finalized the same chain (digest, state root, records root,
/// transactions: every field of every height) up to the lowest of their heights, with no gap;
/// returns that height.
pub fn assert_agree(shared: &[Arc<Shared>], who: &[usize]) -> u64 {
    let chains: Vec<_> = who.iter().map(|i| shared[*i].finalized()).collect();
    let common = chains.iter().map(Vec::len).min().expect("validators");
    assert!(common > 1, "nothing finalized");
    for (k, c) in chains.iter().enumerate() {
        assert_eq!(c[..common], chains[0][..common], "validator {} differs from validator {}", who[k], who[0]);
        for (h, b) in c.iter().enumerate() {
            assert_eq!(b.height, h as u64, "validator {}: heights are contiguous from genesis", who[k]);
        }
    }
    common as u64 - 1
}

/// The `q`-quantile (0..=1) of `v`, sorted here.
pub fn quantile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// What one run measured, over its measured phase (after the models are registered and a
/// couple of loaded blocks, and after any crash).
#[derive(Debug)]
pub struct Outcome {
    /// Validators.
    pub n: usize,
    /// The fault injected.
    pub fault: Fault,
    /// The finalized blocks of the phase.
    pub blocks: Vec<Seen>,
    /// Simulated time the phase took.
    pub sim: Duration,
    /// Wall-clock time of the whole run.
    pub wall: Duration,
    /// Proposal (first broadcast) to finalization at each honest validator that is up, per block.
    pub latencies: Vec<Duration>,
    /// Bytes each validator that is up sent during the phase.
    pub sent: Vec<Bytes3>,
    /// Execution time of each honest validator that is up during the phase.
    pub exec: Vec<fixpoint_consensus::ExecutionTime>,
    /// Honest validators that agree on the chain (all honest ones that are up).
    pub agreeing: usize,
    /// Their common finalized height at the end.
    pub height: u64,
    /// Partition runs: region 4's highest height while cut off, and the others' at the heal.
    pub partition: Option<(u64, u64)>,
    /// Byzantine runs: tampered proposals made, and refusals of them by honest validators.
    pub tampered: Option<(usize, usize)>,
}

fn exec_since(
    a: &fixpoint_consensus::ExecutionTime,
    b: &fixpoint_consensus::ExecutionTime,
) -> fixpoint_consensus::ExecutionTime {
    use fixpoint_consensus::Work;
    let w = |x: Work, y: Work| Work { blocks: x.blocks - y.blocks, time: x.time - y.time };
    fixpoint_consensus::ExecutionTime { built: w(a.built, b.built), verified: w(a.verified, b.verified) }
}

/// Runs `n` validators with `fault` under load `mix` until the honest ones finalized `blocks`
/// blocks past the start of the measured phase, checking on the way that they keep finalizing,
/// and at the end that every honest validator that is up agrees on the finalized chain; in a
/// byzantine run, that no tampered proposal was finalized and each was refused; in a partition
/// run, that the cut-off region did not finalize while cut and caught up after the heal.
pub fn run(seed: u64, n: usize, fault: Fault, mix: Mix, blocks: u64, loss_per_mille: u64) -> Outcome {
    let wall = std::time::Instant::now();
    let cfg = deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(7200)));
    deterministic::Runner::new(cfg).start(|context| async move {
        let byzantine = if let Fault::Byzantine(f) = fault { f } else { 0 };
        let mut c = Cluster::new(context, n, mix, byzantine, loss_per_mille).await;
        c.start_all();
        let honest = c.honest();
        assert!(c.register_models(&honest).await, "{n} validators: the models were never registered");
        let h = c.height(&honest);
        assert!(c.drive(&honest, h + 2, 2, Duration::from_secs(600)).await, "{n} validators: no loaded block");
        if let Fault::Crash(f) = fault {
            for i in n - f..n {
                c.crash(i).await;
            }
        }
        let who = c.honest();
        let up: Vec<usize> = (0..n).filter(|i| !c.down[*i]).collect();
        let (t0, h0) = (c.context.current(), c.height(&who));
        let sent0 = c.recorder.sent();
        let exec0: Vec<_> = who.iter().map(|i| c.shared[*i].execution_time()).collect();
        let mut partition = None;
        if fault == Fault::Partition {
            let cut = c.region(4);
            let rest: Vec<usize> = who.iter().copied().filter(|i| i % 5 != 4).collect();
            c.cut_region(4, false).await;
            let top =
                |c: &Cluster, v: &[usize]| v.iter().map(|i| c.shared[*i].head().0.body().height).max().unwrap_or(0);
            let at_cut = top(&c, &who);
            assert!(
                c.drive(&rest, at_cut + blocks, 2, Duration::from_secs(600)).await,
                "{n} validators: the other regions stalled while region 4 was cut off"
            );
            let cut_top = top(&c, &cut);
            let rest_height = c.height(&rest);
            // What was in flight at the cut (a view or two past the highest finalized height) may
            // still reach region 4; nothing after it can.
            assert!(
                cut_top <= at_cut + 2 && cut_top < rest_height,
                "region 4 reached {cut_top} while cut off (the highest at the cut: {at_cut}, the others: {rest_height})"
            );
            c.cut_region(4, true).await;
            assert!(
                c.drive(&who, rest_height + 3, 2, Duration::from_secs(600)).await,
                "{n} validators: region 4 did not catch up after the heal"
            );
            partition = Some((cut_top, rest_height));
        } else {
            assert!(c.drive(&who, h0 + blocks, 2, Duration::from_secs(600)).await, "{n} validators: the chain stalled");
        }
        let (t1, h1) = (c.context.current(), c.height(&who));
        let sent1 = c.recorder.sent();
        let exec: Vec<_> =
            who.iter().zip(&exec0).map(|(i, e0)| exec_since(&c.shared[*i].execution_time(), e0)).collect();
        let height = assert_agree(&c.shared, &who);
        for i in &who {
            assert!(c.shared[*i].finalizer_failures().is_empty(), "validator {i} failed to apply a finalized block");
        }
        let tampered = (byzantine > 0).then(|| {
            let tampered: Vec<Digest> =
                (0..n).filter(|i| c.byzantine[*i]).flat_map(|i| c.shared[i].tampered()).map(|(_, d)| d).collect();
            assert!(!tampered.is_empty(), "no byzantine leader tampered");
            let mut refusals = 0;
            for i in &who {
                let f = c.shared[*i].finalized();
                assert!(f.iter().all(|b| !tampered.contains(&b.digest)), "validator {i} finalized a tampered block");
                let refused = c.shared[*i].refused();
                assert!(refused.iter().all(|r| tampered.contains(&r.digest)), "validator {i} refused an honest block");
                refusals += refused.len();
            }
            assert!(refusals > 0, "no tampered proposal was refused");
            (tampered.len(), refusals)
        });
        Outcome {
            n,
            fault,
            blocks: c.recorder.blocks(h0 + 1..=h1),
            sim: t1.duration_since(t0).unwrap_or_default(),
            wall: wall.elapsed(),
            latencies: c.recorder.latencies(h0 + 1..=h1, &who),
            sent: up.iter().map(|i| sent1[*i].since(&sent0[*i])).collect(),
            exec,
            agreeing: who.len(),
            height,
            partition,
            tampered,
        }
    })
}
