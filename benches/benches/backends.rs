//! Criterion benches of the device workloads of `orz_bench::workloads` on every backend and
//! device compiled in (`orz_bench::for_each_backend`; the reference at the tiny sizes only):
//! PPO losses forward + backward, selective log-prob over Qwen's vocabulary (forward, and
//! forward + backward), the model's forward pass on a packed batch, generation at batch 1, 16
//! and 64, and a train step (forward, backward, clipping, AdamW). Each timed region ends with
//! the backend's `sync`.
//!
//! `cargo bench -p orz-bench --bench backends [--features tch] [-- --quick] [-- <filter>]`;
//! `ORZ_BENCH_SCALE=tiny` runs everything at the tiny sizes (a quick check).

#![allow(clippy::expect_used, reason = "a benchmark program: a failed setup ends it with the message")]

use std::rc::Rc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use orz_bench::workloads::{
    Forward, Generation, PpoLosses, SelectiveLogProb, TrainStep, Workload, bench_config, generation_requests,
    random_policy,
};
use orz_bench::{BackendVisitor, Scale, for_each_backend};
use orz_core::backend::Backend;

struct Benches<'a>(&'a mut Criterion);

fn bench(c: &mut Criterion, group: &str, id: BenchmarkId, mut w: impl Workload) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(w.units()));
    g.bench_function(id, |bencher| bencher.iter(|| w.run().expect("the workload runs")));
    g.finish();
}

impl BackendVisitor for Benches<'_> {
    fn visit<B: Backend + 'static>(&mut self, backend: B, label: &str, scale: Scale) {
        let c = &mut *self.0;
        let b = Rc::new(backend);
        for (rows, len) in PpoLosses::<B>::shapes(scale) {
            let w = PpoLosses::new(Rc::clone(&b), rows, len).expect("inputs");
            bench(c, "ppo_losses_fwd_bwd", BenchmarkId::new(label, format!("{rows}x{len}")), w);
        }
        for (rows, len, vocab) in SelectiveLogProb::<B>::shapes(scale) {
            for (group, backward) in [("selective_log_prob_fwd", false), ("selective_log_prob_fwd_bwd", true)]
            {
                let w = SelectiveLogProb::new(Rc::clone(&b), rows, len, vocab, backward).expect("inputs");
                bench(c, group, BenchmarkId::new(label, format!("{rows}x{len}x{vocab}")), w);
            }
        }
        let config = bench_config(scale);
        let policy = random_policy(&b, &config).expect("a random model");
        let (rows, per, len) = Forward::<B>::shape(scale);
        let w = Forward::sized(Rc::clone(&policy), rows, per, len).expect("inputs");
        bench(c, "model_forward_packed", BenchmarkId::new(label, format!("{rows}x{per}x{len}")), w);
        for (batch, prompt, new) in Generation::<B>::shapes(scale) {
            let requests = generation_requests(batch, prompt, config.vocab_size, 1);
            let w = Generation::new(Rc::clone(&policy), requests, new).expect("an engine");
            let id = BenchmarkId::new(label, format!("batch{batch}_prompt{prompt}_new{new}"));
            bench(c, "generation_tokens", id, w);
        }
        let (rows, per, len) = TrainStep::<B>::shape(scale);
        let w = TrainStep::sized(Rc::clone(&policy), rows, per, len).expect("inputs");
        bench(c, "train_step_tokens", BenchmarkId::new(label, format!("{rows}x{per}x{len}")), w);
    }
}

fn backends(c: &mut Criterion) {
    for_each_backend(&mut Benches(c));
}

criterion_group!(benches, backends);
criterion_main!(benches);
