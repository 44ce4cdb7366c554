//! `orz`: run the Open-Reasoner-Zero recipes. `cargo run --release -p orz` trains the tiny
//! preset on the CPU; `orz --help` lists the commands.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use orz::cli::{Cli, Command};
use orz::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<()> = match &cli.command {
        None | Some(Command::Train) => commands::train(&cli.common),
        Some(Command::Eval { samples }) => commands::eval(&cli.common, *samples),
        Some(Command::Generate { prompts, count, samples }) => {
            commands::generate(&cli.common, prompts, *count, *samples)
        }
        Some(Command::Pretrain) => commands::pretrain(&cli.common),
        Some(Command::Presets { name }) => commands::presets(name.as_deref()),
        Some(Command::Launch { nproc, master_port, args }) => orz::launch::launch(*nproc, *master_port, args),
        Some(Command::Plot { metrics, png }) => {
            commands::plot(&cli.common, metrics.as_deref(), png.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
