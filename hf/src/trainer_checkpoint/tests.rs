//! Exact resume on the candle CPU backend with a tiny random Qwen2: `k` iterations, save, load
//! into a fresh trainer, `m` more, against an uninterrupted `k + m` run; the policy directory as
//! a Hugging Face model; interrupted saves; errors naming the file and tensor at fault.

use std::path::PathBuf;
use std::rc::Rc;

use orz_candle::Candle;
use orz_conformance::checks::iteration::{HasE, detok};
use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, Head, PackedBatch, Policy, Qwen2Config};
use orz_core::recipe::Preset;
use orz_core::rng::Rng;
use orz_core::train::{PromptItem, TrainConfig, Trainer};

use super::*;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orz-checkpoint-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A word-level `tokenizer.json` over the toy letters.
fn tokenizer() -> String {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..26u32).map(|t| (detok(&[t]), serde_json::json!(t))).collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "a"}
    });
    json.to_string()
}

/// The tiny preset shrunk to `Qwen2Config::tiny_test()`, with a 3-step warmup (so the resumed
/// schedule must continue from the saved step counters) and large learning rates.
fn train_config() -> TrainConfig {
    let mut c = Preset::Tiny.config().train_config(Qwen2Config::tiny_test().eos_token_ids).unwrap();
    (c.n_samples_per_prompt, c.stop.max_new_tokens, c.stop.max_total_len) = (4, 6, 16);
    (c.prompt_max_len, c.packing_max_len, c.critic_update_steps) = (8, 32, 3);
    c.set_learning_rates(1e-2, 1e-3, 3);
    c.validate().unwrap();
    c
}

fn prompts() -> Vec<PromptItem> {
    [vec![5u32, 6, 7], vec![9, 10], vec![3, 4, 11, 12]]
        .into_iter()
        .map(|tokens| PromptItem { text: detok(&tokens), tokens, reference: String::new() })
        .collect()
}

/// A fresh trainer on its own candle CPU backend: random models from seed 11, generator 5.
fn trainer(model: &Qwen2Config, dtype: DType) -> Trainer<Candle> {
    trainer_with(model, dtype, train_config())
}

/// [`trainer`] with `config`.
fn trainer_with(model: &Qwen2Config, dtype: DType, config: TrainConfig) -> Trainer<Candle> {
    let b = Rc::new(Candle::cpu());
    let mut rng = Rng::seed_from_u64(11);
    let policy = Policy::random(Rc::clone(&b), model, dtype, &mut rng).unwrap();
    let critic = Critic::random(Rc::clone(&b), model, dtype, &mut rng).unwrap();
    Trainer::new(config, policy, Some(critic), Rng::seed_from_u64(5)).unwrap()
}

/// The initial policy of [`trainer`] (seed 11), as a run's base model reloads it.
fn initial_policy(b: &Rc<Candle>, model: &Qwen2Config, dtype: DType) -> Policy<Candle> {
    Policy::random(Rc::clone(b), model, dtype, &mut Rng::seed_from_u64(11)).unwrap()
}

/// `n` iterations; the reports' Debug text (f64 Debug is exact, so equal text is equal bits).
fn run(t: &mut Trainer<Candle>, n: usize) -> Vec<String> {
    (0..n).map(|_| format!("{:?}", t.iteration(&prompts(), &HasE, &detok).unwrap())).collect()
}

/// Every parameter of both models as f32 bits.
fn weights(t: &Trainer<Candle>) -> Vec<Vec<u32>> {
    let b = t.policy().model().backend();
    let mut params = t.policy().model().parameters();
    params.extend(t.critic().unwrap().model().parameters());
    params.iter().map(|p| b.to_host_f32(p).unwrap().iter().map(|x| x.to_bits()).collect()).collect()
}

fn run_state() -> RunState {
    RunState {
        seed: 5,
        preset: "tiny".into(),
        epoch: 1,
        position: 2,
        extras: serde_json::json!({"best": 0.5}),
    }
}

fn exact_resume(dtype: DType, tag: &str) {
    let (k, m) = (2, 2);
    let model = Qwen2Config::tiny_test();
    let mut whole = trainer(&model, dtype);
    let whole_reports = run(&mut whole, k + m);

    let root = scratch(tag);
    let dir = root.join("ck");
    let mut first = trainer(&model, dtype);
    run(&mut first, k);
    save(&dir, &first, Some(&tokenizer()), &run_state()).unwrap();
    let saved_state = first.state().unwrap();
    drop(first);
    let Loaded { trainer: mut resumed, run: loaded_run, .. } =
        load(Rc::new(Candle::cpu()), &dir, dtype).unwrap();
    assert_eq!(loaded_run, run_state());
    assert_eq!(
        resumed.state().unwrap(),
        saved_state,
        "the loaded trainer's state differs from the saved one"
    );
    let resumed_reports = run(&mut resumed, m);

    assert_eq!(resumed_reports, whole_reports[k..], "iteration reports differ after the resume");
    assert!(weights(&resumed) == weights(&whole), "weights differ after the resume");
    assert_eq!(resumed.state().unwrap(), whole.state().unwrap(), "optimizer states differ after the resume");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_kl_run_resumes_exactly_with_its_initial_policy_as_reference() {
    let (k, m, dtype) = (2, 1, DType::F32);
    let model = Qwen2Config::tiny_test();
    let config = TrainConfig { kl_coef: 0.1, use_kl_loss: true, kl_loss_coef: 0.1, ..train_config() };
    let mut whole = trainer_with(&model, dtype, config.clone());
    let whole_reports = run(&mut whole, k + m);
    assert!(whole_reports[k].contains("kl: Some("), "{}", whole_reports[k]);

    let root = scratch("kl-resume");
    let dir = root.join("ck");
    let mut first = trainer_with(&model, dtype, config);
    run(&mut first, k);
    save(&dir, &first, Some(&tokenizer()), &run_state()).unwrap();
    drop(first);
    // The checkpoint holds no reference: a loaded trainer refuses to run until it gets one.
    let b = Rc::new(Candle::cpu());
    let mut bare = load(Rc::clone(&b), &dir, dtype).unwrap().trainer;
    assert!(bare.reference().is_none());
    let err = bare.iteration(&prompts(), &HasE, &detok).unwrap_err().to_string();
    assert!(err.contains("with_reference"), "{err}");
    // With the run's initial policy it continues bit for bit.
    let mut resumed = load(Rc::clone(&b), &dir, dtype)
        .unwrap()
        .trainer
        .with_reference(initial_policy(&b, &model, dtype))
        .unwrap();
    assert_eq!(run(&mut resumed, m), whole_reports[k..], "iteration reports differ after the resume");
    assert!(weights(&resumed) == weights(&whole), "weights differ after the resume");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn resume_is_bit_exact_in_f32() {
    exact_resume(DType::F32, "exact-f32");
}

#[test]
fn resume_is_bit_exact_in_bf16_with_masters() {
    exact_resume(DType::BF16, "exact-bf16");
}

#[test]
fn a_bf16_checkpoint_loads_in_f32_with_its_masters_as_weights() {
    let root = scratch("cross");
    let dir = root.join("ck");
    let mut t = trainer(&Qwen2Config::tiny_test(), DType::BF16);
    run(&mut t, 1);
    save(&dir, &t, Some(&tokenizer()), &run_state()).unwrap();
    let state = t.state().unwrap();
    let loaded = load(Rc::new(Candle::cpu()), &dir, DType::F32).unwrap().trainer;
    let b = loaded.policy().model().backend();
    for (i, p) in loaded.policy().model().parameters().iter().enumerate() {
        let master = state.policy_optimizer.params[i].master.as_ref().unwrap();
        assert!(b.to_host_f32(p).unwrap() == *master, "parameter {i} is not its f32 master");
    }
    let l = loaded.state().unwrap();
    assert!(l.policy_optimizer.params.iter().all(|p| p.master.is_none()));
    assert_eq!(l.policy_optimizer.params[0].moments, state.policy_optimizer.params[0].moments);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_policy_dir_is_a_hugging_face_model_with_the_same_logits() {
    let root = scratch("hf");
    let dir = root.join("ck");
    let mut t = trainer(&Qwen2Config::tiny_test(), DType::F32);
    run(&mut t, 1);
    save(&dir, &t, Some(&tokenizer()), &run_state()).unwrap();
    let b = Rc::new(Candle::cpu());
    let (config, tensors) = crate::load_model(b.as_ref(), policy_dir(&dir), Head::Lm, DType::F32).unwrap();
    let policy = Policy::from_tensors(Rc::clone(&b), &config, tensors).unwrap();
    let batch = PackedBatch::padded(&[vec![5u32, 6, 7, 8], vec![9, 10]]).unwrap();
    let logits = |p: &Policy<Candle>| p.model().backend().to_host_f32(&p.logits(&batch).unwrap()).unwrap();
    assert!(logits(&policy) == logits(t.policy()), "the saved policy's logits differ");
    // The critic directory holds the backbone and the value head, and the tokenizer is there.
    let (_, critic) = crate::load_model(b.as_ref(), dir.join(CRITIC_DIR), Head::Value, DType::F32).unwrap();
    assert!(critic.contains_key(orz_core::model::VALUE_HEAD) && !critic.contains_key("lm_head.weight"));
    let tok = tokenizers::Tokenizer::from_file(dir.join(CRITIC_DIR).join(TOKENIZER_FILE)).unwrap();
    assert_eq!(tok.encode("c e", false).unwrap().get_ids(), [2, 4]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_interrupted_save_leaves_the_previous_checkpoint() {
    let root = scratch("crash");
    let dir = root.join("ck");
    let mut t = trainer(&Qwen2Config::tiny_test(), DType::F32);
    run(&mut t, 1);
    save(&dir, &t, Some(&tokenizer()), &run_state()).unwrap();
    let before = t.state().unwrap();
    // A save that died half-way: a temporary directory with a partial checkpoint.
    let partial = root.join(".ck.tmp-4000000");
    std::fs::create_dir_all(partial.join(STATE_DIR)).unwrap();
    std::fs::write(partial.join(STATE_DIR).join(STATE_FILE), "{\"format_version\": 1, \"iter").unwrap();
    let loaded = load(Rc::new(Candle::cpu()), &dir, DType::F32).unwrap().trainer;
    assert_eq!(loaded.state().unwrap(), before);
    // The next save replaces the checkpoint and removes the leftover.
    run(&mut t, 1);
    save(&dir, &t, Some(&tokenizer()), &run_state()).unwrap();
    assert!(!partial.exists());
    assert_eq!(load(Rc::new(Candle::cpu()), &dir, DType::F32).unwrap().trainer.iterations(), 2);
    let names: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("ck")]);
    // Died between the two renames: the error points at the previous checkpoint.
    std::fs::rename(&dir, root.join(".ck.old-4000000")).unwrap();
    let e = format!("{:#}", load(Rc::new(Candle::cpu()), &dir, DType::F32).unwrap_err());
    assert!(e.contains("no such checkpoint directory") && e.contains(".ck.old-4000000"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn errors_name_the_file_and_the_tensor() {
    let root = scratch("errors");
    let e = format!("{:#}", load(Rc::new(Candle::cpu()), &root.join("none"), DType::F32).unwrap_err());
    assert!(e.contains("none: no such checkpoint directory"), "{e}");

    // Checkpoints of three model shapes; parts of one swapped into another.
    let base = Qwen2Config::tiny_test();
    let wide = Qwen2Config { intermediate_size: 48, ..base.clone() };
    let shallow = Qwen2Config { num_hidden_layers: 1, ..base.clone() };
    for (name, model) in [("base", &base), ("wide", &wide), ("shallow", &shallow)] {
        let mut t = trainer(model, DType::F32);
        run(&mut t, 1);
        save(&root.join(name), &t, Some(&tokenizer()), &run_state()).unwrap();
    }
    let copy = |from: &str, to: &str, file: &str| {
        let (a, b) = (root.join(from).join(STATE_DIR).join(file), root.join(to).join(STATE_DIR).join(file));
        std::fs::copy(a, b).unwrap();
    };
    let load_err =
        |name: &str| format!("{:#}", load(Rc::new(Candle::cpu()), &root.join(name), DType::F32).unwrap_err());

    // Missing tensor: the one-layer model's moments for the two-layer one.
    copy("shallow", "base", POLICY_OPTIMIZER_FILE);
    let e = load_err("base");
    let missing =
        "policy_optimizer.safetensors: tensor `exp_avg.model.layers.1.input_layernorm.weight` is missing";
    assert!(e.contains(missing), "{e}");
    // Shape mismatch: the wide model's moments for the one-layer model.
    copy("wide", "shallow", POLICY_OPTIMIZER_FILE);
    let e = load_err("shallow");
    let shape = "tensor `exp_avg.model.layers.0.mlp.gate_proj.weight` has shape [48, 32], but parameter";
    assert!(e.contains("policy_optimizer.safetensors") && e.contains(shape), "{e}");
    // Another format version.
    let state_file = root.join("wide").join(STATE_DIR).join(STATE_FILE);
    let text = std::fs::read_to_string(&state_file)
        .unwrap()
        .replace("\"format_version\": 1", "\"format_version\": 7");
    std::fs::write(&state_file, text).unwrap();
    let e = load_err("wide");
    assert!(e.contains("trainer_state.json: `format_version` is 7"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}
