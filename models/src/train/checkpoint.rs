//! Training checkpoints: one safetensors file (written atomically through
//! `checkpoint::safetensors::save`) holding everything a resume needs:
//! * `model/<path>`: the trainable parameters under our internal paths (the full DiT, or
//!   only the LoRA adapters — frozen base weights come from their own file);
//! * `optim/{m,v,master}/<path>`: AdamW moments (and float32 master weights);
//! * metadata `format = wan-train-checkpoint/1`, `step`, `rng_state` (the [`Rng`] `u64`),
//!   plus any caller entries (model config, run settings).
//!
//! Resuming restores the parameters, optimizer and RNG bit for bit, so the next losses
//! equal an uninterrupted run's (tested in `tests/train_checkpoint.rs`).
//! [`export_dit`] writes a plain official-key DiT file (`WanModel::load`-able).
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use mlx_rs::Array;
use mlx_rs::module::ModuleParameters;

use crate::checkpoint::safetensors::{SafeTensors, save};
use crate::checkpoint::to_pytorch_layout;
use crate::dit::{WanModel, keys};
use crate::error::{Error, Result};
use crate::train::objective::Rng;
use crate::train::trainer::Trainer;

pub const FORMAT: &str = "wan-train-checkpoint/1";

/// What a checkpoint restores besides the tensors.
#[derive(Debug, Clone)]
pub struct Resume {
    pub step: u64,
    pub rng: Rng,
    pub metadata: BTreeMap<String, String>,
}

pub fn save_checkpoint<M: ModuleParameters>(
    path: &Path,
    model: &M,
    trainer: &Trainer,
    rng: &Rng,
    extra: &BTreeMap<String, String>,
) -> Result<()> {
    let mut tensors = BTreeMap::new();
    for (k, a) in model.trainable_parameters().flatten() {
        tensors.insert(format!("model/{k}"), a.clone());
    }
    for (k, a) in trainer.opt.state_tensors() {
        tensors.insert(format!("optim/{k}"), a);
    }
    let mut meta = extra.clone();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("step".into(), trainer.opt.step.to_string());
    meta.insert("rng_state".into(), rng.state.to_string());
    save(path, &tensors, &meta)
}

/// Restore model parameters and optimizer state; the model must have exactly the
/// checkpoint's trainable parameters (every mismatch is reported at once).
pub fn load_checkpoint<M: ModuleParameters>(
    path: &Path,
    model: &mut M,
    trainer: &mut Trainer,
) -> Result<Resume> {
    let st = SafeTensors::open(path)?;
    let meta = st.metadata().clone();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::format(
            path,
            format!("not a training checkpoint ({FORMAT})"),
        ));
    }
    let num = |k: &str| -> Result<u64> {
        meta.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Error::format(path, format!("metadata `{k}` missing or not a number")))
    };
    let (step, rng_state) = (num("step")?, num("rng_state")?);

    let expected: BTreeMap<String, Vec<i32>> = model
        .trainable_parameters()
        .flatten()
        .iter()
        .map(|(k, a)| (k.to_string(), a.shape().to_vec()))
        .collect();
    let mut problems = Vec::new();
    let mut params = HashMapParams::new();
    let mut optim = BTreeMap::new();
    for name in st.names() {
        if let Some(k) = name.strip_prefix("model/") {
            match expected.get(k) {
                None => problems.push(format!("unexpected `{name}`")),
                Some(shape) if st.info(name).map(|i| &i.shape) != Some(shape) => {
                    problems.push(format!(
                        "`{name}`: expected shape {shape:?}, got {:?}",
                        st.info(name).map(|i| &i.shape)
                    ))
                }
                Some(_) => {
                    params.insert(Rc::from(k), st.array(name)?);
                }
            }
        } else if let Some(k) = name.strip_prefix("optim/") {
            optim.insert(k.to_string(), st.array(name)?);
        } else {
            problems.push(format!("unexpected `{name}`"));
        }
    }
    for k in expected.keys() {
        if !params.contains_key(k.as_str()) {
            problems.push(format!("missing `model/{k}`"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Weights(problems));
    }
    let arrays: Vec<&Array> = params.values().chain(optim.values()).collect();
    mlx_rs::transforms::eval(arrays)?;
    model.update_flattened(params);
    trainer.opt.load_state(step, optim)?;
    Ok(Resume {
        step,
        rng: Rng::new(rng_state),
        metadata: meta,
    })
}

type HashMapParams = std::collections::HashMap<Rc<str>, Array>;

/// Write the DiT's weights under official keys in PyTorch layout, with its config as
/// metadata `config` (JSON), so `WanModel::load` (and the CLIs) can read the result.
pub fn export_dit(path: &Path, model: &WanModel) -> Result<()> {
    let mut tensors = BTreeMap::new();
    for (k, a) in model.parameters().flatten() {
        let key = keys::to_official(&k);
        let a = a.as_dtype(mlx_rs::Dtype::Float32)?;
        let shape = a.shape().to_vec();
        tensors.insert(key.clone(), to_pytorch_layout(&key, a, &shape)?);
    }
    let config = serde_json::to_string(&model.config)
        .map_err(|e| Error::Config(format!("serialising the DiT config: {e}")))?;
    save(
        path,
        &tensors,
        &BTreeMap::from([("config".to_string(), config)]),
    )
}

/// Read a file written by [`export_dit`] back into a model.
pub fn load_exported_dit(path: &Path) -> Result<WanModel> {
    let st = SafeTensors::open(path)?;
    let cfg = st
        .metadata()
        .get("config")
        .ok_or_else(|| Error::format(path, "metadata `config` missing"))?;
    let cfg = crate::dit::WanConfig::from_json(cfg)?;
    let mut tensors = BTreeMap::new();
    for n in st.names() {
        tensors.insert(n.to_string(), st.array(n)?);
    }
    WanModel::load(cfg, &tensors)
}
