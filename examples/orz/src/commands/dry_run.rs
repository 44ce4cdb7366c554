//! `--dry-run` of `orz train` and `orz eval`: every input checked, the full configuration and the
//! memory plan printed, nothing trained.

use anyhow::{Result, anyhow};
use orz_backends::BackendKind;

use crate::cli::Common;
use crate::memory_plan::{MemoryPlan, device_memory, qwen25_shape};
use crate::prepare::{Prepared, check_writable, overrides};
use crate::settings::Settings;

/// The config, the inputs found and the memory plan of checked inputs.
pub fn dry_run(common: &Common, p: &Prepared) -> Result<()> {
    println!("# orz {} dry run: every input checked, nothing trained\n", p.preset);
    println!("{}", p.settings.to_toml()?);
    let m = &p.model_config;
    println!(
        "model: {} (hidden {}, {} layers, {} heads / {} kv heads, vocab {}, tied embeddings: {})",
        p.model_dir.display(),
        m.hidden_size,
        m.num_hidden_layers,
        m.num_attention_heads,
        m.num_key_value_heads,
        m.vocab_size,
        m.tie_word_embeddings
    );
    println!("tokenizer: {} tokens, EOS ids {:?}", p.tokenizer.vocab_size(), m.eos_token_ids);
    println!("training problems: {}", p.train_data.len());
    for (name, set) in &p.eval_sets {
        println!("eval set {name}: {} problems", set.len());
    }
    let (bytes, source) = device_memory(common.device.cuda_ordinal());
    let plan = MemoryPlan::new(
        m,
        &p.settings.recipe.train,
        p.dtype,
        common.backend.memory_on(common.device, p.dtype),
        bytes,
        &source,
    )
    .with_world_size(common.world_size()?);
    println!("\n{plan}");
    if let Some(note) = oracle_caveat(common.backend) {
        println!("{note}");
    }
    let gpus = p.settings.recipe.orz_gpus;
    if gpus > 0 {
        println!("ORZ trained this preset on {gpus} GPUs (80 GB each).");
    }
    Ok(())
}

/// Without `--model` for a preset whose task has no embedded base model: the config and the
/// memory plan of the published Qwen2.5 shape, and the data files checked if given.
pub fn plan_without_model(common: &Common) -> Result<()> {
    let preset = common.preset;
    let shape = qwen25_shape(preset).ok_or_else(|| anyhow!("preset {preset} has no published base model"))?;
    check_writable(&common.out)?;
    let settings = Settings::resolve(preset, &overrides(common)?, shape.eos_token_ids.clone())?;
    println!(
        "# orz {preset} dry run without --model: the plan uses {}'s published shape\n",
        settings.recipe.base_model
    );
    println!("{}", settings.to_toml()?);
    for path in common.data.iter().chain(&common.eval) {
        println!("{}: {} problems", path.display(), crate::data::load_any(path)?.len());
    }
    let (bytes, source) = device_memory(common.device.cuda_ordinal());
    let dtype = crate::backend::parse_dtype(&common.dtype)?;
    println!(
        "{}",
        MemoryPlan::new(
            &shape,
            &settings.recipe.train,
            dtype,
            common.backend.memory_on(common.device, dtype),
            bytes,
            &source
        )
        .with_world_size(common.world_size()?)
    );
    if let Some(note) = oracle_caveat(common.backend) {
        println!("{note}");
    }
    println!(
        "ORZ trained this preset on {} GPUs (80 GB each). Pass --model DIR to check the checkpoint and tokenizer.",
        settings.recipe.orz_gpus
    );
    Ok(())
}

/// For the f64 oracle, what its plan leaves out: it copies where other backends take views and
/// keeps all of it on its tape (measured in BENCHMARKS.md, "Memory: the dry run's plan against
/// measured peaks"). `None` for every other backend.
fn oracle_caveat(backend: BackendKind) -> Option<String> {
    backend.entry().oracle.then(|| {
        format!(
            "note: {} is the f64 oracle, for checking, not training: its copies are not planned, and it \
             measured 2.2 to 2.9 times this plan's training phase on the CPU (BENCHMARKS.md)",
            backend.name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_oracle_gets_the_caveat() {
        let note = oracle_caveat(BackendKind::Reference).unwrap();
        assert!(note.contains("reference is the f64 oracle"), "{note}");
        for kind in BackendKind::ALL.iter().filter(|k| **k != BackendKind::Reference) {
            assert_eq!(oracle_caveat(*kind), None, "{kind:?}");
        }
    }
}
