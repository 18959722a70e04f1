//! Training parity: 8 PyTorch-AdamW flow-matching steps of the tiny t2v DiT
//! (`train_dit.safetensors`, initial weights from `dit_t2v.safetensors` beside it).
mod common;

#[test]
fn train_dit_matches_official_loop() {
    common::assert_parity("train_dit.safetensors");
}
