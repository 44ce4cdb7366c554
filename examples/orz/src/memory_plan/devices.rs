//! Devices the dry run compares with, element sizes, the published Qwen2.5 shapes, and the memory
//! of the device a run would use.

use orz_core::backend::DType;
use orz_core::model::Qwen2Config;
use orz_core::recipe::Preset;

/// The memory of one 80 GB H100 (80 GB as sold; ORZ trained every preset on such GPUs).
pub const H100_BYTES: u64 = 80_000_000_000;

/// The memory of one H200 (141 GB as sold).
pub const H200_BYTES: u64 = 141_000_000_000;

/// Bytes of one element of `dtype`.
pub fn dtype_bytes(dtype: DType) -> u64 {
    match dtype {
        DType::F32 => 4,
        DType::BF16 | DType::F16 => 2,
        DType::I64 => 8,
        DType::Bool => 1,
    }
}

/// The Qwen2.5 base model of a preset (shapes of the published `config.json` files), for dry
/// runs without `--model`; `None` for the tiny preset.
pub fn qwen25_shape(preset: Preset) -> Option<Qwen2Config> {
    // (hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings)
    let (h, i, l, a, kv, v, tied) = match preset {
        Preset::Tiny => return None,
        Preset::Orz0p5b => (896, 4864, 24, 14, 2, 151_936, true),
        Preset::Orz1p5b => (1536, 8960, 28, 12, 2, 151_936, true),
        Preset::Orz7b => (3584, 18_944, 28, 28, 4, 152_064, false),
        Preset::Orz32b => (5120, 27_648, 64, 40, 8, 152_064, false),
    };
    Some(Qwen2Config {
        vocab_size: v,
        hidden_size: h,
        intermediate_size: i,
        num_hidden_layers: l,
        num_attention_heads: a,
        num_key_value_heads: kv,
        rope_theta: 1_000_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: tied,
        max_position_embeddings: 131_072,
        bos_token_id: None,
        eos_token_ids: vec![151_643],
    })
}

/// Memory of the device: `MemTotal` of `/proc/meminfo` for the CPU; for CUDA, `nvidia-smi` if
/// it answers, else `None`.
pub fn device_memory(cuda: Option<usize>) -> (Option<u64>, String) {
    match cuda {
        None => {
            let kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
                m.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
                })
            });
            (kb.map(|k| k * 1024), "host RAM, /proc/meminfo".into())
        }
        Some(n) => {
            let out = std::process::Command::new("nvidia-smi")
                .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits", &format!("--id={n}")])
                .output();
            let mib = out
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok());
            match mib {
                Some(m) => (Some(m << 20), format!("cuda:{n}, nvidia-smi")),
                None => (None, format!("cuda:{n}: nvidia-smi did not answer")),
            }
        }
    }
}
