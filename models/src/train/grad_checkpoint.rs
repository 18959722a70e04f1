//! Gradient checkpointing for LoRA training, by hand (mlx-rs 0.33 has no checkpoint
//! transform; the role of `torch.utils.checkpoint` in the community Wan trainers).
//!
//! Plain `value_and_grad` keeps every intermediate of every block alive until the backward
//! pass (attention scores, FFN hidden `[B, L, ffn_dim]`, ...). Here:
//! 1. the frozen stem (patch/time/text embeddings) runs once, outside any transform;
//! 2. the blocks run forward one at a time, keeping (evaluated) only each block's input
//!    `[B, L, D]`;
//! 3. the head's loss and `∂loss/∂h` come from one `vjp`;
//! 4. the blocks are walked backwards: each block's forward is recomputed inside a `vjp`
//!    whose primals are the block input and that block's LoRA A/B, the cotangent is the
//!    gradient flowing down; the result is evaluated before the next block, so at most one
//!    block's activations are alive at a time.
//!
//! The frozen stem needs no gradient (nothing in it trains), so the chain stops at block 0.
use mlx_rs::Array;
use mlx_rs::transforms::{eval, fallible_vjp};

use crate::dit::Stem;
use crate::dit::block::WanAttentionBlock;
use crate::error::{Error, Result};
use crate::train::adamw::Params;
use crate::train::lora::{LoraWan, block_linear_mut, merged_weight};
use crate::train::objective::{FlowBatch, mse};
use crate::train::trainer::exception;

/// Block `b` with the LoRA sites `ids` merged from `adapters` (`[A_i, B_i]` pairs in the
/// order of `ids`); everything else shared with the frozen base (arrays are refcounted).
fn merged_block(
    lora: &LoraWan,
    b: usize,
    ids: &[usize],
    adapters: &[Array],
    k: f32,
) -> Result<WanAttentionBlock> {
    let mut block = lora.base.blocks[b].clone();
    for (j, &i) in ids.iter().enumerate() {
        let w = merged_weight(
            lora.base_weight(i),
            &adapters[2 * j],
            &adapters[2 * j + 1],
            k,
        )?;
        *block_linear_mut(&mut block, &lora.sites[i].1)?.weight = w;
    }
    Ok(block)
}

/// Loss `[]` and the LoRA gradients (same keys as `trainable_parameters().flatten()`),
/// evaluated, with gradient checkpointing. Agrees with `trainer::loss_and_grads` up to
/// float32 rounding (test `train_grad_checkpoint`).
pub fn lora_loss_and_grads(lora: &mut LoraWan, batch: &FlowBatch) -> Result<(Array, Params)> {
    batch.validate()?;
    let lora: &LoraWan = lora;
    let base = &lora.base;
    let n = base.blocks.len();
    let k = lora.scale();

    // The gradient keys must be the optimizer's parameter names.
    let names: Vec<(String, String)> = (0..lora.adapters.len())
        .map(|i| {
            (
                format!("adapters.{i}.lora_a"),
                format!("adapters.{i}.lora_b"),
            )
        })
        .collect();
    let trainable = mlx_rs::module::ModuleParameters::trainable_parameters(lora).flatten();
    if let Some((a, _)) = names
        .iter()
        .find(|(a, b)| !trainable.contains_key(a.as_str()) || !trainable.contains_key(b.as_str()))
    {
        return Err(Error::Input(format!(
            "gradient checkpointing: no trainable parameter `{a}`"
        )));
    }
    let mut by_block: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, (b, _)) in lora.sites.iter().enumerate() {
        by_block[*b].push(i);
    }
    let adapters_of = |ids: &[usize]| -> Vec<Array> {
        ids.iter()
            .flat_map(|&i| {
                let ad = &lora.adapters[i];
                [(*ad.lora_a).clone(), (*ad.lora_b).clone()]
            })
            .collect()
    };

    // 1. Frozen stem, once.
    let t = batch.timesteps(&base.config)?;
    let context = base.embed_context(&batch.context)?;
    let stem: Stem = base.stem(&batch.x_t()?, None, &t, &context)?;
    let target = batch.target()?;
    eval([&context, &stem.h, &stem.e, &stem.e0, &target])?;

    // 2. Forward, keeping only the block inputs.
    let mut inputs: Vec<Array> = Vec::with_capacity(n);
    let mut h = stem.h.clone();
    for (b, ids) in by_block.iter().enumerate() {
        let block = merged_block(lora, b, ids, &adapters_of(ids), k)?;
        let next = block.forward(&h, &stem.e0, &stem.index, &context, &stem.rope(), None)?;
        next.eval()?;
        inputs.push(std::mem::replace(&mut h, next));
    }

    // 3. Head: loss and ∂loss/∂h.
    let head = |xs: &[Array]| -> mlx_rs::error::Result<Vec<Array>> {
        let out = base.head_forward(&xs[0], &stem).map_err(exception)?;
        Ok(vec![mse(&out, &target).map_err(exception)?])
    };
    let (vals, mut cot) = fallible_vjp(head, &[h], &[Array::from_f32(1.0)])?;
    let (Some(loss), Some(mut g)) = (vals.into_iter().next(), cot.pop()) else {
        return Err(Error::Input(
            "gradient checkpointing: empty head vjp".into(),
        ));
    };
    eval([&loss, &g])?;

    // 4. Backward, block by block, recomputing each forward.
    let mut grads = Params::new();
    for b in (0..n).rev() {
        let x = inputs
            .pop()
            .ok_or_else(|| Error::Input("block inputs".into()))?;
        let ids = &by_block[b];
        let mut primals = vec![x];
        primals.extend(adapters_of(ids));
        let (e0, index, rope) = (&stem.e0, &stem.index, stem.rope());
        let f = |xs: &[Array]| -> mlx_rs::error::Result<Vec<Array>> {
            let block = merged_block(lora, b, ids, &xs[1..], k).map_err(exception)?;
            let out = block
                .forward(&xs[0], e0, index, &context, &rope, None)
                .map_err(exception)?;
            Ok(vec![out])
        };
        let (_, vjps) = fallible_vjp(f, &primals, &[g])?;
        let mut it = vjps.into_iter();
        g = it
            .next()
            .ok_or_else(|| Error::Input("gradient checkpointing: empty block vjp".into()))?;
        let mut fresh = Vec::with_capacity(2 * ids.len());
        for &i in ids {
            let (ga, gb) = (it.next(), it.next());
            let (Some(ga), Some(gb)) = (ga, gb) else {
                return Err(Error::Input(format!("no gradient for adapter {i}")));
            };
            fresh.push((names[i].0.clone(), ga));
            fresh.push((names[i].1.clone(), gb));
        }
        eval(fresh.iter().map(|(_, a)| a).chain([&g]))?;
        for (key, a) in fresh {
            grads.insert(key.into(), a);
        }
    }
    Ok((loss, grads))
}
