//! The DiT's attention core, GELU-tanh and RoPE rotation, in two flavours.
//!
//! [`Kernels::Exact`] uses MLX's own ops (`fast::scaled_dot_product_attention`,
//! `nn::gelu_approximate`, plain elementwise RoPE): differentiable, what training and the
//! parity traces use. [`Kernels::Fast`] is for inference: the RoPE rotation is one compiled
//! (fused) kernel on every backend, and on MLX's CPU backend softmax and GELU-tanh avoid MLX's
//! `exp`/`tanh` kernels. Those call a software `fma` per polynomial term on x86 builds of MLX
//! and cost ≈30 ns per element (a multiply costs ≈2 ns): at 1280 tokens the softmax of the
//! self-attention scores takes longer than the matmuls that make them. The replacement is a
//! base-2 exponential `2^y = p(f)·2^n` (n = round(y), |f| ≤ ½, degree-7 Taylor polynomial,
//! relative error ≤ 2e-7) built from multiplies and adds that MLX's CPU `compile` fuses into a
//! few loops; `2^n` is assembled from its float bits. Metal keeps MLX's fused kernels.
//! The fast path is not differentiable (it bit-casts), so training never takes it.
use std::cell::RefCell;
use std::thread::LocalKey;

use mlx_rs::error::Exception;
use mlx_rs::ops::indexing::{Ellipsis, IndexOp, IntoStrideBy};
use mlx_rs::{Array, Dtype, fast, ops};

use crate::error::Result;

/// Which implementation of the elementwise-heavy parts a forward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// MLX's own ops: differentiable; training and the parity traces.
    #[default]
    Exact,
    /// Inference: fused RoPE; on the CPU backend, softmax and GELU-tanh without MLX's
    /// transcendental kernels (same results within ~1e-6 relative).
    Fast,
}

impl Kernels {
    /// Whether the polynomial softmax / GELU replace MLX's on this process's default device.
    fn cpu_math(self) -> bool {
        self == Kernels::Fast && on_cpu()
    }
}

/// True when MLX's default device is the CPU (Linux; a Mac runs on the GPU).
pub fn on_cpu() -> bool {
    thread_local! {
        static CPU: bool = mlx_rs::Device::try_default()
            .and_then(|d| d.get_type())
            .map(|t| matches!(t, mlx_rs::DeviceType::Cpu))
            .unwrap_or(true);
    }
    CPU.with(|c| *c)
}

type Fused = Box<dyn FnMut(&[Array]) -> std::result::Result<Vec<Array>, Exception>>;
type Slot = RefCell<Option<Fused>>;

/// Call a compiled function kept per thread (compiled state is not `Send`; MLX retraces
/// it only for new shapes).
fn call(slot: &'static LocalKey<Slot>, make: fn() -> Fused, args: &[Array]) -> Result<Vec<Array>> {
    slot.with(|s| {
        let mut s = s.borrow_mut();
        let f = s.get_or_insert_with(make);
        Ok(f(args)?)
    })
}

fn c(v: f32) -> Array {
    Array::from_f32(v)
}

/// `y → (f, bits)` with `n = round(clip(y, ±126))`, `f = y − n` and `bits` the int32 pattern
/// of the float `2^n`. The clip keeps `2^n` a normal float; softmax weights below 2^−126 of
/// the row maximum and GELU gates beyond it are 0 / 1 to float32 precision anyway.
/// The kernels compute `bits` in one compiled call and recompute `f` (a few adds) in the
/// next rather than store it: one full-size temporary fewer at the peak.
fn exp2_split(y: &Array) -> std::result::Result<(Array, Array), Exception> {
    let y = ops::clip(y, (c(-126.0), c(126.0)))?;
    // y + 126.5 ∈ [0.5, 252.5] is positive, so the int cast is a floor: n' = n + 126.
    let n1 = y.add(c(126.5))?.as_type::<i32>()?;
    let f = y.subtract(n1.as_type::<f32>()?.subtract(c(126.0))?)?;
    let bits = n1
        .add(Array::from_int(1))?
        .multiply(Array::from_int(1 << 23))?;
    Ok((f, bits))
}

/// `p(f) ≈ 2^f` on |f| ≤ ½: Taylor series of `e^{f ln 2}` to degree 7 in Estrin form (depth 4,
/// so the whole expression fits in one fused loop).
fn exp2_poly(f: &Array) -> std::result::Result<Array, Exception> {
    const K: [f32; 8] = [
        1.0,
        std::f32::consts::LN_2,
        0.240_226_5,
        0.055_504_11,
        0.009_618_129,
        0.001_333_355_8,
        0.000_154_035_3,
        0.000_015_252_734,
    ];
    let f2 = f.multiply(f)?;
    let f4 = f2.multiply(&f2)?;
    let lin = |a: usize| -> std::result::Result<Array, Exception> {
        c(K[a]).add(f.multiply(c(K[a + 1]))?)
    };
    let lo = lin(0)?.add(f2.multiply(lin(2)?)?)?;
    let hi = lin(4)?.add(f2.multiply(lin(6)?)?)?;
    lo.add(f4.multiply(hi)?)
}

thread_local! {
    static SOFTMAX_SPLIT: Slot = const { RefCell::new(None) };
    static POW2: Slot = const { RefCell::new(None) };
    static GELU_SPLIT: Slot = const { RefCell::new(None) };
    static GELU_OUT: Slot = const { RefCell::new(None) };
    static ROPE: Slot = const { RefCell::new(None) };
}

/// Unnormalised softmax weights `2^(s − max s)` over the last axis of float32 `s` (base-2
/// units) and their row sums; `softmax(s·ln 2) = w / sum`. Callers divide after the `·v`
/// product (`[…, d]` instead of `[…, Lk]` divisions, no normalised copy of the scores).
/// At the peak: `s`, the int `2^n` bits and `w` (the max and the fraction are recomputed
/// inside the compiled calls instead of being stored).
fn softmax2_unnormalized(s: &Array) -> Result<(Array, Array)> {
    let m = s.max_axis(-1, true)?;
    let bits = call(
        &SOFTMAX_SPLIT,
        || {
            Box::new(mlx_rs::transforms::compile::compile(
                |a: &[Array]| Ok(vec![exp2_split(&a[0].subtract(&a[1])?)?.1]),
                None,
            ))
        },
        &[s.clone(), m.clone()],
    )?;
    let two_n = bits[0].view::<f32>()?;
    let w = call(
        &POW2,
        || {
            Box::new(mlx_rs::transforms::compile::compile(
                |a: &[Array]| {
                    let (f, _) = exp2_split(&a[0].subtract(&a[1])?)?;
                    Ok(vec![exp2_poly(&f)?.multiply(&a[2])?])
                },
                None,
            ))
        },
        &[s.clone(), m, two_n],
    )?;
    let w = w.into_iter().next().expect("one output");
    let sum = w.sum_axis(-1, true)?;
    Ok((w, sum))
}

/// Attention of `q [B, H, L, d]` to `k, v [B, H, Lk, d]` (same dtype), scale `1/√d`, with an
/// optional additive score bias broadcastable to `[B, H, L, Lk]` (natural-log units, q's
/// dtype).
pub fn attention(
    q: &Array,
    k: &Array,
    v: &Array,
    scale: f32,
    bias: Option<&Array>,
    kernels: Kernels,
) -> Result<Array> {
    if !(kernels.cpu_math() && q.dtype() == Dtype::Float32) {
        return Ok(match bias {
            Some(b) => fast::scaled_dot_product_attention(q, k, v, scale, b, None)?,
            None => fast::scaled_dot_product_attention(q, k, v, scale, None, None)?,
        });
    }
    // MLX's CPU SDPA is exactly this (scaled q, matmul, softmax, matmul) with its own exp.
    let q = q.multiply(c(scale * std::f32::consts::LOG2_E))?;
    let s = q.matmul(k.swap_axes(-1, -2)?)?; // [B, H, L, Lk], base-2 units
    let s = match bias {
        Some(b) => s.add(b.multiply(c(std::f32::consts::LOG2_E))?)?,
        None => s,
    };
    let (w, sum) = softmax2_unnormalized(&s)?;
    Ok(w.matmul(v)?.divide(&sum)?)
}

/// GELU with the tanh approximation (`nn.GELU(approximate='tanh')`), written on the CPU
/// backend as `x·σ(2z) = x / (1 + 2^{−2z·log2 e})`, `z = √(2/π)(x + 0.044715x³)`.
pub fn gelu_tanh(x: &Array, kernels: Kernels) -> Result<Array> {
    if !(kernels.cpu_math() && x.dtype() == Dtype::Float32) {
        return Ok(mlx_rs::nn::gelu_approximate(x)?);
    }
    // z' = −2·√(2/π)·log2(e)·(x + 0.044715x³): the gate's exponent in base 2.
    fn exponent(x: &Array) -> std::result::Result<Array, Exception> {
        let k = -2.0 * (2.0 / std::f32::consts::PI).sqrt() * std::f32::consts::LOG2_E;
        x.multiply(x)?
            .multiply(c(0.044_715))?
            .add(c(1.0))?
            .multiply(x)?
            .multiply(c(k))
    }
    let bits = call(
        &GELU_SPLIT,
        || {
            Box::new(mlx_rs::transforms::compile::compile(
                |a: &[Array]| Ok(vec![exp2_split(&exponent(&a[0])?)?.1]),
                None,
            ))
        },
        std::slice::from_ref(x),
    )?;
    let two_n = bits[0].view::<f32>()?;
    let out = call(
        &GELU_OUT,
        || {
            Box::new(mlx_rs::transforms::compile::compile(
                |a: &[Array]| {
                    let (f, _) = exp2_split(&exponent(&a[0])?)?;
                    let w = exp2_poly(&f)?.multiply(&a[1])?;
                    Ok(vec![a[0].divide(c(1.0).add(w)?)?])
                },
                None,
            ))
        },
        &[x.clone(), two_n],
    )?;
    Ok(out.into_iter().next().expect("one output"))
}

/// `[…, d]` → `[…, d/2, 2]` (free: a reshape of the contiguous channel axis).
fn pairs(x: &Array) -> Result<Array> {
    let mut s = x.shape().to_vec();
    let d = s.pop().unwrap_or(0);
    s.extend([d / 2, 2]);
    Ok(x.reshape(&s)?)
}

/// Rotate `x [B, L, H, d]` (float32) by interleaved tables `cos2 = (c₀, c₀, c₁, c₁, …)` and
/// `sin2 = (−s₀, s₀, −s₁, s₁, …)` of shape `[1, L, 1, d]`: `x·cos2 + swap(x)·sin2`, the
/// complex product `(re + i·im)(c + i·s)` written per channel, where `swap(x)` is a strided
/// view of `x` with each (re, im) pair reversed. The same float operations in both flavours,
/// so Fast (one fused loop, no temporaries) equals Exact bit for bit.
pub fn rotate(x: &Array, cos2: &Array, sin2: &Array, kernels: Kernels) -> Result<Array> {
    let shape = x.shape().to_vec();
    let x5 = pairs(x)?; // [B, L, H, d/2, 2]
    let xs = x5.index((Ellipsis, (..).stride_by(-1)));
    let (c5, s5) = (pairs(cos2)?, pairs(sin2)?);
    let out = if kernels != Kernels::Fast {
        x5.multiply(&c5)?.add(xs.multiply(&s5)?)?
    } else {
        let out = call(
            &ROPE,
            || {
                Box::new(mlx_rs::transforms::compile::compile(
                    |a: &[Array]| Ok(vec![a[0].multiply(&a[2])?.add(a[1].multiply(&a[3])?)?]),
                    None,
                ))
            },
            &[x5, xs, c5, s5],
        )?;
        out.into_iter().next().expect("one output")
    };
    Ok(out.reshape(&shape)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_abs(a: &Array, b: &Array) -> f32 {
        let d = a.subtract(b).unwrap().abs().unwrap();
        d.max(None).unwrap().item_cast::<f32>()
    }

    fn max_rel(a: &Array, b: &Array) -> f32 {
        let d = a.subtract(b).unwrap().abs().unwrap();
        let r = d.divide(b.abs().unwrap().add(c(1e-30)).unwrap()).unwrap();
        r.max(None).unwrap().item_cast::<f32>()
    }

    /// `p(f)·2^n` from [`exp2_split`]'s parts, as the compiled kernels assemble it.
    fn pow2(f: &Array, bits: &Array) -> Result<Array> {
        Ok(exp2_poly(f)?.multiply(bits.view::<f32>()?)?)
    }

    #[test]
    fn pow2_matches_exp2_over_the_float_range() {
        let v: Vec<f32> = (-1297..=1297).map(|i| i as f32 * 0.0971).collect(); // ±125.9
        let y = Array::from_slice(&v, &[v.len() as i32]);
        let (f, bits) = exp2_split(&y).unwrap();
        let got = pow2(&f, &bits).unwrap();
        let want: Vec<f32> = v.iter().map(|&y| (y as f64).exp2() as f32).collect();
        let want = Array::from_slice(&want, &[v.len() as i32]);
        assert!(max_rel(&got, &want) < 3e-7, "{}", max_rel(&got, &want));
        // beyond ±126 the exponent is clipped (2^±126 stays a normal float, never inf/0)
        let y = Array::from_slice(&[-500f32, 500.0], &[2]);
        let (f, bits) = exp2_split(&y).unwrap();
        let got: Vec<f32> = pow2(&f, &bits).unwrap().as_slice().to_vec();
        assert_eq!(got, vec![2f32.powi(-126), 2f32.powi(126)]);
    }

    #[test]
    fn fast_softmax_and_gelu_track_mlx() {
        if !on_cpu() {
            return; // the fast forms exist for the CPU backend only
        }
        let key = mlx_rs::random::key(3).unwrap();
        let (k1, k2, k3) = (
            key.clone(),
            mlx_rs::random::key(4).unwrap(),
            mlx_rs::random::key(5).unwrap(),
        );
        // peaked and flat rows alike: scores up to ~±60
        let q = mlx_rs::random::normal::<f32>(&[2, 3, 7, 8], None, Some(3.0), &k1).unwrap();
        let k = mlx_rs::random::normal::<f32>(&[2, 3, 33, 8], None, Some(2.0), &k2).unwrap();
        let v = mlx_rs::random::normal::<f32>(&[2, 3, 33, 8], None, None, &k3).unwrap();
        // an additive score bias [B, 1, 1, Lk] (folded padding keys) goes through both paths
        let bias = mlx_rs::random::uniform::<f32, f32>(0.0, 6.0, &[2, 1, 1, 33], &k3).unwrap();
        for b in [None, Some(&bias)] {
            let exact = attention(&q, &k, &v, 0.35, b, Kernels::Exact).unwrap();
            let fast = attention(&q, &k, &v, 0.35, b, Kernels::Fast).unwrap();
            let err = max_abs(&fast, &exact);
            assert!(err < 2e-6, "attention (bias {}) {err}", b.is_some());
        }
        assert_ne!(
            Kernels::Fast.cpu_math(),
            Kernels::Exact.cpu_math(),
            "the fast path must be a different computation"
        );

        let x = mlx_rs::random::normal::<f32>(&[4, 1000], None, Some(4.0), &key).unwrap();
        let exact = gelu_tanh(&x, Kernels::Exact).unwrap();
        let fast = gelu_tanh(&x, Kernels::Fast).unwrap();
        let err = max_abs(&fast, &exact);
        assert!(err < 4e-6, "gelu {err}");
        // far tails: x for large x, ≈ 0 (never NaN or inf) for very negative x
        let tails = Array::from_slice(&[-300f32, -40.0, 40.0, 300.0], &[4]);
        let g: Vec<f32> = gelu_tanh(&tails, Kernels::Fast)
            .unwrap()
            .as_slice()
            .to_vec();
        assert_eq!(&g[2..], &[40.0, 300.0]);
        assert!(g[..2].iter().all(|v| v.abs() < 1e-30), "{g:?}");
    }

    #[test]
    fn rotation_is_the_same_in_both_flavours() {
        let key = mlx_rs::random::key(5).unwrap();
        let x = mlx_rs::random::normal::<f32>(&[2, 6, 3, 8], None, None, &key).unwrap();
        let cs = mlx_rs::random::normal::<f32>(&[1, 6, 1, 8], None, None, &key).unwrap();
        let sn = cs.multiply(c(0.5)).unwrap();
        let a = rotate(&x, &cs, &sn, Kernels::Exact).unwrap();
        let b = rotate(&x, &cs, &sn, Kernels::Fast).unwrap();
        assert_eq!(
            a.subtract(&b)
                .unwrap()
                .abs()
                .unwrap()
                .max(None)
                .unwrap()
                .item_cast::<f32>(),
            0.0
        );
        // pair swap: channel 0 of the output = x0·c0 + x1·s0
        let v: Vec<f32> = x.as_slice().to_vec();
        let (c0, s0): (Vec<f32>, Vec<f32>) = (cs.as_slice().to_vec(), sn.as_slice().to_vec());
        let o: Vec<f32> = a.as_slice().to_vec();
        assert_eq!(o[0], v[0] * c0[0] + v[1] * s0[0]);
        assert_eq!(o[1], v[1] * c0[1] + v[0] * s0[1]);
    }
}
