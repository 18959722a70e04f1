//! Trainer mechanics: gradient accumulation equals the large batch, bf16 compute trains
//! with float32 master weights, bad batches are input errors.
use mlx_rs::Dtype;
use mlx_rs::module::ModuleParameters;
use wan::dit::WanModel;
use wan::train::data::synthetic::{self, SyntheticConfig};
use wan::train::init::init_weights;
use wan::train::scratch::small_model;
use wan::train::{AdamWConfig, FlowBatch, LrSchedule, Rng, SigmaSampling, Trainer};

const DATA: SyntheticConfig = SyntheticConfig {
    frames: 2,
    size: 8,
    text_dim: 8,
    radius: 1.5,
    speed: 1.0,
};

fn tiny() -> WanModel {
    let mut cfg = small_model(DATA.text_dim);
    (cfg.dim, cfg.ffn_dim, cfg.freq_dim, cfg.num_layers) = (32, 64, 16, 1);
    let mut m = WanModel::new(cfg).unwrap();
    init_weights(&mut m, &mut Rng::new(3)).unwrap();
    m
}

/// Split a batch of B into B batches of 1.
fn split(b: &FlowBatch) -> Vec<FlowBatch> {
    let n = b.batch_size();
    let x0 = b.x0.split_equal(n as i32, 0).unwrap();
    let noise = b.noise.split_equal(n as i32, 0).unwrap();
    (0..n)
        .map(|i| FlowBatch {
            x0: x0[i].clone(),
            noise: noise[i].clone(),
            sigma: vec![b.sigma[i]],
            context: vec![b.context[i].clone()],
        })
        .collect()
}

fn max_param_diff(a: &WanModel, b: &WanModel) -> f32 {
    let (pa, pb) = (a.parameters().flatten(), b.parameters().flatten());
    pa.iter()
        .map(|(k, x)| {
            x.as_dtype(Dtype::Float32)
                .unwrap()
                .subtract(pb[k].as_dtype(Dtype::Float32).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max(None)
                .unwrap()
                .item_cast::<f32>()
        })
        .fold(0.0, f32::max)
}

#[test]
fn accumulated_micro_batches_equal_one_large_batch() {
    let (b, _) = synthetic::batch(&DATA, &mut Rng::new(8), 3, &SigmaSampling::Uniform).unwrap();
    let new = || Trainer::new(AdamWConfig::default(), LrSchedule::constant(1e-2));
    let (mut big, mut acc) = (tiny(), tiny());
    let (mut t1, mut t2) = (new(), new());
    let s1 = t1.step(&mut big, std::slice::from_ref(&b)).unwrap();
    let s2 = t2.step(&mut acc, &split(&b)).unwrap();
    assert!(
        (s1.loss - s2.loss).abs() < 1e-5 * s1.loss,
        "{} vs {}",
        s1.loss,
        s2.loss
    );
    assert!((s1.grad_norm - s2.grad_norm).abs() < 1e-4 * s1.grad_norm);
    assert!(max_param_diff(&big, &acc) < 1e-6);
    assert!(
        max_param_diff(&big, &tiny()) > 1e-3,
        "the step changed nothing"
    );
}

#[test]
fn bf16_compute_trains_with_float32_master_weights() {
    let mut m = tiny();
    m.set_compute_dtype(Dtype::Bfloat16).unwrap();
    let mut t = Trainer::new(AdamWConfig::default(), LrSchedule::constant(3e-3));
    let mut rng = Rng::new(1);
    let (b, _) = synthetic::batch(&DATA, &mut rng, 4, &SigmaSampling::Uniform).unwrap();
    let losses: Vec<f32> = (0..6)
        .map(|_| t.step(&mut m, std::slice::from_ref(&b)).unwrap().loss)
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[5] < losses[0], "{losses:?}");
    assert_eq!(m.blocks[0].self_attn.q.weight.dtype(), Dtype::Bfloat16);
    let state = t.opt.state_tensors();
    let master = &state["master/blocks.0.self_attn.q.weight"];
    assert_eq!(master.dtype(), Dtype::Float32);
}

#[test]
fn malformed_batches_are_input_errors() {
    let mut m = tiny();
    let mut t = Trainer::new(AdamWConfig::default(), LrSchedule::constant(1e-3));
    let (mut b, _) = synthetic::batch(&DATA, &mut Rng::new(2), 2, &SigmaSampling::Uniform).unwrap();
    b.context.pop();
    assert_eq!(t.step(&mut m, &[b.clone()]).unwrap_err().code(), "input");
    b.context.push(b.context[0].clone());
    b.sigma[0] = 1.5;
    assert_eq!(t.step(&mut m, &[b]).unwrap_err().code(), "input");
    assert_eq!(t.step(&mut m, &[]).unwrap_err().code(), "input");
    assert_eq!(t.opt.step, 0, "failed steps do not count");
}
