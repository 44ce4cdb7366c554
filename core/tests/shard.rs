//! The sharded optimizer ([`orz_core::shard`]) in a world of one ([`Single`]) on the reference
//! backend: it follows the single-process [`Optimizer`] step for step (clipping, bf16 masters,
//! the guard), also with the weights sharded (ZeRO-3: a skeleton model, units gathered by the
//! backprop), and Qwen2's sharding units cover its parameters. Worlds of 2 and 4 processes are
//! tested over Gloo in orz-tch (`backends/tch/tests/c10d.rs`).

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::rc::Rc;

use orz_core::backend::{AdamWConfig, Backend, DType, Primitives};
use orz_core::collective::Single;
use orz_core::model::{
    Head, MemoryOptions, PackedBatch, Policy, Qwen2, Qwen2Config, ResidentUnits, UnitStore,
};
use orz_core::optimizer::{Optimizer, OptimizerConfig};
use orz_core::rng::Rng;
use orz_core::schedule::LrSchedule;
use orz_core::shard::ShardedOptimizer;
use orz_reference::Reference;

fn config(max_grad_norm: Option<f64>) -> OptimizerConfig {
    OptimizerConfig {
        adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.01 },
        schedule: LrSchedule::WarmupConstant { peak: 0.05, warmup_steps: 0 },
        max_grad_norm,
    }
}

/// Parameters of shapes [3, 2], [5], [2, 2], [1] holding seeded values, in `dtype`.
fn params(b: &Reference, dtype: DType, seed: u64) -> Vec<<Reference as Primitives>::Tensor> {
    let mut rng = Rng::seed_from_u64(seed);
    [vec![3, 2], vec![5], vec![2, 2], vec![1]]
        .iter()
        .map(|s| {
            let v: Vec<f64> = (0..s.iter().product()).map(|_| rng.uniform() * 2.0 - 1.0).collect();
            b.param(&b.tensor_f64(&v, s, dtype).unwrap()).unwrap()
        })
        .collect()
}

/// Gradients of micro-batch `k` (seeded values of each parameter's shape).
fn grads(
    b: &Reference,
    ps: &[<Reference as Primitives>::Tensor],
    k: u64,
) -> Vec<Option<<Reference as Primitives>::Tensor>> {
    let mut rng = Rng::seed_from_u64(100 + k);
    ps.iter()
        .map(|p| {
            let s = b.shape(p);
            let v: Vec<f64> = (0..s.iter().product()).map(|_| rng.uniform() * 4.0 - 2.0).collect();
            Some(b.tensor_f64(&v, &s, b.dtype(p)).unwrap())
        })
        .collect()
}

fn host(b: &Reference, ps: &[<Reference as Primitives>::Tensor]) -> Vec<f64> {
    ps.iter().flat_map(|p| b.to_host_f64(p).unwrap()).collect()
}

#[test]
fn a_world_of_one_follows_the_single_process_optimizer() {
    let units = [0..2, 2..3, 3..4];
    for (dtype, max_norm) in [(DType::F32, None), (DType::F32, Some(1.0)), (DType::BF16, Some(1.0))] {
        let b = Reference::new();
        let (plain_p, shard_p) = (params(&b, dtype, 7), params(&b, dtype, 7));
        let mut plain = Optimizer::new(&b, plain_p.clone(), config(max_norm)).unwrap();
        let mut sharded =
            ShardedOptimizer::new(&b, shard_p.clone(), &units, config(max_norm), Rc::new(Single)).unwrap();
        for step in 0..4u64 {
            for k in 0..2 {
                plain.accumulate_grads(&b, &grads(&b, &plain_p, step * 2 + k)).unwrap();
                sharded.accumulate_grads(&b, &grads(&b, &shard_p, step * 2 + k)).unwrap();
            }
            let (a, s) = (plain.step(&b).unwrap(), sharded.step(&b).unwrap());
            assert!(a.applied && s.applied, "{dtype} step {step}");
            assert!(
                (a.grad_norm - s.grad_norm).abs() <= 1e-6 * a.grad_norm,
                "{} vs {}",
                a.grad_norm,
                s.grad_norm
            );
            assert!((a.clip_factor - s.clip_factor).abs() <= 1e-6, "{dtype} {max_norm:?}");
            assert_eq!((a.lr, a.step, a.micro_batches), (s.lr, s.step, s.micro_batches));
            // The reference computes in f64: the two paths agree to the rounding of the norm.
            let (want, got) = (host(&b, &plain_p), host(&b, &shard_p));
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                let tol = if dtype == DType::BF16 { 1e-2 } else { 1e-9 };
                assert!(
                    (w - g).abs() <= tol * w.abs().max(1.0),
                    "{dtype} step {step} element {i}: {w} vs {g}"
                );
            }
        }
        // The per-rank state round-trips and is refused by a layout it does not fit.
        let state = sharded.state(&b).unwrap();
        assert_eq!(state.params.len(), units.len());
        assert_eq!(state.params[0].shape, vec![11]);
        sharded.load_state(&b, &state).unwrap();
        let other = ShardedOptimizer::new(
            &b,
            params(&b, dtype, 7),
            &[0..1, 1..3, 3..4],
            config(max_norm),
            Rc::new(Single),
        );
        let mut other = other.unwrap();
        let err = other.load_state(&b, &state).unwrap_err().to_string();
        assert!(err.contains("unit 0") && err.contains("world size"), "{err}");
    }
}

#[test]
fn a_non_finite_loss_skips_the_step() {
    let b = Reference::new();
    let ps = params(&b, DType::F32, 3);
    let before = host(&b, &ps);
    let mut opt =
        ShardedOptimizer::new(&b, ps.clone(), &[0..2, 2..4], config(Some(1.0)), Rc::new(Single)).unwrap();
    opt.observe_loss(f64::NAN);
    opt.accumulate_grads(&b, &grads(&b, &ps, 0)).unwrap();
    let r = opt.step(&b).unwrap();
    assert!(!r.applied);
    assert!(r.skipped_reason.unwrap().contains("micro-batch 1 on rank 0 is NaN"));
    assert_eq!(host(&b, &ps), before);
    assert_eq!(opt.steps(), 0);
    assert!(opt.step(&b).is_err(), "nothing accumulated");
}

#[test]
fn bad_units_are_refused() {
    let b = Reference::new();
    let ps = params(&b, DType::F32, 3);
    for (units, want) in [(vec![0..2, 3..4], "consecutive from 2"), (vec![0..1, 1..3], "cover 3 of 4")] {
        let err = ShardedOptimizer::new(&b, ps.clone(), &units, config(None), Rc::new(Single)).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn qwen2_units_cover_every_parameter_once() {
    for tied in [false, true] {
        let cfg = Qwen2Config { num_hidden_layers: 3, tie_word_embeddings: tied, ..Qwen2Config::tiny_test() };
        for head in [Head::Lm, Head::Value] {
            if tied && head == Head::Value {
                continue;
            }
            let m =
                Qwen2::random(Rc::new(Reference::new()), &cfg, head, DType::F32, &mut Rng::seed_from_u64(1));
            let m = m.unwrap();
            let units = m.parameter_units();
            assert_eq!(units.len(), 3 + 2, "embedding, 3 layers, norm with head");
            let covered: Vec<usize> = units.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(covered, (0..m.parameters().len()).collect::<Vec<_>>(), "tied {tied} {head:?}");
        }
    }
}

/// A training micro-batch of `model` (a policy, resident or skeleton) on a fixed two-sample
/// pack: the sum of the log-probs of its own next tokens.
fn policy_micro_batch(
    model: &Qwen2<Reference>,
    units: &mut dyn UnitStore<Reference>,
    options: MemoryOptions,
) -> orz_core::Result<f64> {
    let policy = Policy::new(model.skeleton())?;
    let batch = PackedBatch::pack(&[vec![vec![5, 6, 7, 8, 9], vec![9, 10, 11]]])?;
    let b = model.backend();
    let targets = batch.next_token_tensor(b)?;
    policy.backprop_log_probs_with(units, &batch, &targets, options, &mut |lp, _| b.sum_all(lp))
}

#[test]
fn sharded_weights_keep_a_skeleton_and_train_as_the_single_process_optimizer() {
    let b = Rc::new(Reference::new());
    let plain = MemoryOptions::PLAIN;
    let lean = MemoryOptions { activation_checkpointing: true, head_chunk_tokens: 3 };
    for (tied, options) in [(true, plain), (false, plain), (true, lean), (false, lean)] {
        let cfg = Qwen2Config { num_hidden_layers: 2, tie_word_embeddings: tied, ..Qwen2Config::tiny_test() };
        let model =
            || Qwen2::random(Rc::clone(&b), &cfg, Head::Lm, DType::F32, &mut Rng::seed_from_u64(4)).unwrap();
        // One process: the model's own parameters.
        let local = model();
        let mut opt = Optimizer::new(&*b, local.parameters(), config(Some(1.0))).unwrap();
        // ZeRO-3 in a world of one: the optimizer keeps the slices, the caller a skeleton.
        let full = model();
        let units = full.parameter_units();
        let mut sharded = ShardedOptimizer::new_weight_sharded(
            &*b,
            full.parameters(),
            &units,
            config(Some(1.0)),
            Rc::new(Single),
        )
        .unwrap();
        let skeleton = full.skeleton();
        drop(full);
        assert!(!skeleton.is_resident() && skeleton.parameters().is_empty());
        let err = Policy::new(skeleton.skeleton())
            .unwrap()
            .next_token_log_probs(&PackedBatch::pack(&[vec![vec![1, 2]]]).unwrap());
        assert!(
            err.unwrap_err().to_string().contains("sharded"),
            "a skeleton's forward says why it cannot run"
        );
        for _ in 0..3 {
            for _ in 0..2 {
                let mut resident = ResidentUnits::of(&local).unwrap();
                let want = policy_micro_batch(&local, &mut resident, options).unwrap();
                opt.accumulate_grads(&*b, &resident.into_grads()).unwrap();
                let got = sharded.micro_batch(&*b, |u| policy_micro_batch(&skeleton, u, options)).unwrap();
                // The clip's norm sums per unit rather than per tensor: rounding apart.
                assert!(
                    (want - got).abs() <= 1e-9 * want.abs(),
                    "tied {tied}, {options:?}: losses {want} {got}"
                );
            }
            let (want, got) = (opt.step(&*b).unwrap(), sharded.step(&*b).unwrap());
            assert!(want.applied && got.applied);
            assert!((want.grad_norm - got.grad_norm).abs() <= 1e-6 * want.grad_norm, "{want:?} {got:?}");
        }
        let gathered = sharded.gather_model(&*b, &skeleton).unwrap();
        let (want, got) = (host(&b, &local.parameters()), host(&b, &gathered.parameters()));
        let diff = want.iter().zip(&got).map(|(a, c)| (a - c).abs()).fold(0.0, f64::max);
        assert!(diff <= 1e-6, "tied {tied}, {options:?}: the gathered weights differ by {diff}");
    }
}
