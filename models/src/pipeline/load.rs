//! From a checkpoint folder to [`Components`](super::run::Components): which files a task
//! needs (official layouts, spec §7.1), their identity for the JSON sidecar, and loading.
use std::path::Path;

use mlx_rs::Dtype;
use serde_json::{Value, json};

use super::experts::{ExpertSlot, Experts};
use super::run::{LatentVae, PromptEncoder};
use super::vae_glue::VaeComponent;
use crate::checkpoint::folder::{Checkpoint, Expert};
use crate::config::Task;
use crate::dit::{DitLoad, WanModel};
use crate::error::{Error, Result};
use crate::lora_file::LoraSpec;
use crate::quant::Recipe;
use crate::vae::preview::{Previewer, ensure_previewer};

/// Loading knobs (ours, in place of `--offload_model` / `--convert_model_dtype`).
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// DiT compute dtype (float32 on CPU; bf16 on Metal).
    pub dtype: Dtype,
    /// A14B: keep only the active expert resident.
    pub one_expert_at_a_time: bool,
    /// LoRA / delta files (any format of `crate::lora_file`) merged at load with their scale
    /// (the merge runs in float32, the result is stored in the compute dtype; with
    /// `quantize` before quantizing; into an already quantized folder as an unmerged side
    /// path): one file for every
    /// DiT, or per A14B expert (LoRAs for A14B are trained per expert, e.g. Lightning's
    /// `high_noise_model` / `low_noise_model` pair or `train_lora --expert`).
    pub lora: Option<LoraSpec>,
    /// Folder for previewers fitted on first use (folders without `preview_mlx.safetensors`,
    /// e.g. official ones); `None`: previews only where the folder has one.
    pub preview_cache: Option<std::path::PathBuf>,
    /// Quantize the DiT(s) at load with this recipe (a dense bf16/f32 folder, quantized
    /// tensor by tensor while reading: the dense model is never resident). A folder that is
    /// already quantized loads as stored; asking it for another setting is an error.
    pub quantize: Option<crate::quant::Recipe>,
}

/// Loaded models of one task.
pub struct Loaded {
    pub text: Box<dyn PromptEncoder>,
    pub vae: Box<dyn LatentVae>,
    pub experts: Experts,
}

/// Open a folder (official or converted layout) and check it fits `task` before anything
/// heavy is read: the DiT kind(s), T5, tokenizer and VAE must all be there.
pub fn check_folder(dir: &Path, task: Task) -> Result<Checkpoint> {
    let ck = Checkpoint::open(dir)?;
    let found = ck.task()?;
    if found != task {
        return Err(Error::Input(format!(
            "{} holds a {} checkpoint, but --task is {} (wrong --ckpt_dir or --task?)",
            dir.display(),
            found.name(),
            task.name()
        )));
    }
    ck.t5_source()?;
    ck.tokenizer_path()?;
    let vae = ck.vae_config()?;
    if vae.kind != task.config().vae {
        return Err(Error::Input(format!(
            "{}: the VAE is {:?}, {} needs {:?}",
            dir.display(),
            vae.kind,
            task.name(),
            task.config().vae
        )));
    }
    Ok(ck)
}

/// Identity of a folder for the sidecar: canonical path and every file's size and mtime.
pub fn folder_identity(dir: &Path) -> Value {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(p);
            } else {
                let mtime = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs());
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                files.push(json!({"file": rel, "bytes": md.len(), "mtime": mtime}));
            }
        }
    }
    files.sort_by(|a, b| a["file"].as_str().cmp(&b["file"].as_str()));
    json!({
        "dir": std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        "files": files,
    })
}

fn load_dit(
    ck: &Checkpoint,
    expert: Expert,
    dtype: Dtype,
    lora: &Option<(std::path::PathBuf, f32)>,
    quantize: &Option<Recipe>,
) -> Result<WanModel> {
    // Every tensor is read straight into its compute dtype (or quantized) — see
    // `WanModel::load_with`. A LoRA for a model quantized at load is merged into the
    // dense weights first, then each Linear is quantized in place.
    let merge_first = lora.is_some() && quantize.is_some();
    let opts = DitLoad {
        dtype,
        quantize: if merge_first { None } else { quantize.clone() },
    };
    let mut m = ck.load_dit_with(expert, &opts)?;
    if let Some((path, scale)) = lora {
        let n = crate::train::lora::merge_lora(&mut m, path, *scale)?;
        eprintln!(
            "merged {n} LoRA adapter(s) from {} at scale {scale}",
            path.display()
        );
    }
    if let (true, Some(r)) = (merge_first, quantize) {
        match m.quantization()? {
            None => m.quantize(r)?,
            Some(s) if s == r.spec => {}
            Some(s) => {
                return Err(Error::Input(format!(
                    "these DiT weights are already quantized ({}); they cannot be \
                     re-quantized to {}",
                    s.name(),
                    r.spec.name()
                )));
            }
        }
    }
    Ok(m)
}

/// Tokenizer + umT5 of a folder as the pipelines' prompt encoder.
struct T5Prompts(crate::t5::TextEncoder);

impl PromptEncoder for T5Prompts {
    fn encode(&mut self, prompt: &str) -> Result<mlx_rs::Array> {
        let enc = self.0.encode(&[prompt])?;
        enc.contexts
            .into_iter()
            .next()
            .ok_or_else(|| Error::Input("text encoder returned no context".into()))
    }

    fn truncated_to(&self, prompt: &str) -> Result<Option<usize>> {
        let t = self.0.tokenizer.encode(prompt)?;
        Ok(t.truncated.then(|| self.0.tokenizer.text_len()))
    }

    fn token_ids(&self, prompt: &str) -> Result<Option<Vec<i64>>> {
        let t = self.0.tokenizer.encode(prompt)?;
        Ok(Some(t.ids[..t.length].iter().map(|&v| v as i64).collect()))
    }
}

/// Tokenizer + umT5 of a folder (official `.pth` or converted safetensors; dims inferred
/// from the weights), every weight in `dtype` (f32 on the CPU, bf16 on Metal).
pub fn load_text_encoder(ck: &Checkpoint, dtype: Dtype) -> Result<crate::t5::TextEncoder> {
    let tok = crate::t5::T5Tokenizer::from_file(ck.tokenizer_path()?, crate::t5::TEXT_LEN)?;
    let src = ck.t5_source()?;
    let config = crate::t5::T5Config::infer(src.as_ref())?;
    crate::t5::TextEncoder::load(tok, config, src.as_ref(), dtype)
}

/// Can every DiT of `ck` be loaded with `recipe` (headers only, before anything heavy)?
/// A dense folder: every tensor the recipe targets must be packable (an error names each
/// one that is not). A quantized folder: only with its own setting.
pub fn check_quantize(ck: &Checkpoint, recipe: &Recipe) -> Result<()> {
    recipe.spec.validate()?;
    let stored = crate::quant::folder_quantization(&ck.root)?;
    match stored.dit {
        Some(r) if r.spec == recipe.spec => Ok(()),
        Some(r) => Err(Error::Input(format!(
            "{} is already quantized ({}); it cannot be re-quantized to {} (use its dense folder)",
            ck.root.display(),
            r.describe(),
            recipe.spec.name()
        ))),
        None => {
            for d in &ck.dits {
                crate::quant::QuantizedSource::new(
                    ck.dit_source(d.expert)?,
                    recipe,
                    Dtype::Float32,
                )?;
            }
            Ok(())
        }
    }
}

/// Load every model of `task` from `dir` at once (parity runs and tests; generation uses
/// the phased [`super::phases::generate`], which never holds them together).
pub fn load(dir: &Path, task: Task, opts: &LoadOptions) -> Result<Loaded> {
    let ck = check_folder(dir, task)?;
    if let Some(r) = &opts.quantize {
        check_quantize(&ck, r)?;
    }
    let text = Box::new(T5Prompts(load_text_encoder(&ck, Dtype::Float32)?));
    let (vae, experts) = load_models(&ck, task, opts)?;
    Ok(Loaded { text, vae, experts })
}

/// The previewer for a folder: beside the weights, or fitted for its VAE file in
/// `preview_cache` (fitted now, with `vae`, when missing). Previews are a convenience: a
/// failed fit costs the previews, not the run.
pub fn previewer_for(
    ck: &Checkpoint,
    vae: &crate::vae::WanVae,
    preview_cache: Option<&Path>,
) -> Result<Option<Previewer>> {
    let dir = ck.root.as_path();
    match (preview_cache, &ck.vae) {
        (Some(cache), Some(file)) => match ensure_previewer(vae, dir, file, cache) {
            Ok((p, _)) => Ok(Some(p)),
            Err(e) => {
                eprintln!("warning: no live previews: {e}");
                Ok(None)
            }
        },
        _ => Previewer::load_beside(dir),
    }
}

/// VAE (+ previewer) and DiT(s) of an opened folder — everything but the text side.
pub fn load_models(
    ck: &Checkpoint,
    task: Task,
    opts: &LoadOptions,
) -> Result<(Box<dyn LatentVae>, Experts)> {
    if let Some(r) = &opts.quantize {
        check_quantize(ck, r)?;
    }
    let wan_vae = ck.load_vae()?;
    let previewer = previewer_for(ck, &wan_vae, opts.preview_cache.as_deref())?;
    let vae: Box<dyn LatentVae> = Box::new(VaeComponent::new(wan_vae, previewer));
    Ok((vae, load_experts(ck, task, opts)?))
}

/// The DiT(s) of `task` (A14B with `one_expert_at_a_time`: loaded on first use).
pub fn load_experts(ck: &Checkpoint, task: Task, opts: &LoadOptions) -> Result<Experts> {
    let dtype = opts.dtype;
    let quantize = &opts.quantize;
    let lora = opts.lora.as_ref().map(LoraSpec::resolved).transpose()?;
    if let Some(l) = &lora
        && l.is_per_expert()
        && task.config().boundary.is_none()
    {
        return Err(Error::Input(format!(
            "{} has one DiT; per-expert LoRAs (high/low) are for A14B tasks only",
            task.name()
        )));
    }
    let lora_for = |e: Expert| {
        let l = lora.as_ref()?;
        Some((l.file_for(e)?.to_path_buf(), l.scale))
    };
    let experts = match task.config().boundary {
        None => Experts::Single(Box::new(load_dit(
            ck,
            Expert::Main,
            dtype,
            &lora_for(Expert::Main),
            quantize,
        )?)),
        Some(b) => {
            let slot = |e: Expert| -> Result<ExpertSlot> {
                let lora = lora_for(e);
                if opts.one_expert_at_a_time {
                    let (ck, q) = (ck.clone(), quantize.clone());
                    Ok(ExpertSlot::lazy(move || load_dit(&ck, e, dtype, &lora, &q)))
                } else {
                    Ok(ExpertSlot::loaded(load_dit(ck, e, dtype, &lora, quantize)?))
                }
            };
            Experts::Pair {
                high: slot(Expert::HighNoise)?,
                low: slot(Expert::LowNoise)?,
                boundary_t: b * 1000.0,
                one_at_a_time: opts.one_expert_at_a_time,
            }
        }
    };
    Ok(experts)
}
