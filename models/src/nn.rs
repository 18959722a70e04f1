//! Small layers shared by the models. Weights keep PyTorch's Linear layout `[out, in]`;
//! the input is cast to the weight's dtype, so casting a layer's weights (bf16 on Metal)
//! is all it takes to change its compute dtype.
use mlx_rs::macros::ModuleParameters;
use mlx_rs::module::Param;
use mlx_rs::{Array, Dtype};

use crate::error::Result;

/// `y = x Wᵀ + b`, computed in the weight's dtype.
#[derive(Debug, Clone, ModuleParameters)]
pub struct Linear {
    #[param]
    pub weight: Param<Array>,
    #[param]
    pub bias: Param<Option<Array>>,
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
        })
    }

    pub fn forward(&self, x: &Array) -> Result<Array> {
        let w: &Array = &self.weight;
        let x = cast(x, w.dtype())?;
        let y = x.matmul(w.t())?;
        Ok(match self.bias.as_ref() {
            Some(b) => y.add(b)?,
            None => y,
        })
    }

    pub fn in_dim(&self) -> i32 {
        self.weight.shape()[1]
    }
    pub fn out_dim(&self) -> i32 {
        self.weight.shape()[0]
    }

    /// Cast weight and bias (compute dtype of this layer).
    pub fn cast(&mut self, dtype: Dtype) -> Result<()> {
        *self.weight = self.weight.as_dtype(dtype)?;
        if let Some(b) = self.bias.as_mut() {
            *b = b.as_dtype(dtype)?;
        }
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
