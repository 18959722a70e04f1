//! Small layers shared by the models. Weights keep PyTorch's Linear layout `[out, in]`;
//! the input is cast to the layer's compute dtype, so casting a layer's weights (bf16 on
//! Metal) is all it takes to change its compute dtype.
//!
//! A [`Linear`] is either dense or affine-quantized (MLX `quantized_matmul`, see
//! [`crate::quant`]): then `weight` holds the packed `u32 [out, in·bits/32]` and `scales`
//! / `biases` `[out, in/group_size]` in the compute dtype. It stays quantized in memory and
//! the forward never dequantizes. A LoRA on a quantized layer is an unmerged side path.
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::{Array, Dtype};

use crate::error::{Error, Result};
use crate::quant::QuantSpec;

/// `y = x Wᵀ + b` (+ a LoRA side path), computed in the layer's compute dtype.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Linear {
    /// Dense `[out, in]`, or packed `u32 [out, in·bits/32]` when `quant` is set.
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Option<Array>>,
    /// Quantized only: one scale per group `[out, in/group_size]` (the compute dtype).
    #[param]
    pub scales: Param<Option<Array>>,
    /// Quantized only: one offset per group `[out, in/group_size]`.
    #[param]
    pub biases: Param<Option<Array>>,
    /// The affine setting of a quantized `weight`; `None` for a dense layer.
    pub quant: Option<QuantSpec>,
    /// Unmerged low-rank adapters `x·Aᵀ·Bᵀ` (scale folded into B), for quantized layers.
    pub lora: Option<LoraSide>,
}

/// A LoRA kept beside a (quantized) weight: `A [r, in]`, `B [out, r]` with the LoRA scale
/// already multiplied in, both in the compute dtype.
#[derive(Debug, Clone)]
pub struct LoraSide {
    pub a: Array,
    pub b: Array,
}

impl Linear {
    /// Zero-initialised placeholder of the right shape (lazy: costs no memory until loaded).
    pub fn zeros(in_dim: i32, out_dim: i32, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: Param::new(mlx_rs::ops::zeros::<f32>(&[out_dim, in_dim])?),
            bias: Param::new(if bias {
                Some(mlx_rs::ops::zeros::<f32>(&[out_dim])?)
            } else {
                None
            }),
            scales: Param::new(None),
            biases: Param::new(None),
            quant: None,
            lora: None,
        })
    }

    pub fn is_quantized(&self) -> bool {
        self.quant.is_some()
    }

    /// Turn this (dense placeholder) layer into a quantized placeholder of the same
    /// logical shape: lazy zeros for the packed weight, scales and biases, to be replaced
    /// by a loader. Refuses an in-dim that the setting cannot pack.
    pub fn make_quantized_placeholder(&mut self, spec: QuantSpec, dtype: Dtype) -> Result<()> {
        spec.validate()?;
        let (out, inp) = (self.out_dim(), self.in_dim());
        if !spec.fits(&[out, inp]) {
            return Err(Error::Input(format!(
                "a [{out}, {inp}] Linear cannot be quantized with group size {}",
                spec.group_size
            )));
        }
        let groups = inp / spec.group_size;
        *self.weight = mlx_rs::ops::zeros_dtype(&[out, inp * spec.bits / 32], Dtype::Uint32)?;
        *self.scales = Some(mlx_rs::ops::zeros_dtype(&[out, groups], dtype)?);
        *self.biases = Some(mlx_rs::ops::zeros_dtype(&[out, groups], dtype)?);
        self.quant = Some(spec);
        Ok(())
    }

    /// Quantize the dense weight in place (in its own dtype; evaluated, so the dense copy
    /// is released when nothing else holds it).
    pub fn quantize(&mut self, spec: QuantSpec) -> Result<()> {
        if self.quant.is_some() {
            return Err(Error::Input("this Linear is already quantized".into()));
        }
        spec.validate()?;
        let (w, s, b) = crate::quant::quantize_weight(&self.weight, spec)?;
        *self.weight = w;
        *self.scales = Some(s);
        *self.biases = Some(b);
        self.quant = Some(spec);
        Ok(())
    }

    /// The dense weight `[out, in]` (dequantized for a quantized layer: a new array, for
    /// checks and LoRA merges, never used by the forward).
    pub fn dense_weight(&self) -> Result<Array> {
        match (&self.quant, self.scales.as_ref(), self.biases.as_ref()) {
            (Some(q), Some(s), Some(b)) => crate::quant::dequantize_weight(&self.weight, s, b, *q),
            _ => Ok((*self.weight).clone()),
        }
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let x = cast(x, self.dtype())?;
        let w: &Array = &self.weight;
        let y = match (&self.quant, self.scales.as_ref(), self.biases.as_ref()) {
            (Some(q), Some(s), Some(b)) => {
                mlx_rs::ops::quantized_matmul(&x, w, s, b, true, q.group_size, q.bits)?
            }
            _ => x.matmul(w.t())?,
        };
        let y = match self.bias.as_ref() {
            Some(b) => y.add(b)?,
            None => y,
        };
        Ok(match &self.lora {
            Some(l) => y.add(x.matmul(l.a.t())?.matmul(l.b.t())?)?,
            None => y,
        })
    }

    /// Compute dtype: the weight's, or the scales' for a quantized layer.
    pub fn dtype(&self) -> Dtype {
        match self.scales.as_ref() {
            Some(s) if self.quant.is_some() => s.dtype(),
            _ => self.weight.dtype(),
        }
    }

    pub fn in_dim(&self) -> i32 {
        let packed = self.weight.shape()[1];
        match &self.quant {
            Some(q) => packed * 32 / q.bits,
            None => packed,
        }
    }
    pub fn out_dim(&self) -> i32 {
        self.weight.shape()[0]
    }

    /// Cast the float parameters (compute dtype of this layer); a packed weight stays u32.
    pub fn cast(&mut self, dtype: Dtype) -> Result<()> {
        if self.quant.is_none() {
            *self.weight = self.weight.as_dtype(dtype)?;
        }
        for p in [&mut self.bias, &mut self.scales, &mut self.biases] {
            if let Some(a) = p.as_mut() {
                *a = a.as_dtype(dtype)?;
            }
        }
        if let Some(l) = &mut self.lora {
            l.a = l.a.as_dtype(dtype)?;
            l.b = l.b.as_dtype(dtype)?;
        }
        Ok(())
    }

    /// Add a LoRA `W + k·B·A` as an unmerged side path (`A [r, in]`, `B [out, r]`);
    /// a second one is stacked along the rank.
    pub fn add_lora_side(&mut self, a: &Array, b: &Array, k: f32) -> Result<()> {
        let dt = self.dtype();
        let a = a.as_dtype(dt)?;
        let b = b
            .as_dtype(Dtype::Float32)?
            .multiply(Array::from_f32(k))?
            .as_dtype(dt)?;
        let side = match self.lora.take() {
            Some(old) => LoraSide {
                a: mlx_rs::ops::concatenate(&[old.a, a], 0)?,
                b: mlx_rs::ops::concatenate(&[old.b, b], 1)?,
            },
            None => LoraSide { a, b },
        };
        mlx_rs::transforms::eval([&side.a, &side.b])?;
        self.lora = Some(side);
        Ok(())
    }
}

/// Cast only when needed (MLX's astype is cheap, but this keeps graphs small).
pub fn cast(x: &Array, dtype: Dtype) -> Result<Array> {
    Ok(if x.dtype() == dtype {
        x.clone()
    } else {
        x.as_dtype(dtype)?
    })
}

/// Placeholder parameter of a given shape (lazy zeros, replaced at load).
pub fn zeros_param(shape: &[i32]) -> Result<Param<Array>> {
    Ok(Param::new(mlx_rs::ops::zeros::<f32>(shape)?))
}
