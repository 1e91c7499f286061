//! `generate` on the inference precompile, reached the way contracts reach it: the text equals
//! the engine's greedy generation, the gas is exactly the figure known before the call (one gas
//! less halts out of gas) and does not depend on what the prompt says, the call is recorded, and
//! every refusal is a decodable ABI error.

mod common;

#[path = "../../ml/tests/common/adversarial.rs"]
mod adversarial;
#[path = "../../ml/tests/common/causal.rs"]
mod causal;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, SolInterface, sol};
use common::*;
use fixpoint_ml::{Counter, Engine, Limits};
use fixpoint_precompiles::abi::IInference::{self as I, IInferenceErrors};
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS, gas};

sol! {
    contract Prober {
        function callWith(address target, bytes data, uint256 gas) external returns (bool ok, bytes ret);
    }
    contract StoryBook {
        constructor(bytes32 modelId_, bytes opening, uint32 promptBytes_, uint32 maxNewBytes_);
        function extend(bytes words, uint32 newBytes) external returns (bytes continuation);
        function story() external view returns (bytes);
    }
}

const DIMS: causal::Dims = causal::Dims { t: 32, vocab: 256, d: 32, heads: 4, layers: 2 };

struct Setup {
    chain: Chain,
    prober: Address,
    engine: Engine,
    id: B256,
    digits: B256,
}

fn setup() -> Setup {
    let model = causal::decoder(DIMS, 21).to_bytes();
    let digits = model_cases("digits-mlp").remove(0).model;
    let mut chain = Chain::new();
    let txs = vec![
        chain.tx(
            ALICE,
            TxKind::Call(REGISTRY_ADDRESS),
            R::registerCall { model: model.clone().into() }.abi_encode(),
            10_000_000,
        ),
        chain.tx(
            ALICE,
            TxKind::Call(REGISTRY_ADDRESS),
            R::registerCall { model: digits.clone().into() }.abi_encode(),
            5_000_000,
        ),
        chain.tx(ALICE, TxKind::Create, artifact("Prober.sol", "Prober"), 2_000_000),
    ];
    let b = chain.block(txs);
    assert!(b.txs.iter().all(|t| t.success));
    let prober = b.txs[2].contract_address.unwrap();
    let engine = Engine::load(&model, &Limits::default()).unwrap();
    Setup { chain, prober, engine, id: keccak256(&model), digits: keccak256(&digits) }
}

/// Calls the precompile through the prober with `gas`; returns (ok, return data, the block).
fn probe(s: &mut Setup, data: &[u8], gas: u64) -> (bool, Bytes, fixpoint_evm::BlockOutcome) {
    let call = Prober::callWithCall { target: INFERENCE_ADDRESS, data: data.to_vec().into(), gas: U256::from(gas) };
    let tx = s.chain.tx(BOB, TxKind::Call(s.prober), call.abi_encode(), 25_000_000);
    let out = s.chain.dry_run(&[tx]);
    assert!(out.txs[0].success, "the prober itself never fails");
    let r = Prober::callWithCall::abi_decode_returns(&out.txs[0].output).unwrap();
    (r.ok, r.ret, out)
}

fn generate(id: B256, prompt: &[u8], tokens: u32) -> Vec<u8> {
    I::generateCall { modelId: id, prompt: prompt.to_vec().into(), maxTokens: tokens }.abi_encode()
}

/// The gas the schedule names for this generation, from the model bytes and the two lengths
/// (what a wallet or `eth_estimateGas` can know before sending).
fn priced(s: &Setup, prompt: usize, tokens: usize, cold: bool) -> u64 {
    let plan = s.engine.plan().unwrap();
    let steps = plan.steps(prompt, tokens).unwrap() as u64;
    let step = gas::step_gas(plan, s.engine.model().nodes.len() as u64, s.engine.cost().weight_bytes);
    let size = s.engine.model().to_bytes().len() as u64;
    gas::REJECT
        + gas::generate_gas(plan, step, steps, prompt as u64, tokens as u64)
        + if cold { gas::cold_surcharge(size) } else { 0 }
}

#[test]
fn generated_text_is_the_engines_and_is_recorded() {
    let mut s = setup();
    let id = s.id;
    let prompt = b"In the beginning";
    let (ok, ret, out) = probe(&mut s, &generate(id, prompt, 12), 20_000_000);
    assert!(ok, "revert {}", hex::encode(&ret));
    let text = I::generateCall::abi_decode_returns(&ret).unwrap().to_vec();
    let ids: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
    let want: Vec<u8> = s.engine.generate(&ids, 12, &Counter::new()).unwrap().into_iter().map(|t| t as u8).collect();
    assert_eq!(text, want);
    assert_eq!(text.len(), 12);
    // Recorded: the prompt and the count in, the text out, the gas charged.
    let [rec] = out.records.as_slice() else { panic!("one record, got {}", out.records.len()) };
    let mut input = prompt.to_vec();
    input.extend_from_slice(&12u32.to_be_bytes());
    assert_eq!((rec.model_id, rec.input_hash, rec.output_hash), (s.id, keccak256(&input), keccak256(&text)));
    assert_eq!(rec.gas_used, priced(&s, prompt.len(), 12, true));
}

#[test]
fn gas_is_exactly_the_priced_figure_whatever_the_prompt_says() {
    let mut s = setup();
    let id = s.id;
    for (prompt, tokens) in
        [(&b"abc"[..], 5u32), (&b"xyz"[..], 5), (&b"a much longer prompt here"[..], 8), (&b"q"[..], 32)]
    {
        let data = generate(id, prompt, tokens);
        let full = priced(&s, prompt.len(), tokens as usize, true);
        let (ok, ret, _) = probe(&mut s, &data, full);
        assert!(ok, "{prompt:?}: revert {}", hex::encode(&ret));
        let (ok, ret, _) = probe(&mut s, &data, full - 1);
        assert!(!ok && ret.is_empty(), "{prompt:?}: one gas short must halt out of gas");
    }
    // The same lengths cost the same whatever the bytes (the plan prices positions, not values).
    assert_eq!(priced(&s, 3, 5, true), priced(&s, 3, 5, true));
    let a = probe(&mut s, &generate(id, b"abc", 5), 20_000_000).2.records[0].gas_used;
    let b = probe(&mut s, &generate(id, &[0, 255, 7], 5), 20_000_000).2.records[0].gas_used;
    assert_eq!(a, b);
    // A longer generation costs more.
    assert!(priced(&s, 3, 6, true) > priced(&s, 3, 5, true));
}

#[test]
fn refusals_are_decodable_and_the_chain_goes_on() {
    let mut s = setup();
    let (id, digits) = (s.id, s.digits);
    let err = |ret: &[u8]| IInferenceErrors::abi_decode(ret).unwrap();
    let (ok, ret, _) = probe(&mut s, &generate(id, b"", 4), 20_000_000);
    assert!(!ok);
    assert_eq!(err(&ret), IInferenceErrors::EmptyPrompt(I::EmptyPrompt {}));
    let (ok, ret, _) = probe(&mut s, &generate(id, &[b'a'; 20], 14), 20_000_000);
    assert!(!ok);
    let want =
        I::ContextExceeded { promptLength: U256::from(20), maxTokens: U256::from(14), context: U256::from(DIMS.t) };
    assert_eq!(err(&ret), IInferenceErrors::ContextExceeded(want));
    // Exactly the window is fine: 20 + 13 − 1 = 32 positions.
    assert!(probe(&mut s, &generate(id, &[b'a'; 20], 13), 20_000_000).0);
    // A classifier cannot generate; an unknown model is unknown.
    let (ok, ret, out) = probe(&mut s, &generate(digits, b"hi", 2), 20_000_000);
    assert!(!ok);
    assert!(matches!(err(&ret), IInferenceErrors::NotGenerative(_)), "{:?}", err(&ret));
    assert!(out.records.is_empty(), "nothing generated, nothing recorded");
    let (ok, ret, _) = probe(&mut s, &generate(B256::repeat_byte(7), b"hi", 2), 20_000_000);
    assert!(!ok);
    assert!(matches!(err(&ret), IInferenceErrors::UnknownModel(_)));
    // The chain goes on: a good call still works in the next block.
    assert!(probe(&mut s, &generate(id, b"ok", 3), 20_000_000).0);
}

#[test]
fn the_story_book_writes_the_engines_words_and_replays_identically() {
    let mut s = setup();
    let ctor = StoryBook::constructorCall {
        modelId_: s.id,
        opening: b"Once".to_vec().into(),
        promptBytes_: 16,
        maxNewBytes_: 16,
    };
    let mut code = artifact("StoryBook.sol", "StoryBook").to_vec();
    code.extend(ctor.abi_encode());
    let dep = s.chain.tx(ALICE, TxKind::Create, code, 3_000_000);
    let b = s.chain.block(vec![dep]);
    assert!(b.txs[0].success);
    let book = b.txs[0].contract_address.unwrap();
    // Two turns in one block, by two authors; the second reads the first's words.
    let turns: [(&[u8], u32); 2] = [(b" upon a", 6), (b" time", 9)];
    let txs: Vec<_> = turns
        .iter()
        .zip([ALICE, BOB])
        .map(|((words, n), who)| {
            let call = StoryBook::extendCall { words: words.to_vec().into(), newBytes: *n };
            s.chain.tx(who, TxKind::Call(book), call.abi_encode(), 15_000_000)
        })
        .collect();
    let parent = s.chain.state.clone();
    let b = s.chain.block(txs.clone());
    assert!(b.txs.iter().all(|t| t.success), "{:?}", b.txs);
    // The engine, step by step: words appended, the last 16 bytes as the prompt.
    let mut story = b"Once".to_vec();
    for ((words, n), t) in turns.iter().zip(&b.txs) {
        story.extend_from_slice(words);
        let prompt: Vec<u32> = story[story.len().saturating_sub(16)..].iter().map(|&c| u32::from(c)).collect();
        let text: Vec<u8> =
            s.engine.generate(&prompt, *n as usize, &Counter::new()).unwrap().into_iter().map(|x| x as u8).collect();
        assert_eq!(StoryBook::extendCall::abi_decode_returns(&t.output).unwrap().to_vec(), text);
        story.extend_from_slice(&text);
    }
    assert_eq!(b.records.len(), 2, "each turn recorded");
    // Re-executing the block from its parent gives the same roots and records (what every
    // validator does).
    s.chain.nonces.clear();
    let again = fixpoint_evm::execute_block(
        &parent,
        &s.chain.store,
        &s.chain.spec,
        &{
            let mut env = s.chain.env();
            env.number -= 1;
            env.timestamp -= 1;
            env
        },
        &txs,
    )
    .unwrap();
    assert_eq!((again.state_root, again.records_root), (b.state_root, b.records_root));
    let read = s.chain.tx(BOB, TxKind::Call(book), StoryBook::storyCall {}.abi_encode(), 1_000_000);
    let out = s.chain.dry_run(&[read]);
    assert_eq!(StoryBook::storyCall::abi_decode_returns(&out.txs[0].output).unwrap().to_vec(), story);
}
