//! The bf16 compute mode (Metal's default) stays close to the float32 path, and only the
//! big Linears change dtype.
mod common;

use mlx_rs::Dtype;
use wan::dit::{Blocks, DitInput, Kernels, Timesteps, WanConfig, WanModel};
use wan::fixture::{Fixture, compare};

#[test]
fn bf16_compute_tracks_f32_on_the_ti2v_fixture() {
    let Some(path) = common::fixture("dit_ti2v.safetensors") else {
        return;
    };
    let fx = Fixture::open(path).unwrap();
    let cfg: WanConfig = serde_json::from_value(fx.cfg("constructor").unwrap().clone()).unwrap();
    let mut model = WanModel::load(cfg, &fx.params().unwrap()).unwrap();
    let x = fx.get_f32("input/x").unwrap().expand_dims(0).unwrap();
    let t = Timesteps::PerToken(fx.get_vec_f32("input/t").unwrap());
    let ctx = [fx.get_f32("input/context").unwrap()];
    let input = DitInput {
        x: &x,
        t: &t,
        context: &ctx,
        y: None,
    };
    let f32_out = model.forward(&input, None).unwrap();

    model.set_compute_dtype(Dtype::Bfloat16).unwrap();
    assert_eq!(model.blocks[0].self_attn.q.weight.dtype(), Dtype::Bfloat16);
    assert_eq!(model.blocks[0].modulation.dtype(), Dtype::Float32);
    assert_eq!(model.time_projection.fc.weight.dtype(), Dtype::Float32);
    assert_eq!(model.head.head.weight.dtype(), Dtype::Float32);
    let bf16_out = model.forward(&input, None).unwrap();
    assert_eq!(bf16_out.dtype(), Dtype::Float32);
    let c = compare("bf16 vs f32", &bf16_out, &f32_out, 1e-2).unwrap();
    assert!(c.passed(), "{}", c.line());
    assert!(c.err > 0.0, "bf16 mode did not change the computation");
    let official = compare(
        "bf16 vs official",
        &bf16_out,
        &fx.get("output/out").unwrap(),
        3e-2,
    )
    .unwrap();
    assert!(official.passed(), "{}", official.line());
    eprintln!("{}\n{}", c.line(), official.line());

    // The inference path in bf16 (as Metal runs it), whole and in 3 token chunks: the
    // chunks join bf16 keys/values and must not change the result beyond bf16 rounding
    // (0 measured on the CPU; Metal's GEMM tiles may round differently per row count).
    let kv = model.context_kv_folded(&ctx).unwrap();
    let run = |chunks| {
        model
            .forward_blocks(&x, None, &t, &kv, Kernels::Fast, Blocks::Run, chunks)
            .unwrap()
            .0
    };
    let (whole, chunked) = (run(1), run(3));
    let c = compare("bf16, 3 token chunks vs whole", &chunked, &whole, 1e-3).unwrap();
    assert!(c.passed(), "{}", c.line());
    eprintln!("{}", c.line());
    let c = compare("bf16 fast vs f32", &whole, &f32_out, 1e-2).unwrap();
    assert!(c.passed(), "{}", c.line());
}
