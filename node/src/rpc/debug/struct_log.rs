//! geth's default tracer, the struct logger: one entry per executed opcode, in execution order
//! across call frames, with the gas left before it, what it cost, its frame depth (1 for the
//! transaction's own frame) and, as options ask, the stack, memory and the storage slots the
//! frame's contract has read or written so far (shown at SLOAD and SSTORE, as geth does).

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::{Address, Bytes, U256};
use revm::bytecode::OpCode;
use revm::context_interface::{ContextTr, JournalTr};
use revm::inspector::Inspector;
use revm::interpreter::interpreter_types::{InputsTr, Jumps, LoopControl, MemoryTr};
use revm::interpreter::{InstructionResult, Interpreter};
use serde::{Deserialize, Serialize};

/// Most entries one trace may hold; a longer one is refused rather than sent (see docs/rpc.md).
pub const MAX_STRUCT_LOGS: usize = 500_000;

/// geth's struct logger options (their names and defaults).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LogConfig {
    /// Leave out the stack.
    pub disable_stack: bool,
    /// Include memory (32-byte words).
    pub enable_memory: bool,
    /// Leave out storage.
    pub disable_storage: bool,
    /// Stop recording after this many entries (0: no limit but [`MAX_STRUCT_LOGS`]).
    pub limit: usize,
}

/// One executed opcode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StructLog {
    /// Program counter.
    pub pc: u64,
    /// Opcode name (`PUSH1`, `CALL`…), or `opcode 0x.. not defined`.
    pub op: String,
    /// Gas left before the opcode.
    pub gas: u64,
    /// What it cost (for calls and creates: including the gas passed to the callee).
    pub gas_cost: u64,
    /// Call depth, 1 for the transaction's own frame.
    pub depth: u64,
    /// Stack, bottom first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<U256>>,
    /// Memory in 32-byte words, hex without prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Vec<String>>,
    /// The contract's slots read or written so far (at SLOAD and SSTORE), hex without prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<BTreeMap<String, String>>,
    /// Gas refund counter, when not zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refund: u64,
    /// Why the opcode failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// geth's struct logger result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StructLogResult {
    /// Gas used by the transaction (the receipt's `gasUsed`).
    pub gas: u64,
    /// Whether it reverted or halted.
    pub failed: bool,
    /// Return or revert data.
    pub return_value: Bytes,
    /// Every opcode executed.
    pub struct_logs: Vec<StructLog>,
}

/// The inspector collecting [`StructLog`]s.
#[derive(Debug, Default)]
pub struct StructLogger {
    config: LogConfig,
    logs: Vec<StructLog>,
    /// The entry of the opcode being executed (completed at `step_end`).
    current: Option<StructLog>,
    /// The key an SLOAD reads (its value is on the stack after it).
    sload: Option<(Address, U256)>,
    /// Slots seen per contract (geth keeps them for the whole transaction).
    storage: HashMap<Address, BTreeMap<U256, U256>>,
    /// Set when the trace outgrew [`MAX_STRUCT_LOGS`].
    overflowed: bool,
}

impl StructLogger {
    /// A logger with `config`.
    pub fn new(config: LogConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// The entries, or `None` if there were more than [`MAX_STRUCT_LOGS`].
    pub fn into_logs(self) -> Option<Vec<StructLog>> {
        (!self.overflowed).then_some(self.logs)
    }

    fn full(&self) -> bool {
        let cap = if self.config.limit == 0 { MAX_STRUCT_LOGS } else { self.config.limit.min(MAX_STRUCT_LOGS) };
        self.logs.len() >= cap
    }

    fn snapshot(&self, contract: &Address) -> Option<BTreeMap<String, String>> {
        let slots = self.storage.get(contract)?;
        Some(slots.iter().map(|(k, v)| (word(k), word(v))).collect())
    }
}

fn word(v: &U256) -> String {
    hex::encode(v.to_be_bytes::<32>())
}

/// geth's wording for an opcode's failure.
pub(crate) fn error_text(r: InstructionResult) -> String {
    use InstructionResult as R;
    match r {
        R::Revert => "execution reverted".into(),
        R::OutOfGas
        | R::MemoryOOG
        | R::MemoryLimitOOG
        | R::PrecompileOOG
        | R::InvalidOperandOOG
        | R::ReentrancySentryOOG => "out of gas".into(),
        R::OpcodeNotFound | R::InvalidFEOpcode => "invalid opcode".into(),
        R::StackUnderflow => "stack underflow".into(),
        R::StackOverflow => "stack limit reached 1024".into(),
        R::InvalidJump => "invalid jump destination".into(),
        R::StateChangeDuringStaticCall => "write protection".into(),
        R::CallTooDeep => "max call depth exceeded".into(),
        R::OutOfFunds => "insufficient balance for transfer".into(),
        R::CreateCollision => "contract address collision".into(),
        R::CreateContractSizeLimit => "max code size exceeded".into(),
        R::CreateInitCodeSizeLimit => "max initcode size exceeded".into(),
        other => format!("{other:?}"),
    }
}

impl<CTX: ContextTr> Inspector<CTX> for StructLogger {
    fn step(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        if self.full() {
            self.overflowed |= self.config.limit == 0 || self.config.limit > MAX_STRUCT_LOGS;
            self.current = None;
            return;
        }
        let op = interp.bytecode.opcode();
        let stack = interp.stack.data();
        let contract = interp.input.target_address();
        let mut storage = None;
        self.sload = None;
        if !self.config.disable_storage {
            let top = |k: usize| stack.len().checked_sub(k).and_then(|i| stack.get(i)).copied();
            match op {
                revm::bytecode::opcode::SLOAD => self.sload = top(1).map(|key| (contract, key)),
                revm::bytecode::opcode::SSTORE => {
                    if let (Some(key), Some(value)) = (top(1), top(2)) {
                        self.storage.entry(contract).or_default().insert(key, value);
                        storage = self.snapshot(&contract);
                    }
                }
                _ => {}
            }
        }
        let memory = self.config.enable_memory.then(|| {
            let m = interp.memory.slice(0..interp.memory.size());
            m.chunks(32).map(hex::encode).collect()
        });
        self.current = Some(StructLog {
            pc: interp.bytecode.pc() as u64,
            op: OpCode::new(op).map_or_else(|| format!("opcode {op:#04x} not defined"), |o| o.as_str().to_string()),
            gas: interp.gas.remaining(),
            gas_cost: 0,
            depth: context.journal_ref().depth() as u64,
            stack: (!self.config.disable_stack).then(|| stack.to_vec()),
            memory,
            storage,
            refund: u64::try_from(interp.gas.refunded()).unwrap_or(0),
            error: None,
        });
    }

    fn step_end(&mut self, interp: &mut Interpreter, _context: &mut CTX) {
        let Some(mut log) = self.current.take() else { return };
        log.gas_cost = log.gas.saturating_sub(interp.gas.remaining());
        if let Some((contract, key)) = self.sload.take()
            && let Some(value) = interp.stack.data().last().copied()
        {
            self.storage.entry(contract).or_default().insert(key, value);
            log.storage = self.snapshot(&contract);
        }
        if let Some(r) = interp.bytecode.instruction_result()
            && r.is_halt()
        {
            log.error = Some(error_text(r));
        }
        self.logs.push(log);
    }
}
