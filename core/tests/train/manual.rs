//! The trainer's updates against hand-assembled computations: the same rollout, packs, old
//! log-probs, values and advantages through the public phase functions, then each aggregation's
//! loss written independently with backend ops, one backward and one optimizer step.

use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::collective::Single;
use orz_core::model::{Critic, Policy, response_positions};
use orz_core::optimizer::Optimizer;
use orz_core::ppo::grpo::{GroupStd, grpo_advantages};
use orz_core::rng::Rng;
use orz_core::train::advantages::compute_advantages;
use orz_core::train::experience::make_experience;
use orz_core::train::rollout::rollout;
use orz_core::train::trainer::stream;
use orz_core::train::update::policy_update;
use orz_core::train::{
    Advantages, Aggregation, EstimatorChoice, Experience, ModelOptimizer, Pack, Sample, TrainConfig,
};
use orz_reference::{Reference, Tensor};

use super::support::{config, contains, detok, max_diff, models, prompts, snapshot, trainer};

const SEED: u64 = 21;

/// The models, the experience and the advantages of iteration 0, computed by hand.
struct Hand {
    b: Rc<Reference>,
    policy: Policy<Reference>,
    critic: Critic<Reference>,
    samples: Vec<Sample>,
    packs: Vec<Pack>,
    experience: Experience,
    advantages: Advantages,
}

/// Recipe steps 2-8 by hand (the phase functions, not the trainer), for the models of
/// `trainer(config, SEED)` at iteration 0.
fn experience(c: &TrainConfig) -> Hand {
    let (b, policy, critic) = models(SEED);
    let rng = Rng::seed_from_u64(SEED + 1).fork(0).fork(stream::GENERATION);
    let samples = rollout(&*b, &policy, c, &prompts(4), &contains('e'), &detok, &rng).unwrap().samples;
    let with_critic = c.estimator.uses_critic().then_some(&critic);
    let experience =
        make_experience(&policy, with_critic, samples, c.packing_max_len, c.pack_shuffle_seed).unwrap();
    let estimator = c.estimator.build(c.gamma, c.lambda);
    let advantages = compute_advantages(&experience, estimator.as_ref(), c.advantage_normalize).unwrap();
    let (samples, packs) = (experience.samples.clone(), experience.packs.clone());
    Hand { b, policy, critic, samples, packs, experience, advantages }
}

/// The step's loss under `agg`, written from its definition: ORZ's mean over packs of each
/// pack's response-token mean; the global token mean; the mean over samples of their token
/// means (or token sums over a constant, Dr. GRPO's).
fn aggregate(b: &Reference, agg: Aggregation, samples: &[Sample], packs: &[Pack], tok: &[Tensor]) -> Tensor {
    let (n_packs, n_tokens) =
        (packs.len() as f64, packs.iter().map(Pack::response_tokens).sum::<usize>() as f64);
    let mut total = b.zeros(&[], DType::F32).unwrap();
    for (pack, loss) in packs.iter().zip(tok) {
        let shape = pack.batch.shape();
        let mask = b.tensor_bool(&pack.response_mask, &shape).unwrap();
        let part = match agg {
            Aggregation::OrzPackMean => {
                b.affine(&b.masked_mean(loss, &mask, None).unwrap(), 1.0 / n_packs, 0.0)
            }
            Aggregation::TokenMean => {
                b.affine(&b.masked_sum(loss, &mask, None).unwrap(), 1.0 / n_tokens, 0.0)
            }
            Aggregation::SeqMeanTokenMean | Aggregation::SeqMeanTokenSumNorm { .. } => {
                let mut sum = b.zeros(&[], DType::F32).unwrap();
                for (span, &i) in pack.batch.samples().iter().zip(&pack.samples) {
                    let s = &samples[i];
                    let mut m = vec![false; shape[1]];
                    m[response_positions(span.start, s.prompt_tokens.len(), s.response.len()).unwrap()]
                        .fill(true);
                    let m = b.tensor_bool(&m, &shape).unwrap();
                    let per_sample = match agg {
                        Aggregation::SeqMeanTokenSumNorm { norm } => {
                            b.affine(&b.masked_sum(loss, &m, None).unwrap(), 1.0 / norm as f64, 0.0)
                        }
                        _ => b.masked_mean(loss, &m, None),
                    };
                    sum = b.add(&sum, &per_sample.unwrap()).unwrap();
                }
                b.affine(&sum, 1.0 / samples.len() as f64, 0.0)
            }
        };
        total = b.add(&total, &part.unwrap()).unwrap();
    }
    total
}

fn tensor(b: &Reference, pack: &Pack, per_sample: &[Vec<f64>]) -> Tensor {
    b.tensor_f64(&pack.scatter(per_sample).unwrap(), &pack.batch.shape(), DType::F32).unwrap()
}

/// One optimizer step of `params` on the gradients of `loss`.
fn step(b: &Reference, params: Vec<Tensor>, c: &TrainConfig, loss: &Tensor) {
    let mut opt = Optimizer::new(b, params, c.policy_optimizer).unwrap();
    opt.accumulate(b, &b.backward(loss).unwrap()).unwrap();
    assert!(opt.step(b).unwrap().applied);
}

#[test]
fn the_policy_step_equals_the_hand_assembled_loss_for_every_aggregation() {
    let dr_grpo = Aggregation::SeqMeanTokenSumNorm { norm: 6 };
    for agg in [Aggregation::OrzPackMean, Aggregation::TokenMean, Aggregation::SeqMeanTokenMean, dr_grpo] {
        let mut c = config(4, 1e-3);
        c.aggregation = agg;
        let mut t = trainer(c.clone(), SEED);
        let report = t.iteration(&prompts(4), &contains('e'), &detok).unwrap();
        assert!(report.packs > 1, "the test wants several packs");

        let Hand { b, policy, samples, packs, experience: e, advantages: a, .. } = experience(&c);
        let tok: Vec<Tensor> = packs
            .iter()
            .map(|p| {
                let logp = policy.next_token_log_probs(&p.batch).unwrap();
                let (old, adv) = (tensor(&b, p, &e.logp_old), tensor(&b, p, &a.advantages));
                b.policy_loss(&logp, &old, &adv, c.eps_clip).unwrap()
            })
            .collect();
        let loss = aggregate(&b, agg, &samples, &packs, &tok);
        let value = b.to_host_f64(&loss).unwrap()[0];
        assert!((report.policy_loss - value).abs() < 1e-12, "{agg:?}: {} vs {value}", report.policy_loss);
        step(&b, policy.model().parameters(), &c, &loss);
        let d =
            max_diff(&snapshot(&policy.model().parameters()), &snapshot(&t.policy().model().parameters()));
        assert!(d < 1e-10, "{agg:?}: the trainer's policy differs from the hand step by {d}");
    }
}

#[test]
fn a_single_critic_step_equals_the_hand_assembled_value_loss() {
    let mut c = config(4, 1e-3);
    c.critic_update_steps = 1; // one step over every pack
    let mut t = trainer(c.clone(), SEED);
    let report = t.iteration(&prompts(4), &contains('e'), &detok).unwrap();
    assert_eq!(report.critic_steps[0].micro_batches, report.packs);

    let Hand { b, critic, samples, packs, experience: e, advantages: a, .. } = experience(&c);
    let (values, returns) = (e.values.as_ref().unwrap(), a.returns.as_ref().unwrap());
    let tok: Vec<Tensor> = packs
        .iter()
        .map(|p| {
            let v = critic.values(&p.batch).unwrap();
            let (v_old, ret) = (tensor(&b, p, values), tensor(&b, p, returns));
            b.value_loss(&v, &v_old, &ret, c.value_clip).unwrap()
        })
        .collect();
    let loss = aggregate(&b, Aggregation::OrzPackMean, &samples, &packs, &tok);
    let value = b.to_host_f64(&loss).unwrap()[0];
    assert!((report.value_loss.unwrap() - value).abs() < 1e-12);
    let mut opt = Optimizer::new(&*b, critic.model().parameters(), c.critic_optimizer).unwrap();
    opt.accumulate(&b, &b.backward(&loss).unwrap()).unwrap();
    opt.step(&b).unwrap();
    let d = max_diff(
        &snapshot(&critic.model().parameters()),
        &snapshot(&t.critic().unwrap().model().parameters()),
    );
    assert!(d < 1e-10, "the trainer's critic differs from the hand step by {d}");
}

#[test]
fn with_gamma_lambda_one_the_returns_fed_to_the_critic_are_the_scores() {
    let mut c = config(4, 1e-3);
    (c.gamma, c.lambda) = (1.0, 1.0);
    let Hand { samples, packs, advantages: a, .. } = experience(&c);
    assert!(samples.iter().any(|s| s.score == 1.0) && samples.iter().any(|s| s.score == 0.0));
    let all_returns = a.returns.as_ref().unwrap();
    for (s, returns) in samples.iter().zip(all_returns) {
        assert_eq!(returns.len(), s.response.len());
        assert!(returns.iter().all(|&r| (r - s.score).abs() < 1e-12), "{returns:?} vs {}", s.score);
    }
    // In the packs (what the critic's loss reads), at every response position.
    for p in &packs {
        let returns = p.scatter(all_returns).unwrap();
        for (span, &i) in p.batch.samples().iter().zip(&p.samples) {
            let s = &samples[i];
            for at in response_positions(span.start, s.prompt_tokens.len(), s.response.len()).unwrap() {
                assert!(p.response_mask[at] && (returns[at] - s.score).abs() < 1e-12);
            }
        }
    }
    // Whitened over every response token of the iteration: mean 0, biased variance 1.
    let all: Vec<f64> = a.advantages.concat();
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let var = all.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n;
    assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-9, "mean {mean}, var {var}");
    // Without whitening: A_t = score − V_t.
    c.advantage_normalize = false;
    let Hand { samples, experience: e, advantages: a, .. } = experience(&c);
    for ((s, adv), values) in samples.iter().zip(&a.advantages).zip(e.values.as_ref().unwrap()) {
        assert_eq!(adv.len(), values.len());
        for (a, v) in adv.iter().zip(values) {
            assert!((a - (s.score - v)).abs() < 1e-12);
        }
    }
}

#[test]
fn grpo_spreads_each_prompt_groups_advantage_over_its_tokens() {
    let mut c = config(4, 1e-3);
    c.estimator = EstimatorChoice::Grpo(GroupStd::Unbiased);
    c.advantage_normalize = false;
    let Hand { samples, experience: e, advantages: a, .. } = experience(&c);
    assert!(e.values.is_none() && a.returns.is_none());
    for prompt in 0..4 {
        let group: Vec<(&Sample, &Vec<f64>)> =
            samples.iter().zip(&a.advantages).filter(|(s, _)| s.prompt == prompt).collect();
        let scores: Vec<f64> = group.iter().map(|(s, _)| s.score).collect();
        let want = grpo_advantages(&scores, &[scores.len()], GroupStd::Unbiased).unwrap();
        for ((s, adv), a) in group.iter().zip(want) {
            assert_eq!(adv.len(), s.response.len());
            assert!(adv.iter().all(|&x| (x - a).abs() < 1e-12), "{adv:?} vs {a}");
        }
    }
}

#[test]
fn a_non_finite_loss_skips_the_step_and_says_why() {
    let c = config(4, 1e-3);
    let Hand { b, policy, packs, experience: e, mut advantages, .. } = experience(&c);
    advantages.advantages[packs[0].samples[0]][0] = f64::NAN;
    let before = snapshot(&policy.model().parameters());
    let opt = Optimizer::new(&*b, policy.model().parameters(), c.policy_optimizer).unwrap();
    let mut opt = ModelOptimizer::Local(opt);
    let out =
        policy_update(&policy, &mut opt, &Single, &e, &advantages, &c, &mut Rng::seed_from_u64(0)).unwrap();
    let reason = out.steps[0].skipped_reason.as_deref().unwrap();
    assert!(!out.steps[0].applied && reason.contains("NaN"), "{reason}");
    assert_eq!(max_diff(&before, &snapshot(&policy.model().parameters())), 0.0);
    assert_eq!(opt.steps(), 0);
}

/// A model opened for one pass of the experience, which logs when it is opened and dropped.
struct Logged<'a, T> {
    model: &'a T,
    name: &'static str,
    log: &'a std::cell::RefCell<Vec<String>>,
}

impl<T> std::ops::Deref for Logged<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.model
    }
}

impl<T> Drop for Logged<'_, T> {
    fn drop(&mut self) {
        self.log.borrow_mut().push(format!("drop {}", self.name));
    }
}

/// The staged experience pass opens the policy, reads every pack, drops it, and only then opens
/// the critic (under ZeRO-3 each open is a gather, so one model is whole at a time), and reads
/// exactly what the pass over both models at once reads.
#[test]
fn the_experience_pass_holds_one_model_at_a_time() {
    use orz_core::train::experience::{ExperienceModels, make_experience_staged};
    let c = config(4, 1e-3);
    let hand = experience(&c);
    let log = std::cell::RefCell::new(Vec::new());
    let open = |name: &'static str| log.borrow_mut().push(format!("open {name}"));
    let models = ExperienceModels {
        policy: || {
            open("policy");
            Ok(Logged { model: &hand.policy, name: "policy", log: &log })
        },
        critic: Some(|| {
            open("critic");
            Ok(Logged { model: &hand.critic, name: "critic", log: &log })
        }),
        reference: None::<fn() -> orz_core::Result<&'static Policy<Reference>>>,
    };
    let staged =
        make_experience_staged(models, hand.samples.clone(), c.packing_max_len, c.pack_shuffle_seed, &Single)
            .unwrap();
    assert_eq!(*log.borrow(), ["open policy", "drop policy", "open critic", "drop critic"]);
    assert_eq!(staged.logp_old, hand.experience.logp_old);
    assert_eq!(staged.values, hand.experience.values);
}
