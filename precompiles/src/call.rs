//! Plumbing shared by the precompiles: gas metering, ABI reverts, storage access, and turning
//! an outcome into revm's `PrecompileOutput`. User errors revert with an ABI custom error and
//! keep the gas they used; only a failing database is fatal.

use alloy_evm::EvmInternals;
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolError;
use revm::precompile::{PrecompileError, PrecompileHalt, PrecompileOutput, PrecompileResult};

use crate::gas::REJECT;

/// Why a call did not succeed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Revert with ABI error data, charging `gas`.
    Revert { gas: u64, data: Bytes },
    /// The gas limit is below what the call costs.
    OutOfGas,
    /// The node itself failed (database): abort the transaction.
    Fatal(String),
}

/// A gas meter over the call's limit.
#[derive(Debug)]
pub(crate) struct Meter {
    limit: u64,
    used: u64,
}

impl Meter {
    /// A meter that has already charged the [`REJECT`] floor every call pays.
    pub(crate) fn new(limit: u64) -> Result<Self, Fail> {
        let mut m = Self { limit, used: 0 };
        m.charge(REJECT)?;
        Ok(m)
    }

    /// Charges `gas` more, or fails with out of gas.
    pub(crate) fn charge(&mut self, gas: u64) -> Result<(), Fail> {
        let total = self.used.saturating_add(gas);
        if total > self.limit {
            return Err(Fail::OutOfGas);
        }
        self.used = total;
        Ok(())
    }

    /// Gas used so far.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// A revert carrying `err`, charging what was used so far.
    pub(crate) fn revert<E: SolError>(&self, err: E) -> Fail {
        Fail::Revert { gas: self.used, data: err.abi_encode().into() }
    }
}

/// Reads a storage word.
pub(crate) fn sload(internals: &mut EvmInternals<'_>, address: Address, slot: U256) -> Result<U256, Fail> {
    internals.sload(address, slot).map(|l| l.data).map_err(|e| Fail::Fatal(format!("sload: {e}")))
}

/// Writes a storage word.
pub(crate) fn sstore(internals: &mut EvmInternals<'_>, address: Address, slot: U256, value: U256) -> Result<(), Fail> {
    internals.sstore(address, slot, value).map(|_| ()).map_err(|e| Fail::Fatal(format!("sstore: {e}")))
}

/// Gives `address` a nonce so the account is never "empty" (EIP-161) and its storage survives.
pub(crate) fn keep_alive(internals: &mut EvmInternals<'_>, address: Address) -> Result<(), Fail> {
    let nonce = internals.load_account(address).map_err(|e| Fail::Fatal(format!("load account: {e}")))?.data.info.nonce;
    if nonce == 0 {
        internals.bump_nonce(address).map_err(|e| Fail::Fatal(format!("bump nonce: {e}")))?;
    }
    Ok(())
}

/// revm's view of an outcome.
pub(crate) fn finish(result: Result<(u64, Bytes), Fail>, reservoir: u64) -> PrecompileResult {
    match result {
        Ok((gas, bytes)) => Ok(PrecompileOutput::new(gas, bytes, reservoir)),
        Err(Fail::Revert { gas, data }) => Ok(PrecompileOutput::revert(gas, data, reservoir)),
        Err(Fail::OutOfGas) => Ok(PrecompileOutput::halt(PrecompileHalt::OutOfGas, reservoir)),
        Err(Fail::Fatal(msg)) => Err(PrecompileError::Fatal(msg)),
    }
}
