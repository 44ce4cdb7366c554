//! Parameter names and shapes of a Qwen2 model, identical to Hugging Face's, so checkpoints
//! move both ways.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::Qwen2Config;

/// The name and shape of one parameter tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Shape; linear weights are `[out, in]` as in PyTorch.
    pub shape: Vec<usize>,
}

/// The name of the critic's value head (not a Hugging Face Qwen2 tensor; ORZ's critic adds it).
pub const VALUE_HEAD: &str = "value_head.weight";

/// Every parameter of the transformer backbone, then the head: the LM head (`lm_head.weight`,
/// omitted when the embeddings are tied) for a policy, or the value head
/// ([`VALUE_HEAD`], `[1, hidden]`) for a critic.
pub fn parameter_specs(config: &Qwen2Config, head: Head) -> Vec<ParamSpec> {
    let (h, i, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
    let d = config.head_dim();
    let (q, kv) = (config.num_attention_heads * d, config.num_key_value_heads * d);
    let spec = |name: String, shape: Vec<usize>| ParamSpec { name, shape };
    let mut out = vec![spec("model.embed_tokens.weight".into(), vec![v, h])];
    for l in 0..config.num_hidden_layers {
        let p = format!("model.layers.{l}");
        out.extend([
            spec(format!("{p}.input_layernorm.weight"), vec![h]),
            spec(format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
            spec(format!("{p}.self_attn.q_proj.bias"), vec![q]),
            spec(format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
            spec(format!("{p}.self_attn.k_proj.bias"), vec![kv]),
            spec(format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
            spec(format!("{p}.self_attn.v_proj.bias"), vec![kv]),
            spec(format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
            spec(format!("{p}.post_attention_layernorm.weight"), vec![h]),
            spec(format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            spec(format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            spec(format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]);
    }
    out.push(spec("model.norm.weight".into(), vec![h]));
    match head {
        Head::Lm if !config.tie_word_embeddings => out.push(spec("lm_head.weight".into(), vec![v, h])),
        Head::Lm => {}
        Head::Value => out.push(spec(VALUE_HEAD.into(), vec![1, h])),
    }
    out
}

/// Which head sits on top of the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// The language-model head of a policy (tied to the embeddings when the config says so).
    Lm,
    /// The bias-free scalar value head of a critic.
    Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shapes_follow_hugging_face() {
        let c = Qwen2Config::tiny_test();
        let specs = parameter_specs(&c, Head::Lm);
        assert_eq!(specs.len(), 1 + 12 * 2 + 1 + 1);
        assert_eq!(specs[0], ParamSpec { name: "model.embed_tokens.weight".into(), shape: vec![64, 32] });
        let k = specs.iter().find(|s| s.name == "model.layers.1.self_attn.k_proj.weight").unwrap();
        assert_eq!(k.shape, vec![16, 32]);
        assert_eq!(specs.last().unwrap().name, "lm_head.weight");
        let tied = Qwen2Config { tie_word_embeddings: true, ..c.clone() };
        assert!(parameter_specs(&tied, Head::Lm).iter().all(|s| s.name != "lm_head.weight"));
        assert_eq!(parameter_specs(&c, Head::Value).last().unwrap().shape, vec![1, 32]);
    }
}
