//! libtorch's c10d (Gloo) as orz-core's `Collective`, with several processes on this machine:
//! each test spawns this test binary again as W ranks (`worker` below, selected by the
//! `ORZ_C10D_CASE` environment variable) that meet through a FileStore in a temporary folder.
//!
//! - every collective's values at W = 2 and 4 (the ranks check them themselves);
//! - the sharded optimizer over a Qwen2 policy: W ranks, one micro-batch each, end with the
//!   weights and AdamW moments of one process that accumulates the same W micro-batches. At
//!   W = 2 bitwise (Gloo sums two f32 values in one rounding, as the accumulation does; clipping
//!   off so that the norm's summation order does not enter the update); at W = 4, and with
//!   clipping on, within 2e-5 of `max(|w|, 1)` (the weights move by about 3e-2 in 3 steps at lr
//!   1e-2: Gloo's ring sums in another order, the clip factor's norm is summed per unit rather
//!   than per tensor, and AdamW's `m / √v` magnifies the rounding of gradient sums that nearly
//!   cancel); bf16 weights within one bf16 rounding (1e-2);
//! - the data-parallel trainer (rollout, experience, critic and policy steps of the tiny preset
//!   at toy sizes, 3 iterations): W = 1 through Gloo is the single-process run bit for bit; at
//!   W = 2 and 4 every rank ends within 5e-6 of the single-process weights and 1e-6 of its
//!   metrics (measured: 4.9e-7 and 9.2e-8; the gradient sums are added in another order);
//! - checkpoints of the data-parallel trainer: saved at W = 2 (the one-process layout, rank 0
//!   writing), they resume bit for bit at W = 2, and within rounding at W = 4 and in one process;
//! - faults: a rank that exits, and a rank that hangs past the timeout, make the others fail
//!   with an error naming the collective and their rank.

#![cfg(feature = "c10d")]
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod trainer;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::rc::Rc;
use std::time::{Duration, Instant};

use orz_conformance::checks::iteration::{HasE, detok};
use orz_core::backend::{AdamWConfig, Backend, DType, Primitives};
use orz_core::collective::{Collective, ReduceOp, Single};
use orz_core::model::{Critic, PackedBatch, Policy, Qwen2Config};
use orz_core::optimizer::{Optimizer, OptimizerConfig};
use orz_core::recipe::Preset;
use orz_core::rng::Rng;
use orz_core::schedule::LrSchedule;
use orz_core::shard::ShardedOptimizer;
use orz_core::train::{IterationReport, PromptItem, Trainer};
use orz_tch::Tch;
use orz_tch::c10d::{ProcessGroup, Rendezvous};

const STEPS: u64 = 3;

/// A fresh temporary folder for one test's store and outputs.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orz-c10d-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `world` ranks of this binary running `case`, with `extra` environment variables.
fn spawn(case: &str, world: usize, dir: &Path, extra: &[(&str, String)]) -> Vec<Child> {
    let exe = std::env::current_exe().unwrap();
    (0..world)
        .map(|rank| {
            let mut cmd = Command::new(&exe);
            cmd.args(["worker", "--exact", "--nocapture", "--test-threads", "1"])
                .env("ORZ_C10D_CASE", case)
                .env("ORZ_C10D_RANK", rank.to_string())
                .env("ORZ_C10D_WORLD", world.to_string())
                .env("ORZ_C10D_DIR", dir)
                .env("OMP_NUM_THREADS", "1")
                .stdout(std::process::Stdio::null());
            for (k, v) in extra {
                cmd.env(k, v);
            }
            cmd.spawn().unwrap()
        })
        .collect()
}

/// Waits for every rank (at most `limit`), asserting each exited with status 0.
fn join(children: Vec<Child>, limit: Duration) {
    let start = Instant::now();
    for (rank, mut c) in children.into_iter().enumerate() {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "rank {rank} failed: {status}");
                break;
            }
            if start.elapsed() > limit {
                let _ = c.kill();
                panic!("rank {rank} still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap()
}

/// The group of this worker process.
fn join_group(timeout: Duration) -> ProcessGroup {
    let (rank, world) = (env("ORZ_C10D_RANK").parse().unwrap(), env("ORZ_C10D_WORLD").parse().unwrap());
    let store = Rendezvous::File { path: format!("{}/store", env("ORZ_C10D_DIR")) };
    ProcessGroup::new(&store, "127.0.0.1", rank, world, timeout).unwrap()
}

/// The entry point of a spawned rank; a no-op when run as an ordinary test.
#[test]
fn worker() {
    let Ok(case) = std::env::var("ORZ_C10D_CASE") else { return };
    tch::set_num_threads(1);
    match case.as_str() {
        "collectives" => collectives_case(),
        "optimizer" => optimizer_case(),
        "fault" => fault_case(),
        "trainer" => trainer::trainer_case(),
        "resume" => trainer::resume_case(),
        other => panic!("unknown case {other}"),
    }
}

fn collectives_case() {
    let g = join_group(Duration::from_secs(60));
    let b = Tch::cpu();
    let (r, w) = (g.rank() as f32, g.world_size());
    let host = |t: &<Tch as Primitives>::Tensor| b.to_host_f32(t).unwrap();
    for dtype in [DType::F32, DType::BF16] {
        let t = b.tensor_f32(&[r, 2.0 * r, 1.0], &[3], dtype).unwrap();
        let total = (0..w).map(|k| k as f32).sum::<f32>();
        let top = (w - 1) as f32;
        assert_eq!(host(&g.all_reduce(&b, &t, ReduceOp::Sum).unwrap()), [total, 2.0 * total, w as f32]);
        assert_eq!(host(&g.all_reduce(&b, &t, ReduceOp::Max).unwrap()), [top, 2.0 * top, 1.0]);
        assert_eq!(host(&g.all_reduce(&b, &t, ReduceOp::Avg).unwrap())[2], 1.0);
        assert_eq!(host(&t), [r, 2.0 * r, 1.0], "inputs are never modified");
        // reduce_scatter of [k, k, ..] (2 per rank) from every rank k: slot j holds Σk.
        let long = b.tensor_f32(&vec![r + 1.0; 2 * w], &[2 * w], dtype).unwrap();
        let mine = g.reduce_scatter(&b, &long, ReduceOp::Sum).unwrap();
        assert_eq!(host(&mine), [total + w as f32; 2]);
        let gathered = g.all_gather(&b, &b.tensor_f32(&[r, -r], &[2], dtype).unwrap()).unwrap();
        let want: Vec<f32> = (0..w).flat_map(|k| [k as f32, -(k as f32)]).collect();
        assert_eq!(host(&gathered), want);
        let from_last = g.broadcast(&b, &b.tensor_f32(&[r; 4], &[2, 2], dtype).unwrap(), w - 1).unwrap();
        assert_eq!((host(&from_last), b.shape(&from_last)), (vec![top; 4], vec![2, 2]));
        assert_eq!(b.dtype(&from_last), dtype);
    }
    assert_eq!(g.all_reduce_host(&[f64::from(r), 0.1], ReduceOp::Sum).unwrap()[1], 0.1 * w as f64);
    let all = g.all_gather_host(&[f64::from(r) + 0.5]).unwrap();
    assert_eq!(all, (0..w).map(|k| k as f64 + 0.5).collect::<Vec<_>>());
    let mine = vec![b'a' + r as u8; g.rank() * 3];
    let bytes = g.all_gather_bytes(&mine).unwrap();
    assert_eq!(bytes, (0..w).map(|k| vec![b'a' + k as u8; k * 3]).collect::<Vec<_>>());
    let err = g.reduce_scatter(&b, &b.tensor_f32(&[1.0; 3], &[3], DType::F32).unwrap(), ReduceOp::Sum);
    if w > 1 {
        assert!(err.unwrap_err().to_string().contains("multiple of the world size"));
    }
    g.barrier().unwrap();
}

fn model_config() -> Qwen2Config {
    Qwen2Config { num_hidden_layers: 2, ..Qwen2Config::tiny_test() }
}

fn opt_config(clip: bool) -> OptimizerConfig {
    OptimizerConfig {
        adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.01 },
        schedule: LrSchedule::WarmupConstant { peak: 1e-2, warmup_steps: 0 },
        max_grad_norm: if clip { Some(0.05) } else { None },
    }
}

/// Micro-batch `k` of step `step`: two short sequences of seeded tokens.
fn batch(step: u64, k: usize, vocab: usize) -> PackedBatch {
    let mut rng = Rng::seed_from_u64(1000 * step + k as u64);
    let mut seq = |n| (0..n).map(|_| (rng.uniform() * vocab as f64) as u32).collect::<Vec<u32>>();
    PackedBatch::pack(&[vec![seq(6), seq(3)], vec![seq(5)]]).unwrap()
}

/// The gradients of micro-batch `k`'s loss (minus the mean next-token log-prob, scaled).
fn grads(b: &Tch, policy: &Policy<Tch>, step: u64, k: usize) -> Vec<Option<<Tch as Primitives>::Tensor>> {
    let batch = batch(step, k, policy.model().config().vocab_size);
    let logp = policy.next_token_log_probs(&batch).unwrap();
    let mask = b.tensor_bool(&batch.next_token_mask(), &batch.shape()).unwrap();
    let loss = b.affine(&b.masked_sum(&logp, &mask, None).unwrap(), -0.1, 0.0).unwrap();
    let g = b.backward(&loss).unwrap();
    policy.model().parameters().iter().map(|p| b.grad(&g, p).unwrap()).collect()
}

fn policy(b: &Rc<Tch>, dtype: DType) -> Policy<Tch> {
    Policy::random(Rc::clone(b), &model_config(), dtype, &mut Rng::seed_from_u64(5)).unwrap()
}

fn write_f32(path: &Path, values: &[f32]) {
    std::fs::write(path, values.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn all_params(b: &Tch, policy: &Policy<Tch>) -> Vec<f32> {
    policy.model().parameters().iter().flat_map(|p| b.to_host_f32(p).unwrap()).collect()
}

fn optimizer_case() {
    let g: Rc<dyn Collective<Tch>> = Rc::new(join_group(Duration::from_secs(120)));
    let (rank, dir) = (g.rank(), PathBuf::from(env("ORZ_C10D_DIR")));
    let clip = env("ORZ_C10D_CLIP") == "1";
    let dtype = if env("ORZ_C10D_DTYPE") == "bf16" { DType::BF16 } else { DType::F32 };
    let b = Rc::new(Tch::cpu());
    let policy = policy(&b, dtype);
    let model = policy.model();
    let mut opt = ShardedOptimizer::new(
        &*b,
        model.parameters(),
        &model.parameter_units(),
        opt_config(clip),
        Rc::clone(&g),
    )
    .unwrap();
    let mut norms = Vec::new();
    for step in 0..STEPS {
        opt.accumulate_grads(&b, &grads(&b, &policy, step, rank)).unwrap();
        let report = opt.step(&b).unwrap();
        assert!(report.applied);
        norms.push(report.grad_norm as f32);
    }
    if rank == 0 {
        write_f32(&dir.join("params.bin"), &all_params(&b, &policy));
        write_f32(&dir.join("norms.bin"), &norms);
    }
    let (mut m, mut v) = (Vec::new(), Vec::new());
    for u in 0..model.parameter_units().len() {
        let s = opt.moments_shard(u).unwrap();
        m.extend(b.to_host_f32(&s.m).unwrap());
        v.extend(b.to_host_f32(&s.v).unwrap());
    }
    write_f32(&dir.join(format!("m{rank}.bin")), &m);
    write_f32(&dir.join(format!("v{rank}.bin")), &v);
}

/// What a run ends with: the weights, each parameter's first and second moments, each step's norm.
type Outcome = (Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>);

/// One process accumulating the W ranks' micro-batches.
fn single_process(world: usize, clip: bool, dtype: DType) -> Outcome {
    tch::set_num_threads(1);
    let b = Rc::new(Tch::cpu());
    let policy = policy(&b, dtype);
    let params = policy.model().parameters();
    let mut opt = Optimizer::new(&*b, params.clone(), opt_config(clip)).unwrap();
    let mut norms = Vec::new();
    for step in 0..STEPS {
        for k in 0..world {
            opt.accumulate_grads(&b, &grads(&b, &policy, step, k)).unwrap();
        }
        norms.push(opt.step(&b).unwrap().grad_norm as f32);
    }
    let moment = |i: usize, second: bool| {
        let s = opt.moments(i).unwrap();
        b.to_host_f32(if second { &s.v } else { &s.m }).unwrap()
    };
    let m = (0..params.len()).map(|i| moment(i, false)).collect();
    let v = (0..params.len()).map(|i| moment(i, true)).collect();
    (all_params(&b, &policy), m, v, norms)
}

/// The ranks' moment slices put back into per-parameter order (padding dropped).
fn unshard(dir: &Path, world: usize, name: &str, dtype: DType) -> Vec<Vec<f32>> {
    let b = Rc::new(Tch::cpu());
    let model = policy(&b, dtype).into_model();
    let shards: Vec<Vec<f32>> = (0..world).map(|r| read_f32(&dir.join(format!("{name}{r}.bin")))).collect();
    let params = model.parameters();
    let mut out = Vec::new();
    let mut offset = 0;
    for unit in model.parameter_units() {
        let numel: usize = params[unit.clone()].iter().map(|p| b.shape(p).iter().product::<usize>()).sum();
        let shard = numel.div_ceil(world);
        let flat: Vec<f32> = shards.iter().flat_map(|s| s[offset..offset + shard].to_vec()).collect();
        offset += shard;
        let mut at = 0;
        for p in &params[unit] {
            let n: usize = b.shape(p).iter().product();
            out.push(flat[at..at + n].to_vec());
            at += n;
        }
    }
    out
}

/// The largest difference relative to `max(|a|, 1)`.
fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(1.0)).fold(0.0, f32::max)
}

fn check_optimizer(world: usize, clip: bool, dtype: DType, tol: f32) {
    let dir = scratch(&format!("opt{world}{clip}{dtype}"));
    let extra = [
        ("ORZ_C10D_CLIP", String::from(if clip { "1" } else { "0" })),
        ("ORZ_C10D_DTYPE", dtype.to_string()),
    ];
    join(spawn("optimizer", world, &dir, &extra), Duration::from_secs(240));
    let (params, m, v, norms) = single_process(world, clip, dtype);
    let got = read_f32(&dir.join("params.bin"));
    let (gm, gv) = (unshard(&dir, world, "m", dtype), unshard(&dir, world, "v", dtype));
    let what = format!("W = {world}, clip {clip}, {dtype}");
    if tol == 0.0 {
        assert!(params == got, "{what}: weights differ (max rel {})", max_rel(&params, &got));
        assert!(m == gm && v == gv, "{what}: moments differ");
    } else {
        assert!(max_rel(&params, &got) <= tol, "{what}: weights differ by {}", max_rel(&params, &got));
        for (i, (a, b)) in m.iter().zip(&gm).chain(v.iter().zip(&gv)).enumerate() {
            assert!(
                max_rel(a, b) <= tol.max(1e-4),
                "{what}: moments of parameter {i} differ by {}",
                max_rel(a, b)
            );
        }
    }
    eprintln!("{what}: weights differ by at most {:e}", max_rel(&params, &got));
    assert!(max_rel(&norms, &read_f32(&dir.join("norms.bin"))) <= 1e-5, "{what}: gradient norms");
    assert!(
        params != all_params(&Tch::cpu(), &policy(&Rc::new(Tch::cpu()), dtype)),
        "{what}: nothing trained"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn collectives_at_two_and_four_ranks() {
    for world in [2, 4] {
        let dir = scratch(&format!("coll{world}"));
        join(spawn("collectives", world, &dir, &[]), Duration::from_secs(120));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn sharded_optimizer_matches_one_process_bitwise_at_two_ranks() {
    check_optimizer(2, false, DType::F32, 0.0);
}

#[test]
fn sharded_optimizer_matches_one_process_at_four_ranks_and_with_clipping() {
    check_optimizer(4, false, DType::F32, 2e-5);
    check_optimizer(2, true, DType::F32, 2e-5);
    check_optimizer(2, true, DType::BF16, 1e-2);
}

fn fault_case() {
    let g = join_group(Duration::from_millis(env("ORZ_C10D_TIMEOUT_MS").parse().unwrap()));
    let dir = PathBuf::from(env("ORZ_C10D_DIR"));
    if g.rank() == 1 {
        match env("ORZ_C10D_FAULT").as_str() {
            "exit" => std::process::exit(0),
            _ => std::thread::sleep(Duration::from_secs(60)),
        }
    }
    let b = Tch::cpu();
    let t = b.tensor_f32(&[1.0], &[1], DType::F32).unwrap();
    let start = Instant::now();
    let err = g.all_reduce(&b, &t, ReduceOp::Sum).unwrap_err();
    let text = format!("{err} (after {:.1} s)", start.elapsed().as_secs_f64());
    std::fs::write(dir.join("error.txt"), text).unwrap();
}

#[test]
fn a_dead_or_hung_rank_is_an_error_not_a_hang() {
    for fault in ["exit", "hang"] {
        let dir = scratch(&format!("fault-{fault}"));
        let extra = [("ORZ_C10D_FAULT", String::from(fault)), ("ORZ_C10D_TIMEOUT_MS", String::from("3000"))];
        let mut children = spawn("fault", 2, &dir, &extra);
        let survivor = children.remove(0);
        let start = Instant::now();
        join(vec![survivor], Duration::from_secs(60));
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let text = std::fs::read_to_string(dir.join("error.txt")).unwrap();
        assert!(text.contains("all_reduce on rank 0 of 2"), "{fault}: {text}");
        assert!(start.elapsed() < Duration::from_secs(30), "{fault}: took {:?}", start.elapsed());
        eprintln!("{fault}: {text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A group asked for NCCL: without orz-tch's `nccl` feature, or on a machine without a GPU, an
/// error that says which; with both, an all-reduce of a CUDA tensor in a world of one (run by
/// `cargo test -p orz-tch --features nccl --test c10d nccl` on a GPU machine).
#[test]
fn nccl_groups_need_the_feature_and_a_gpu() {
    let dir = scratch("nccl");
    let store = Rendezvous::File { path: format!("{}/store", dir.display()) };
    let group = ProcessGroup::new_nccl(&store, "127.0.0.1", 0, 1, Duration::from_secs(30));
    match (cfg!(feature = "nccl"), tch::Cuda::is_available(), group) {
        (true, true, Ok(g)) => {
            let b = Tch::cuda(0).unwrap();
            assert_eq!(g.engine(), "nccl+gloo");
            let t = b.tensor_f64(&[1.0, 2.0, 3.0], &[3], DType::F32).unwrap();
            let sum = g.all_reduce(&b, &t, ReduceOp::Sum).unwrap();
            assert_eq!(b.to_host_f64(&sum).unwrap(), vec![1.0, 2.0, 3.0]);
            assert_eq!(
                g.all_reduce_host(&[4.0], ReduceOp::Max).unwrap(),
                vec![4.0],
                "host values go through Gloo"
            );
        }
        (false, _, Err(e)) => assert!(e.to_string().contains("`nccl` feature"), "{e}"),
        (true, false, Err(e)) => assert!(e.to_string().contains("sees none"), "{e}"),
        (feature, gpu, group) => panic!("nccl feature {feature}, GPU {gpu}: {group:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
