//! Planned against measured memory: the dry run's [`MemoryPlan`] beside the measured peak of one
//! training pack (the policy's memory-lean backprop and the gradient accumulation) and of one
//! generation step (KV cache, prefill, decode), at scaled Qwen2 shapes and pack lengths, on
//! every CPU backend compiled in. candle and the reference are measured with a counting global
//! allocator; libtorch (`--features tch`) by the process's peak resident set.
//!
//! ```console
//! $ cargo bench -p orz --bench memory                  # candle and the reference
//! $ cargo bench -p orz --bench memory --features tch   # and tch (after setup-libtorch.sh)
//! ```
//!
//! Prints a markdown table (BENCHMARKS.md keeps one).

use std::rc::Rc;

use orz::memory_plan::measure::{PeakAlloc, peak_rss, release_free_heap, reset_peak_rss, rss};
use orz::memory_plan::{MemoryFacts, MemoryPlan};
use orz_backends::{BackendKind, DeviceSpec};
use orz_core::backend::{Backend, DType};
use orz_core::generation::SlotDecoder;
use orz_core::model::{MemoryOptions, PackedBatch, Policy, Qwen2Config};
use orz_core::optimizer::{Optimizer, OptimizerConfig};
use orz_core::ppo::grpo::GroupStd;
use orz_core::recipe::Preset;
use orz_core::rng::Rng;
use orz_core::train::{EstimatorChoice, TrainConfig};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc::new();

/// How a backend's peak is measured: the bytes above the start while the closure runs.
type Meter<'a> = &'a dyn Fn(&mut dyn FnMut()) -> u64;

fn heap_meter(f: &mut dyn FnMut()) -> u64 {
    HEAP.peak_during(f).0 as u64
}

#[cfg_attr(not(feature = "tch"), allow(dead_code, reason = "used with --features tch"))]
fn rss_meter(f: &mut dyn FnMut()) -> u64 {
    release_free_heap();
    let before = rss().unwrap_or(0);
    if reset_peak_rss().is_err() {
        eprintln!("cannot reset the peak RSS (/proc/self/clear_refs): measured figures are too high");
    }
    f();
    peak_rss().unwrap_or(0).saturating_sub(before)
}

/// A scaled Qwen2 (GQA 2 kv heads, head_dim 64).
fn shape(vocab: usize, hidden: usize, layers: usize) -> Qwen2Config {
    Qwen2Config {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: hidden * 3,
        num_hidden_layers: layers,
        num_attention_heads: hidden / 64,
        num_key_value_heads: 2,
        rope_theta: 10000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: false,
        max_position_embeddings: 1 << 16,
        bos_token_id: None,
        eos_token_ids: vec![1],
    }
}

/// The iteration settings the plan reads: packs of `t`, `slots` generation slots of `max_len`.
fn train_config(t: usize, options: MemoryOptions, slots: usize, max_len: usize) -> TrainConfig {
    let mut c = Preset::Tiny.config().train_config(vec![1]).expect("tiny preset");
    c.packing_max_len = t;
    c.memory = options;
    c.engine.max_batch_slots = slots;
    c.engine.kv_budget_bytes = usize::MAX;
    c.stop.max_total_len = max_len;
    c.estimator = EstimatorChoice::Grpo(GroupStd::Unbiased); // the policy alone
    c
}

/// One row of the table.
fn row(backend: &str, config: &Qwen2Config, t: usize, what: &str, planned: u64, measured: u64) {
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "| {backend} | h{} L{} V{} | {t} | {what} | {:.1} | {:.1} | {:.2} |",
        config.hidden_size,
        config.num_hidden_layers,
        config.vocab_size,
        mb(planned),
        mb(measured),
        measured as f64 / planned as f64
    );
}

/// The cases measured at each shape and pack length: a training pack with and without
/// checkpointing, and a generation step.
const CASES: [&str; 3] = ["checkpointed", "plain", "generation"];

/// Measures one backend at one shape and pack length, the cases in `cases`.
fn measure<B: Backend>(
    b: Rc<B>,
    plan_backend: MemoryFacts,
    config: &Qwen2Config,
    t: usize,
    meter: Meter<'_>,
    cases: &[&str],
) {
    let name = b.name();
    let mut rng = Rng::seed_from_u64(7);
    let policy = Policy::random(Rc::clone(&b), config, DType::F32, &mut rng).expect("random policy");
    let mut opt =
        Optimizer::new(&*b, policy.model().parameters(), OptimizerConfig::ORZ_POLICY).expect("optimizer");
    let samples: Vec<Vec<u32>> = (0..4)
        .map(|s| (0..t / 4).map(|i| ((s * 131 + i * 7) % (config.vocab_size - 2) + 2) as u32).collect())
        .collect();
    let batch = PackedBatch::pack(&[samples]).expect("pack");
    let targets = batch.next_token_tensor(&*b).expect("targets");
    let p =
        policy.model().parameters().iter().map(|p| b.shape(p).iter().product::<usize>() as u64).sum::<u64>();
    let options = [
        ("checkpointed", MemoryOptions { activation_checkpointing: true, head_chunk_tokens: 512 }),
        ("plain", MemoryOptions { activation_checkpointing: false, head_chunk_tokens: usize::MAX }),
    ];
    for (_, options) in options.into_iter().filter(|(c, _)| cases.contains(c)) {
        let plan =
            MemoryPlan::new(config, &train_config(t, options, 1, t), DType::F32, plan_backend, None, "");
        let mut step = || {
            let bp = policy
                .backprop_log_probs(&batch, &targets, options, &mut |lp, _| b.sum_all(lp))
                .expect("backprop");
            opt.accumulate_grads(&*b, &bp.grads).expect("accumulate");
            drop(bp);
            opt.zero_grad();
        };
        // Once unmeasured first, as the generation step below (`zero_grad` frees the f32
        // accumulator, so the measured run allocates it again).
        step();
        let measured = meter(&mut step);
        let what = if options.activation_checkpointing {
            "train pack, checkpointed, chunk 512"
        } else {
            "train pack, plain"
        };
        row(name, config, t, what, plan.activations + 4 * p, measured);
    }
    if !cases.contains(&"generation") {
        return;
    }
    let (slots, max_len) = (16, t);
    let plan = MemoryPlan::new(
        config,
        &train_config(t, MemoryOptions::default(), slots, max_len),
        DType::F32,
        plan_backend,
        None,
        "",
    );
    let prompt: Vec<u32> = (2..34).collect();
    let mut step = || {
        let mut cache = policy.new_cache(slots, max_len).expect("cache");
        policy.prefill(&mut cache, 0, &prompt).expect("prefill");
        for s in 1..slots {
            policy.copy_slot(&mut cache, 0, s).expect("copy");
        }
        let all: Vec<usize> = (0..slots).collect();
        for k in 0..2 {
            policy.decode(&mut cache, &all, &vec![3 + k; slots]).expect("decode");
        }
    };
    // The step once unmeasured first: a library's one-time set-up on first use (libtorch's
    // thread pool, kernel workspaces and GEMM packing buffers) is not the step's memory.
    step();
    let measured = meter(&mut step);
    row(name, config, t, "generation: 16 slots, KV cache + decode", plan.generation(), measured);
}

/// The candle and tch shapes: `(vocab, hidden, layers)` and pack lengths.
const SHAPES: [((usize, usize, usize), [usize; 2]); 2] =
    [((8192, 256, 4), [1024, 4096]), ((16384, 512, 4), [1024, 4096])];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // A child process measuring one tch case: `memory tch-case SHAPE_INDEX T CASE`.
    if let Some(i) = args.iter().position(|a| a == "tch-case") {
        tch_case(&args[i + 1..]);
        return;
    }
    println!("| backend | shape | pack T | phase | planned MB | measured MB | measured / planned |");
    println!("|---|---|---|---|---|---|---|");
    let reference = shape(512, 128, 2);
    for t in [128, 256] {
        measure(
            Rc::new(orz_reference::Reference::new()),
            BackendKind::Reference.memory_on(DeviceSpec::Cpu, DType::F32),
            &reference,
            t,
            &heap_meter,
            &CASES,
        );
    }
    for ((v, h, l), lens) in SHAPES {
        for t in lens {
            measure(
                Rc::new(orz_candle::Candle::cpu()),
                BackendKind::Candle.memory_on(DeviceSpec::Cpu, DType::F32),
                &shape(v, h, l),
                t,
                &heap_meter,
                &CASES,
            );
        }
    }
    // libtorch's memory is not on the Rust heap: each case runs in a fresh process, measured by
    // its peak resident set (a process that already freed memory would reuse it unseen).
    if cfg!(feature = "tch") {
        let exe = std::env::current_exe().expect("the bench's own path");
        for (i, (_, lens)) in SHAPES.iter().enumerate() {
            for t in lens {
                for case in CASES {
                    let out = std::process::Command::new(&exe)
                        .args(["tch-case", &i.to_string(), &t.to_string(), case])
                        .output()
                        .expect("run a tch case");
                    print!("{}", String::from_utf8_lossy(&out.stdout));
                }
            }
        }
    }
}

/// Runs one tch case in this (fresh) process.
#[cfg(feature = "tch")]
fn tch_case(args: &[String]) {
    let ((v, h, l), _) = SHAPES[args[0].parse::<usize>().expect("shape index")];
    let t = args[1].parse().expect("pack length");
    measure(
        Rc::new(orz_backends::orz_tch::Tch::cpu()),
        BackendKind::Tch.memory_on(DeviceSpec::Cpu, DType::F32),
        &shape(v, h, l),
        t,
        &rss_meter,
        &[args[2].as_str()],
    );
}

#[cfg(not(feature = "tch"))]
fn tch_case(_: &[String]) {
    eprintln!("built without --features tch");
}
