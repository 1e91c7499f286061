//! Chain parameters and the EVM factory.

use std::sync::Arc;

use alloy_evm::eth::{EthEvm, EthEvmContext};
use alloy_evm::precompiles::PrecompilesMap;
use alloy_evm::{Database, EthEvmFactory, EvmEnv, EvmFactory};
use alloy_primitives::{Address, B256, U256};
use fixpoint_precompiles::Scope;
use revm::context::{BlockEnv, CfgEnv};
use revm::inspector::{Inspector, NoOpInspector};
use revm::primitives::hardfork::SpecId;

/// The chain's fixed parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainSpec {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The Ethereum hardfork whose rules (and precompiles) apply.
    pub spec: SpecId,
}

impl ChainSpec {
    /// The development chain: chain id 3871 (0xF1F), Prague rules.
    pub const DEV: ChainSpec = ChainSpec { chain_id: 3871, spec: SpecId::PRAGUE };
}

impl Default for ChainSpec {
    fn default() -> Self {
        Self::DEV
    }
}

/// The block-level inputs to execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockEnvInput {
    /// Block number.
    pub number: u64,
    /// Unix timestamp, seconds.
    pub timestamp: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// EIP-1559 base fee per gas.
    pub base_fee: u64,
    /// Fee recipient.
    pub beneficiary: Address,
    /// PREVRANDAO value.
    pub prev_randao: B256,
}

impl BlockEnvInput {
    /// revm's environment for this block on `chain`.
    pub fn evm_env(&self, chain: &ChainSpec) -> EvmEnv {
        let mut cfg = CfgEnv::new_with_spec(chain.spec);
        cfg.chain_id = chain.chain_id;
        let block = BlockEnv {
            number: U256::from(self.number),
            beneficiary: self.beneficiary,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prev_randao),
            ..BlockEnv::default()
        };
        EvmEnv::new(cfg, block)
    }
}

/// An EVM over `db` for this block, with fixpoint's precompiles bound to `scope`.
pub fn create_evm<DB: Database>(
    db: DB,
    chain: &ChainSpec,
    block: &BlockEnvInput,
    scope: &Arc<Scope>,
) -> EthEvm<DB, NoOpInspector, PrecompilesMap> {
    let mut evm = create_evm_with_inspector(db, chain, block, scope, NoOpInspector);
    alloy_evm::Evm::disable_inspector(&mut evm);
    evm
}

/// [`create_evm`] with `inspector` called on every step, call and log (tracing; see
/// `alloy_evm::Evm::{enable_inspector, disable_inspector}` to switch it per transaction).
pub fn create_evm_with_inspector<DB: Database, I: Inspector<EthEvmContext<DB>>>(
    db: DB,
    chain: &ChainSpec,
    block: &BlockEnvInput,
    scope: &Arc<Scope>,
    inspector: I,
) -> EthEvm<DB, I, PrecompilesMap> {
    let mut evm = EthEvmFactory::default().create_evm_with_inspector(db, block.evm_env(chain), inspector);
    fixpoint_precompiles::install(alloy_evm::Evm::precompiles_mut(&mut evm), scope);
    evm
}
