//! [`MemoryPlan`]: what a run needs in memory, per item, against what the device has, printed
//! by `orz train --dry-run` before any long work (ORZ_RECIPE.md, "Memory arithmetic").
//!
//! Conventions (all from the code, not guessed): weights are held in the compute dtype; under a
//! 16-bit dtype the optimizer keeps f32 master copies ([`orz_core::optimizer`]); AdamW keeps two
//! f32 moments; gradients are accumulated in f32 across micro-batches; the KV cache holds keys
//! and values of every layer for `max_batch_slots` sequences of `max_len` tokens in the compute
//! dtype (the engine caps the slots at `kv_budget_bytes`); training one pack keeps, per layer,
//! the dense attention probabilities (heads × T × T, f32) and about 16 hidden-sized plus 3
//! intermediate-sized activations per token for the backward pass, plus the f32 logits and
//! their log-softmax (T × vocab × 2). Policy and critic are two full models (ORZ shares none).

use std::fmt;

use orz_core::backend::DType;
use orz_core::model::{Head, Qwen2Config, parameter_specs};
use orz_core::recipe::Preset;
use orz_core::train::TrainConfig;

const GB: f64 = 1e9;

/// The memory of one run, in bytes, and whether it fits a device.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// Policy parameters (with the LM head unless tied).
    pub policy_params: u64,
    /// Critic parameters (backbone and value head); 0 under GRPO.
    pub critic_params: u64,
    /// Compute dtype of the weights.
    pub dtype: DType,
    /// Weights of both models in the compute dtype.
    pub weights: u64,
    /// f32 master weights (only under a 16-bit dtype).
    pub masters: u64,
    /// AdamW's two f32 moments, both models.
    pub optimizer: u64,
    /// f32 gradient accumulators, both models.
    pub gradients: u64,
    /// KV cache of the generation engine: every slot at `max_len`, capped by the budget.
    pub kv_cache: u64,
    /// Activations kept to train on one pack of `packing_max_len` tokens.
    pub activations: u64,
    /// The part of `activations` that is dense attention probabilities (orz-rs has no fused,
    /// flash-style attention yet; ORZ's DeepSpeed stack does, and checkpoints activations).
    pub attention_probs: u64,
    /// Memory of the device the run would use, if known.
    pub device_bytes: Option<u64>,
    /// Where `device_bytes` comes from (`/proc/meminfo`, `nvidia-smi`, an assumption).
    pub device_source: String,
}

impl MemoryPlan {
    /// The plan of `model` trained with `train` in `dtype` on a device of `device_bytes`.
    pub fn new(
        model: &Qwen2Config,
        train: &TrainConfig,
        dtype: DType,
        device_bytes: Option<u64>,
        device_source: &str,
    ) -> MemoryPlan {
        let count = |head| {
            parameter_specs(model, head).iter().map(|s| s.shape.iter().product::<usize>() as u64).sum()
        };
        let policy_params: u64 = count(Head::Lm);
        let critic_params: u64 = if train.estimator.uses_critic() { count(Head::Value) } else { 0 };
        let params = policy_params + critic_params;
        let width = dtype_bytes(dtype);
        let masters = if dtype == DType::F32 { 0 } else { 4 * params };
        let (layers, kv_heads, head_dim) =
            (model.num_hidden_layers as u64, model.num_key_value_heads as u64, model.head_dim() as u64);
        let kv_per_token = 2 * layers * kv_heads * head_dim * width;
        let kv_need = train.engine.max_batch_slots as u64 * train.stop.max_total_len as u64 * kv_per_token;
        let kv_cache = kv_need.min(train.engine.kv_budget_bytes as u64);
        let t = train.packing_max_len as u64;
        let attention_probs = layers * model.num_attention_heads as u64 * t * t * 4;
        let per_layer = t * (16 * model.hidden_size as u64 + 3 * model.intermediate_size as u64) * width;
        let activations = attention_probs + layers * per_layer + 2 * t * model.vocab_size as u64 * 4;
        MemoryPlan {
            policy_params,
            critic_params,
            dtype,
            weights: width * params,
            masters,
            optimizer: 8 * params,
            gradients: 4 * params,
            kv_cache,
            activations,
            attention_probs,
            device_bytes,
            device_source: device_source.to_string(),
        }
    }

    /// Weights, masters, optimizer state and gradients: what must stay resident all run.
    pub fn model_states(&self) -> u64 {
        self.weights + self.masters + self.optimizer + self.gradients
    }

    /// Everything at the peak (training a pack while the KV cache is still allocated).
    pub fn total(&self) -> u64 {
        self.model_states() + self.kv_cache + self.activations
    }

    /// Whether the total fits the device (unknown device: `None`).
    pub fn fits(&self) -> Option<bool> {
        self.device_bytes.map(|d| self.total() <= d)
    }

    /// Devices of `device_bytes` needed if the model states were sharded evenly across them
    /// (ZeRO-3 style) and each kept its own KV cache and activations; `None` if even one
    /// device cannot hold its cache and activations.
    pub fn devices_needed(&self, device_bytes: u64) -> Option<u64> {
        let fixed = self.kv_cache + self.activations;
        let room = device_bytes.checked_sub(fixed).filter(|r| *r > 0)?;
        Some(self.model_states().div_ceil(room).max(1))
    }

    /// One line saying whether the run fits a device of `bytes` called `name`, and if not what
    /// would be needed.
    pub fn verdict(&self, bytes: u64, name: &str) -> String {
        let gb = |b: u64| b as f64 / GB;
        if self.total() <= bytes {
            return format!("fits {name} ({:.0} GB of {:.0} GB)", gb(self.total()), gb(bytes));
        }
        let states = if self.model_states() <= bytes {
            "the model states alone fit".to_string()
        } else {
            format!(
                "the model states alone ({:.0} GB) need {} such devices sharded (ZeRO-3 style) or offloaded \
                 optimizer state",
                gb(self.model_states()),
                self.model_states().div_ceil(bytes)
            )
        };
        format!(
            "does NOT fit {name}: {:.0} GB needed at the peak; {states}; one pack's activations are {:.0} GB \
             ({:.0} GB dense attention: lower packing_max_len, or fused attention and activation checkpointing)",
            gb(self.total()),
            gb(self.activations),
            gb(self.attention_probs)
        )
    }
}

/// The memory of one H200 (141 GB), the GPU this project is verified on; dry runs compare with it.
pub const H200_BYTES: u64 = 141_000_000_000;

/// Bytes of one element of `dtype`.
pub fn dtype_bytes(dtype: DType) -> u64 {
    match dtype {
        DType::F32 => 4,
        DType::BF16 | DType::F16 => 2,
        DType::I64 => 8,
        DType::Bool => 1,
    }
}

/// The Qwen2.5 base model of a preset (shapes of the published `config.json` files), for dry
/// runs without `--model`; `None` for the tiny preset.
pub fn qwen25_shape(preset: Preset) -> Option<Qwen2Config> {
    // (hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings)
    let (h, i, l, a, kv, v, tied) = match preset {
        Preset::Tiny => return None,
        Preset::Orz0p5b => (896, 4864, 24, 14, 2, 151_936, true),
        Preset::Orz1p5b => (1536, 8960, 28, 12, 2, 151_936, true),
        Preset::Orz7b => (3584, 18_944, 28, 28, 4, 152_064, false),
        Preset::Orz32b => (5120, 27_648, 64, 40, 8, 152_064, false),
    };
    Some(Qwen2Config {
        vocab_size: v,
        hidden_size: h,
        intermediate_size: i,
        num_hidden_layers: l,
        num_attention_heads: a,
        num_key_value_heads: kv,
        rope_theta: 1_000_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: tied,
        max_position_embeddings: 131_072,
        bos_token_id: None,
        eos_token_ids: vec![151_643],
    })
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gb = |b: u64| b as f64 / GB;
        writeln!(
            f,
            "memory plan ({:?} compute; policy {:.3} B parameters, critic {:.3} B)",
            self.dtype,
            self.policy_params as f64 / 1e9,
            self.critic_params as f64 / 1e9
        )?;
        let rows = [
            ("weights, both models", self.weights),
            ("f32 master weights", self.masters),
            ("AdamW moments (f32, 2 per parameter)", self.optimizer),
            ("gradient accumulators (f32)", self.gradients),
            ("KV cache (all slots at max_len, capped by the budget)", self.kv_cache),
            ("activations of one training pack", self.activations),
            ("  of which dense attention probabilities", self.attention_probs),
        ];
        for (name, bytes) in rows {
            writeln!(f, "  {name:<56} {:>10.2} GB", gb(bytes))?;
        }
        writeln!(f, "  {:<56} {:>10.2} GB", "total at the peak", gb(self.total()))?;
        writeln!(f, "  on one H200: {}", self.verdict(H200_BYTES, "one 141 GB H200"))?;
        match self.device_bytes {
            None => {
                writeln!(f, "  device memory unknown ({}): cannot say whether it fits", self.device_source)
            }
            Some(d) if self.total() <= d => {
                writeln!(f, "  fits: the device has {:.1} GB ({})", gb(d), self.device_source)
            }
            Some(d) => {
                writeln!(f, "  DOES NOT FIT: the device has {:.1} GB ({})", gb(d), self.device_source)?;
                match self.devices_needed(d) {
                    Some(n) => writeln!(
                        f,
                        "  needed: {n} such devices with policy and critic states sharded across them \
                         (ZeRO-3 style, as ORZ does with DeepSpeed), or offloaded optimizer state; \
                         orz-rs trains on one device today"
                    ),
                    None => writeln!(
                        f,
                        "  needed: a smaller packing_max_len or engine budget; one device cannot even hold \
                         the KV cache and one pack's activations"
                    ),
                }
            }
        }
    }
}

/// Memory of the device: `MemTotal` of `/proc/meminfo` for the CPU; for CUDA, `nvidia-smi` if
/// it answers, else `None`.
pub fn device_memory(cuda: Option<usize>) -> (Option<u64>, String) {
    match cuda {
        None => {
            let kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
                m.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
                })
            });
            (kb.map(|k| k * 1024), "host RAM, /proc/meminfo".into())
        }
        Some(n) => {
            let out = std::process::Command::new("nvidia-smi")
                .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits", &format!("--id={n}")])
                .output();
            let mib = out
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok());
            match mib {
                Some(m) => (Some(m << 20), format!("cuda:{n}, nvidia-smi")),
                None => (None, format!("cuda:{n}: nvidia-smi did not answer")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(preset: Preset, dtype: DType, device: u64) -> MemoryPlan {
        let model = qwen25_shape(preset).unwrap();
        let train = TrainConfig::from_recipe(&preset.config(), vec![151_643]).unwrap();
        MemoryPlan::new(&model, &train, dtype, Some(device), "test")
    }

    #[test]
    fn parameter_counts_are_the_published_ones() {
        // Qwen2.5 model cards: 0.49 B, 1.54 B, 7.61 B, 32.5 B parameters.
        for (p, billions) in [
            (Preset::Orz0p5b, 0.494),
            (Preset::Orz1p5b, 1.544),
            (Preset::Orz7b, 7.616),
            (Preset::Orz32b, 32.76),
        ] {
            let n = plan(p, DType::BF16, 1).policy_params as f64 / 1e9;
            assert!((n - billions).abs() / billions < 0.01, "{p}: {n} B");
        }
    }

    #[test]
    fn seven_b_does_not_fit_one_h200_and_says_what_would() {
        let h200 = 141_000_000_000;
        let p = plan(Preset::Orz7b, DType::BF16, h200);
        // ORZ_RECIPE.md: about 16 bytes per parameter (bf16 weights + f32 master + 2 moments
        // + a gradient) per model, two models.
        let per_param = p.model_states() as f64 / (p.policy_params + p.critic_params) as f64;
        assert_eq!(per_param, 18.0, "2 (bf16) + 4 (master) + 8 (moments) + 4 (f32 grads)");
        assert!(p.model_states() > h200 && p.fits() == Some(false));
        let text = p.to_string();
        assert!(text.contains("DOES NOT FIT") && text.contains("needed:"), "{text}");
        let v = p.verdict(h200, "one H200");
        assert!(v.contains("does NOT fit") && v.contains("need 2 such devices"), "{v}");
        // Half a billion parameters: the states fit easily.
        let small = plan(Preset::Orz0p5b, DType::BF16, h200);
        assert!(small.model_states() < 20_000_000_000, "{small}");
        assert!(small.verdict(h200, "x").contains("the model states alone fit"), "{small}");
    }

    #[test]
    fn the_kv_cache_is_capped_by_the_budget() {
        let model = qwen25_shape(Preset::Orz0p5b).unwrap();
        let mut train = TrainConfig::from_recipe(&Preset::Orz0p5b.config(), vec![0]).unwrap();
        train.engine.kv_budget_bytes = 1000;
        assert_eq!(MemoryPlan::new(&model, &train, DType::BF16, None, "x").kv_cache, 1000);
        train.engine.kv_budget_bytes = usize::MAX;
        train.engine.max_batch_slots = 1;
        // 24 layers x 2 kv heads x 64 dims x 2 (k, v) x 2 bytes x 8192 tokens.
        assert_eq!(
            MemoryPlan::new(&model, &train, DType::BF16, None, "x").kv_cache,
            24 * 2 * 64 * 2 * 2 * 8192
        );
    }

    #[test]
    fn host_memory_is_read() {
        let (bytes, source) = device_memory(None);
        assert!(bytes.unwrap_or(0) > 1 << 30, "{source}");
    }
}
