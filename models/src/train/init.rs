//! Random initialisation for training from scratch, as official `WanModel.init_weights`
//! (`wan/modules/model.py`, spec §2.10): Xavier-uniform Linear weights with zero biases,
//! Xavier on the flattened patch-embedding weight, `N(0, 0.02)` for the text/time embedding
//! Linears, zero `head.head.weight`, modulations `randn / √D`; norm weights one.
//! (`WanModel::new` builds zero placeholders, which would be a dead network.)
use mlx_rs::Array;
use mlx_rs::module::ModuleParameters;

use crate::dit::{WanModel, keys};
use crate::error::Result;
use crate::train::objective::Rng;

/// Xavier-uniform bound for a `[out, in...]` weight.
fn xavier(shape: &[i32], key: &Array) -> Result<Array> {
    let fan_out = shape[0] as f32;
    let fan_in: f32 = shape[1..].iter().map(|&d| d as f32).product();
    let b = (6.0 / (fan_in + fan_out)).sqrt();
    Ok(mlx_rs::random::uniform::<_, f32>(-b, b, shape, key)?)
}

/// Re-initialise every parameter of `model` (float32) from `rng`.
pub fn init_weights(model: &mut WanModel, rng: &mut Rng) -> Result<()> {
    let dim = model.config.dim as f32;
    let mut params = model.parameters_mut().flatten();
    let mut names: Vec<_> = params.keys().cloned().collect();
    names.sort(); // a fixed order, so a seed gives the same model every time
    for name in names {
        let official = keys::to_official(&name);
        let slot = params.get_mut(&name).expect("key from the same map");
        let shape = slot.shape().to_vec();
        let key = rng.mlx_key()?;
        let value = if official.ends_with(".modulation") || official == "head.modulation" {
            mlx_rs::random::normal::<f32>(&shape[..], 0.0, 1.0 / dim.sqrt(), &key)?
        } else if official.contains("norm") && official.ends_with(".weight") {
            mlx_rs::ops::ones::<f32>(&shape)?
        } else if official.ends_with(".bias") || official == "head.head.weight" {
            mlx_rs::ops::zeros::<f32>(&shape)?
        } else if official.starts_with("text_embedding.") || official.starts_with("time_embedding.")
        {
            mlx_rs::random::normal::<f32>(&shape[..], 0.0, 0.02, &key)?
        } else {
            // Linear [out, in]; patch embedding [D, pt, ph, pw, C] has the same fans as
            // the flattened PyTorch weight.
            xavier(&shape, &key)?
        };
        **slot = value;
    }
    let all: Vec<&Array> = params.values().map(|a| &**a).collect();
    mlx_rs::transforms::eval(all)?;
    Ok(())
}
