//! Experiment driver for the tiny preset: `cargo run --release -p orz --example tiny_driver --
//! [pretrain OUT SEED | train SEED ITERS]`, recipe overrides from the environment
//! (`TINY_POLICY_LR`, `TINY_CRITIC_LR`, `TINY_BATCH`, `TINY_N`, `TINY_WARMUP`).

use anyhow::{Context, Result};
use orz_core::recipe::Preset;

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("pretrain") => {
            let out = args.get(2).context("pretrain OUT SEED")?;
            let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
            orz::tiny::build_base_model(std::path::Path::new(out), seed)
        }
        _ => {
            let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
            let mut recipe = Preset::Tiny.config();
            let iters: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(recipe.iterations);
            if let Some(v) = env("TINY_POLICY_LR") {
                recipe.policy_lr = v;
            }
            if let Some(v) = env("TINY_CRITIC_LR") {
                recipe.critic_lr = v;
            }
            if let Some(v) = env("TINY_BATCH") {
                recipe.rollout_batch_size = v;
            }
            if let Some(v) = env("TINY_N") {
                recipe.n_samples_per_prompt = v;
            }
            if let Some(v) = env("TINY_WARMUP") {
                recipe.warmup_steps = v;
            }
            let start = std::time::Instant::now();
            orz::tiny::run::train(&recipe, seed, iters, |r, secs| {
                println!(
                    "iter {:>3}: reward {:.3} pass@n {:.2} len {:.1} stop {:.2} vloss {:.4} \
                     {:.1}s (total {:.0}s) {:?}",
                    r.iteration,
                    r.rollout.mean_reward,
                    r.rollout.pass_at_n,
                    r.rollout.response_length_mean,
                    r.rollout.stop_ratio,
                    r.value_loss.unwrap_or(f64::NAN),
                    secs,
                    start.elapsed().as_secs_f64(),
                    r.phase_seconds.map(|p| {
                        [p.rollout, p.experience, p.critic_update, p.policy_update]
                            .map(|x| (x * 10.0).round() / 10.0)
                    })
                );
            })?;
            Ok(())
        }
    }
}
