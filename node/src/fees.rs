//! `eth_feeHistory` rewards as geth computes them: per block, the effective priority fees its
//! transactions paid, sorted, weighted by the gas each used; the reward at percentile `p` is the
//! fee of the first transaction at which the cumulative gas reaches `p` % of the block's gas
//! used. Percentiles are taken in hundredths of a percent, so the threshold is integer math.

use alloy_consensus::Transaction as _;

use crate::chain::Block;

/// A reward percentile out of range or out of order.
#[derive(Debug, thiserror::Error)]
#[error("invalid reward percentile: {0}")]
pub struct BadPercentile(pub f64);

/// Percentiles (0–100, non-decreasing) in hundredths of a percent.
pub fn basis_points(percentiles: &[f64]) -> Result<Vec<u64>, BadPercentile> {
    let mut out: Vec<u64> = Vec::with_capacity(percentiles.len());
    for &p in percentiles {
        if !(0.0..=100.0).contains(&p) {
            return Err(BadPercentile(p));
        }
        // At most 10,000: the cast cannot overflow; finer percentiles round down.
        let bp = (p * 100.0) as u64;
        if out.last().is_some_and(|&last| bp < last) {
            return Err(BadPercentile(p));
        }
        out.push(bp);
    }
    Ok(out)
}

/// The rewards of block `b` at `bps` (hundredths of a percent): zeros for an empty block.
pub fn rewards(b: &Block, bps: &[u64]) -> Vec<u128> {
    let base = b.header.base_fee_per_gas.unwrap_or(0);
    let mut prev = 0u64;
    let mut txs: Vec<(u128, u64)> = b
        .txs
        .iter()
        .zip(&b.envelopes)
        .map(|(t, r)| {
            let cumulative = r.cumulative_gas_used();
            let used = cumulative.saturating_sub(prev);
            prev = cumulative;
            (t.inner().effective_tip_per_gas(base).unwrap_or(0), used)
        })
        .collect();
    if txs.is_empty() {
        return vec![0; bps.len()];
    }
    txs.sort_by_key(|&(tip, _)| tip);
    let total = u128::from(b.header.gas_used);
    let mut out = Vec::with_capacity(bps.len());
    let (mut i, mut sum) = (0usize, txs.first().map_or(0, |t| u128::from(t.1)));
    for &bp in bps {
        let threshold = total * u128::from(bp) / 10_000;
        while sum < threshold && i + 1 < txs.len() {
            i += 1;
            sum += txs.get(i).map_or(0, |t| u128::from(t.1));
        }
        out.push(txs.get(i).map_or(0, |t| t.0));
    }
    out
}
