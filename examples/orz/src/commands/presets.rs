//! `orz presets [NAME]`: the presets side by side, or one preset's full configuration as TOML.

use anyhow::{Result, anyhow};
use orz_core::recipe::Preset;

use crate::settings::Settings;

/// `orz presets [NAME]`.
pub fn presets(name: Option<&str>) -> Result<()> {
    match name {
        None => {
            print!("{}", presets_table());
            println!("{}", tiny_task_note());
            println!("\n`orz presets NAME` prints every field of a preset as TOML (the format of --config).");
        }
        Some(name) => {
            let preset: Preset = name.parse().map_err(|e| anyhow!("{e}"))?;
            // EOS ids come from the model's config.json at run time; shown here with Qwen2.5's.
            let settings = Settings::resolve(preset, &[], vec![151_643])?;
            println!("# preset {preset}; train.stop.eos_token_ids come from the model's config.json\n");
            print!("{}", settings.to_toml()?);
            let unset = settings.unset_fields()?;
            if !unset.is_empty() {
                println!("\n# unset options (off; TOML has no null): {}", unset.join(", "));
            }
            if preset == Preset::Tiny {
                println!("# {}", tiny_task_note());
            }
        }
    }
    Ok(())
}

/// What the tiny task (the tiny preset's default) changes over the preset's lengths, which
/// `orz train` applies before `--config` and `--set` ([`crate::task::tiny::lengths`]).
pub fn tiny_task_note() -> String {
    use crate::task::tiny::{MAX_NEW_TOKENS, PROMPT_MAX_LEN};
    format!(
        "tiny: its task (`--task tiny`, the default) raises train.stop.max_new_tokens to {MAX_NEW_TOKENS} \
         and max_total_len to {}, with prompt_max_len {PROMPT_MAX_LEN}",
        PROMPT_MAX_LEN + MAX_NEW_TOKENS
    )
}

/// One row per preset with the values that distinguish them.
pub fn presets_table() -> String {
    let mut out = format!(
        "{:<9} {:<30} {:>8} {:>8} {:>9} {:>8} {:>10} {:>6} {:>5}\n",
        "preset", "base model", "prompts", "samples", "pack len", "gen len", "lr pol/cr", "iters", "GPUs"
    );
    for p in Preset::ALL {
        let c = p.config();
        let t = &c.train;
        out += &format!(
            "{:<9} {:<30} {:>8} {:>8} {:>9} {:>8} {:>10} {:>6} {:>5}\n",
            p.name(),
            c.base_model,
            c.rollout_batch_size,
            t.n_samples_per_prompt,
            t.packing_max_len,
            t.stop.max_new_tokens,
            format!("{:.0e}/{:.0e}", t.policy_optimizer.schedule.peak(), t.critic_optimizer.schedule.peak()),
            c.iterations,
            c.orz_gpus
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_every_preset() {
        let t = presets_table();
        for p in Preset::ALL {
            assert!(t.contains(p.name()), "{t}");
        }
        assert!(t.contains("16384"));
        let note = tiny_task_note();
        assert!(note.contains("max_new_tokens to 96") && note.contains("max_total_len to 136"), "{note}");
    }
}
