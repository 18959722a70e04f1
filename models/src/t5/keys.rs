//! The one table between official umT5 state_dict keys and our field paths. Only the
//! numbered `nn.Sequential` segment differs: `ffn.gate = Sequential(Linear, GELU)`, so the
//! official key is `blocks.i.ffn.gate.0.weight` where our field is `ffn.gate.weight`.
const TABLE: &[(&str, &str)] = &[(".ffn.gate.0.", ".ffn.gate.")];

/// Official key → our parameter path.
pub fn to_internal(official: &str) -> String {
    crate::checkpoint::rename_segments(official, TABLE, false)
}

/// Our parameter path → official key.
pub fn to_official(internal: &str) -> String {
    crate::checkpoint::rename_segments(internal, TABLE, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_segment_round_trips() {
        for k in [
            "blocks.23.ffn.gate.0.weight",
            "blocks.0.ffn.fc1.weight",
            "blocks.0.pos_embedding.embedding.weight",
            "token_embedding.weight",
            "norm.weight",
        ] {
            assert_eq!(to_official(&to_internal(k)), k);
        }
        assert_eq!(
            to_internal("blocks.3.ffn.gate.0.weight"),
            "blocks.3.ffn.gate.weight"
        );
    }
}
