//! [`MemoryPlan`]: what a run needs in memory, per item, against what the devices have, printed
//! by `orz train --dry-run` before any long work (ORZ_RECIPE.md, "Memory arithmetic").
//!
//! The plan is a model of what the code does (checked against measured peaks by
//! `cargo bench -p orz-bench --bench memory`, table in BENCHMARKS.md):
//!
//! - **Model states**, resident all run: weights in the compute dtype; under a 16-bit dtype f32
//!   master copies ([`orz_core::optimizer`]); AdamW's two f32 moments; for the model being
//!   trained, the f32 gradient accumulator and one micro-batch's gradients. Policy and critic
//!   are two full models (ORZ shares none). Under a KL option (`kl_coef > 0` or `use_kl_loss`)
//!   the frozen reference model adds one more copy of the policy's weights in the compute dtype
//!   (no masters, moments or gradients; sliced over the ranks with the weights under ZeRO-3,
//!   whole on every rank otherwise).
//! - **Generation**: the KV cache (every slot at `max_len`, capped by the engine budget) and one
//!   decode step's `[slots, vocab]` f32 logits. The cache is freed before training starts.
//! - **Training one pack** of `packing_max_len` tokens ([`orz_core::model::backprop`]): with
//!   activation checkpointing, every layer's input plus one layer's recomputed activations and
//!   their gradients; without, every layer's activations. Attention adds, per layer kept,
//!   `heads × T × T` scores and probabilities where the backend's attention is dense (the
//!   reference), or only `heads × T` log-sum-exps where it is fused (tch, candle). The head
//!   adds the buffers a chunk's `[chunk, vocab]` selective log-prob keeps per logit, which
//!   depend on the backend, the device and the dtype ([`MemoryFacts::on`]); the
//!   entropy bonus (`entropy_coef > 0`) adds [`ENTROPY_F32_BUFFERS`] f32 buffers per logit (its
//!   log-softmax, probabilities and their product).
//!
//! The peak is the model states plus the larger of the generation and the training phase.
//!
//! **Data-parallel runs** ([`MemoryPlan::with_world_size`]) plan one rank of W
//! ([`orz_core::shard`]): the f32 masters, the AdamW moments and the f32 gradient sums are split
//! W ways; a micro-batch's gradients are reduce-scattered unit by unit as they become final, so
//! at most the units open at once hold f32 gradients. The weights, with
//! [`TrainConfig::shard_weights`] (ZeRO-3, the default), are not resident at all between uses:
//! generation gathers the policy whole and the experience pass one model at a time (the policy's
//! pass, then the critic's), so the larger of the two is counted in the generation phase, and a
//! training step gathers the units it has open (the embedding, the tail with the head, and
//! one layer when checkpointed; every layer otherwise), counted in the training phase. Without
//! it (ZeRO-2) the weights stay whole on every rank.

mod devices;
pub mod measure;
mod report;
#[cfg(test)]
mod tests;

pub use devices::{H100_BYTES, H200_BYTES, device_memory, dtype_bytes, qwen25_shape};

use orz_core::backend::DType;
use orz_core::model::{Head, MemoryOptions, Qwen2Config, parameter_specs};
use orz_core::train::TrainConfig;

/// What the plan needs to know about a backend: each entry of the backend registry says it
/// (`BackendKind::memory`, in `backends/registry/src/entries.rs`).
pub use orz_backends::{AttentionKernel, MemoryFacts};

/// Activations of one decoder layer kept for its backward pass, per token: `H_SAVED` hidden-sized
/// and `I_SAVED` intermediate-sized tensors in the activation dtype, plus `F32_NORM` hidden-sized
/// f32 tensors of the two RMSNorms (which compute in f32). Counted from `Qwen2::layer_forward`
/// and calibrated against the measured peaks (BENCHMARKS.md).
const H_SAVED: u64 = 12;
/// See [`H_SAVED`].
const I_SAVED: u64 = 5;
/// See [`H_SAVED`].
const F32_NORM: u64 = 4;

/// f32 `[chunk, vocab]` buffers the entropy bonus adds to a head chunk: its log-softmax, the
/// probabilities and their product (counted from `orz_core::ppo::entropy::entropy_from_logits`,
/// not measured).
pub const ENTROPY_F32_BUFFERS: u64 = 3;

/// The memory of one run, in bytes, and whether it fits a device.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// Policy parameters (with the LM head unless tied).
    pub policy_params: u64,
    /// Critic parameters (backbone and value head); 0 under GRPO.
    pub critic_params: u64,
    /// Compute dtype of the weights.
    pub dtype: DType,
    /// The backend's attention and activation width.
    pub backend: MemoryFacts,
    /// Checkpointing and head chunk of the update steps.
    pub options: MemoryOptions,
    /// Tokens per pack (`packing_max_len`).
    pub pack_len: u64,
    /// Weights of both models in the compute dtype.
    pub weights: u64,
    /// The frozen reference model's weights in the compute dtype (0 without a KL option; this
    /// rank's slice under sharded weights).
    pub reference: u64,
    /// Whether a KL option keeps the frozen reference model.
    pub uses_reference: bool,
    /// Whether the head chunk also computes the entropy (`entropy_coef > 0`).
    pub entropy_head: bool,
    /// f32 master weights (only under a 16-bit dtype).
    pub masters: u64,
    /// AdamW's two f32 moments, both models.
    pub optimizer: u64,
    /// The f32 gradient accumulator and one micro-batch's gradients of the larger model.
    pub gradients: u64,
    /// KV cache of the generation engine: every slot at `max_len`, capped by the budget.
    pub kv_cache: u64,
    /// One decode step's f32 logits over every slot.
    pub decode_logits: u64,
    /// Activations kept to train on one pack (the larger of policy and critic).
    pub activations: u64,
    /// The part of `activations` that is attention beyond the layer's own tensors (dense
    /// scores and probabilities, or fused log-sum-exps).
    pub attention: u64,
    /// The part of `activations` that is the head's chunk of logits.
    pub head_logits: u64,
    /// Ranks of a data-parallel run the states are sharded over (1: one process).
    pub world_size: u64,
    /// Whether a data-parallel run shards the weights too ([`TrainConfig::shard_weights`]).
    pub shard_weights: bool,
    /// Sharded weights gathered whole for generation and scoring: the larger model, as one is
    /// whole at a time (0 without sharded weights).
    pub gathered_for_generation: u64,
    /// Sharded weights of the units a training step has open at once (0 otherwise).
    pub gathered_for_training: u64,
    /// Memory of the device the run would use, if known.
    pub device_bytes: Option<u64>,
    /// Where `device_bytes` comes from (`/proc/meminfo`, `nvidia-smi`, an assumption).
    pub device_source: String,
    /// The model's shape, for replanning at another pack length.
    shape: Shape,
    /// Parameters of the larger model's units a checkpointed training step keeps gathered at
    /// once: the embedding, the tail (final norm and head) and one decoder layer.
    open_units: u64,
}

/// The shape facts the activation model needs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    layers: u64,
    hidden: u64,
    intermediate: u64,
    heads: u64,
    vocab: u64,
}

impl MemoryPlan {
    /// The plan of `model` trained with `train` in `dtype` on `backend`, on a device of
    /// `device_bytes`.
    pub fn new(
        model: &Qwen2Config,
        train: &TrainConfig,
        dtype: DType,
        backend: MemoryFacts,
        device_bytes: Option<u64>,
        device_source: &str,
    ) -> MemoryPlan {
        let count = |head| {
            parameter_specs(model, head).iter().map(|s| s.shape.iter().product::<usize>() as u64).sum()
        };
        let policy_params: u64 = count(Head::Lm);
        let layer_params: u64 = parameter_specs(model, Head::Lm)
            .iter()
            .filter(|s| s.name.starts_with("model.layers.0."))
            .map(|s| s.shape.iter().product::<usize>() as u64)
            .sum();
        // The embedding and, untied, an LM head of the same size, a layer, the final norm.
        let untied = parameter_specs(model, Head::Lm).iter().any(|s| s.name == "lm_head.weight");
        let embed = (model.vocab_size * model.hidden_size) as u64;
        let open_units = embed * (1 + u64::from(untied)) + layer_params + model.hidden_size as u64;
        let critic_params: u64 = if train.estimator.uses_critic() { count(Head::Value) } else { 0 };
        let width = dtype_bytes(dtype);
        // The KV cache and the logits are stored at the backend's element width where it has its
        // own (the reference: f64 whatever the dtype).
        let stored = backend.element_bytes.unwrap_or(width);
        let (layers, kv_heads, head_dim) =
            (model.num_hidden_layers as u64, model.num_key_value_heads as u64, model.head_dim() as u64);
        let kv_per_token = 2 * layers * kv_heads * head_dim * stored;
        let slots = train.engine.max_batch_slots as u64;
        let kv_need = slots * train.stop.max_total_len as u64 * kv_per_token;
        let mut plan = MemoryPlan {
            policy_params,
            critic_params,
            dtype,
            backend,
            options: train.memory,
            pack_len: train.packing_max_len as u64,
            weights: 0,
            reference: if train.uses_reference() { width * policy_params } else { 0 },
            uses_reference: train.uses_reference(),
            entropy_head: train.entropy_coef > 0.0,
            masters: 0,
            optimizer: 0,
            gradients: 0,
            kv_cache: kv_need.min(train.engine.kv_budget_bytes as u64),
            decode_logits: slots * model.vocab_size as u64 * stored.max(4),
            activations: 0,
            attention: 0,
            head_logits: 0,
            world_size: 1,
            shard_weights: train.shard_weights,
            gathered_for_generation: 0,
            gathered_for_training: 0,
            device_bytes,
            device_source: device_source.to_string(),
            shape: Shape {
                layers,
                hidden: model.hidden_size as u64,
                intermediate: model.intermediate_size as u64,
                heads: model.num_attention_heads as u64,
                vocab: model.vocab_size as u64,
            },
            open_units,
        };
        plan.set_pack_len(plan.pack_len);
        plan.set_world_size(1);
        plan
    }

    /// Recomputes the training activations for packs of `t` tokens.
    fn set_pack_len(&mut self, t: u64) {
        let s = self.shape;
        let w = self.backend.element_bytes.unwrap_or(dtype_bytes(self.dtype));
        let per_layer = t * ((H_SAVED * s.hidden + I_SAVED * s.intermediate) * w + F32_NORM * s.hidden * 4);
        let attention_per_layer = match self.backend.attention {
            // Scores in the dtype, their f32 copy and softmax, the probabilities cast back.
            AttentionKernel::Dense => s.heads * t * t * (2 * w + 8),
            AttentionKernel::Fused => s.heads * t * 4,
        };
        let layers_kept = if self.options.activation_checkpointing { 1 } else { s.layers };
        // The gradients in flight: a backward that keeps every node's gradient holds as much
        // again as the graph it runs; one that frees them as it goes, about one layer's worth.
        let node_grads = if self.backend.keeps_node_grads { layers_kept * per_layer } else { per_layer };
        // Checkpointing keeps every layer's input and back-propagates one layer at a time.
        let checkpoints = if self.options.activation_checkpointing { s.layers * t * s.hidden * w } else { 0 };
        let chunk = t.min(self.options.head_chunk_tokens as u64);
        // The backend's buffers per logit on this device and dtype (`MemoryFacts::on`): the
        // logits or their log-softmax, the gradient, and a composition's f32 pieces (counted,
        // then calibrated against the measured peaks: BENCHMARKS.md).
        let (copies, mut f32_buffers) = self.backend.head_buffers;
        if self.entropy_head {
            f32_buffers += ENTROPY_F32_BUFFERS;
        }
        let head_logits = chunk * s.vocab * (copies * w + f32_buffers * 4);
        // The gradient with respect to the residual stream, and the chunk leaves' copy of it.
        let stream = 2 * t * s.hidden * w;
        self.pack_len = t;
        self.attention = layers_kept * attention_per_layer;
        self.head_logits = head_logits;
        self.activations =
            checkpoints + layers_kept * (per_layer + attention_per_layer) + node_grads + head_logits + stream;
    }

    /// Weights (the reference model's included), masters, optimizer state and gradients: what
    /// must stay resident all run.
    pub fn model_states(&self) -> u64 {
        self.weights + self.reference + self.masters + self.optimizer + self.gradients
    }

    /// The generation phase beyond the model states: the KV cache, a decode step's logits and
    /// the gathered weights (sharded weights only).
    pub fn generation(&self) -> u64 {
        self.kv_cache + self.decode_logits + self.gathered_for_generation
    }

    /// The training phase beyond the model states: one pack's activations and the gathered
    /// units (sharded weights only).
    pub fn training(&self) -> u64 {
        self.activations + self.gathered_for_training
    }

    /// Everything at the peak: the model states and the larger phase.
    pub fn total(&self) -> u64 {
        self.model_states() + self.generation().max(self.training())
    }

    /// Whether the total fits the device (unknown device: `None`).
    pub fn fits(&self) -> Option<bool> {
        self.device_bytes.map(|d| self.total() <= d)
    }

    /// Devices of `device_bytes` needed if the model states were sharded evenly across them
    /// (ZeRO-3 style) and each kept its own KV cache and activations; `None` if even one
    /// device cannot hold its cache and activations.
    pub fn devices_needed(&self, device_bytes: u64) -> Option<u64> {
        let fixed = self.generation().max(self.training());
        let room = device_bytes.checked_sub(fixed).filter(|r| *r > 0)?;
        Some(self.model_states().div_ceil(room).max(1))
    }

    /// The plan of one rank of a data-parallel run over `world` ranks (see the
    /// [module docs](self)); `world` 1 is the single-process plan.
    pub fn with_world_size(&self, world: u64) -> MemoryPlan {
        let mut p = self.clone();
        p.set_world_size(world);
        p
    }

    /// Over several ranks: the bytes of everything sharded (f32 masters, AdamW moments and the
    /// f32 gradient sums, over all ranks together) and the per-rank f32 gradients of the units
    /// open at once.
    fn sharded_states(&self) -> (u64, u64) {
        let params = self.policy_params + self.critic_params;
        let larger = self.policy_params.max(self.critic_params);
        // Units whose gradients are in flight at once: those a checkpointed step has open,
        // every one of the larger model's without checkpointing.
        let open = if self.options.activation_checkpointing { self.open_units.min(larger) } else { larger };
        (4 * params + 8 * params + 4 * larger, 4 * open)
    }

    /// Sets the model states (and the gathered weights) of one rank of `world`.
    fn set_world_size(&mut self, world: u64) {
        let world = world.max(1);
        let params = self.policy_params + self.critic_params;
        let larger = self.policy_params.max(self.critic_params);
        let width = dtype_bytes(self.dtype);
        self.world_size = world;
        (self.gathered_for_generation, self.gathered_for_training) = (0, 0);
        self.reference = if self.uses_reference { width * self.policy_params } else { 0 };
        if world == 1 {
            self.weights = width * params;
            self.masters = if self.dtype == DType::F32 { 0 } else { 4 * params };
            self.optimizer = 8 * params;
            self.gradients = 8 * larger;
            return;
        }
        let (_, open_grads) = self.sharded_states();
        self.masters = (4 * params).div_ceil(world);
        self.optimizer = (8 * params).div_ceil(world);
        self.gradients = open_grads + (4 * larger).div_ceil(world);
        if self.shard_weights {
            self.weights = 0;
            self.reference = self.reference.div_ceil(world);
            self.gathered_for_generation = width * larger;
            self.gathered_for_training = width * open_grads / 4;
        } else {
            self.weights = width * params;
        }
    }

    /// The same plan for packs of `t` tokens.
    pub fn with_pack_len(&self, t: u64) -> MemoryPlan {
        let mut p = self.clone();
        p.set_pack_len(t);
        p
    }

    /// The same plan with other memory options.
    pub fn with_options(&self, options: MemoryOptions) -> MemoryPlan {
        let mut p = self.clone();
        p.options = options;
        p.set_pack_len(self.pack_len);
        p.set_world_size(self.world_size);
        p
    }

    /// The largest pack length, a multiple of 256 up to [`MAX_PACK_LEN`], whose plan fits
    /// `bytes` with everything else unchanged; `None` if not even 256 tokens fit.
    pub fn largest_pack_len(&self, bytes: u64) -> Option<u64> {
        let fits = |units: u64| self.with_pack_len(units * 256).total() <= bytes;
        let (mut lo, mut hi) = (1u64, MAX_PACK_LEN / 256);
        if !fits(lo) {
            return None;
        }
        if fits(hi) {
            return Some(MAX_PACK_LEN);
        }
        // `lo` fits, `hi` does not.
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo * 256)
    }
}

/// The longest pack [`MemoryPlan::largest_pack_len`] considers (Qwen2.5's context window).
pub const MAX_PACK_LEN: u64 = 131_072;
