//! Loading umT5 with quantized Linears: from a folder that stores them quantized
//! (`convert --quantize-t5`), or quantizing a dense file while reading it. The token
//! embedding, norms and position tables stay dense (see `quant::T5Recipe`).
use std::collections::BTreeMap;

use mlx_rs::Dtype;

use crate::checkpoint::{self, TensorSource};
use crate::error::Result;
use crate::nn::Linear;
use crate::quant::meta::declared;
use crate::quant::{QuantSpec, QuantizedSource, T5Recipe, stored_specs};
use crate::t5::config::T5Config;
use crate::t5::encoder::T5Encoder;
use crate::t5::keys;

impl T5Encoder {
    /// Run `f(official weight key, linear)` on every block Linear.
    pub fn for_each_linear(
        &mut self,
        mut f: impl FnMut(&str, &mut Linear) -> Result<()>,
    ) -> Result<()> {
        for (i, b) in self.blocks.iter_mut().enumerate() {
            let a = &mut b.attn;
            for (n, l) in [
                ("q", &mut a.q),
                ("k", &mut a.k),
                ("v", &mut a.v),
                ("o", &mut a.o),
            ] {
                f(&format!("blocks.{i}.attn.{n}.weight"), l)?;
            }
            let ffn = &mut b.ffn;
            f(&format!("blocks.{i}.ffn.gate.0.weight"), &mut ffn.gate)?;
            f(&format!("blocks.{i}.ffn.fc1.weight"), &mut ffn.fc1)?;
            f(&format!("blocks.{i}.ffn.fc2.weight"), &mut ffn.fc2)?;
        }
        Ok(())
    }

    /// Build and strictly load, every tensor cast to `dtype` as it is read. A source that
    /// stores quantized Linears stays quantized (checked triple by triple); `quantize`
    /// quantizes a dense source while reading it.
    pub fn load_with(
        config: T5Config,
        src: &dyn TensorSource,
        dtype: Dtype,
        quantize: Option<QuantSpec>,
    ) -> Result<Self> {
        let mut m = Self::new(config)?;
        let mut linears = Vec::new();
        m.for_each_linear(|k, l| {
            linears.push((k.to_string(), [l.out_dim(), l.in_dim()]));
            Ok(())
        })?;
        let declared = declared(src, "umT5 weights")?
            .map(|d| d.recipe())
            .transpose()?
            .map(|r| r.spec);
        let stored = stored_specs(src, &linears, declared)?;
        let dtype_of = |_: &str| Some(dtype);
        match quantize {
            Some(spec) if stored.is_empty() => {
                let view = QuantizedSource::new(src, &T5Recipe(spec), dtype)?;
                set_placeholders(&mut m, view.specs(), dtype)?;
                checkpoint::load_strict_with(&mut m, &view, &keys::to_official, &dtype_of)?;
            }
            _ => {
                set_placeholders(&mut m, &stored, dtype)?;
                checkpoint::load_strict_with(&mut m, src, &keys::to_official, &dtype_of)?;
            }
        }
        Ok(m)
    }
}

fn set_placeholders(
    m: &mut T5Encoder,
    specs: &BTreeMap<String, QuantSpec>,
    dtype: Dtype,
) -> Result<()> {
    m.for_each_linear(|k, l| match specs.get(k) {
        Some(s) => l.make_quantized_placeholder(*s, dtype),
        None => Ok(()),
    })
}
