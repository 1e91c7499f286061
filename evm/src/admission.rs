//! What revm checks of a transaction before it executes, for pools and gossip to apply on
//! arrival, so that what a leader receives is almost always includable (issue 11, finding 4).
//!
//! [`check_tx`] runs revm's own validation of the transaction against the chain's rules and the
//! next block's environment (chain id, EIP-7825 cap, fee fields against the base fee, gas limit
//! within the block's, EIP-3860 initcode size, intrinsic gas including the EIP-7623 calldata
//! floor and EIP-7702 authorization costs). [`check_sender`] applies revm's account checks
//! (EIP-3607: no code unless a delegation) and its balance check cumulatively: a sender's
//! pending transactions together may not promise more than its balance. Only the nonce differs
//! from execution: a pool admits future nonces (they wait for the gap to fill).

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::Recovered;
use alloy_evm::FromRecoveredTx;
use alloy_primitives::U256;
use revm::context::{Context, TxEnv};
use revm::context_interface::result::InvalidTransaction;
use revm::context_interface::{Cfg as _, Transaction as _};
use revm::handler::MainContext;
use revm::handler::pre_execution::validate_account_nonce_and_code;
use revm::handler::validation::{validate_initial_tx_gas, validate_tx_env};
use revm::state::AccountInfo;

use crate::chain::{BlockEnvInput, ChainSpec};

/// What an admitted transaction may cost its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// `gas_limit · max_fee_per_gas + value`: what revm requires the balance to cover.
    pub max_cost: U256,
    /// The gas it uses at least: intrinsic gas, or the EIP-7623 floor if higher.
    pub min_gas: u64,
}

/// revm's stateless validation of `tx` for a block with environment `env` on `chain`.
pub fn check_tx(
    chain: &ChainSpec,
    env: &BlockEnvInput,
    tx: &Recovered<TxEnvelope>,
) -> Result<Admitted, InvalidTransaction> {
    let tx_env = TxEnv::from_recovered_tx(tx.inner(), tx.signer());
    let evm_env = env.evm_env(chain);
    let cap = evm_env.cfg_env.tx_gas_limit_cap();
    let ctx = Context::mainnet().with_cfg(evm_env.cfg_env).with_block(evm_env.block_env).with_tx(tx_env.clone());
    validate_tx_env(ctx, chain.spec)?;
    let gas = validate_initial_tx_gas(tx_env.clone(), chain.spec, false, false, cap, None)?;
    let max_cost = tx_env.max_balance_spending()?;
    Ok(Admitted { max_cost, min_gas: gas.initial_total_gas().max(gas.floor_gas()) })
}

/// revm's account checks for a transaction from an account now `account` (absent: empty) with
/// nonce `nonce` and maximum cost `max_cost`, when the sender's other pending transactions
/// ahead of it may already spend `pending_cost`.
pub fn check_sender(
    account: Option<&AccountInfo>,
    nonce: u64,
    max_cost: U256,
    pending_cost: U256,
) -> Result<(), InvalidTransaction> {
    let empty = AccountInfo::default();
    let info = account.unwrap_or(&empty);
    validate_account_nonce_and_code(info, nonce, false, true)?;
    if nonce < info.nonce {
        return Err(InvalidTransaction::NonceTooLow { tx: nonce, state: info.nonce });
    }
    let total = pending_cost.saturating_add(max_cost);
    if total > info.balance {
        return Err(InvalidTransaction::LackOfFundForMaxFee { fee: Box::new(total), balance: Box::new(info.balance) });
    }
    Ok(())
}
