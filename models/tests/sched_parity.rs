//! Scheduler parity against the official fixtures (every run tag, every step).
mod common;

#[test]
fn sched_unipc_matches_official() {
    common::assert_parity("sched_unipc.safetensors");
}

#[test]
fn sched_dpmpp_matches_official() {
    common::assert_parity("sched_dpmpp.safetensors");
}
