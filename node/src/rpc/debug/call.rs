//! geth's `callTracer`: the tree of calls and creations a transaction made, each frame with its
//! type, addresses, value, the gas it was given and used, input, output and error. Precompile
//! calls are frames too, so a call into the inference precompile (0x…0F01) shows its calldata,
//! its output and the gas it charged.

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolError as _;
use revm::context::CreateScheme;
use revm::context_interface::ContextTr;
use revm::inspector::Inspector;
use revm::interpreter::{CallInputs, CallOutcome, CallScheme, CreateInputs, CreateOutcome, InstructionResult};
use serde::{Deserialize, Serialize};

use super::struct_log::error_text;

/// `tracerConfig` of the call tracer (geth's names).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallConfig {
    /// Only the transaction's own frame, no nested calls.
    pub only_top_call: bool,
    /// Include the logs each frame emitted.
    pub with_log: bool,
}

/// A log emitted in a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLog {
    /// Emitting contract.
    pub address: Address,
    /// Topics.
    pub topics: Vec<B256>,
    /// Data.
    pub data: Bytes,
    /// How many of the frame's calls came before it.
    pub position: u64,
}

/// One call or creation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFrame {
    /// `CALL`, `STATICCALL`, `DELEGATECALL`, `CALLCODE`, `CREATE` or `CREATE2`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Caller.
    pub from: Address,
    /// Callee (whose code runs), or the created contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Address>,
    /// Value passed (absent for STATICCALL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<U256>,
    /// Gas given to the frame (the top frame: the transaction's gas limit).
    pub gas: U256,
    /// Gas the frame used (the top frame: the receipt's gasUsed).
    pub gas_used: U256,
    /// Calldata, or init code.
    pub input: Bytes,
    /// Return or revert data (for a creation: the deployed code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Bytes>,
    /// Why the frame failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The `Error(string)` reason of a revert, decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_reason: Option<String>,
    /// Nested frames, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallFrame>,
    /// Logs emitted by this frame (with `withLog`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<CallLog>,
}

/// The inspector building the call tree.
#[derive(Debug, Default)]
pub struct CallTracer {
    config: CallConfig,
    /// Open frames, outermost first.
    open: Vec<CallFrame>,
    /// Frames skipped under `onlyTopCall` still open (their ends must be skipped too).
    skipped: usize,
    root: Option<CallFrame>,
}

impl CallTracer {
    /// A tracer with `config`.
    pub fn new(config: CallConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// The transaction's frame, if it ran.
    pub fn into_root(self) -> Option<CallFrame> {
        self.root
    }

    fn enter(&mut self, frame: CallFrame) {
        if self.skipped > 0 || (self.config.only_top_call && !self.open.is_empty()) {
            self.skipped += 1;
        } else {
            self.open.push(frame);
        }
    }

    fn exit(&mut self, result: InstructionResult, output: &Bytes, gas_left: u64, created: Option<Address>) {
        if self.skipped > 0 {
            self.skipped -= 1;
            return;
        }
        let Some(mut f) = self.open.pop() else { return };
        f.gas_used = f.gas.saturating_sub(U256::from(gas_left));
        if created.is_some() {
            f.to = created;
        }
        if !output.is_empty() {
            f.output = Some(output.clone());
        }
        if !result.is_ok() {
            // What a failed frame emitted is undone, with its callees' logs (as geth drops them).
            clear_logs(&mut f);
            f.error = Some(error_text(result));
            if result.is_revert() {
                f.revert_reason = alloy_sol_types::Revert::abi_decode(output).ok().map(|r| r.reason);
            } else {
                // A halt returns nothing and consumes the frame's gas.
                f.output = None;
                f.gas_used = f.gas;
            }
        }
        match self.open.last_mut() {
            Some(parent) => parent.calls.push(f),
            None => self.root = Some(f),
        }
    }
}

fn clear_logs(f: &mut CallFrame) {
    f.logs.clear();
    f.calls.iter_mut().for_each(clear_logs);
}

impl<CTX: ContextTr> Inspector<CTX> for CallTracer {
    fn call(&mut self, context: &mut CTX, inputs: &mut CallInputs) -> Option<CallOutcome> {
        let kind = match inputs.scheme {
            CallScheme::Call => "CALL",
            CallScheme::CallCode => "CALLCODE",
            CallScheme::DelegateCall => "DELEGATECALL",
            CallScheme::StaticCall => "STATICCALL",
        };
        let value = (inputs.scheme != CallScheme::StaticCall).then(|| inputs.value.get());
        self.enter(CallFrame {
            kind: kind.into(),
            from: inputs.caller,
            to: Some(inputs.bytecode_address),
            value,
            gas: U256::from(inputs.gas_limit),
            input: inputs.input.bytes(context),
            ..CallFrame::default()
        });
        None
    }

    fn call_end(&mut self, _context: &mut CTX, _inputs: &CallInputs, outcome: &mut CallOutcome) {
        let r = &outcome.result;
        self.exit(r.result, &r.output, r.gas.remaining(), None);
    }

    fn create(&mut self, _context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        let kind = match inputs.scheme() {
            CreateScheme::Create2 { .. } => "CREATE2",
            _ => "CREATE",
        };
        self.enter(CallFrame {
            kind: kind.into(),
            from: inputs.caller(),
            to: None,
            value: Some(inputs.value()),
            gas: U256::from(inputs.gas_limit()),
            input: inputs.init_code().clone(),
            ..CallFrame::default()
        });
        None
    }

    fn create_end(&mut self, _context: &mut CTX, _inputs: &CreateInputs, outcome: &mut CreateOutcome) {
        let r = &outcome.result;
        self.exit(r.result, &r.output, r.gas.remaining(), outcome.address);
    }

    fn log(&mut self, _context: &mut CTX, log: alloy_primitives::Log) {
        if !self.config.with_log || self.skipped > 0 {
            return;
        }
        if let Some(f) = self.open.last_mut() {
            f.logs.push(CallLog {
                address: log.address,
                topics: log.data.topics().to_vec(),
                data: log.data.data.clone(),
                position: f.calls.len() as u64,
            });
        }
    }
}
