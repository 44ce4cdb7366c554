//! The real recipe with Qwen2.5's real tokenizer (issue 18, item 3): one full iteration of
//! `orz train --preset orz-0.5b` on the real ORZ training data, with a random-weight model that
//! has Qwen2.5-0.5B's vocabulary (151,936 embedding rows, tied), hidden size (896) and head
//! layout (14 query heads, 2 key-value heads of 64), one layer, and short lengths so that it fits
//! CI on candle CPU. Skips, saying so, where `scripts/qwen-tokenizer.sh` has not been run.
#![allow(clippy::unwrap_used)]

mod qwen_support;

use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
use orz::cli::Cli;
use orz::tokenizer::Tokenizer;
use orz_core::backend::DType;
use orz_core::model::{Head, Policy, Qwen2Config};
use orz_core::rng::Rng;
use qwen_support::{repo, tokenizer_path};

/// Qwen2.5-0.5B's shape (its config.json) with one layer instead of 24.
fn qwen2_5_0_5b_one_layer() -> Qwen2Config {
    Qwen2Config {
        vocab_size: 151_936,
        hidden_size: 896,
        intermediate_size: 4864,
        num_hidden_layers: 1,
        num_attention_heads: 14,
        num_key_value_heads: 2,
        rope_theta: 1_000_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        max_position_embeddings: 32_768,
        bos_token_id: None,
        eos_token_ids: vec![151_643],
    }
}

/// Writes the random model (BF16 safetensors) and Qwen2.5's tokenizer.json into `dir`.
fn write_model(dir: &Path, tokenizer: &Path) {
    let config = qwen2_5_0_5b_one_layer();
    assert_eq!(config.head_dim(), 64);
    let b = Rc::new(orz_candle::Candle::cpu());
    let policy = Policy::random(Rc::clone(&b), &config, DType::F32, &mut Rng::seed_from_u64(18)).unwrap();
    orz_hf::save_model(&*b, dir, &config, Head::Lm, &policy.model().named_tensors(), DType::BF16, None)
        .unwrap();
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).unwrap();
}

// Prompts cut to 192 tokens (ORZ keeps the first ones; the 57k subset's median rendered prompt
// is 231 tokens), 6 new tokens, one prompt with two samples.
const SCALED: &str = "\
rollout_batch_size = 1
eval_interval = 1
[train]
n_samples_per_prompt = 2
prompt_max_len = 192
packing_max_len = 512
engine = { max_batch_slots = 2 }
stop = { max_new_tokens = 6, max_total_len = 198 }
";

#[test]
fn one_iteration_of_the_orz_0_5b_recipe_with_qwen2_5s_tokenizer() {
    let Some(tokenizer) = tokenizer_path("one_iteration_of_the_orz_0_5b_recipe_with_qwen2_5s_tokenizer")
    else {
        return;
    };
    let start = Instant::now();
    let root = std::env::temp_dir().join(format!("orz-test-qwen-scaled-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (model, out) = (root.join("model"), root.join("out"));
    std::fs::create_dir_all(&model).unwrap();
    write_model(&model, &tokenizer);
    std::fs::write(root.join("scaled.toml"), SCALED).unwrap();
    // The first MATH500 question as the eval set.
    let math500 = std::fs::read_to_string(repo().join("data/orz/eval/math500.json")).unwrap();
    let first = &serde_json::from_str::<Vec<serde_json::Value>>(&math500).unwrap()[..1];
    let eval = root.join("math1.json");
    std::fs::write(&eval, serde_json::to_string(first).unwrap()).unwrap();
    let data = repo().join("data/orz/orz_math_57k_subset.json");
    let config = root.join("scaled.toml");
    let paths =
        [("--model", &model), ("--data", &data), ("--eval", &eval), ("--config", &config), ("--out", &out)];
    let args: Vec<String> = ["orz", "train", "--preset", "orz-0.5b", "--iterations", "1", "--quiet"]
        .into_iter()
        .map(String::from)
        .chain(paths.into_iter().flat_map(|(flag, p)| [flag.to_string(), p.display().to_string()]))
        .collect();
    let written = start.elapsed();
    let cli = Cli::try_parse_from(&args).unwrap();
    orz::commands::train(&cli.common).unwrap();
    let trained = start.elapsed();

    let metrics = orz::metrics::read_metrics(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 1);
    let m = &metrics[0];
    assert_eq!((m.rollout.prompts, m.rollout.samples), (1, 2), "{m:?}");
    // Every prompt of the data is at least 143 Qwen2.5 tokens (the template is about 140), and
    // prompts are cut to 192: each sample is prompt plus at most 6 tokens.
    let per_sample = m.training_tokens as f64 / m.rollout.samples as f64;
    assert!((143.0..=198.0).contains(&per_sample), "{per_sample}");
    assert_eq!(m.rollout.mean_reward, 0.0, "a random model never answers");
    assert!(m.eval.contains_key("math1"), "{m:?}");
    let gens = std::fs::read_to_string(out.join("eval/iter-000000.jsonl")).unwrap();
    assert_eq!(gens.lines().count(), 1);
    // The checkpoint carries the real tokenizer.
    let policy = out.join("checkpoint-000001").join("policy");
    let saved = Tokenizer::from_file(policy.join("tokenizer.json")).unwrap();
    assert_eq!(saved.vocab_size(), 151_665);
    println!(
        "wrote the model in {:.1} s; one iteration (eval, rollout, critic and policy updates, checkpoint) in {:.1} s",
        written.as_secs_f64(),
        (trained - written).as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&root);
}
