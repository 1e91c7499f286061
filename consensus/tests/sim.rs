//! Deterministic simulation of the validator network: 4 validators on commonware's simulated
//! network (simplex + marshal, the real engines), each re-executing every block with the real
//! executor. Honest validators finalize the same chain with the same state roots and inference
//! records; a byzantine proposer's blocks are refused by every honest validator and never
//! finalized, and the chain goes on.

#[path = "../../ml/tests/common/adversarial.rs"]
mod adversarial;
#[path = "../../ml/tests/common/causal.rs"]
mod causal;
mod common;
#[path = "common/simnet.rs"]
mod simnet;

use common::{model_case, signed_call as tx};
use simnet::{Node, QUOTA, Withheld, start_network, start_validator};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, Bytes, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use commonware_codec::{Decode as _, Encode as _};
use commonware_cryptography::Digestible as _;
use commonware_cryptography::Signer;
use commonware_cryptography::ed25519::PrivateKey;
use commonware_p2p::simulated::{Link, Oracle};
use commonware_runtime::{Clock, Handle, Runner, Spawner, Supervisor as _, deterministic};
use commonware_utils::{ordered::Set, probability};
use fixpoint_consensus::app::PublicKey;
use fixpoint_consensus::mocks::Proposer;
use fixpoint_consensus::{Block, BlockLimits, Executor, VerifyError};
use fixpoint_consensus::{Executed, Shared, Sink, SinkError};
use fixpoint_evm::{ChainSpec, WorldState};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, ModelStore, REGISTRY_ADDRESS};

const NAMESPACE: &[u8] = b"fixpoint-sim";
const N: usize = 4;

fn user(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("sim user {i}"))).unwrap()
}

/// User 0 registers `model`, then `calls` transactions to the inference precompile from 4 users
/// (user `k % 4`, nonces in order), the `k`-th with calldata and gas limit `call(k)`.
fn register_then(model: Vec<u8>, calls: usize, call: impl Fn(usize) -> (Vec<u8>, u64)) -> Vec<Bytes> {
    let register = R::registerCall { model: model.into() }.abi_encode();
    let mut txs = vec![tx(&user(0), 0, REGISTRY_ADDRESS, register, 10_000_000)];
    for k in 0..calls {
        let (u, n) = (k % 4, (k / 4) as u64 + u64::from(k % 4 == 0));
        let (data, gas) = call(k);
        txs.push(tx(&user(u), n, INFERENCE_ADDRESS, data, gas));
    }
    txs
}

/// Registration of the digits model, then `calls` inference transactions from 4 users.
fn workload(calls: usize) -> Vec<Bytes> {
    let (model, input, _) = model_case("digits-mlp");
    let infer = I::inferCall { modelId: keccak256(&model), input: input.into() }.abi_encode();
    register_then(model, calls, |_| (infer.clone(), 1_000_000))
}

/// An account funded for exactly `FLOOD_AFFORDABLE` 21,000-gas transactions at the test fee.
fn poor() -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256("sim poor user")).unwrap()
}

const FLOOD_AFFORDABLE: u64 = 10;

fn genesis() -> (Block, WorldState) {
    let mut state = WorldState::new();
    for i in 0..4 {
        state.fund(user(i).address(), U256::from(10u128.pow(24)));
    }
    // signed_call's max fee is 100 gwei.
    state.fund(poor().address(), U256::from(21_000u64 * 100_000_000_000 * FLOOD_AFFORDABLE));
    // Timestamp 0: the deterministic runtime's clock starts at the Unix epoch, and validators
    // refuse blocks stamped more than 15 s ahead of their clock.
    (Block::genesis(fixpoint_evm::state_root(&state), 30_000_000, 0, 1_000_000_000), state)
}

/// A validator's database in the simulation: the finalized blocks it persisted, encoded, in
/// height order. It outlives the validator's tasks; a restart reads only this.
#[derive(Default)]
struct Disk(Mutex<Vec<(u64, usize, Vec<u8>)>>);

impl Sink for Disk {
    fn finalized(&self, block: &Block, _executed: &Executed) -> Result<(), SinkError> {
        let mut d = self.0.lock().unwrap();
        let height = block.body().height;
        if d.last().map_or(1, |(h, _, _)| h + 1) != height {
            let e = std::io::Error::other(format!("block {height} does not follow the persisted chain"));
            return Err(SinkError::new(e));
        }
        d.push((height, block.body().txs.len(), block.encode().to_vec()));
        Ok(())
    }
}

impl Disk {
    /// The persisted blocks, decoded.
    fn blocks(&self) -> Vec<Block> {
        let d = self.0.lock().unwrap();
        d.iter().map(|(_, _, b)| Block::decode_cfg(b.clone(), &BlockLimits::default()).expect("decodes")).collect()
    }

    /// Height of the last persisted block and the transactions persisted.
    fn summary(&self) -> (u64, usize) {
        let d = self.0.lock().unwrap();
        (d.last().map_or(0, |(h, _, _)| *h), d.iter().map(|(_, n, _)| n).sum())
    }
}

/// A validator's executor, with a model store of its own.
fn executor() -> Executor {
    Executor {
        spec: ChainSpec::DEV,
        gas_limit: 30_000_000,
        limits: BlockLimits::default(),
        models: Arc::new(ModelStore::default()),
    }
}

/// A simulated network of `N` validators.
struct Sim {
    context: deterministic::Context,
    oracle: Oracle<PublicKey, deterministic::Context>,
    keys: Vec<PrivateKey>,
    participants: Set<PublicKey>,
    genesis: Block,
    shared: Vec<Arc<Shared>>,
    disks: Vec<Arc<Disk>>,
    withheld: Vec<Withheld>,
    handles: Vec<Option<Handle<()>>>,
    starts: usize,
    txs: Vec<Bytes>,
    submitted: usize,
    /// Send transactions to this validator only (all when `None`).
    only: Option<usize>,
    /// Transactions submitted per 200 ms tick.
    batch: usize,
}

impl Sim {
    async fn new(
        context: deterministic::Context,
        link: Link,
        byzantine: Option<(usize, Proposer)>,
        calls: usize,
    ) -> Self {
        let (keys, participants, oracle) = start_network(&context, N, |_, _| link.clone()).await;
        let (genesis, state) = genesis();
        let disks: Vec<Arc<Disk>> = (0..N).map(|_| Arc::default()).collect();
        let shared = (0..N)
            .map(|i| {
                let fault = byzantine.filter(|(b, _)| *b == i).map_or(Proposer::Honest, |(_, f)| f);
                let s = Shared::with_proposer(
                    executor(),
                    &genesis,
                    state.clone(),
                    fault,
                    Address::with_last_byte(i as u8 + 1),
                );
                s.set_sink(disks[i].clone());
                s
            })
            .collect();
        Self {
            context,
            oracle,
            keys,
            participants,
            genesis,
            shared,
            disks,
            withheld: (0..N).map(|_| Withheld::default()).collect(),
            handles: (0..N).map(|_| None).collect(),
            starts: 0,
            txs: workload(calls),
            submitted: 0,
            only: None,
            batch: 4,
        }
    }

    /// Starts validator `i` as one supervised task (aborting it stops everything it runs).
    fn start(&mut self, i: usize) {
        self.starts += 1;
        let (oracle, key, participants, shared, genesis, withheld) = (
            self.oracle.clone(),
            self.keys[i].clone(),
            self.participants.clone(),
            self.shared[i].clone(),
            self.genesis.clone(),
            self.withheld[i].clone(),
        );
        let handle =
            self.context.child("validator").with_attribute("start", self.starts).spawn(move |ctx| async move {
                let node = Node { index: i, key, shared, withheld, observer: None };
                start_validator(ctx.child("node"), &oracle, NAMESPACE, participants, genesis, node, QUOTA).await;
                futures::future::pending::<()>().await
            });
        self.handles[i] = Some(handle);
    }

    /// Kills validator `i`.
    async fn crash(&mut self, i: usize) {
        if let Some(h) = self.handles[i].take() {
            h.abort();
            let _ = h.await;
        }
    }

    /// Restarts validator `i` from its disk alone, as a node restarts from its database: a fresh
    /// model store, the persisted blocks decoded and re-executed from genesis, and a new
    /// [`Shared`] on the last one. Nothing of the crashed node's memory is reused.
    fn restart(&mut self, i: usize) {
        let exec = executor();
        let (mut parent, state) = genesis();
        let mut executed = Executed::start(0, state);
        for block in self.disks[i].blocks() {
            assert_eq!(block.body().parent, parent.digest(), "the disk holds a chain");
            let out = exec.verify(&parent, &executed.state, &block).expect("a persisted block re-executes");
            executed = Executed::new(block.body().height, out, Default::default());
            executed.finalize_models(&exec.models);
            parent = block;
        }
        let state = Arc::try_unwrap(executed).map_or_else(|e| e.state.clone(), |e| e.state);
        let shared = Shared::new(exec, &parent, state, Address::with_last_byte(i as u8 + 1));
        shared.set_sink(self.disks[i].clone());
        self.shared[i] = shared;
        // Its pool was lost; clients resubmit (what is already final is skipped by nonce).
        self.shared[i].submit(self.txs[..self.submitted].iter().cloned());
        self.start(i);
    }

    /// Validator `i` persisted height `height` (and, with `all_txs`, every transaction).
    fn reached(&self, i: usize, height: u64, all_txs: bool) -> bool {
        let (h, txs) = self.disks[i].summary();
        h >= height && (!all_txs || txs == self.txs.len())
    }

    /// Feeds four transactions every 200 ms to every validator until the validators in `nodes`
    /// finalized height `height` (and, with `all_txs`, every transaction), or `deadline` passes.
    async fn drive(&mut self, nodes: &[usize], height: u64, all_txs: bool, deadline: Duration) -> bool {
        let end = self.context.current() + deadline;
        loop {
            if self.submitted < self.txs.len() {
                let next = (self.submitted + self.batch).min(self.txs.len());
                for (i, s) in self.shared.iter().enumerate() {
                    if self.only.is_none_or(|o| o == i) {
                        s.submit(self.txs[self.submitted..next].iter().cloned());
                    }
                }
                self.submitted = next;
            }
            if nodes.iter().all(|i| self.reached(*i, height, all_txs)) {
                return true;
            }
            if self.context.current() > end {
                return false;
            }
            self.context.sleep(Duration::from_millis(200)).await;
        }
    }

    /// From now on, the votes and blocks of the validators in `from` do not reach those in `to`.
    fn withhold(&self, from: &[usize], to: &[usize]) {
        for f in from {
            *self.withheld[*f].lock().unwrap() = to.iter().map(|t| self.keys[*t].public_key()).collect();
        }
    }

    async fn set_links(&self, pairs: &[(usize, usize)], link: Option<Link>) {
        // Validator i is keys[i] (the participant set is sorted by key, not in this order).
        let p: Vec<PublicKey> = self.keys.iter().map(|k| k.public_key()).collect();
        for (a, b) in pairs {
            for (x, y) in [(*a, *b), (*b, *a)] {
                match &link {
                    Some(l) => {
                        let _ = self.oracle.add_link(p[x].clone(), p[y].clone(), l.clone()).await;
                    }
                    None => {
                        let _ = self.oracle.remove_link(p[x].clone(), p[y].clone()).await;
                    }
                }
            }
        }
    }
}

/// Simulated seconds after the Unix epoch (where the deterministic clock starts) that no run
/// exceeds: the runner's timeout.
const SIM_END_BOUND: u64 = 1200;

const LINK: Link =
    Link { latency: Duration::from_millis(20), jitter: Duration::from_millis(5), success_rate: probability!(1.0) };

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::new().with_seed(seed).with_timeout(Some(Duration::from_secs(SIM_END_BOUND))),
    )
}

/// Runs 4 validators (validator `byzantine`, if any, proposes with `fault`) until every honest
/// one finalized `height` blocks and every transaction; returns each validator's shared state.
fn run(seed: u64, height: u64, calls: usize, byzantine: Option<(usize, Proposer)>) -> Vec<Arc<Shared>> {
    run_with(seed, height, workload(calls), byzantine)
}

/// [`run`] with the transactions `txs`.
fn run_with(seed: u64, height: u64, txs: Vec<Bytes>, byzantine: Option<(usize, Proposer)>) -> Vec<Arc<Shared>> {
    runner(seed).start(|context| async move {
        let mut sim = Sim::new(context, LINK, byzantine, 0).await;
        sim.txs = txs;
        for i in 0..N {
            sim.start(i);
        }
        let honest: Vec<usize> = (0..N).filter(|i| byzantine.is_none_or(|(b, _)| b != *i)).collect();
        if byzantine.is_none() {
            assert!(sim.drive(&honest, height, true, Duration::from_secs(300)).await, "the chain stalled");
            return sim.shared;
        }
        // Clients first reach only the byzantine validator, so each block it leads has
        // transactions (and inference) to tamper with; once the honest validators refused one,
        // every validator gets them and the honest leaders include them.
        let b = byzantine.map_or(0, |(b, _)| b);
        sim.only = Some(b);
        let end = sim.context.current() + Duration::from_secs(300);
        while honest.iter().all(|i| sim.shared[*i].refused().is_empty()) {
            assert!(
                sim.context.current() < end,
                "the byzantine leader was never refused: proposed {:?}, heights {:?}, pending {}",
                sim.shared.iter().map(|x| x.proposed()).collect::<Vec<_>>(),
                sim.shared.iter().map(|x| x.finalized().len()).collect::<Vec<_>>(),
                sim.shared[b].pending()
            );
            sim.drive(&honest, u64::MAX, false, Duration::from_millis(200)).await;
        }
        sim.only = None;
        for i in &honest {
            sim.shared[*i].submit(sim.txs[..sim.submitted].iter().cloned());
        }
        assert!(sim.drive(&honest, height, true, Duration::from_secs(300)).await, "the chain stalled");
        sim.shared
    })
}

fn assert_honest_agree(shared: &[Arc<Shared>], honest: &[usize], height: u64) {
    let reference = &shared[honest[0]].finalized()[..=height as usize];
    for i in honest {
        let f = shared[*i].finalized();
        assert_eq!(&f[..=height as usize], reference, "validator {i} differs");
        for (h, b) in f.iter().enumerate() {
            assert_eq!(b.height, h as u64, "heights are contiguous");
        }
    }
}

#[test]
fn four_validators_finalize_the_same_chain_with_inference() {
    for seed in [1, 2, 3, 4, 5] {
        let shared = run(seed, 12, 40, None);
        assert_honest_agree(&shared, &[0, 1, 2, 3], 12);
        let f = shared[0].finalized();
        let included: usize = f.iter().map(|b| b.txs).sum();
        assert_eq!(included, 41, "seed {seed}: every transaction finalized once");
        assert!(f.iter().any(|b| b.records_root != fixpoint_evm::records_root(&[])), "inference records committed");
        assert!(shared.iter().all(|s| s.refused().is_empty()), "honest proposals are never refused");
        assert!(shared.iter().all(|s| s.finalizer_failures().is_empty()), "every finalized block applied");
        assert!(
            shared.iter().all(|s| s.proposed() > 0),
            "seed {seed}: every validator led: {:?}",
            shared.iter().map(|s| s.proposed()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn byzantine_proposers_are_never_finalized() {
    for (seed, fault) in [
        (7, Proposer::WrongStateRoot),
        (8, Proposer::WrongInferenceOutput),
        (9, Proposer::WrongRecordsRoot),
        (10, Proposer::InvalidTransaction),
        (11, Proposer::FutureTimestamp),
    ] {
        let shared = run(seed, 10, 200, Some((0, fault)));
        assert_refused_and_never_finalized(&shared, fault, 10, 201);
    }
}

/// What a run with validator 0 proposing with `fault` must show: the honest validators agree to
/// `height`, each refused every tampered proposal for the fault's reason (and nothing else), no
/// tampered block is finalized anywhere, the byzantine node follows the honest chain, and the
/// honest leaders included all `txs` transactions.
fn assert_refused_and_never_finalized(shared: &[Arc<Shared>], fault: Proposer, height: u64, txs: usize) {
    let honest = [1, 2, 3];
    assert_honest_agree(shared, &honest, height);
    let tampered = shared[0].tampered();
    assert!(!tampered.is_empty(), "{fault:?}: the byzantine leader tampered");
    // Every honest validator refused every tampered proposal for a height the run decided
    // (one made as the run stopped may not have reached anyone), for the fault's reason.
    let decided = honest.iter().map(|i| shared[*i].finalized().last().map_or(0, |f| f.height)).min().unwrap();
    let tampered_digests: Vec<_> = tampered.iter().map(|(_, d)| *d).collect();
    assert!(tampered.iter().any(|(h, _)| *h <= decided), "{fault:?}: nothing tampered was decided");
    for i in honest {
        let refused = shared[i].refused();
        for (_, d) in tampered.iter().filter(|(h, _)| *h <= decided) {
            let r = refused.iter().find(|r| r.digest == *d);
            let r = r.unwrap_or_else(|| panic!("{fault:?}: validator {i} did not refuse tampered proposal {d:?}"));
            let expected = match fault {
                Proposer::WrongStateRoot => matches!(r.reason, VerifyError::StateRoot { .. }),
                Proposer::WrongInferenceOutput | Proposer::WrongRecordsRoot => {
                    matches!(r.reason, VerifyError::RecordsRoot { .. })
                }
                Proposer::InvalidTransaction => matches!(r.reason, VerifyError::Execution(_)),
                Proposer::FutureTimestamp => matches!(r.reason, VerifyError::FutureTimestamp { .. }),
                Proposer::Honest => false,
            };
            assert!(expected, "{fault:?}: validator {i} refused for {}", r.reason);
        }
        // Only tampered proposals were refused.
        assert!(refused.iter().all(|r| tampered_digests.contains(&r.digest)), "{fault:?}: validator {i}: {refused:?}");
    }
    // No tampered proposal is in any node's finalized chain, no node failed to apply a
    // finalized block, and no finalized timestamp runs ahead of the clock.
    for (i, s) in shared.iter().enumerate() {
        let f = s.finalized();
        assert!(
            f.iter().all(|b| !tampered_digests.contains(&b.digest)),
            "{fault:?}: validator {i} finalized a tampered block"
        );
        assert!(s.finalizer_failures().is_empty(), "{fault:?}: validator {i}: {:?}", s.finalizer_failures());
        assert!(
            f.iter().all(|b| b.timestamp <= SIM_END_BOUND + fixpoint_consensus::execute::MAX_CLOCK_DRIFT),
            "{fault:?}: validator {i} finalized a timestamp from the future"
        );
    }
    // The byzantine validator itself follows the honest chain (through marshal), and the
    // run did something: it finalized the height too.
    let byz = shared[0].finalized();
    let reference = shared[1].finalized();
    assert!(byz.len() as u64 > height, "{fault:?}: the byzantine node finalized only {} blocks", byz.len());
    let common = byz.len().min(reference.len());
    assert_eq!(byz[..common], reference[..common], "{fault:?}");
    let included: usize = shared[1].finalized().iter().map(|b| b.txs).sum();
    assert_eq!(included, txs, "{fault:?}: honest leaders included every transaction");
}

#[test]
fn a_crashed_validator_restarts_from_its_disk_and_catches_up() {
    let (shared, disks) = runner(21).start(|context| async move {
        let mut sim = Sim::new(context, LINK, None, 40).await;
        for i in 0..N {
            sim.start(i);
        }
        assert!(sim.drive(&[0, 1, 2, 3], 3, false, Duration::from_secs(60)).await);
        sim.crash(3).await;
        // The other three are a quorum: the chain goes on without it.
        let before = sim.disks[3].summary();
        assert!(sim.drive(&[0, 1, 2], 12, false, Duration::from_secs(300)).await, "three validators keep finalizing");
        assert_eq!(sim.disks[3].summary(), before, "a crashed node persists nothing");
        sim.restart(3);
        assert!(sim.drive(&[0, 1, 2, 3], 14, true, Duration::from_secs(300)).await, "the restarted node caught up");
        (sim.shared, sim.disks)
    });
    assert_honest_agree(&shared, &[0, 1, 2], 14);
    // Every disk holds the same blocks, byte for byte, and the restarted node's log since its
    // restart is the others' at the same heights.
    let reference = disks[0].0.lock().unwrap()[..=13].to_vec();
    for (i, d) in disks.iter().enumerate() {
        assert_eq!(d.0.lock().unwrap()[..=13], reference[..], "validator {i}'s disk differs");
    }
    let restarted = shared[3].finalized();
    let first = restarted[0].height as usize;
    assert!(first >= 3, "validator 3 restarted on the blocks it had persisted");
    assert_eq!(restarted[..], shared[0].finalized()[first..first + restarted.len()], "the restarted node's chain");
    assert!(shared.iter().all(|s| s.finalizer_failures().is_empty()));
}

#[test]
fn a_partition_stalls_finality_and_healing_resumes_it() {
    let shared = runner(31).start(|context| async move {
        let mut sim = Sim::new(context, LINK, None, 40).await;
        for i in 0..N {
            sim.start(i);
        }
        assert!(sim.drive(&[0, 1, 2, 3], 3, false, Duration::from_secs(60)).await);
        let cut = [(0, 2), (0, 3), (1, 2), (1, 3)];
        sim.set_links(&cut, None).await;
        sim.context.sleep(Duration::from_secs(3)).await;
        let stalled: Vec<u64> = sim.shared.iter().map(|s| s.finalized().last().map_or(0, |f| f.height)).collect();
        sim.context.sleep(Duration::from_secs(20)).await;
        let later: Vec<u64> = sim.shared.iter().map(|s| s.finalized().last().map_or(0, |f| f.height)).collect();
        assert_eq!(stalled, later, "2 | 2: no side has a quorum, nothing is finalized");
        sim.set_links(&cut, Some(LINK)).await;
        assert!(sim.drive(&[0, 1, 2, 3], later[0] + 5, true, Duration::from_secs(300)).await, "healed");
        sim.shared
    });
    let h = shared[0].finalized().last().unwrap().height;
    assert_honest_agree(&shared, &[0, 1, 2, 3], h.min(shared[3].finalized().last().unwrap().height));
}

#[test]
fn a_late_joiner_syncs_and_lossy_links_still_finalize() {
    let lossy = Link { success_rate: probability!(0.85), ..LINK };
    let shared = runner(41).start(|context| async move {
        let mut sim = Sim::new(context, lossy, None, 40).await;
        for i in 0..3 {
            sim.start(i);
        }
        assert!(sim.drive(&[0, 1, 2], 10, false, Duration::from_secs(300)).await, "three validators on lossy links");
        assert!(sim.shared[3].finalized().is_empty());
        sim.start(3);
        assert!(sim.drive(&[0, 1, 2, 3], 12, true, Duration::from_secs(300)).await, "the late joiner synced");
        sim.shared
    });
    assert_honest_agree(&shared, &[0, 1, 2, 3], 12);
}

#[test]
fn thousands_of_inference_transactions_leave_identical_state_and_records() {
    let calls = 3_000;
    let shared = runner(51).start(|context| async move {
        let mut sim = Sim::new(context, LINK, None, calls).await;
        sim.batch = 250;
        for i in 0..N {
            sim.start(i);
        }
        assert!(sim.drive(&[0, 1, 2, 3], 5, true, Duration::from_secs(300)).await, "all finalized");
        sim.shared
    });
    let h = shared.iter().map(|s| s.finalized().last().unwrap().height).min().unwrap();
    assert_honest_agree(&shared, &[0, 1, 2, 3], h);
    let f = shared[0].finalized();
    assert_eq!(f.iter().map(|b| b.txs).sum::<usize>(), calls + 1);
    let with_records = f.iter().filter(|b| b.records_root != fixpoint_evm::records_root(&[])).count();
    assert!(with_records >= 2, "inference spread over several blocks");
}

/// Finding 4 of issue 11: a lightly funded account floods every validator with 10,000
/// transactions it cannot pay for together. Admission refuses all but the affordable ones, the
/// chain keeps finalizing, and every ordinary transaction lands. Prints the wall-clock time per
/// finalized block (the deterministic runtime's clock does not move while a leader computes).
#[test]
fn a_flood_of_refused_transactions_does_not_slow_the_chain() {
    let flood: Vec<Bytes> =
        (0..10_000u64).map(|n| tx(&poor(), n, Address::repeat_byte(0x42), Vec::new(), 21_000)).collect();
    let started = std::time::Instant::now();
    let shared = runner(61).start(|context| async move {
        let mut sim = Sim::new(context, LINK, None, 40).await;
        for i in 0..N {
            sim.start(i);
        }
        let admitted: Vec<usize> = sim.shared.iter().map(|s| s.submit(flood.iter().cloned())).collect();
        assert_eq!(admitted, vec![FLOOD_AFFORDABLE as usize; N], "only what the balance covers is pending");
        assert!(sim.drive(&[0, 1, 2, 3], 12, false, Duration::from_secs(300)).await, "the chain stalled");
        let want = sim.txs.len() + FLOOD_AFFORDABLE as usize;
        let end = sim.context.current() + Duration::from_secs(300);
        while sim.shared[0].finalized().iter().map(|b| b.txs).sum::<usize>() < want {
            assert!(sim.context.current() < end, "transactions missing");
            sim.drive(&[0, 1, 2, 3], u64::MAX, false, Duration::from_secs(1)).await;
        }
        sim.shared
    });
    let h = shared.iter().map(|s| s.finalized().last().unwrap().height).min().unwrap();
    assert_honest_agree(&shared, &[0, 1, 2, 3], h);
    let f = shared[0].finalized();
    assert_eq!(f.iter().map(|b| b.txs).sum::<usize>(), 41 + FLOOD_AFFORDABLE as usize);
    assert!(shared.iter().all(|s| s.refused().is_empty()));
    eprintln!(
        "flood of 10,000 refused transactions: {} blocks finalized, {:.1} ms wall clock per block",
        f.len() - 1,
        started.elapsed().as_secs_f64() * 1e3 / (f.len() - 1) as f64
    );
}

/// Issue 11: blocks full of the worst-priced model the adversarial calibration bench found (a
/// 1×1×65,536 depthwise Conv2D: 65,536 one-channel groups, one GEMM call each), gas limits set
/// from the registry's own figures. The chain keeps finalizing, every call lands, and every
/// validator agrees; prints the wall-clock time per block.
#[test]
fn blocks_full_of_the_worst_priced_model_keep_finalizing() {
    let case = adversarial::conv(1, 1, 1 << 16, 1 << 16, 1 << 16, fixpoint_ml::ops::Window::new(1, 1), false)
        .expect("the verifier accepts it");
    let model = case.model.to_bytes();
    let engine = fixpoint_ml::Engine::load(&model, &fixpoint_ml::Limits::default()).unwrap();
    let id = keccak256(&model);
    let input = vec![0u8; fixpoint_ml::io::input_len(engine.model())];
    let infer = I::inferCall { modelId: id, input: input.into() }.abi_encode();
    let warm = fixpoint_precompiles::gas::warm_infer_gas(engine.cost(), engine.model().nodes.len() as u64);
    let cold = fixpoint_precompiles::gas::cold_surcharge(model.len() as u64);
    // Calldata (zeros: 4 gas each, the EIP-7623 floor 10 per token) plus the call and margin.
    let floor = 21_000 + 10 * infer.len() as u64;
    let gas = (21_000 + 16 * infer.len() as u64 + warm + cold).max(floor) + 50_000;
    let calls = 48usize;
    let txs = register_then(model.clone(), calls, |_| (infer.clone(), gas));
    let started = std::time::Instant::now();
    let shared = runner(71).start(|context| async move {
        let mut sim = Sim::new(context, LINK, None, 0).await;
        sim.txs = txs;
        sim.batch = 64;
        for i in 0..N {
            sim.start(i);
        }
        assert!(sim.drive(&[0, 1, 2, 3], 3, true, Duration::from_secs(600)).await, "the chain stalled");
        sim.shared
    });
    let h = shared.iter().map(|s| s.finalized().last().unwrap().height).min().unwrap();
    assert_honest_agree(&shared, &[0, 1, 2, 3], h);
    let f = shared[0].finalized();
    assert_eq!(f.iter().map(|b| b.txs).sum::<usize>(), calls + 1, "every call finalized");
    let full = f.iter().filter(|b| b.txs > 1).count();
    assert!(shared.iter().all(|s| s.refused().is_empty() && s.finalizer_failures().is_empty()));
    eprintln!(
        "worst-priced model (warm {warm} gas, {} gas per call with calldata): {} blocks, {} with several calls, \
         {:.1} ms wall clock per block",
        gas,
        f.len() - 1,
        full,
        started.elapsed().as_secs_f64() * 1e3 / (f.len() - 1) as f64
    );
}

/// Issue 11, finding 3, on the network. Validator 0 leads a block that finalizes a model upload
/// and withholds it (block and votes) from validators 2 and 3, a byzantine leader; validator 1's
/// votes and blocks to them are lost meanwhile (asynchrony, which safety must survive). 0 and 1
/// execute the block, it gets two of the three votes a quorum needs and is dropped. Then the
/// network heals, every validator has the transaction, and an honest leader puts it on the
/// canonical chain: all four verify and finalize it, hold the model, and agree block for block.
#[test]
fn a_withheld_upload_finalization_never_splits_honest_validators() {
    let (model, _, _) = model_case("digits-mlp");
    let id = keccak256(&model);
    let owner = user(0);
    let mut upload = vec![tx(
        &owner,
        0,
        REGISTRY_ADDRESS,
        R::beginUploadCall { modelId: id, size: model.len() as u64 }.abi_encode(),
        1_000_000,
    )];
    for (i, c) in model.chunks(4096).enumerate() {
        let put = R::putChunkCall { modelId: id, offset: (i * 4096) as u64, chunk: c.to_vec().into() };
        upload.push(tx(&owner, upload.len() as u64, REGISTRY_ADDRESS, put.abi_encode(), 2_000_000));
    }
    let fin = tx(
        &owner,
        upload.len() as u64,
        REGISTRY_ADDRESS,
        R::finalizeUploadCall { modelId: id }.abi_encode(),
        10_000_000,
    );
    let contains = |b: &Block, t: &Bytes| b.body().txs.iter().any(|x| x.as_ref() == t.as_ref());
    let fin_sent = fin.clone();
    let (shared, disks, stores, window) = runner(81).start(|context| async move {
        let fin = fin_sent;
        let mut sim = Sim::new(context, LINK, None, 0).await;
        sim.txs = upload;
        for i in 0..N {
            sim.start(i);
        }
        assert!(sim.drive(&[0, 1, 2, 3], 2, true, Duration::from_secs(120)).await, "the chunks are final");
        // The window: 0 withholds, 1 is cut off from 2 and 3; only 0 has the transaction.
        sim.withhold(&[0, 1], &[2, 3]);
        sim.shared[0].submit([fin.clone()]);
        let end = sim.context.current() + Duration::from_secs(120);
        while sim.shared[1].models().get(&id).is_none() {
            assert!(sim.context.current() < end, "validator 1 never executed the withheld block");
            sim.context.sleep(Duration::from_millis(50)).await;
        }
        // Let the view time out, and the chain go on for a while without the block.
        sim.context.sleep(Duration::from_secs(10)).await;
        let window: Vec<(u64, usize)> = sim.disks.iter().map(|d| d.summary()).collect();
        for (i, d) in sim.disks.iter().enumerate() {
            assert!(!d.blocks().iter().any(|b| contains(b, &fin)), "validator {i} finalized the withheld block");
        }
        assert!(sim.shared[0].models().get(&id).is_some() && sim.shared[1].models().get(&id).is_some());
        assert!(sim.shared[2].models().get(&id).is_none() && sim.shared[3].models().get(&id).is_none());
        // The network heals and every validator gets the transaction.
        sim.withhold(&[0, 1], &[]);
        sim.txs.push(fin.clone());
        let top = window.iter().map(|w| w.0).max().unwrap_or(0);
        assert!(sim.drive(&[0, 1, 2, 3], top + 3, true, Duration::from_secs(300)).await, "the chain stalled");
        let stores: Vec<_> = sim.shared.iter().map(|s| s.models().clone()).collect();
        (sim.shared, sim.disks, stores, window)
    });
    // Each validator finalized the transaction exactly once, after the window, in the same block.
    let chains: Vec<Vec<Block>> = disks.iter().map(|d| d.blocks()).collect();
    let common = chains.iter().map(Vec::len).min().unwrap();
    for (i, c) in chains.iter().enumerate() {
        assert_eq!(c[..common], chains[0][..common], "validator {i} differs");
        let with_fin: Vec<u64> = c.iter().filter(|b| contains(b, &fin)).map(|b| b.body().height).collect();
        assert_eq!(with_fin.len(), 1, "validator {i}: {with_fin:?}");
        assert!(with_fin[0] > window[i].0, "validator {i} finalized it after the window");
    }
    eprintln!(
        "withheld finalizeUpload: executed by validators 0 and 1 only; heights finalized during the window {:?}; \
         the canonical block with it finalized at height {}",
        window.iter().map(|w| w.0).collect::<Vec<_>>(),
        chains[0].iter().find(|b| contains(b, &fin)).map_or(0, |b| b.body().height)
    );
    for (i, s) in shared.iter().enumerate() {
        assert!(s.refused().is_empty(), "validator {i} refused {:?}", s.refused());
        assert!(s.finalizer_failures().is_empty(), "validator {i}: {:?}", s.finalizer_failures());
        assert!(stores[i].get(&id).is_some(), "validator {i} holds the model");
        assert_eq!(stores[i].chunk_count(), 0, "validator {i} dropped the finalized upload's chunks");
    }
}

/// Registration of a small causal byte-level model, then `calls` generate transactions from 4
/// users, each a different prompt.
fn generation_workload(calls: usize) -> Vec<Bytes> {
    let dims = causal::Dims { t: 32, vocab: 256, d: 32, heads: 4, layers: 2 };
    let model = causal::decoder(dims, 33).to_bytes();
    let id = keccak256(&model);
    register_then(model, calls, |k| {
        let prompt = format!("user {} asks {k}:", k % 4).into_bytes();
        (I::generateCall { modelId: id, prompt: prompt.into(), maxTokens: 12 }.abi_encode(), 5_000_000)
    })
}

#[test]
fn generation_is_the_same_on_every_validator_and_an_altered_token_is_refused() {
    let txs = generation_workload(24);
    // Honest: every validator executes every generation and commits the same records.
    let shared = run_with(41, 8, txs.clone(), None);
    assert_honest_agree(&shared, &[0, 1, 2, 3], 8);
    let f = shared[0].finalized();
    assert_eq!(f.iter().map(|b| b.txs).sum::<usize>(), 25, "every generation finalized once");
    let empty = fixpoint_evm::records_root(&[]);
    assert!(f.iter().filter(|b| b.records_root != empty).count() >= 2, "generations recorded in several blocks");
    assert!(shared.iter().all(|s| s.refused().is_empty() && s.finalizer_failures().is_empty()));
    // A leader whose engine writes one byte differently is refused by every honest validator.
    let shared = run_with(42, 8, txs, Some((0, Proposer::WrongInferenceOutput)));
    assert_refused_and_never_finalized(&shared, Proposer::WrongInferenceOutput, 8, 25);
}
