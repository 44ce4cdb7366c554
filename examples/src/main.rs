//! `orz`: the orz-rs command-line program.
//!
//! For now it lists the recipe presets and prints a preset's full configuration; training,
//! evaluation and generation arrive with the trainer.

use std::process::ExitCode;

use orz_core::recipe::{Preset, RecipeConfig};

const USAGE: &str = "usage: orz [presets [NAME]]\n\n  presets        list the recipe presets (the default)\n  presets NAME   print every field of one preset\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["presets"] => {
            print!("{}", presets_table());
            println!(
                "\n`orz presets NAME` prints every field of one preset. Training arrives with the trainer."
            );
            ExitCode::SUCCESS
        }
        ["presets", name] => match name.parse::<Preset>() {
            Ok(p) => {
                println!("{:#?}", p.config());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        ["-h" | "--help" | "help"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("error: unrecognized arguments {args:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// One row per preset with the values that distinguish them.
fn presets_table() -> String {
    let mut out = format!(
        "{:<9} {:<30} {:>9} {:>8} {:>10} {:>9} {:>10} {:>5}\n",
        "preset", "base model", "prompts", "samples", "pack len", "gen len", "lr pol/cr", "GPUs"
    );
    for p in Preset::ALL {
        let c: RecipeConfig = p.config();
        out += &format!(
            "{:<9} {:<30} {:>9} {:>8} {:>10} {:>9} {:>10} {:>5}\n",
            p.name(),
            c.base_model,
            c.rollout_batch_size,
            c.n_samples_per_prompt,
            c.packing_max_len,
            c.generate_max_len,
            format!("{:.0e}/{:.0e}", c.policy_lr, c.critic_lr),
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
    }
}
