//! The one table between official state_dict keys and our field paths. Only the numbered
//! segments of `nn.Sequential` containers differ; everything else is the official name.
const TABLE: &[(&str, &str)] = &[
    ("text_embedding.0.", "text_embedding.fc1."),
    ("text_embedding.2.", "text_embedding.fc2."),
    ("time_embedding.0.", "time_embedding.fc1."),
    ("time_embedding.2.", "time_embedding.fc2."),
    ("time_projection.1.", "time_projection.fc."),
    (".ffn.0.", ".ffn.fc1."),
    (".ffn.2.", ".ffn.fc2."),
];

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
    fn numbered_segments_round_trip() {
        for k in [
            "text_embedding.0.weight",
            "time_embedding.2.bias",
            "time_projection.1.weight",
            "blocks.17.ffn.0.weight",
            "blocks.3.ffn.2.bias",
            "blocks.0.self_attn.norm_q.weight",
            "head.head.weight",
        ] {
            assert_eq!(to_official(&to_internal(k)), k);
        }
        assert_eq!(
            to_internal("blocks.17.ffn.0.weight"),
            "blocks.17.ffn.fc1.weight"
        );
        assert_eq!(
            to_internal("time_projection.1.bias"),
            "time_projection.fc.bias"
        );
    }
}
