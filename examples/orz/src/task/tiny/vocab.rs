//! The tiny model's character-level tokenizer, generated here and committed as
//! `examples/orz/assets/tiny/tokenizer.json`.
//!
//! A `tokenizers` WordLevel model over every printable ASCII character and the newline, one
//! token per character (a `Split` pre-tokenizer isolates each character), plus whole tokens for
//! the four tags ORZ's format is made of (`<think>`, `</think>`, `<answer>`, `</answer>`, as
//! non-special added tokens, so they survive decoding) and `<|endoftext|>` (special, the EOS).
//! The `Fuse` decoder joins the pieces, so `decode(encode(s)) == s` for any such text.

use serde_json::{Value, json};

/// The end-of-text token (EOS of the tiny model), id 0.
pub const EOS: &str = "<|endoftext|>";
/// The unknown-character token (anything outside printable ASCII and `\n`).
pub const UNK: &str = "<|unk|>";
/// The tags that are whole tokens, ids 1 to 4.
pub const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];

/// Every token in id order: EOS, the tags, UNK, `\n`, then ASCII 0x20 to 0x7e.
pub fn tokens() -> Vec<String> {
    let mut out = vec![EOS.to_string()];
    out.extend(TAGS.iter().map(|t| t.to_string()));
    out.push(UNK.to_string());
    out.push("\n".to_string());
    out.extend((0x20u8..=0x7e).map(|c| char::from(c).to_string()));
    out
}

/// The `tokenizer.json` document of the tiny tokenizer.
pub fn tokenizer_json() -> Value {
    let tokens = tokens();
    let vocab: serde_json::Map<String, Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let added = |id: usize, content: &str, special: bool| {
        json!({
            "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": special
        })
    };
    let mut added_tokens = vec![added(0, EOS, true)];
    added_tokens.extend(TAGS.iter().enumerate().map(|(i, t)| added(i + 1, t, false)));
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Split", "pattern": {"Regex": "[\\s\\S]"}, "behavior": "Isolated", "invert": false
        },
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Tokenizer;

    fn load() -> Tokenizer {
        let text = serde_json::to_string_pretty(&tokenizer_json()).unwrap();
        Tokenizer::from_bytes(text.as_bytes(), "generated tiny tokenizer").unwrap()
    }

    #[test]
    fn the_committed_asset_is_the_generated_one() {
        let generated: Value = tokenizer_json();
        let committed: Value = serde_json::from_slice(super::super::TOKENIZER_JSON).unwrap();
        assert_eq!(committed, generated, "regenerate examples/orz/assets/tiny/tokenizer.json");
    }

    #[test]
    fn round_trip_and_one_token_per_character() {
        let tok = load();
        assert_eq!(tok.vocab_size(), tokens().len());
        let text = "User: 7+5+8\nAssistant: <think> 7+5=12, 12+8=20 </think> <answer>\\boxed{20}</answer>";
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
        let tags = TAGS.iter().map(|t| tok.token_id(t).unwrap()).collect::<Vec<_>>();
        assert_eq!(tags, [1, 2, 3, 4]);
        assert_eq!(ids.iter().filter(|id| tags.contains(id)).count(), 4);
        let tag_chars: usize = TAGS.iter().map(|t| t.len()).sum();
        assert_eq!(ids.len(), text.chars().count() - tag_chars + 4, "tags are single tokens");
        let all: String = (0x20u8..=0x7e).map(char::from).chain(['\n']).collect();
        let ids = tok.encode(&all).unwrap();
        assert_eq!(ids.len(), all.len());
        assert_eq!(tok.decode(&ids).unwrap(), all);
    }

    #[test]
    fn eos_is_special_and_unknown_characters_map_to_unk() {
        let tok = load();
        assert_eq!(tok.token_id(EOS), Some(0));
        assert_eq!(tok.decode(&[tok.token_id("7").unwrap(), 0]).unwrap(), "7");
        assert_eq!(tok.encode("é").unwrap(), [tok.token_id(UNK).unwrap()]);
    }
}
