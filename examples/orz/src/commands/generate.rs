//! `orz generate`: completions for `--prompt` questions or the first `--count` data questions.

use std::rc::Rc;

use anyhow::Result;
use orz_core::backend::Backend;

use crate::backend::{BackendJob, run_on};
use crate::cli::Common;
use crate::eval::EvalOptions;
use crate::prepare::{Prepared, prepare};

/// `orz generate`.
pub fn generate(common: &Common, prompts: &[String], count: usize, samples: usize) -> Result<()> {
    let p = prepare(common, prompts.is_empty() && common.eval.is_empty())?;
    let questions: Vec<String> = if !prompts.is_empty() {
        prompts.to_vec()
    } else {
        let source = if p.train_data.is_empty() {
            p.eval_sets.iter().flat_map(|(_, s)| s).collect::<Vec<_>>()
        } else {
            p.train_data.iter().collect()
        };
        source.into_iter().take(count).map(|q| q.question.clone()).collect()
    };
    run_on(common.backend, common.device, GenerateJob { p, questions, samples })
}

struct GenerateJob {
    p: Prepared,
    questions: Vec<String>,
    samples: usize,
}

impl BackendJob for GenerateJob {
    type Output = ();

    fn run<B: Backend + 'static>(self, b: Rc<B>, _name: &str) -> Result<()> {
        let p = &self.p;
        let policy = orz_hf::load_policy(&b, &p.model_dir, p.dtype)?;
        let mut options = EvalOptions::new(self.samples, p.seed);
        options.engine = p.settings.recipe.train.engine;
        let outs =
            crate::eval::generate(&policy, &p.tokenizer, &p.settings.recipe, &self.questions, &options)?;
        for o in outs {
            let question = self.questions.get(o.prompt).map_or("", String::as_str);
            println!(
                "--- question {} sample {} ({:?}, {} tokens)\n{question}\n>>> {}",
                o.prompt, o.sample, o.finish_reason, o.tokens, o.text
            );
        }
        Ok(())
    }
}
