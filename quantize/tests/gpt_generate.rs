//! The float tiny GPT's KV-cached greedy generation (the float side of the candle benchmark)
//! equals re-running the whole window for every new byte; and the committed integer model
//! generates through the engine's plan (model-format.md §9).

use candle_core::{Device, Tensor};
use fixpoint_ml::{Counter, Engine, Limits};
use fixpoint_quantize::gpt::Gpt;
use fixpoint_quantize::gpt::model::log_prob_and_top;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
}

#[test]
fn float_generation_with_a_cache_equals_rerunning_the_window() {
    let m = Gpt::load(&root().join("data/tiny-gpt.safetensors")).unwrap();
    for prompt in [&b"And God said"[..], b"T", b"And the LORD spake unto Moses, saying,"] {
        let got = m.generate(prompt, 12).unwrap();
        let mut seq = prompt.to_vec();
        for _ in 0..12 {
            let ids: Vec<u32> = seq.iter().map(|&b| u32::from(b)).collect();
            let x = Tensor::from_vec(ids, (1, seq.len()), &Device::Cpu).unwrap();
            let rows: Vec<Vec<f32>> = m.forward(&x).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
            let (_, top) = log_prob_and_top(rows.last().unwrap(), 0);
            seq.push(top as u8);
        }
        assert_eq!(got, seq[prompt.len()..].to_vec(), "{}", String::from_utf8_lossy(prompt));
    }
}

#[test]
fn the_committed_integer_model_generates_text() {
    let bytes = std::fs::read(root().join("../node/assets/tiny-gpt.fxp")).unwrap();
    let e = Engine::load(&bytes, &Limits::default()).unwrap();
    let plan = e.plan().unwrap();
    assert_eq!((plan.context(), plan.vocab()), (128, 256));
    let prompt: Vec<u32> = b"And God said, Let there be light".iter().map(|&b| u32::from(b)).collect();
    let text: Vec<u8> = e.generate(&prompt, 32, &Counter::new()).unwrap().into_iter().map(|t| t as u8).collect();
    println!("{}", String::from_utf8_lossy(&text));
    // Byte-level English: mostly letters and spaces.
    let letters = text.iter().filter(|c| c.is_ascii_alphabetic() || **c == b' ').count();
    assert!(letters * 10 >= text.len() * 8, "{}", String::from_utf8_lossy(&text));
}
