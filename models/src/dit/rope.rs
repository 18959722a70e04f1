//! 3D RoPE and the sinusoidal timestep embedding (`rope_params`, `rope_apply`,
//! `sinusoidal_embedding_1d` in the official `wan/modules/model.py`).
//!
//! The reference builds both tables in float64 (complex128 for RoPE); so do we, on the
//! host, then upload float32. Channel pairs `(2j, 2j+1)` of a head are (re, im) of complex
//! channel `j` (GPT-J interleaving). The `d/2` pairs split into time / height / width
//! parts of `d/2 − 2⌊d/6⌋`, `⌊d/6⌋`, `⌊d/6⌋` pairs (22/21/21 for d = 128), each part with
//! its own frequency spectrum `θ^(−2j/dim_part)`.
use mlx_rs::Array;

use crate::dit::kernels::{Kernels, rotate};
use crate::error::Result;

pub const ROPE_THETA: f64 = 10000.0;
/// Positions per axis in the official table.
pub const ROPE_MAX_POS: usize = 1024;

/// Complex pairs per axis (time, height, width) for a head dim `d`.
pub fn rope_split(head_dim: usize) -> [usize; 3] {
    let c = head_dim / 2;
    [c - 2 * (c / 3), c / 3, c / 3]
}

/// `rope_params(max_pos, dim)`: angles `pos · θ^(−2j/dim)` for `j < dim/2`, row-major `[pos][j]`.
pub fn rope_angles(max_pos: usize, dim_part: usize) -> Vec<f64> {
    let inv: Vec<f64> = (0..dim_part / 2)
        .map(|j| 1.0 / ROPE_THETA.powf((2 * j) as f64 / dim_part as f64))
        .collect();
    let mut out = Vec::with_capacity(max_pos * inv.len());
    for p in 0..max_pos {
        out.extend(inv.iter().map(|w| p as f64 * w));
    }
    out
}

/// The full official frequency table `[max_pos, d/2]` as angles (t | h | w columns).
pub fn freqs_table(head_dim: usize, max_pos: usize) -> Vec<f64> {
    let [ct, ch, cw] = rope_split(head_dim);
    let (t, h, w) = (
        rope_angles(max_pos, 2 * ct),
        rope_angles(max_pos, 2 * ch),
        rope_angles(max_pos, 2 * cw),
    );
    let mut out = Vec::with_capacity(max_pos * (ct + ch + cw));
    for p in 0..max_pos {
        out.extend_from_slice(&t[p * ct..(p + 1) * ct]);
        out.extend_from_slice(&h[p * ch..(p + 1) * ch]);
        out.extend_from_slice(&w[p * cw..(p + 1) * cw]);
    }
    out
}

/// Per-token rotation for an `(f, h, w)` patch grid: `(cos, sin)` as float32 arrays
/// `[f·h·w, d/2]`, token index `(i·h + j)·w + k`. Angles in f64, rounded once.
pub fn grid_cos_sin(head_dim: usize, grid: [usize; 3]) -> Result<(Array, Array)> {
    let [ct, ch, cw] = rope_split(head_dim);
    let c = ct + ch + cw;
    let inv = |n: usize, dim: usize| -> Vec<f64> {
        (0..n)
            .map(|j| 1.0 / ROPE_THETA.powf((2 * j) as f64 / dim as f64))
            .collect()
    };
    let (wt, wh, ww) = (inv(ct, 2 * ct), inv(ch, 2 * ch), inv(cw, 2 * cw));
    let l = grid[0] * grid[1] * grid[2];
    let mut cos = Vec::with_capacity(l * c);
    let mut sin = Vec::with_capacity(l * c);
    for f in 0..grid[0] {
        for h in 0..grid[1] {
            for w in 0..grid[2] {
                let angles = wt
                    .iter()
                    .map(|x| f as f64 * x)
                    .chain(wh.iter().map(|x| h as f64 * x))
                    .chain(ww.iter().map(|x| w as f64 * x));
                for a in angles {
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
    }
    let shape = [l as i32, c as i32];
    Ok((
        Array::from_slice(&cos, &shape),
        Array::from_slice(&sin, &shape),
    ))
}

/// Per-token tables in the channel layout of a head, `[1, L, 1, d]` each:
/// `cos2 = (c₀, c₀, c₁, c₁, …)`, `sin2 = (−s₀, s₀, −s₁, s₁, …)`, so that a rotation is
/// `x·cos2 + swap_pairs(x)·sin2` (see [`crate::dit::kernels::rotate`]). Built once per token
/// grid from the `[L, d/2]` tables of [`grid_cos_sin`].
pub fn interleaved_tables(cos: &Array, sin: &Array) -> Result<(Array, Array)> {
    let (l, half) = (cos.shape()[0], cos.shape()[1]);
    let shape = [1, l, 1, 2 * half];
    let cos2 = mlx_rs::ops::stack(&[cos, cos], -1)?.reshape(&shape)?;
    let sin2 = mlx_rs::ops::stack(&[&sin.negative()?, sin], -1)?.reshape(&shape)?;
    mlx_rs::transforms::eval([&cos2, &sin2])?;
    Ok((cos2, sin2))
}

/// Rotate `x [B, L, H, d]` by per-token `cos/sin [L, d/2]` (interleaved pairs), in float32.
pub fn rope_apply(x: &Array, cos: &Array, sin: &Array) -> Result<Array> {
    let (cos2, sin2) = interleaved_tables(cos, sin)?;
    let x = x.as_dtype(mlx_rs::Dtype::Float32)?;
    rotate(&x, &cos2, &sin2, Kernels::Exact)
}

/// `sinusoidal_embedding_1d(dim, t)`: rows `[cos(t·ω_k) | sin(t·ω_k)]`, `ω_k = 10000^(−k/half)`,
/// computed in f64 and returned as float32 `[n, dim]`.
pub fn sinusoidal_embedding(dim: usize, positions: &[f64]) -> Array {
    let half = dim / 2;
    let omega: Vec<f64> = (0..half)
        .map(|k| 10000f64.powf(-(k as f64) / half as f64))
        .collect();
    let mut out = Vec::with_capacity(positions.len() * dim);
    for &t in positions {
        out.extend(omega.iter().map(|w| (t * w).cos() as f32));
        out.extend(omega.iter().map(|w| (t * w).sin() as f32));
    }
    Array::from_slice(&out, &[positions.len() as i32, dim as i32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_22_21_21_for_head_dim_128() {
        assert_eq!(rope_split(128), [22, 21, 21]);
        assert_eq!(rope_split(64), [12, 10, 10]);
    }

    #[test]
    fn angles_follow_each_axis_spectrum() {
        let t = freqs_table(128, 4);
        // row 1: temporal pair 1 uses exponent 2/44, height pair 1 uses 2/42
        assert!((t[64 + 1] - 10000f64.powf(-2.0 / 44.0)).abs() < 1e-15);
        assert!((t[64 + 23] - 10000f64.powf(-2.0 / 42.0)).abs() < 1e-15);
        assert!((t[64 + 43] - 1.0).abs() < 1e-15); // width pair 0: ω = 1
        assert!(t[..64].iter().all(|&a| a == 0.0)); // position 0 never rotates
    }

    #[test]
    fn sinusoid_is_cos_first_with_k_over_half() {
        let e = sinusoidal_embedding(8, &[0.0, 2.0]);
        let v: Vec<f32> = e.as_slice().to_vec();
        assert_eq!(&v[..8], &[1., 1., 1., 1., 0., 0., 0., 0.]);
        let w1 = 10000f64.powf(-0.25); // k = 1, half = 4
        assert!((v[8 + 1] as f64 - (2.0 * w1).cos()).abs() < 1e-7);
        assert!((v[8 + 5] as f64 - (2.0 * w1).sin()).abs() < 1e-7);
    }

    #[test]
    fn rope_rotates_interleaved_pairs() {
        // one token at grid (0, 0, 1): only width pairs rotate, by angle 1·ω_w
        let (cos, sin) = grid_cos_sin(12, [1, 1, 2]).unwrap();
        let mut x = vec![0f32; 2 * 12];
        for j in 0..6 {
            x[12 + 2 * j] = 1.0; // token 1: re = 1, im = 0
        }
        let xa = Array::from_slice(&x, &[1, 2, 1, 12]);
        let out = rope_apply(&xa, &cos, &sin).unwrap();
        let o: Vec<f32> = out.as_slice().to_vec();
        let [ct, ch, _] = rope_split(12);
        for j in 0..6 {
            let (re, im) = (o[12 + 2 * j], o[12 + 2 * j + 1]);
            if j < ct + ch {
                assert!(
                    (re - 1.0).abs() < 1e-7 && im.abs() < 1e-7,
                    "pair {j} must not rotate"
                );
            } else {
                let k = j - ct - ch;
                let a = 10000f64.powf(-((2 * k) as f64) / 4.0);
                assert!((re as f64 - a.cos()).abs() < 1e-6 && (im as f64 - a.sin()).abs() < 1e-6);
            }
        }
        assert!(o[..12].iter().all(|&v| v == 0.0));
    }
}
