//! Test support: a small [`SlotDecoder`] whose logits come from a fixed random bigram table
//! plus a hash of the slot's whole sequence (so a wrong cache copy changes the output), with
//! caches as plain token vectors and counters of every call.

use std::cell::{Cell, RefCell};

use orz_core::backend::{Backend, DType};
use orz_core::generation::SlotDecoder;
use orz_core::rng::Rng;
use orz_core::{Error, Result};

/// Bytes the mock claims per cached token (for the KV budget).
pub const BYTES_PER_TOKEN: usize = 64;

/// The mock model.
pub struct MockDecoder<B> {
    backend: B,
    vocab: usize,
    table: Vec<f64>,
    /// Prefill calls, with the slot and prompt of each.
    pub prefills: RefCell<Vec<(usize, Vec<u32>)>>,
    /// Slot copies made.
    pub copies: Cell<usize>,
    /// The number of rows of every decode call.
    pub decode_sizes: RefCell<Vec<usize>>,
}

/// The mock's cache: the tokens held by each slot.
pub struct MockCache {
    slots: Vec<Vec<u32>>,
    max_len: usize,
}

impl<B: Backend> MockDecoder<B> {
    /// A mock over `backend` with a `vocab`-token bigram table drawn from `seed`.
    pub fn new(backend: B, vocab: usize, seed: u64) -> Self {
        let mut rng = Rng::seed_from_u64(seed);
        let table = (0..vocab * vocab).map(|_| 2.0 * rng.normal()).collect();
        MockDecoder {
            backend,
            vocab,
            table,
            prefills: RefCell::new(Vec::new()),
            copies: Cell::new(0),
            decode_sizes: RefCell::new(Vec::new()),
        }
    }

    /// The next-token logits after `seq`: bigram row of its last token plus a sequence hash term.
    pub fn logits_for(&self, seq: &[u32]) -> Vec<f64> {
        let last = seq.last().copied().unwrap_or(0) as usize;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &t in seq {
            h = (h ^ u64::from(t)).wrapping_mul(0x0100_0000_01b3);
        }
        (0..self.vocab)
            .map(|v| {
                let mut z = h ^ (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                self.table[last * self.vocab + v] + 0.5 * ((z >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }

    fn check_slot(&self, cache: &MockCache, slot: usize) -> Result<()> {
        if slot < cache.slots.len() {
            Ok(())
        } else {
            Err(Error::invalid("mock", format!("slot {slot} of {}", cache.slots.len())))
        }
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        match tokens.iter().find(|&&t| t as usize >= self.vocab) {
            Some(t) => Err(Error::invalid("mock", format!("token {t} outside vocab {}", self.vocab))),
            None => Ok(()),
        }
    }
}

impl<B: Backend> SlotDecoder<B> for MockDecoder<B> {
    type Cache = MockCache;

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn new_cache(&self, slots: usize, max_len: usize) -> Result<MockCache> {
        Ok(MockCache { slots: (0..slots).map(|_| Vec::new()).collect(), max_len })
    }

    fn cache_bytes(&self, slots: usize, max_len: usize) -> usize {
        slots * max_len * BYTES_PER_TOKEN
    }

    fn prefill(&self, cache: &mut MockCache, slot: usize, prompt: &[u32]) -> Result<B::Tensor> {
        self.check_slot(cache, slot)?;
        self.check_tokens(prompt)?;
        if prompt.is_empty() || prompt.len() > cache.max_len {
            return Err(Error::invalid("mock", format!("prompt of {} tokens", prompt.len())));
        }
        cache.slots[slot] = prompt.to_vec();
        self.prefills.borrow_mut().push((slot, prompt.to_vec()));
        self.backend.tensor_f64(&self.logits_for(prompt), &[self.vocab], DType::F32)
    }

    fn copy_slot(&self, cache: &mut MockCache, from: usize, to: usize) -> Result<()> {
        self.check_slot(cache, from)?;
        self.check_slot(cache, to)?;
        cache.slots[to] = cache.slots[from].clone();
        self.copies.set(self.copies.get() + 1);
        Ok(())
    }

    fn decode(&self, cache: &mut MockCache, slots: &[usize], tokens: &[u32]) -> Result<B::Tensor> {
        if slots.len() != tokens.len() || slots.is_empty() {
            return Err(Error::invalid("mock", "slots and tokens differ in length or are empty"));
        }
        self.check_tokens(tokens)?;
        let mut logits = Vec::with_capacity(slots.len() * self.vocab);
        for (i, (&slot, &token)) in slots.iter().zip(tokens).enumerate() {
            self.check_slot(cache, slot)?;
            if slots[..i].contains(&slot) {
                return Err(Error::invalid("mock", format!("slot {slot} repeated")));
            }
            let seq = &mut cache.slots[slot];
            if seq.is_empty() || seq.len() >= cache.max_len {
                return Err(Error::invalid(
                    "mock",
                    format!("slot {slot} empty or full ({} tokens)", seq.len()),
                ));
            }
            seq.push(token);
            logits.extend(self.logits_for(seq));
        }
        self.decode_sizes.borrow_mut().push(slots.len());
        self.backend.tensor_f64(&logits, &[slots.len(), self.vocab], DType::F32)
    }

    fn slot_len(&self, cache: &MockCache, slot: usize) -> Result<usize> {
        self.check_slot(cache, slot)?;
        Ok(cache.slots[slot].len())
    }
}

/// Token texts of the mock vocabulary (16 tokens): letters, a space, and pieces of stop strings.
pub const VOCAB_TEXT: [&str; 16] =
    ["<eos>", "a", "b", "c", " ", "</", "answer", ">", "User", ":", "x", "y", "z", "\n", "An", "s"];

/// The mock detokenizer: concatenates [`VOCAB_TEXT`], skipping the EOS token 0.
pub fn detok(tokens: &[u32]) -> String {
    tokens.iter().filter(|&&t| t != 0).map(|&t| VOCAB_TEXT[t as usize % VOCAB_TEXT.len()]).collect()
}
