//! `orz eval`: accuracy per eval file, averaged over `--samples` per question.

use std::rc::Rc;

use anyhow::{Result, anyhow};
use orz_core::backend::Backend;

use super::dry_run::dry_run;
use crate::backend::{BackendJob, run_on};
use crate::cli::Common;
use crate::eval::{EvalOptions, EvalReport, evaluate};
use crate::prepare::{Prepared, prepare};
use crate::progress::Progress;

/// `orz eval`.
pub fn eval(common: &Common, samples: usize) -> Result<()> {
    let p = prepare(common, false)?;
    if p.eval_sets.is_empty() {
        return Err(anyhow!(
            "orz eval needs --eval FILE... (ORZ eval format, e.g. data/orz/eval/math500.json)"
        ));
    }
    if common.dry_run {
        return dry_run(common, &p);
    }
    let report = run_on(common.backend, common.device, EvalJob { p, samples })?;
    println!("{report}");
    Ok(())
}

struct EvalJob {
    p: Prepared,
    samples: usize,
}

impl BackendJob for EvalJob {
    type Output = EvalReport;

    fn run<B: Backend + 'static>(self, b: Rc<B>, _name: &str) -> Result<Self::Output> {
        let p = &self.p;
        let policy = orz_hf::load_policy(&b, &p.model_dir, p.dtype)?;
        let jsonl = p.out.join("eval-generations.jsonl");
        let total = p.eval_sets.iter().map(|(_, s)| s.len()).sum::<usize>() * self.samples;
        let bar = Progress::counter("eval", total, p.quiet);
        let mut options = EvalOptions::new(self.samples, p.seed);
        options.engine = p.settings.recipe.train.engine;
        options.out_jsonl = Some(&jsonl);
        let reward = p.task.reward();
        options.reward = Some(reward.as_ref());
        let report = evaluate(&policy, &p.tokenizer, &p.settings.recipe, &p.eval_sets, &options, &bar)?;
        eprintln!("generations: {}", jsonl.display());
        Ok(report)
    }
}
