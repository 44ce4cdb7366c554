//! orz's half of the side-by-side run with PyTorch + Hugging Face transformers
//! (`scripts/bench_vs_pytorch.py` drives it; `scripts/bench-vs-pytorch.sh` does everything):
//!
//! ```console
//! $ vs_pytorch prepare DIR [--shape mini|qwen2.5-0.5b]   # DIR/model (HF format), DIR/inputs.json
//! $ vs_pytorch run DIR --backend tch|candle [--device cpu|cuda:N] [--dtype f32|bf16]
//!       [--threads N] [--logits FILE]
//! ```
//!
//! `prepare` writes a random [`orz_bench::models::qwen_mini`] (or, with `--shape
//! qwen2.5-0.5b`, [`orz_bench::models::qwen25_0p5b`], for the GPU run) in f32 Hugging Face format and
//! the inputs both systems get: a forward batch, generation prompts at batch 1, 16 and 64, and
//! a train-step batch. `run` loads the model on one backend, warms up (one forward, a short
//! generation, one train step), then runs each workload once and prints one JSON line of
//! seconds per workload; `--logits FILE` also writes the forward logits (raw little-endian f32,
//! row-major `[rows, len, vocab]`) for the parity check.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use orz_backends::{BackendKind, BackendVisitor, DeviceSpec, Opened};
use orz_bench::models::{qwen_mini, qwen25_0p5b};
use orz_bench::workloads::{Forward, Generation, TrainStep, Workload, generation_requests, random_tokens};
use orz_candle::Candle;
use orz_core::backend::{Backend, DType};
use orz_core::generation::Request;
use orz_core::model::{Head, Policy};
use orz_core::rng::Rng;
use serde_json::{Value, json};

/// Forward batch: rows x tokens (one sample per row, as transformers sees it).
const FORWARD: (usize, usize) = (4, 128);
/// Generation: batch sizes (the GPU run's model: 1, 64, 256), prompt length, new tokens.
const GEN_BATCHES: [usize; 3] = [1, 16, 64];
const GPU_GEN_BATCHES: [usize; 3] = [1, 64, 256];
const PROMPT_LEN: usize = 32;
const NEW_TOKENS: usize = 32;
/// Train step: rows x tokens (one sample per row).
const TRAIN: (usize, usize) = (4, 128);

type Res<T> = Result<T, String>;

fn usage() -> String {
    "usage: vs_pytorch prepare DIR [--shape mini|qwen2.5-0.5b] | vs_pytorch run DIR --backend tch|candle \
     [--device cpu|cuda:N] [--dtype f32|bf16] [--threads N] [--logits FILE]"
        .into()
}

fn rows(rng: &mut Rng, (n, len): (usize, usize), vocab: usize) -> Vec<Vec<u32>> {
    (0..n).map(|_| random_tokens(rng, len, vocab - 1)).collect()
}

fn prepare(args: &[String]) -> Res<()> {
    let dir = Path::new(args.first().ok_or_else(usage)?);
    let shape = args.iter().position(|a| a == "--shape").and_then(|i| args.get(i + 1));
    let (config, description, batches) = match shape.map(String::as_str) {
        None | Some("mini") => (
            qwen_mini(),
            "qwen_mini: Qwen2, vocab 151936, hidden 512, 4 layers, 8 heads (2 KV, head dim 64), SwiGLU 1536, \
             tied embeddings, rope theta 1e6, f32, random weights (seed 42)",
            GEN_BATCHES,
        ),
        Some("qwen2.5-0.5b") => (
            qwen25_0p5b(),
            "Qwen2.5-0.5B's shape: vocab 151936, hidden 896, 24 layers, 14 heads (2 KV, head dim 64), SwiGLU \
             4864, tied embeddings, rope theta 1e6, random weights (seed 42)",
            GPU_GEN_BATCHES,
        ),
        Some(other) => return Err(format!("--shape must be mini or qwen2.5-0.5b, got `{other}`")),
    };
    let b = Rc::new(Candle::cpu());
    let policy = Policy::random(Rc::clone(&b), &config, DType::F32, &mut Rng::seed_from_u64(42))
        .map_err(|e| format!("random model: {e}"))?;
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).map_err(|e| format!("creating {}: {e}", model_dir.display()))?;
    let named = policy.model().named_tensors();
    orz_hf::save_model(b.as_ref(), &model_dir, &config, Head::Lm, &named, DType::F32, None)
        .map_err(|e| format!("writing the model: {e}"))?;
    let mut rng = Rng::seed_from_u64(7);
    let generation: Vec<Value> = batches
        .iter()
        .map(|&batch| {
            let requests = generation_requests(batch, PROMPT_LEN, config.vocab_size, batch as u64);
            let prompts: Vec<&Vec<u32>> = requests.iter().map(|r| &r.prompt).collect();
            json!({"batch": batch, "prompts": prompts, "samples": requests[0].n})
        })
        .collect();
    let inputs = json!({
        "model": description,
        "forward": rows(&mut rng, FORWARD, config.vocab_size),
        "generation": {"new_tokens": NEW_TOKENS, "prompt_len": PROMPT_LEN, "batches": generation},
        "train": rows(&mut rng, TRAIN, config.vocab_size),
    });
    let path = dir.join("inputs.json");
    std::fs::write(&path, inputs.to_string()).map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("wrote {} and {}", model_dir.display(), path.display());
    Ok(())
}

fn token_rows(v: &Value, what: &str) -> Res<Vec<Vec<u32>>> {
    serde_json::from_value(v.clone())
        .map_err(|e| format!("inputs.json: `{what}` is not a list of token lists: {e}"))
}

/// Seconds of one `w.run()`.
fn time(w: &mut impl Workload, what: &str) -> Res<f64> {
    let start = Instant::now();
    w.run().map_err(|e| format!("{what}: {e}"))?;
    Ok(start.elapsed().as_secs_f64())
}

fn run_backend<B: Backend>(b: B, dir: &Path, logits: Option<&Path>, dtype: DType) -> Res<Value> {
    let b = Rc::new(b);
    let path = dir.join("inputs.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let inputs: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let (config, tensors) = orz_hf::load_model(b.as_ref(), dir.join("model"), Head::Lm, dtype)
        .map_err(|e| format!("loading the model: {e}"))?;
    let policy = Rc::new(Policy::from_tensors(Rc::clone(&b), &config, tensors).map_err(|e| e.to_string())?);
    let single = |rows: Vec<Vec<u32>>| rows.into_iter().map(|r| vec![r]).collect::<Vec<_>>();
    let forward_rows = single(token_rows(&inputs["forward"], "forward")?);
    let train_rows = single(token_rows(&inputs["train"], "train")?);
    let new_tokens =
        inputs["generation"]["new_tokens"].as_u64().ok_or("inputs.json: no generation.new_tokens")?;
    let mut generations = Vec::new();
    for g in inputs["generation"]["batches"].as_array().ok_or("inputs.json: no generation.batches")? {
        let prompts = token_rows(&g["prompts"], "generation.batches.prompts")?;
        let n = g["samples"].as_u64().ok_or("inputs.json: a generation batch has no `samples`")? as usize;
        let requests: Vec<Request> = prompts.into_iter().map(|p| Request::new(p, n)).collect();
        let w =
            Generation::new(Rc::clone(&policy), requests, new_tokens as usize).map_err(|e| e.to_string())?;
        generations.push((g["batch"].clone(), w));
    }
    let err = |e: orz_core::Error| e.to_string();
    let mut forward = Forward::new(Rc::clone(&policy), &forward_rows).map_err(err)?;
    let mut train = TrainStep::new(Rc::clone(&policy), &train_rows).map_err(err)?;
    // Warm-up: allocator, thread pools, the optimizer's moments.
    time(&mut forward, "forward")?;
    if let Some(out) = logits {
        let t = forward.logits.as_ref().ok_or("no logits")?;
        let data = b.to_host_f32(t).map_err(err)?;
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(out, bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
    }
    let warm = vec![Request::new(forward_rows[0][0][..PROMPT_LEN.min(forward_rows[0][0].len())].to_vec(), 1)];
    time(&mut Generation::new(Rc::clone(&policy), warm, 4).map_err(err)?, "warm-up generation")?;
    time(&mut train, "train step")?;
    let forward_s = time(&mut forward, "forward")?;
    let mut gen_out = Vec::new();
    for (batch, w) in &mut generations {
        let seconds = time(w, "generation")?;
        gen_out.push(json!({"batch": batch, "seconds": seconds, "tokens": w.generated()}));
    }
    let train_s = time(&mut train, "train step")?;
    Ok(json!({
        "forward": {"seconds": forward_s, "tokens": forward.units()},
        "generation": gen_out,
        "train": {"seconds": train_s, "tokens": train.units()},
    }))
}

/// [`run_backend`] as the registry's visitor.
struct Run<'a> {
    /// The prepared directory.
    dir: &'a Path,
    /// Where to write the forward's logits, if anywhere.
    logits: Option<&'a Path>,
    /// The compute dtype.
    dtype: DType,
}

impl BackendVisitor for Run<'_> {
    type Output = Res<Value>;

    fn visit<B: Backend + 'static>(self, backend: B, _: Opened) -> Res<Value> {
        run_backend(backend, self.dir, self.logits, self.dtype)
    }
}

fn run(args: &[String]) -> Res<()> {
    let dir = PathBuf::from(args.first().ok_or_else(usage)?);
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let threads: Option<i32> = match opt("--threads") {
        Some(n) => Some(n.parse().map_err(|_| format!("--threads takes a number, got `{n}`"))?),
        None => None,
    };
    let logits = opt("--logits").map(PathBuf::from);
    let dtype = match opt("--dtype").map(String::as_str) {
        None | Some("f32") => DType::F32,
        Some("bf16") => DType::BF16,
        Some(other) => return Err(format!("--dtype must be f32 or bf16, got `{other}`")),
    };
    let device: DeviceSpec = match opt("--device") {
        None => DeviceSpec::Cpu,
        Some(d) => d.parse().map_err(|e| format!("--device: {e}"))?,
    };
    // Any backend of the registry but the f64 oracle (too slow for these sizes).
    let kind: BackendKind = match opt("--backend") {
        Some(name) => name.parse().map_err(|e| format!("--backend: {e}; {}", usage()))?,
        None => return Err(format!("--backend is required; {}", usage())),
    };
    if kind.entry().oracle {
        return Err(format!("--backend {kind} is the f64 oracle, too slow to compare; {}", usage()));
    }
    #[cfg(feature = "tch")]
    if let (BackendKind::Tch, Some(n)) = (kind, threads) {
        orz_backends::orz_tch::tch::set_num_threads(n);
    }
    let result =
        orz_backends::with_backend(kind, device, Run { dir: &dir, logits: logits.as_deref(), dtype })
            .map_err(|e| e.to_string())??;
    let _ = threads; // candle takes its threads from RAYON_NUM_THREADS (set by the driver).
    println!("{result}");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("prepare") => prepare(&args[1..]),
        Some("run") => run(&args[1..]),
        _ => Err(usage()),
    };
    if let Err(e) = result {
        eprintln!("vs_pytorch: error: {e}");
        std::process::exit(1);
    }
}
