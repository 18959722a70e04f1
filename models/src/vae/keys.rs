//! The one table between official VAE state_dict keys and our field paths. Only the
//! numbered segments of `nn.Sequential` containers differ (`residual.0`, `head.2`,
//! `middle.1`, `resample.1`, …); the lists `downsamples.N` / `upsamples.N` are `Vec`s and
//! keep their indices; everything else is the official name.
const TABLE: &[(&str, &str)] = &[
    (".residual.0.", ".residual.norm1."),
    (".residual.2.", ".residual.conv1."),
    (".residual.3.", ".residual.norm2."),
    (".residual.6.", ".residual.conv2."),
    (".middle.0.", ".middle.res1."),
    (".middle.1.", ".middle.attn."),
    (".middle.2.", ".middle.res2."),
    (".head.0.", ".head.norm."),
    (".head.2.", ".head.conv."),
    (".resample.1.", ".resample.conv."),
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
            "encoder.downsamples.3.residual.0.gamma",
            "encoder.downsamples.1.downsamples.0.residual.6.weight",
            "decoder.upsamples.0.upsamples.3.resample.1.bias",
            "decoder.middle.1.to_qkv.weight",
            "decoder.middle.2.residual.3.gamma",
            "encoder.head.2.weight",
            "conv1.weight",
            "encoder.conv1.bias",
        ] {
            assert_eq!(to_official(&to_internal(k)), k);
        }
        assert_eq!(
            to_internal("decoder.middle.0.residual.2.weight"),
            "decoder.middle.res1.residual.conv1.weight"
        );
    }
}
