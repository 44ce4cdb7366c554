//! The data-parallel trainer over Gloo: the toy run at 1, 2 and 4 ranks against one process,
//! ZeRO-3 against ZeRO-2, the algorithm options over two ranks, and checkpoints resumed at the
//! same and at other world sizes.

use super::*;

const ITERATIONS: usize = 3;

/// The tiny preset at toy sizes: 5 prompts (uneven over 2 and 4 ranks) x 4 samples, packs of
/// at most 32 tokens (several per step), a critic, 2 critic and 2 policy steps per iteration;
/// the weights sharded above one rank (ZeRO-3) unless `ORZ_C10D_ZERO` is `2`, activation
/// checkpointing with head chunks of 8 tokens when `ORZ_C10D_CHECKPOINT` is `1`.
fn trainer(b: &Rc<Tch>) -> Trainer<Tch> {
    trainer_on(b, Rc::new(Single))
}

/// [`trainer`] built as one rank of `collective` ([`Trainer::new_distributed`]).
fn trainer_on(b: &Rc<Tch>, collective: Rc<dyn Collective<Tch>>) -> Trainer<Tch> {
    let zero2 = std::env::var("ORZ_C10D_ZERO").as_deref() == Ok("2");
    let checkpoint = std::env::var("ORZ_C10D_CHECKPOINT").as_deref() == Ok("1");
    let options = std::env::var(OPTIONS).is_ok_and(|v| v == "kl");
    trainer_with(b, !zero2, checkpoint, options, collective)
}

/// [`trainer_on`] with its weight sharding, checkpointing and issue 16's options (`options`)
/// given.
fn trainer_with(
    b: &Rc<Tch>,
    shard_weights: bool,
    checkpoint: bool,
    options: bool,
    collective: Rc<dyn Collective<Tch>>,
) -> Trainer<Tch> {
    let config = model_config();
    let policy = Policy::random(Rc::clone(b), &config, DType::F32, &mut Rng::seed_from_u64(5)).unwrap();
    let tensors = policy.model().named_tensors().into_iter().collect();
    let critic = Critic::from_pretrained(Rc::clone(b), &config, tensors, &mut Rng::seed_from_u64(3)).unwrap();
    let mut c = Preset::Tiny.config().train_config(config.eos_token_ids.clone()).unwrap();
    (c.n_samples_per_prompt, c.stop.max_new_tokens, c.stop.max_total_len) = (4, 6, 16);
    (c.prompt_max_len, c.packing_max_len, c.critic_update_steps, c.policy_update_steps) = (8, 32, 2, 2);
    c.set_learning_rates(1e-3, 1e-3, 0);
    c.shard_weights = shard_weights;
    if checkpoint {
        (c.memory.activation_checkpointing, c.memory.head_chunk_tokens) = (true, 8);
    }
    if options {
        // Issue 16's options together: KL in the reward and as a loss (reference log-probs per
        // rank), the entropy bonus, DAPO's dynamic sampling.
        (c.kl_coef, c.use_kl_loss, c.kl_loss_coef, c.entropy_coef) = (0.05, true, 0.1, 0.01);
        (c.dynamic_sampling, c.dynamic_sampling_max_rounds) = (true, 3);
    }
    Trainer::new_distributed(c, policy, Some(critic), Rng::seed_from_u64(9), collective).unwrap()
}

/// The variable that turns issue 16's options on in the spawned ranks' [`trainer`] (`kl`).
const OPTIONS: &str = "ORZ_C10D_OPTIONS";

/// Both models' weights on the host (gathered from the ranks' slices when sharded: every rank
/// must call it).
fn model_weights(trainer: &Trainer<Tch>, b: &Tch) -> Vec<f32> {
    let mut params = trainer.gathered_policy().unwrap().model().parameters();
    params.extend(trainer.gathered_critic().unwrap().unwrap().model().parameters());
    params.iter().flat_map(|p| b.to_host_f32(p).unwrap()).collect()
}

fn prompts() -> Vec<PromptItem> {
    [vec![5u32, 6, 7], vec![9, 10], vec![11, 4, 12, 13], vec![8], vec![14, 15]]
        .into_iter()
        .map(|tokens| PromptItem { text: detok(&tokens), tokens, reference: String::new() })
        .collect()
}

/// The numbers of a report two runs must share: reward mean, response tokens, losses, clip
/// fraction, gradient norms of every step.
fn report_numbers(r: &IterationReport) -> Vec<f32> {
    let mut out = vec![
        r.rollout.mean_reward as f32,
        r.rollout.response_length_mean as f32,
        r.training_tokens as f32,
        r.packs as f32,
        r.policy_loss as f32,
        r.value_loss.unwrap_or(f64::NAN) as f32,
        r.clip_fraction as f32,
        r.kl.unwrap_or(0.0) as f32,
        r.kl_loss.unwrap_or(0.0) as f32,
        r.entropy.unwrap_or(0.0) as f32,
        r.dynamic_sampling.map_or(0.0, |d| (d.rounds * 100 + d.kept_groups) as f32),
    ];
    out.extend(r.policy_steps.iter().chain(&r.critic_steps).map(|s| s.grad_norm as f32));
    out
}

/// Trains `ITERATIONS` iterations; returns both models' weights and every report's numbers.
fn train(trainer: &mut Trainer<Tch>, b: &Tch) -> (Vec<f32>, Vec<f32>) {
    let mut numbers = Vec::new();
    for _ in 0..ITERATIONS {
        // Dynamic sampling's source of more prompts: the same five again, on every rank.
        let report =
            trainer.iteration_dynamic(&prompts(), &mut || Ok(prompts()), &HasE, &detok, None).unwrap();
        assert!(report.skipped_steps.is_empty(), "{:?}", report.skipped_steps);
        numbers.extend(report_numbers(&report));
    }
    (model_weights(trainer, b), numbers)
}

pub(super) fn trainer_case() {
    let g: Rc<dyn Collective<Tch>> = Rc::new(join_group(Duration::from_secs(120)));
    let (rank, dir) = (g.rank(), PathBuf::from(env("ORZ_C10D_DIR")));
    let b = Rc::new(Tch::cpu());
    // The way a job starts: no rank ever holds a whole optimizer state.
    let mut t = trainer_on(&b, g);
    let sharded = t.config().shard_weights && t.collective().world_size() > 1;
    assert_eq!(t.policy().model().is_resident(), !sharded, "a rank keeps a skeleton of sharded weights");
    assert_eq!(t.critic().unwrap().model().is_resident(), !sharded);
    if let Some(reference) = t.reference() {
        assert_eq!(reference.model().is_resident(), !sharded, "the reference model is sliced too");
    }
    let (weights, numbers) = train(&mut t, &b);
    write_f32(&dir.join(format!("weights{rank}.bin")), &weights);
    write_f32(&dir.join(format!("numbers{rank}.bin")), &numbers);
}

#[test]
fn a_world_of_one_through_gloo_is_the_single_process_run_bit_for_bit() {
    tch::set_num_threads(1);
    let b = Rc::new(Tch::cpu());
    let (want_w, want_n) = train(&mut trainer(&b), &b);
    let dir = scratch("trainer1");
    let store = Rendezvous::File { path: format!("{}/store", dir.display()) };
    let g = ProcessGroup::new(&store, "127.0.0.1", 0, 1, Duration::from_secs(30)).unwrap();
    let (got_w, got_n) = train(&mut trainer(&b).distributed(Rc::new(g)).unwrap(), &b);
    assert!(want_w == got_w, "weights differ by {}", max_rel(&want_w, &got_w));
    assert_eq!(want_n, got_n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_and_four_ranks_train_as_one_process() {
    tch::set_num_threads(1);
    let b = Rc::new(Tch::cpu());
    let (want_w, want_n) = train(&mut trainer(&b), &b);
    for world in [2, 4] {
        let dir = scratch(&format!("trainer{world}"));
        join(spawn("trainer", world, &dir, &[]), Duration::from_secs(300));
        for rank in 0..world {
            let (w, n) = (
                read_f32(&dir.join(format!("weights{rank}.bin"))),
                read_f32(&dir.join(format!("numbers{rank}.bin"))),
            );
            eprintln!(
                "W = {world}, rank {rank}: weights within {:e}, numbers within {:e}",
                max_rel(&want_w, &w),
                max_rel(&want_n, &n)
            );
            assert!(
                max_rel(&want_w, &w) <= 1e-5,
                "W = {world}, rank {rank}: weights differ by {}",
                max_rel(&want_w, &w)
            );
            assert!(
                max_rel(&want_n, &n) <= 1e-4,
                "W = {world}, rank {rank}: metrics differ by {}",
                max_rel(&want_n, &n)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Runs the trainer case at `world` ranks with `extra` variables; every rank's weights and
/// report numbers.
fn ranks_of(name: &str, world: usize, extra: &[(&str, String)]) -> Vec<(Vec<f32>, Vec<f32>)> {
    let dir = scratch(name);
    join(spawn("trainer", world, &dir, extra), Duration::from_secs(300));
    let out = (0..world)
        .map(|rank| {
            (
                read_f32(&dir.join(format!("weights{rank}.bin"))),
                read_f32(&dir.join(format!("numbers{rank}.bin"))),
            )
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn sharded_weights_train_as_replicated_ones_bit_for_bit_also_checkpointed() {
    tch::set_num_threads(1);
    let zero = |stage: &str, checkpoint: &str| {
        [("ORZ_C10D_ZERO", String::from(stage)), ("ORZ_C10D_CHECKPOINT", String::from(checkpoint))]
    };
    // ZeRO-3 gathers cast(master) per unit where ZeRO-2 keeps the same values in the model, and
    // both reduce-scatter the same gradients: the runs agree exactly, with the plain backward
    // and with checkpointed layers and a chunked head (each unit gathered twice per backprop).
    for checkpoint in ["0", "1"] {
        let z3 = ranks_of(&format!("zero3-{checkpoint}"), 2, &zero("3", checkpoint));
        let z2 = ranks_of(&format!("zero2-{checkpoint}"), 2, &zero("2", checkpoint));
        for (rank, (a, b)) in z3.iter().zip(&z2).enumerate() {
            assert!(
                a.0 == b.0,
                "checkpointing {checkpoint}, rank {rank}: weights differ by {}",
                max_rel(&a.0, &b.0)
            );
            assert!(a.1 == b.1, "checkpointing {checkpoint}, rank {rank}: report numbers differ");
        }
    }
    // And the checkpointed ZeRO-3 run is the one-process checkpointed run, up to rounding.
    let b = Rc::new(Tch::cpu());
    let (want_w, want_n) = train(&mut trainer_with(&b, true, true, false, Rc::new(Single)), &b);
    let (w, n) = &ranks_of("zero3-ckpt-vs-one", 2, &zero("3", "1"))[0];
    eprintln!(
        "checkpointed ZeRO-3 at W = 2: weights within {:e}, numbers within {:e}",
        max_rel(&want_w, w),
        max_rel(&want_n, n)
    );
    assert!(max_rel(&want_w, w) <= 1e-5, "weights differ by {}", max_rel(&want_w, w));
    assert!(max_rel(&want_n, n) <= 1e-4, "metrics differ by {}", max_rel(&want_n, n));
}

#[test]
fn the_kl_entropy_and_dynamic_sampling_options_train_as_one_process_over_two_ranks() {
    tch::set_num_threads(1);
    let b = Rc::new(Tch::cpu());
    // ZeRO-3 (the default): the reference model is sliced over the ranks with the weights and
    // gathered for its own pass of the experience.
    let (want_w, want_n) = train(&mut trainer_with(&b, true, false, true, Rc::new(Single)), &b);
    assert!(want_n.iter().any(|&x| x != 0.0));
    for (rank, (w, n)) in ranks_of("trainer-kl", 2, &[(OPTIONS, "kl".to_string())]).iter().enumerate() {
        assert!(max_rel(&want_w, w) <= 1e-5, "rank {rank}: weights differ by {}", max_rel(&want_w, w));
        assert!(max_rel(&want_n, n) <= 1e-4, "rank {rank}: metrics differ by {}", max_rel(&want_n, n));
    }
}

/// Iterations `from..to` of the toy run, then both models' weights.
fn train_range(trainer: &mut Trainer<Tch>, b: &Tch, iterations: usize) -> Vec<f32> {
    for _ in 0..iterations {
        trainer.iteration(&prompts(), &HasE, &detok).unwrap();
    }
    model_weights(trainer, b)
}

pub(super) fn resume_case() {
    let g: Rc<dyn Collective<Tch>> = Rc::new(join_group(Duration::from_secs(120)));
    let (rank, dir) = (g.rank(), PathBuf::from(env("ORZ_C10D_DIR")));
    let ckpt = PathBuf::from(env("ORZ_C10D_CKPT"));
    let b = Rc::new(Tch::cpu());
    let weights = if env("ORZ_C10D_PHASE") == "save" {
        let mut t = trainer(&b).distributed(g).unwrap();
        train_range(&mut t, &b, 1);
        orz_hf::trainer_checkpoint::save(&ckpt, &t, None, &Default::default()).unwrap();
        train_range(&mut t, &b, 2)
    } else {
        // Each rank reads only its slices of the optimizer states, unit by unit.
        let loaded =
            orz_hf::trainer_checkpoint::load_distributed(Rc::clone(&b), &ckpt, DType::F32, g).unwrap();
        let mut t = loaded.trainer;
        train_range(&mut t, &b, 2)
    };
    write_f32(&dir.join(format!("weights{rank}.bin")), &weights);
}

#[test]
fn a_data_parallel_checkpoint_resumes_exactly_at_its_world_size_and_at_others() {
    tch::set_num_threads(1);
    let root = scratch("resume");
    let ckpt = root.join("checkpoint");
    let run = |phase: &str, world: usize| -> Vec<f32> {
        let dir = root.join(format!("{phase}{world}"));
        std::fs::create_dir_all(&dir).unwrap();
        let extra = [("ORZ_C10D_PHASE", phase.to_string()), ("ORZ_C10D_CKPT", ckpt.display().to_string())];
        join(spawn("resume", world, &dir, &extra), Duration::from_secs(300));
        let w0 = read_f32(&dir.join("weights0.bin"));
        for r in 1..world {
            assert!(
                w0 == read_f32(&dir.join(format!("weights{r}.bin"))),
                "{phase} W = {world}: rank {r} differs from rank 0"
            );
        }
        w0
    };
    let uninterrupted = run("save", 2);
    assert!(ckpt.join("trainer_state").is_dir(), "rank 0 wrote the checkpoint");
    assert!(uninterrupted == run("load", 2), "resumed at W = 2, the run must be bit for bit the same");
    let b = Rc::new(Tch::cpu());
    let loaded = orz_hf::trainer_checkpoint::load(Rc::clone(&b), &ckpt, DType::F32).unwrap();
    let one = train_range(&mut { loaded.trainer }, &b, 2);
    for (what, w) in [("W = 4", run("load", 4)), ("one process", one)] {
        eprintln!("resumed in {what}: within {:e}", max_rel(&uninterrupted, &w));
        assert!(max_rel(&uninterrupted, &w) <= 5e-6, "resumed in {what}: {}", max_rel(&uninterrupted, &w));
    }
    let _ = std::fs::remove_dir_all(&root);
}
