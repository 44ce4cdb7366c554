//! How a [`MemoryPlan`] reads: the table, and per device whether it fits, the largest
//! `packing_max_len` that would, and which knob to turn.

use std::fmt;

use orz_core::model::MemoryOptions;

use super::{AttentionKernel, H100_BYTES, H200_BYTES, MemoryPlan};

const GB: f64 = 1e9;

fn gb(bytes: u64) -> f64 {
    bytes as f64 / GB
}

impl MemoryPlan {
    /// One line saying whether the run fits a device of `bytes` called `name`, and if not what
    /// would make it fit.
    pub fn verdict(&self, bytes: u64, name: &str) -> String {
        let largest = match self.largest_pack_len(bytes) {
            Some(t) if t >= super::MAX_PACK_LEN => format!("packs up to {t} tokens fit"),
            Some(t) => format!("largest packing_max_len that fits: {t}"),
            None if self.model_states() > bytes => "the model states alone do not fit".to_string(),
            None if self.model_states() + self.generation() > bytes => {
                "the generation phase alone does not fit, whatever the pack length".to_string()
            }
            None => "not even a pack of 256 tokens fits".to_string(),
        };
        if self.total() <= bytes {
            return format!("fits {name} ({:.0} GB of {:.0} GB; {largest})", gb(self.total()), gb(bytes));
        }
        format!(
            "does NOT fit {name}: {:.0} GB needed at the peak; {largest}; to fit: {}",
            gb(self.total()),
            self.advice(bytes)
        )
    }

    /// The first knob that makes the plan fit `bytes`, in the order a user would turn them.
    pub fn advice(&self, bytes: u64) -> String {
        if self.model_states() > bytes && self.world_size > 1 && !self.shard_weights {
            return format!(
                "this rank's model states ({:.0} GB, of which {:.0} GB whole weights) do not fit: more ranks \
                 shrink only the optimizer state; shard the weights too (ZeRO-3: --set train.shard_weights=true)",
                gb(self.model_states()),
                gb(self.weights)
            );
        }
        if self.world_size > 1 && self.shard_weights {
            // Per rank: S / W of sharded states plus the open units' f32 gradients.
            let (sharded, open) = self.sharded_states();
            let room = bytes.saturating_sub(self.generation().max(self.training()));
            if self.model_states() > room {
                return match room.checked_sub(open).filter(|r| *r > 0) {
                    Some(r) => format!(
                        "more ranks: the sharded states ({:.0} GB in all) need at least {} ranks of this size",
                        gb(sharded),
                        sharded.div_ceil(r)
                    ),
                    None => "even one rank's gathered weights and activations do not fit: shorter packs \
                             (train.packing_max_len), a smaller KV-cache budget or a larger device"
                        .to_string(),
                };
            }
        }
        if self.model_states() > bytes {
            return format!(
                "the model states alone ({:.0} GB) need {} such devices sharded (ZeRO-3 style) or \
                 offloaded optimizer state",
                gb(self.model_states()),
                self.model_states().div_ceil(bytes)
            );
        }
        let o = self.options;
        if !o.activation_checkpointing {
            let on = self.with_options(MemoryOptions { activation_checkpointing: true, ..o });
            if on.total() <= bytes {
                return "turn on activation checkpointing (--set 'train.memory={activation_checkpointing=true}')"
                    .to_string();
            }
        }
        if self.backend.attention == AttentionKernel::Dense {
            return "use a backend with fused attention (--backend tch or candle): dense attention \
                    probabilities grow with the square of the pack"
                .to_string();
        }
        if o.head_chunk_tokens > MemoryOptions::DEFAULT_HEAD_CHUNK {
            let chunked = self
                .with_options(MemoryOptions { head_chunk_tokens: MemoryOptions::DEFAULT_HEAD_CHUNK, ..o });
            if chunked.total() <= bytes {
                return format!(
                    "lower the head chunk (--set 'train.memory={{head_chunk_tokens={}}}')",
                    MemoryOptions::DEFAULT_HEAD_CHUNK
                );
            }
        }
        if self.generation() > bytes - self.model_states() {
            return "lower the engine's KV-cache budget or slots (--set 'train.engine={kv_budget_bytes=...}')"
                .to_string();
        }
        match self.largest_pack_len(bytes) {
            Some(t) => {
                format!(
                    "lower packing_max_len to {t} (--set train.packing_max_len={t}; train.stop.max_total_len must stay below)"
                )
            }
            None => "shard the model states across devices (ZeRO-3 style)".to_string(),
        }
    }

    /// The devices a dry run reports on: an 80 GB H100, a 141 GB H200 and the local device.
    fn devices(&self) -> Vec<(String, Option<u64>)> {
        let (h100, h200) = match self.world_size {
            1 => ("one 80 GB H100".to_string(), "one 141 GB H200".to_string()),
            w => (format!("{w} x 80 GB H100, per rank"), format!("{w} x 141 GB H200, per rank")),
        };
        vec![
            (h100, Some(H100_BYTES)),
            (h200, Some(H200_BYTES)),
            (format!("this device ({})", self.device_source), self.device_bytes),
        ]
    }
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attention = match self.backend.attention {
            AttentionKernel::Fused => "fused attention",
            AttentionKernel::Dense => "dense attention",
        };
        let o = self.options;
        let chunk = if o.head_chunk_tokens as u64 >= self.pack_len {
            "the head in one piece".to_string()
        } else {
            format!("head chunks of {} tokens", o.head_chunk_tokens)
        };
        writeln!(
            f,
            "memory plan ({:?} compute, {attention}, activation checkpointing {}, {chunk}; packs of {} tokens)",
            self.dtype,
            if o.activation_checkpointing { "on" } else { "off" },
            self.pack_len
        )?;
        writeln!(
            f,
            "  policy {:.3} B parameters, critic {:.3} B",
            self.policy_params as f64 / 1e9,
            self.critic_params as f64 / 1e9
        )?;
        if self.world_size > 1 {
            let weights = if self.shard_weights {
                "weights sharded (ZeRO-3: gathered whole to generate and score, unit by unit to train)"
            } else {
                "weights whole on every rank (ZeRO-2)"
            };
            writeln!(
                f,
                "  one rank of {}: {weights}, f32 masters and moments sharded {} ways, \
                 gradients: the open units' plus this rank's f32 slice",
                self.world_size, self.world_size
            )?;
        }
        let attention_row = match self.backend.attention {
            AttentionKernel::Fused => "  of which attention (fused: log-sum-exps only)",
            AttentionKernel::Dense => "  of which dense attention scores and probabilities",
        };
        let rows = [
            (
                if self.world_size > 1 && self.shard_weights {
                    "weights resident between uses"
                } else {
                    "weights, both models"
                },
                self.weights,
            ),
            ("reference model (frozen initial policy, KL options)", self.reference),
            ("f32 master weights", self.masters),
            ("AdamW moments (f32, 2 per parameter)", self.optimizer),
            (
                if self.world_size > 1 {
                    "gradients (f32: open units + this rank's slice)"
                } else {
                    "gradients (f32: accumulator + one micro-batch)"
                },
                self.gradients,
            ),
            ("generation: KV cache (slots at max_len, budget-capped)", self.kv_cache),
            ("generation: one decode step's logits", self.decode_logits),
            ("generation and scoring: one model whole at a time", self.gathered_for_generation),
            ("training: activations of one pack", self.activations),
            ("training: the units a step has gathered at once", self.gathered_for_training),
            (attention_row, self.attention),
            ("  of which the head's logits", self.head_logits),
        ];
        for (name, bytes) in rows {
            writeln!(f, "  {name:<56} {:>10.2} GB", gb(bytes))?;
        }
        writeln!(f, "  {:<56} {:>10.2} GB", "total at the peak (states + larger phase)", gb(self.total()))?;
        for (name, bytes) in self.devices() {
            match bytes {
                Some(b) => writeln!(f, "  {}", self.verdict(b, &name))?,
                None => writeln!(f, "  {name}: memory unknown, cannot say whether it fits")?,
            }
        }
        Ok(())
    }
}
