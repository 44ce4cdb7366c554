//! The command line of `orz` (clap): subcommands and the options they share.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use orz_core::recipe::Preset;

use crate::backend::{BackendKind, DeviceSpec};
use crate::task::Task;

/// orz: Open-Reasoner-Zero in Rust. Without a command it trains the tiny preset on the CPU.
#[derive(Debug, Parser)]
#[command(name = "orz", version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: `train` with the tiny preset).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options every command takes.
    #[command(flatten)]
    pub common: Common,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train with PPO (the ORZ recipe): rollout, reward, GAE, critic and policy updates.
    Train,
    /// Evaluate a model on eval files: accuracy per file, averaged over samples.
    Eval {
        /// Samples per question (the paper's tables use 16).
        #[arg(long, default_value_t = 1)]
        samples: usize,
    },
    /// Sample completions for prompts (questions are put into the recipe's template).
    Generate {
        /// Questions to answer; none: the first `--count` questions of `--data`/`--eval`.
        #[arg(long = "prompt")]
        prompts: Vec<String>,
        /// How many questions to take from the data files.
        #[arg(long, default_value_t = 4)]
        count: usize,
        /// Completions per question.
        #[arg(long, default_value_t = 1)]
        samples: usize,
    },
    /// Build the tiny task's base model by supervised pretraining (deterministic given --seed).
    Pretrain,
    /// List the presets, or print one preset's full configuration as TOML.
    Presets {
        /// The preset to print (all of them are listed without it).
        name: Option<String>,
    },
    /// Start N ranks of `orz` on this machine, as torchrun does (`orz launch --nproc 2 -- train
    /// --backend tch ...`); stops every rank when one fails.
    Launch {
        /// Ranks to start.
        #[arg(long)]
        nproc: usize,
        /// The rendezvous port (default: a free one).
        #[arg(long)]
        master_port: Option<u16>,
        /// The `orz` arguments every rank runs with (after `--`).
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// Draw reward and response length against the iteration from a metrics.jsonl into a PNG.
    Plot {
        /// The metrics file (default: OUT/metrics.jsonl).
        metrics: Option<PathBuf>,
        /// The PNG to write (default: next to the metrics, training.png).
        #[arg(long)]
        png: Option<PathBuf>,
    },
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct Common {
    /// Recipe preset.
    #[arg(long, global = true, default_value = "tiny", value_parser = parse_preset)]
    pub preset: Preset,
    /// TOML file overriding any recipe field (top level) or iteration field (`[train]`).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Override one field by its dotted path in the tree `orz presets NAME` prints:
    /// `--set train.eps_clip=0.3`, `--set train.aggregation='"TokenMean"'`.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// What to train on and how to score it: ORZ math, TinyZero's Countdown, or the tiny digit
    /// sums (Countdown and tiny are generated when no --data is given; tiny has an embedded base
    /// model). Default: tiny with the tiny preset, math otherwise.
    #[arg(long, global = true, value_enum)]
    pub task: Option<Task>,
    /// Tensor backend.
    #[arg(long, global = true, default_value = "candle", value_parser = crate::backend::backend_parser())]
    pub backend: BackendKind,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Compute dtype of the models: f32, bf16 or f16 (masters and optimizer state stay f32).
    #[arg(long, global = true, default_value = "f32")]
    pub dtype: String,
    /// Hugging Face Qwen2 directory (config.json, safetensors, tokenizer.json); the tiny task
    /// uses its embedded base model without it.
    #[arg(long, global = true)]
    pub model: Option<PathBuf>,
    /// Training data (ORZ training or eval format, JSON); the tiny and Countdown tasks generate
    /// their problems without it.
    #[arg(long, global = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Eval files (ORZ eval format).
    #[arg(long, global = true, num_args = 1..)]
    pub eval: Vec<PathBuf>,
    /// Output directory: metrics.jsonl, plots, checkpoints, generations.
    #[arg(long, global = true, default_value = "runs/orz")]
    pub out: PathBuf,
    /// Resume from a checkpoint directory written by `orz train`.
    #[arg(long, global = true)]
    pub resume: Option<PathBuf>,
    /// Seed of everything random (sampling, data order, initialization).
    #[arg(long, global = true, default_value_t = 0)]
    pub seed: u64,
    /// Iterations to run (default: the preset's `iterations`).
    #[arg(long, global = true)]
    pub iterations: Option<usize>,
    /// Check model, tokenizer, data and output, print the config and the memory plan, and stop.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Ranks the dry run plans for (one rank's memory of a data-parallel run; default: the
    /// launcher's WORLD_SIZE, else 1).
    #[arg(long, global = true)]
    pub world_size: Option<u64>,
    /// No progress bars (one plain line per iteration instead).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl Common {
    /// The task: `--task`, or the preset's default ([`Task::default_for`]).
    pub fn task(&self) -> Task {
        self.task.unwrap_or_else(|| Task::default_for(self.preset))
    }

    /// The world size to plan for: `--world-size`, the launcher's, or 1.
    pub fn world_size(&self) -> anyhow::Result<u64> {
        match self.world_size {
            Some(0) => anyhow::bail!("--world-size must be at least 1"),
            Some(w) => Ok(w),
            None => Ok(crate::distributed::launch_env()?.map_or(1, |e| e.world_size as u64)),
        }
    }
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    s.parse::<Preset>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_is_tiny_training_on_candle_cpu() {
        let cli = Cli::try_parse_from(["orz"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            (cli.common.preset, cli.common.backend, cli.common.device),
            (Preset::Tiny, BackendKind::Candle, DeviceSpec::Cpu)
        );
        assert_eq!(cli.common.task(), Task::Tiny);
    }

    #[test]
    fn options_go_before_or_after_the_command() {
        let cli = Cli::try_parse_from([
            "orz",
            "--preset",
            "orz-7b",
            "train",
            "--model",
            "/m",
            "--data",
            "a.json",
            "b.json",
            "--dry-run",
            "--device",
            "cuda:1",
            "--set",
            "policy_lr=1e-5",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Train)));
        let c = cli.common;
        assert_eq!((c.preset, c.device, c.dry_run), (Preset::Orz7b, DeviceSpec::Cuda(1), true));
        assert_eq!(c.data.len(), 2);
        assert_eq!(c.set, ["policy_lr=1e-5"]);
    }

    #[test]
    fn bad_values_are_rejected_with_the_choices() {
        let e = Cli::try_parse_from(["orz", "--preset", "orz-3b"]).unwrap_err().to_string();
        assert!(e.contains("unknown preset `orz-3b`") && e.contains("orz-7b"), "{e}");
        let e = Cli::try_parse_from(["orz", "--backend", "jax"]).unwrap_err().to_string();
        assert!(e.contains("candle"), "{e}");
        assert!(Cli::try_parse_from(["orz", "--device", "tpu"]).is_err());
    }
}
