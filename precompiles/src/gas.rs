//! The gas schedule of the precompiles (docs/gas.md). Every figure is a pure function of the
//! model's registration-time cost and of call sizes, so every node charges the same gas.

use fixpoint_ml::{Cost, Plan, Work};

/// Fixed part of every inference call: ABI decoding, registry lookup, hashing, the record.
pub const INFER_BASE: u64 = 6_000;
/// Per operator in the model (per-op dispatch and allocation dominate small models).
pub const PER_OP: u64 = 200;
/// Multiply-accumulates per unit of gas (the portable kernel on small shapes).
pub const MACS_PER_GAS: u64 = 2;
/// Gas per element step (fixpoint_ml::work: requantization, pooling reads, leaf additions, copies...).
pub const GAS_PER_ELEM: u64 = 6;
/// Gas per step (an inner-loop entry: a dot product, a window cell, a tree walk, a chunk).
pub const GAS_PER_STEP: u64 = 8;
/// Gas per tree node visited (a load that depends on the previous one).
pub const GAS_PER_VISIT: u64 = 24;
/// Gas per kernel call or allocation.
pub const GAS_PER_CALL: u64 = 48;
/// Per 32-byte word of buffers a run allocates.
pub const PER_WORD_ALLOC: u64 = 4;
/// Per 32-byte word of weights and activations the kernels read.
pub const PER_WORD_READ: u64 = 1;
/// Per 32-byte word of packed input and output: unpacking, packing, the record's two hashes.
pub const PER_WORD_IO: u64 = 480;
/// First use of a model in a block: loading and preparing it (EIP-2929 style).
pub const COLD_BASE: u64 = 2_600;
/// Per 32-byte word of model bytes on a cold load (parse, verify, pack weights).
pub const COLD_PER_WORD: u64 = 6;
/// Per `int256` of an `inferInts` input and per byte of its packed output (range checks,
/// packing, conversion and ABI encoding of the result).
pub const PER_INT: u64 = 40;

/// Fixed part of a registration (`register`, `finalizeUpload`).
pub const REGISTER_BASE: u64 = 40_000;
/// Per 32-byte word of a model being registered: hashing, parsing, verification, storing.
pub const REGISTER_PER_WORD: u64 = 60;
/// Opening a chunked upload (plus [`FINISH_PER_CHUNK`] per chunk of a restarted one).
pub const BEGIN_UPLOAD: u64 = 25_000;
/// Fixed part of a chunk: reading the upload's record (2 × 2,100), setting the chunk's hash slot
/// (22,100, as an EVM SSTORE of a fresh slot) and updating the record (5,000), rounded up.
pub const CHUNK_BASE: u64 = 32_000;
/// Per 32-byte word of a chunk: what registering the same bytes as a permanent model costs, since
/// the node holds a chunk, in memory and on disk, until its upload ends (which may be never).
pub const CHUNK_PER_WORD: u64 = REGISTER_PER_WORD;
/// Per chunk when an upload ends (finalize, cancel, restart): reading its hash slot and zeroing
/// it (2,100 + 2,900, as the EVM charges for a cold SSTORE to zero).
pub const FINISH_PER_CHUNK: u64 = 5_000;
/// `cancelUpload`: reading and zeroing the upload's record.
pub const CANCEL_UPLOAD: u64 = 10_000;
/// The block gas limit the upload caps are checked against (the chain default).
pub const BLOCK_GAS_LIMIT: u64 = 30_000_000;
/// Gas a transaction calling `finalizeUpload` spends outside the precompile: 21,000 intrinsic,
/// 36 bytes of calldata at 16 gas, a call to a warm address (rounded up).
pub const FINALIZE_TX_OVERHEAD: u64 = 25_000;
/// Views (`exists`, `modelInfo`).
pub const VIEW_BASE: u64 = 2_100;
/// Per 32-byte word of a `modelIO` answer.
pub const VIEW_PER_WORD: u64 = 3;
/// Any call that fails before doing work (bad calldata, unknown selector, ...).
pub const REJECT: u64 = 1_000;

/// 32-byte words needed for `bytes` bytes.
pub const fn words(bytes: u64) -> u64 {
    bytes.div_ceil(32)
}

/// Gas of a warm inference of a model with this cost and `ops` operators. Every term is a
/// component of the verifier's cost, which bounds the work a run counts (fixpoint_ml::work), so
/// the figure bounds the run whatever the input.
pub fn warm_infer_gas(cost: &Cost, ops: u64) -> u64 {
    INFER_BASE
        .saturating_add(work_gas(&cost.work(), ops, cost.bytes_read))
        .saturating_add(PER_WORD_IO.saturating_mul(words(cost.input_bytes.saturating_add(cost.output_bytes))))
}

/// The price of counted work (fixpoint_ml::work) done by `ops` operators reading `bytes_read`
/// bytes: the part of [`warm_infer_gas`] and [`generate_gas`] that prices computation.
pub fn work_gas(work: &Work, ops: u64, bytes_read: u64) -> u64 {
    PER_OP
        .saturating_mul(ops)
        .saturating_add(work.macs.div_ceil(MACS_PER_GAS))
        .saturating_add(work.elem_ops.saturating_mul(GAS_PER_ELEM))
        .saturating_add(work.steps.saturating_mul(GAS_PER_STEP))
        .saturating_add(work.visits.saturating_mul(GAS_PER_VISIT))
        .saturating_add(work.calls.saturating_mul(GAS_PER_CALL))
        .saturating_add(PER_WORD_ALLOC.saturating_mul(words(work.bytes)))
        .saturating_add(PER_WORD_READ.saturating_mul(words(bytes_read)))
}

/// Fixed part of a `generate` call: ABI decoding, registry lookup, the record.
pub const GENERATE_BASE: u64 = INFER_BASE;

/// Gas of one position of a generation by a causal model (fixpoint_ml::decode): the plan's step
/// cost (every op on one row with a full window of keys and values, the cache reads and writes,
/// the greedy pick), with the model's weights and the whole cache read once per step.
pub fn step_gas(plan: &Plan, ops: u64, weight_bytes: u64) -> u64 {
    work_gas(&plan.step_cost(), ops, weight_bytes.saturating_add(plan.cache_bytes()))
}

/// Gas of a greedy generation of `tokens` tokens after `prompt` tokens, `steps` positions
/// evaluated (fixpoint_ml::Plan::steps), each at `step` gas: the base, the cache's allocation,
/// the steps, and the prompt and text copied in and out and hashed into the record.
pub fn generate_gas(plan: &Plan, step: u64, steps: u64, prompt: u64, tokens: u64) -> u64 {
    GENERATE_BASE
        .saturating_add(work_gas(&plan.setup_cost(), 0, 0))
        .saturating_add(step.saturating_mul(steps))
        .saturating_add(PER_WORD_IO.saturating_mul(words(prompt.saturating_add(tokens).saturating_add(4))))
}

/// Conversions of an `inferInts` call with `inputs` integers and a packed output of
/// `output_bytes` (at most that many integers).
pub fn ints_gas(inputs: u64, output_bytes: u64) -> u64 {
    PER_INT.saturating_mul(inputs.saturating_add(output_bytes))
}

/// Surcharge for the first use of a model of `size` bytes in a block.
pub fn cold_surcharge(size: u64) -> u64 {
    COLD_BASE.saturating_add(COLD_PER_WORD.saturating_mul(words(size)))
}

/// Gas of registering a model of `size` bytes.
pub fn register_gas(size: u64) -> u64 {
    REGISTER_BASE.saturating_add(REGISTER_PER_WORD.saturating_mul(words(size)))
}

/// Gas of one chunk of `len` bytes.
pub fn chunk_gas(len: u64) -> u64 {
    CHUNK_BASE.saturating_add(CHUNK_PER_WORD.saturating_mul(words(len)))
}

/// Gas of `finalizeUpload` of a `size`-byte upload in `chunks` chunks (besides [`REJECT`]).
pub const fn finalize_gas(size: u64, chunks: u64) -> u64 {
    REGISTER_BASE
        .saturating_add(REGISTER_PER_WORD.saturating_mul(words(size)))
        .saturating_add(FINISH_PER_CHUNK.saturating_mul(chunks))
}

/// Gas of ending an upload of `chunks` chunks without registering it (cancel).
pub const fn cancel_gas(chunks: u64) -> u64 {
    CANCEL_UPLOAD.saturating_add(FINISH_PER_CHUNK.saturating_mul(chunks))
}

/// Largest upload `beginUpload` accepts: with [`MAX_UPLOAD_CHUNKS`], its `finalizeUpload` fits
/// in a block (docs/gas.md §Registry; checked at compile time below).
pub const MAX_UPLOAD_BYTES: u64 = 8 << 20;
/// Most chunks one upload may have.
pub const MAX_UPLOAD_CHUNKS: u64 = 1024;

// 40,000 + 60 · 262,144 + 5,000 · 1,024 + 1,000 + 25,000 = 20,914,640 ≤ 30,000,000.
const _: () =
    assert!(REJECT + finalize_gas(MAX_UPLOAD_BYTES, MAX_UPLOAD_CHUNKS) + FINALIZE_TX_OVERHEAD <= BLOCK_GAS_LIMIT);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_monotone_and_exact() {
        let c = Cost {
            macs: 17_024,
            elem_ops: 10,
            steps: 20,
            visits: 5,
            calls: 30,
            alloc_bytes: 3_200,
            bytes_read: 19_088,
            input_bytes: 64,
            output_bytes: 44,
            ..Cost::default()
        };
        // 6000 + 4·200 + ceil(17024/2) + 10·6 + 20·8 + 5·24 + 30·48 + 4·ceil(3200/32)
        //      + ceil(19088/32) + 480·ceil(108/32)
        assert_eq!(warm_infer_gas(&c, 4), 6_000 + 800 + 8_512 + 60 + 160 + 120 + 1_440 + 400 + 597 + 1_920);
        for bigger in [
            Cost { macs: c.macs * 2, ..c },
            Cost { elem_ops: c.elem_ops + 1, ..c },
            Cost { steps: c.steps + 1, ..c },
            Cost { visits: c.visits + 1, ..c },
            Cost { calls: c.calls + 1, ..c },
            Cost { alloc_bytes: c.alloc_bytes + 32, ..c },
        ] {
            assert!(warm_infer_gas(&bigger, 4) > warm_infer_gas(&c, 4), "{bigger:?}");
        }
        assert_eq!(ints_gas(64, 44), 40 * 108);
        assert_eq!(cold_surcharge(64), 2_600 + 12);
        assert_eq!(words(0), 0);
        assert_eq!(words(33), 2);
        assert_eq!(warm_infer_gas(&Cost { macs: u64::MAX, ..Cost::default() }, u64::MAX), u64::MAX);
    }

    #[test]
    fn the_largest_upload_finalizes_within_a_block() {
        let worst = REJECT + finalize_gas(MAX_UPLOAD_BYTES, MAX_UPLOAD_CHUNKS) + FINALIZE_TX_OVERHEAD;
        assert_eq!(worst, 1_000 + 40_000 + 60 * 262_144 + 5_000 * 1_024 + 25_000);
        assert!(worst <= BLOCK_GAS_LIMIT);
        // A chunk costs at least as much per byte as registering the bytes, plus a slot.
        assert!(chunk_gas(4096) >= register_gas(4096) - REGISTER_BASE + 22_100);
    }
}
