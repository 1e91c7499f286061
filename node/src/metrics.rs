//! What the node reports to whoever runs it (docs/operations.md): Prometheus metrics, and the
//! `/health` and `/ready` endpoints orchestrators probe, served on `--metrics ADDR` (off by
//! default). The metrics are prometheus-client's (the crate commonware's runtime registers its
//! consensus and p2p metrics with; a validator's page carries those too).
//!
//! Everything here observes: wall-clock durations and their `f64` seconds are recorded after
//! the fact and never read by block execution, so the chain's results cannot depend on them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::B256;
use fixpoint_consensus::Executed;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// One label, e.g. `("model", "0x…")`.
type Labels = Vec<(&'static str, String)>;

/// Distinct models labelled by id; calls of any further model count under `other` (keeps the
/// label set bounded however many models are registered).
pub const MAX_MODEL_LABELS: usize = 64;

/// Seconds since the last finalized block after which a validator or follower is not ready.
pub const READY_WITHIN: Duration = Duration::from_secs(30);

fn seconds() -> Histogram {
    // 100 µs to ~100 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

fn counts() -> Histogram {
    // 1 to ~65k.
    Histogram::new(exponential_buckets(1.0, 2.0, 17))
}

fn gas_buckets() -> Histogram {
    // 21k to ~700M.
    Histogram::new(exponential_buckets(21_000.0, 2.0, 16))
}

/// The node's metrics (one per process: [`get`]).
pub struct Metrics {
    registry: Registry,
    head_height: Gauge,
    finalized_height: Gauge,
    block_transactions: Histogram,
    block_gas: Histogram,
    transactions: Counter,
    gas: Counter,
    execute_seconds: Family<Labels, Histogram>,
    inference_seconds: Family<Labels, Histogram>,
    commit_seconds: Histogram,
    inference_calls: Family<Labels, Counter>,
    inference_gas: Family<Labels, Counter>,
    mempool: Gauge,
    refused: Family<Labels, Counter>,
    rpc_requests: Family<Labels, Counter>,
    rpc_seconds: Family<Labels, Histogram>,
    database_bytes: Gauge,
    models: Mutex<HashSet<B256>>,
    rpc_methods: OnceLock<HashSet<String>>,
    last_finalized_ms: AtomicU64,
    /// Held while a block's metrics are updated and while a page is encoded: a scrape sees a
    /// block's counters all moved or none.
    snapshot: Mutex<()>,
    consensus: OnceLock<Box<dyn Fn() -> String + Send + Sync>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("fixpoint");
        let m = Self {
            registry: Registry::default(),
            head_height: Gauge::default(),
            finalized_height: Gauge::default(),
            block_transactions: counts(),
            block_gas: gas_buckets(),
            transactions: Counter::default(),
            gas: Counter::default(),
            execute_seconds: Family::new_with_constructor(seconds),
            inference_seconds: Family::new_with_constructor(seconds),
            commit_seconds: seconds(),
            inference_calls: Family::default(),
            inference_gas: Family::default(),
            mempool: Gauge::default(),
            refused: Family::default(),
            rpc_requests: Family::default(),
            rpc_seconds: Family::new_with_constructor(seconds),
            database_bytes: Gauge::default(),
            models: Mutex::default(),
            rpc_methods: OnceLock::new(),
            last_finalized_ms: AtomicU64::new(0),
            snapshot: Mutex::new(()),
            consensus: OnceLock::new(),
        };
        r.register("head_height", "Number of the chain's head block", m.head_height.clone());
        r.register("finalized_height", "Number of the last finalized block", m.finalized_height.clone());
        r.register("block_transactions", "Transactions per finalized block", m.block_transactions.clone());
        r.register("block_gas_used", "Gas used per finalized block", m.block_gas.clone());
        r.register("transactions", "Transactions finalized", m.transactions.clone());
        r.register("gas_used", "Gas used by finalized blocks", m.gas.clone());
        r.register_with_unit(
            "block_execute",
            "Time this node took to build (kind=built) or re-execute (kind=verified) a finalized block, sender recovery included",
            Unit::Seconds,
            m.execute_seconds.clone(),
        );
        r.register_with_unit(
            "block_inference",
            "Of the execution time of a finalized block, the time in inference calls (kind=built|verified)",
            Unit::Seconds,
            m.inference_seconds.clone(),
        );
        r.register_with_unit(
            "block_commit",
            "Time to write a finalized block and its state changes to the database",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        r.register(
            "inference_calls",
            "Inference calls in finalized blocks, by model id (at most 64 ids, then model=other)",
            m.inference_calls.clone(),
        );
        r.register(
            "inference_gas",
            "Gas charged for inference calls in finalized blocks, by model",
            m.inference_gas.clone(),
        );
        r.register("mempool_transactions", "Transactions pending in this node's mempool", m.mempool.clone());
        r.register("transactions_refused", "Transactions refused at admission, by reason", m.refused.clone());
        r.register("rpc_requests", "JSON-RPC requests, by method", m.rpc_requests.clone());
        r.register_with_unit(
            "rpc_request",
            "JSON-RPC request latency, by method",
            Unit::Seconds,
            m.rpc_seconds.clone(),
        );
        r.register_with_unit("database_size", "Size of the chain database file", Unit::Bytes, m.database_bytes.clone());
        Self { registry: r, ..m }
    }

    /// A block was finalized and written in `commit`.
    pub fn finalized(&self, executed: &Executed, commit: Duration) {
        let _whole = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        let h = i64::try_from(executed.height).unwrap_or(i64::MAX);
        self.head_height.set(h);
        self.finalized_height.set(h);
        self.last_finalized_ms.store(now_ms(), Ordering::Relaxed);
        let txs = executed.txs.len() as u64;
        let gas: u64 = executed.txs.iter().map(|t| t.gas_used).sum();
        self.block_transactions.observe(txs as f64);
        self.block_gas.observe(gas as f64);
        self.transactions.inc_by(txs);
        self.gas.inc_by(gas);
        let kind = if executed.timing.built { "built" } else { "verified" };
        let labels = vec![("kind", kind.to_string())];
        // A block finalized without this node executing it here has no timing (zero): skipped.
        if !executed.timing.execute.is_zero() {
            self.execute_seconds.get_or_create(&labels).observe(executed.timing.execute.as_secs_f64());
            self.inference_seconds.get_or_create(&labels).observe(executed.timing.inference.as_secs_f64());
        }
        self.commit_seconds.observe(commit.as_secs_f64());
        for r in &executed.records {
            let model = vec![("model", self.model_label(r.model_id))];
            self.inference_calls.get_or_create(&model).inc();
            self.inference_gas.get_or_create(&model).inc_by(r.gas_used);
        }
    }

    fn model_label(&self, id: B256) -> String {
        let mut known = self.models.lock().unwrap_or_else(PoisonError::into_inner);
        if known.contains(&id) || (known.len() < MAX_MODEL_LABELS && known.insert(id)) {
            id.to_string()
        } else {
            "other".into()
        }
    }

    /// A transaction was refused at admission for `reason` ([`crate::submit::TxRefused::reason`]).
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&vec![("reason", reason.to_string())]).inc();
    }

    /// The JSON-RPC methods served (others count as `method=other`).
    pub fn set_rpc_methods(&self, methods: impl IntoIterator<Item = String>) {
        let _ = self.rpc_methods.set(methods.into_iter().collect());
    }

    /// A JSON-RPC request for `method` was answered in `took`.
    pub fn rpc(&self, method: &str, took: Duration) {
        let known = self.rpc_methods.get().is_some_and(|m| m.contains(method)) || method == "batch";
        let labels = vec![("method", if known { method.to_string() } else { "other".into() })];
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Appends `encode` (commonware's runtime metrics: consensus, p2p) to every scrape.
    pub fn set_consensus(&self, encode: Box<dyn Fn() -> String + Send + Sync>) {
        let _ = self.consensus.set(encode);
    }

    /// Time since the last finalized block, if any was finalized since the process started.
    pub fn since_finalized(&self) -> Option<Duration> {
        match self.last_finalized_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(now_ms().saturating_sub(at))),
        }
    }

    /// The page a scrape gets (Prometheus text format), with the gauges read now.
    pub fn encode(&self, mempool: usize, database_bytes: u64) -> String {
        self.mempool.set(i64::try_from(mempool).unwrap_or(i64::MAX));
        self.database_bytes.set(i64::try_from(database_bytes).unwrap_or(i64::MAX));
        let mut out = String::new();
        {
            let _whole = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
            if encode(&mut out, &self.registry).is_err() {
                out.clear();
            }
        }
        // OpenMetrics ends with `# EOF`; a second registry's page goes before it.
        let mine = out.strip_suffix("# EOF\n").unwrap_or(&out).to_string();
        let theirs = self.consensus.get().map(|f| f()).unwrap_or_default();
        let theirs = theirs.strip_suffix("# EOF\n").unwrap_or(&theirs);
        format!("{mine}{theirs}# EOF\n")
    }
}

/// How readiness is judged: by mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// A dev chain seals on demand: ready once it serves.
    Dev,
    /// A validator or follower: ready while blocks keep being finalized ([`READY_WITHIN`]).
    Network,
}

/// What `/health` and `/ready` answer, and the page `/metrics` serves.
#[derive(Clone)]
pub struct Endpoints {
    /// The node.
    pub node: Arc<crate::rpc::Node>,
    /// How readiness is judged.
    pub readiness: Readiness,
    /// The chain database file (its size is reported).
    pub database: std::path::PathBuf,
}

impl Endpoints {
    /// The `/metrics` page.
    pub fn metrics(&self) -> String {
        let size = std::fs::metadata(&self.database).map_or(0, |m| m.len());
        get().encode(self.node.pending_count(), size)
    }

    /// `/health`: the process serves and its chain is readable (the head's number).
    pub fn health(&self) -> (bool, serde_json::Value) {
        let head = self.node.head_number();
        (true, serde_json::json!({ "status": "ok", "head": head }))
    }

    /// `/ready`: whether to send it traffic, and why not.
    pub fn ready(&self) -> (bool, serde_json::Value) {
        let head = self.node.head_number();
        let since = get().since_finalized();
        let ready = match self.readiness {
            Readiness::Dev => true,
            Readiness::Network => since.is_some_and(|d| d <= READY_WITHIN),
        };
        let why = (!ready).then(|| match since {
            None => "no block finalized since start".to_string(),
            Some(d) => format!("last block finalized {} s ago", d.as_secs()),
        });
        let ms = since.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (ready, serde_json::json!({ "ready": ready, "head": head, "sinceFinalizedMs": ms, "reason": why }))
    }
}

/// Serves `/metrics`, `/health` and `/ready` on `addr` from a thread of its own; returns once
/// it listens, with the bound address.
pub fn serve(endpoints: Endpoints, addr: std::net::SocketAddr) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context as _;
    use axum::http::{StatusCode, header};
    use axum::routing::get as route;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow::anyhow!("starting the metrics runtime: {e}")));
                return;
            }
        };
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::anyhow!("cannot listen on {addr} for metrics: {e}")));
                    return;
                }
            };
            let _ = ready_tx.send(listener.local_addr().map_err(anyhow::Error::from));
            let status = |ok: bool| if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let (m, h, r) = (endpoints.clone(), endpoints.clone(), endpoints);
            let app = axum::Router::new()
                .route(
                    "/metrics",
                    route(move || async move {
                        let page = tokio::task::spawn_blocking(move || m.metrics()).await.unwrap_or_default();
                        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], page)
                    }),
                )
                .route(
                    "/health",
                    route(move || async move {
                        let (ok, body) = h.health();
                        (status(ok), axum::Json(body))
                    }),
                )
                .route(
                    "/ready",
                    route(move || async move {
                        let (ok, body) = r.ready();
                        (status(ok), axum::Json(body))
                    }),
                );
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("metrics server stopped: {e}");
            }
        });
    });
    let bound = ready_rx.recv().context("the metrics thread stopped")??;
    println!("metrics on http://{bound}/metrics (health: /health, readiness: /ready)");
    Ok(bound)
}
