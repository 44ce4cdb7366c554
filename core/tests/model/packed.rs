//! Packed = padded (log-probs and values), and which position holds what.

use orz_core::model::{PackedBatch, response_positions};

use super::support::{assert_close, critic, policy, sequences, tiny, vals};

/// Per sample, the outputs at its own positions (`per_pos` row-major `[rows, seq_len]`).
fn per_sample(batch: &PackedBatch, per_pos: &[f64]) -> Vec<Vec<f64>> {
    let t = batch.seq_len();
    batch
        .samples()
        .iter()
        .map(|s| per_pos[s.row * t + s.start..s.row * t + s.start + s.len].to_vec())
        .collect()
}

#[test]
fn packed_log_probs_and_values_equal_padded() {
    let c = tiny(false);
    let (b, pol) = policy(&c, 1);
    let cri = critic(&b, &c, 2);
    let seqs = sequences(&[5, 3, 7, 2, 4, 6, 1], c.vocab_size, 40);
    let padded = PackedBatch::padded(&seqs).unwrap();
    let layouts = [
        PackedBatch::pack(&[seqs[..2].to_vec(), seqs[2..5].to_vec(), seqs[5..].to_vec()]).unwrap(),
        PackedBatch::pack_greedy(&seqs, 12).unwrap(),
        PackedBatch::pack(std::slice::from_ref(&seqs)).unwrap(),
    ];
    let want_lp = per_sample(&padded, &vals(&b, &pol.next_token_log_probs(&padded).unwrap()));
    let want_v = per_sample(&padded, &vals(&b, &cri.values(&padded).unwrap()));
    for (k, packed) in layouts.iter().enumerate() {
        assert!(packed.rows() < seqs.len());
        let lp = per_sample(packed, &vals(&b, &pol.next_token_log_probs(packed).unwrap()));
        let v = per_sample(packed, &vals(&b, &cri.values(packed).unwrap()));
        for i in 0..seqs.len() {
            // Log-probs are meaningful at every token but the sample's last.
            let n = seqs[i].len() - 1;
            assert_close(&format!("layout {k}, sample {i} log-probs"), &lp[i][..n], &want_lp[i][..n], 1e-10);
            assert_close(&format!("layout {k}, sample {i} values"), &v[i], &want_v[i], 1e-10);
        }
    }
}

#[test]
fn log_probs_are_the_gathered_log_softmax_at_the_position_before() {
    let c = tiny(true);
    let (b, pol) = policy(&c, 3);
    let seqs = sequences(&[6, 4], c.vocab_size, 9);
    let batch = PackedBatch::pack(std::slice::from_ref(&seqs)).unwrap();
    let logits = vals(&b, &pol.logits(&batch).unwrap());
    let lp = vals(&b, &pol.next_token_log_probs(&batch).unwrap());
    let v = c.vocab_size;
    let targets = batch.next_tokens();
    for (t, ok) in batch.next_token_mask().into_iter().enumerate() {
        let row = &logits[t * v..(t + 1) * v];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        if ok {
            assert!((lp[t] - (row[targets[t] as usize] - lse)).abs() < 1e-12, "position {t}");
        }
    }
    // Response log-probs of sample 1 (prompt 2 tokens, response 2) are at positions 7 and 8.
    assert_eq!(response_positions(6, 2, 2).unwrap(), 7..9);
    assert_eq!(batch.response_entries(&lp, 1, 2).unwrap(), lp[7..9].to_vec());
    assert_eq!(
        batch.response_entries(&targets, 1, 2).unwrap(),
        vec![i64::from(seqs[1][2]), i64::from(seqs[1][3])]
    );
}

#[test]
fn the_value_of_a_response_token_depends_only_on_the_tokens_before_it() {
    let c = tiny(false);
    let (b, _) = policy(&c, 4);
    let cri = critic(&b, &c, 5);
    let (prompt_len, response_len) = (3, 4);
    let seq = sequences(&[prompt_len + response_len], c.vocab_size, 77).remove(0);
    let values_of = |s: &[u32]| {
        let batch = PackedBatch::padded(&[s]).unwrap();
        batch.response_entries(&vals(&b, &cri.values(&batch).unwrap()), 0, prompt_len).unwrap()
    };
    let base = values_of(&seq);
    assert_eq!(base.len(), response_len);
    // The first response value is the value at the last prompt token.
    let all = vals(&b, &cri.values(&PackedBatch::padded(&[&seq]).unwrap()).unwrap());
    assert_eq!(base[0], all[prompt_len - 1]);
    // Changing response token j leaves the values of response tokens 0..=j unchanged (they are
    // computed before token j is seen) and changes the later ones.
    for j in 0..response_len {
        let mut changed = seq.clone();
        changed[prompt_len + j] = if seq[prompt_len + j] == 2 { 3 } else { 2 };
        let v = values_of(&changed);
        assert_close(&format!("values up to response token {j}"), &v[..=j], &base[..=j], 1e-12);
        for k in j + 1..response_len {
            assert!((v[k] - base[k]).abs() > 1e-9, "value of response token {k} ignores token {j}");
        }
    }
}

#[test]
fn forward_from_device_tensors_equals_hidden_states() {
    let c = tiny(false);
    let (b, pol) = policy(&c, 8);
    let m = pol.model();
    let batch = PackedBatch::pack_greedy(&sequences(&[3, 4, 2], c.vocab_size, 1), 5).unwrap();
    let (ids, seg) = (batch.token_tensor(&*b).unwrap(), batch.segment_tensor(&*b).unwrap());
    let got = vals(&b, &m.forward(&ids, batch.positions(), &seg).unwrap());
    assert_close("forward", &got, &vals(&b, &m.hidden_states(&batch).unwrap()), 0.0);
    let err = m.forward(&ids, &batch.positions()[1..], &seg).unwrap_err().to_string();
    assert!(err.contains("do not form one [rows, seq_len] layout"), "{err}");
}
