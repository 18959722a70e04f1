//! The automatic plan: given the models, the job and the machine, the best-quality way to
//! run that fits the budget (a fraction of the machine's memory), with the predicted peak
//! of every phase — or a refusal, before anything is loaded, naming what would fit.
//!
//! Phases run one after another and only what a phase needs is resident (the pipeline's
//! phased residency): `text` (umT5, released after), `image` (VAE encode of the
//! conditioning image), `load` (the DiT(s) being read), `denoise` (DiT(s), contexts,
//! K/V cache, sampler state, one step's working set), `decode` (VAE, one tile, the video).
//!
//! Choices, best first: compute dtype (the backend's default, then bf16 on the CPU), dense
//! weights before q8 before q4 (a quantized folder, or on-load quantization when the
//! runtime has it), both A14B experts resident before one at a time, CFG batched before
//! sequential, each DiT block over the whole sequence before the fewest token chunks that
//! fit, the VAE kept from the image encode to the decode before reloading it, the
//! VAE decode untiled (exactly official) before the largest tile that fits.
use std::collections::BTreeMap;

use mlx_rs::Dtype;
use serde::Serialize;

use super::constants::{Backend, Constants, RUNTIME, Runtime};
use super::model;
use crate::checkpoint::Checkpoint;
use crate::config::Task;
use crate::dit::WanConfig;
use crate::error::{Error, Result};
use crate::quant::{QuantSpec, Recipe};
use crate::t5::T5Config;
use crate::vae::VaeConfig;
use crate::vae::tiling::Tiling;

/// Smallest VAE tile (latent cells) the plan goes down to.
pub const MIN_TILE: i32 = 4;

/// Smallest token chunk the plan goes down to.
pub const MIN_CHUNK_TOKENS: u64 = 1024;

/// The models of a checkpoint, as far as memory is concerned (shapes and stored dtypes).
#[derive(Debug, Clone)]
pub struct Arch {
    /// One DiT (A14B: each expert has this architecture).
    pub dit: WanConfig,
    pub experts: u32,
    pub t5: T5Config,
    pub vae: VaeConfig,
    /// Dtype the DiT weights are stored in (official folders: f32; converted: bf16).
    pub dit_source: Dtype,
    /// The folder's DiT is already quantized with this setting.
    pub folder_quant: Option<QuantSpec>,
    /// Every DiT tensor (official key, shape), and the VAE's bytes: computed once.
    pub dit_params: Vec<(String, Vec<i32>)>,
    pub vae_bytes: u64,
}

impl Arch {
    /// The official architecture of a task (official folder: f32 DiT).
    pub fn official(task: Task) -> Self {
        let cfg = task.config();
        let dit = match task {
            Task::Ti2v5B => WanConfig::ti2v_5b(),
            Task::T2vA14B => WanConfig::t2v_a14b(),
            Task::I2vA14B => WanConfig::i2v_a14b(),
        };
        Self::new(
            dit,
            if cfg.boundary.is_some() { 2 } else { 1 },
            T5Config::umt5_xxl(),
            VaeConfig::official(cfg.vae),
            Dtype::Float32,
            None,
        )
        .expect("the official configs are valid")
    }

    pub fn new(
        dit: WanConfig,
        experts: u32,
        t5: T5Config,
        vae: VaeConfig,
        dit_source: Dtype,
        folder_quant: Option<QuantSpec>,
    ) -> Result<Self> {
        Ok(Self {
            dit_params: model::dit_params(&dit)?,
            vae_bytes: model::vae_bytes(&vae)?,
            dit,
            experts,
            t5,
            vae,
            dit_source,
            folder_quant,
        })
    }
}

impl Arch {
    /// Shapes and stored dtypes of a folder, from headers and configs only (nothing is
    /// loaded). A quantized folder (`convert --quantize`) is read with
    /// [`crate::quant::folder_quantization`].
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<Self> {
        let expert = ck.dits[0].expert;
        let dit = ck.dit_config(expert)?;
        let src = ck.dit_source(expert)?;
        use crate::checkpoint::TensorSource;
        let dit_source = src
            .tensor_dtype("blocks.0.ffn.0.weight")
            .map(|d| d.to_mlx())
            .unwrap_or(Dtype::Float32);
        // The DiT's setting (config.json and the weights' headers must agree).
        let folder_quant = crate::quant::folder_quantization(&ck.root)?
            .dit
            .map(|r| r.spec);
        let t5 = T5Config::infer(ck.t5_source()?.as_ref())?;
        Self::new(
            dit,
            ck.dits.len() as u32,
            t5,
            ck.vae_config()?,
            dit_source,
            folder_quant,
        )
    }
}

/// What is generated (what memory depends on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub task: Task,
    /// Output (W, H).
    pub size: (i32, i32),
    pub frame_num: i32,
    /// A conditioning image is encoded (ti2v-5B image→video, i2v-A14B).
    pub image: bool,
    /// A LoRA is merged at load.
    pub lora: bool,
    /// Both contexts come from the prompt cache: umT5 is never loaded.
    pub text_cached: bool,
}

/// The machine a plan must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub bytes: u64,
    pub backend: Backend,
}

/// Explicit choices that the plan must keep (flags of `generate`, the app's settings);
/// `None` leaves the choice to the plan.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub dtype: Option<Dtype>,
    /// `Some(None)`: dense weights, `Some(Some(q))`: this quantization.
    pub quantize: Option<Option<QuantSpec>>,
    pub one_expert_at_a_time: Option<bool>,
    pub batch_cfg: Option<bool>,
    pub t5_dtype: Option<Dtype>,
    /// `Some(None)`: untiled decode, `Some(Some(t))`: tiles of `t` latent cells.
    pub vae_tile: Option<Option<i32>>,
    /// Token chunks per DiT block (1: the whole sequence at once).
    pub token_chunks: Option<u32>,
}

/// How to run: everything the pipeline needs to know.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// DiT compute dtype.
    #[serde(serialize_with = "ser_dtype")]
    pub dtype: Dtype,
    /// DiT quantization (`None`: dense), from the folder or quantized while loading.
    pub quantization: Option<QuantSpec>,
    pub quantize_on_load: bool,
    /// A14B: only the active expert resident.
    pub one_expert_at_a_time: bool,
    /// Cond and uncond as one batch of two.
    pub batch_cfg: bool,
    /// Each DiT block runs over this many token chunks, one evaluation each (1: the whole
    /// sequence at once; more: a smaller step working set, the same arithmetic).
    pub token_chunks: u32,
    #[serde(serialize_with = "ser_dtype")]
    pub t5_dtype: Dtype,
    /// umT5 is dropped (and MLX's cache cleared) before the DiT is read. Always true.
    pub t5_released: bool,
    /// Both contexts come from the prompt cache (umT5 never loaded).
    pub text_from_cache: bool,
    /// Keep the VAE loaded for the image encode through the denoise to the decode.
    pub keep_vae: bool,
    /// VAE decode tiles (`None`: the whole frame, exactly official).
    #[serde(serialize_with = "ser_tiling")]
    pub vae_tile: Option<Tiling>,
    /// VAE encode tiles for the conditioning image (`None`: the whole frame).
    #[serde(serialize_with = "ser_tiling")]
    pub vae_encode_tile: Option<Tiling>,
}

fn ser_dtype<S: serde::Serializer>(d: &Dtype, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(dtype_name(*d))
}

fn ser_tiling<S: serde::Serializer>(
    t: &Option<Tiling>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        None => s.serialize_none(),
        Some(t) => {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry("tile", &t.tile)?;
            m.serialize_entry("overlap", &t.overlap)?;
            m.end()
        }
    }
}

/// `f32` / `bf16` / `f16`.
pub fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Bfloat16 => "bf16",
        Dtype::Float16 => "f16",
        _ => "f32",
    }
}

/// `f32` / `bf16` (also `float32` / `bfloat16`).
pub fn parse_dtype(s: &str) -> Result<Dtype> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(Dtype::Float32),
        "bf16" | "bfloat16" => Ok(Dtype::Bfloat16),
        d => Err(Error::Input(format!(
            "dtype must be f32 or bf16, got `{d}`"
        ))),
    }
}

impl Plan {
    /// The words after the peak in the app's plan line: `q8 · one expert · tiled decode`.
    pub fn tags(&self) -> Vec<String> {
        let mut t = vec![match self.quantization {
            Some(q) => q.name(),
            None => dtype_name(self.dtype).to_string(),
        }];
        if self.one_expert_at_a_time {
            t.push("one expert at a time".into());
        }
        if !self.batch_cfg {
            t.push("sequential CFG".into());
        }
        if self.token_chunks > 1 {
            t.push(format!("{} token chunks", self.token_chunks));
        }
        if self.text_from_cache {
            t.push("cached prompt".into());
        }
        if self.vae_encode_tile.is_some() {
            t.push("tiled encode".into());
        }
        if self.vae_tile.is_some() {
            t.push("tiled decode".into());
        }
        t
    }
}

/// The plan for a job, or why none fits.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub fits: bool,
    /// The largest phase.
    pub predicted_peak_bytes: u64,
    /// Predicted peak of each phase (`text`, `image`, `load`, `denoise`, `decode`).
    pub phases: BTreeMap<String, u64>,
    /// What may be used: `budget_fraction` of the machine.
    pub budget_bytes: u64,
    pub machine_bytes: u64,
    pub backend: Backend,
    /// The chosen plan (on refusal: the leanest one that was tried).
    pub plan: Plan,
    /// Why nothing fits, and what would.
    pub reason: Option<String>,
    /// `≈ 11.8 GB of 16 GB · q8 · tiled decode`
    pub summary: String,
}

/// Gigabytes as Apple counts a Mac's memory (a "16 GB" Mac has 16 GiB), one decimal;
/// megabytes below 1 GB.
pub fn gb(bytes: u64) -> String {
    if bytes < GIB {
        format!("{:.0} MB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} GB", bytes as f64 / GIB as f64)
    }
}

const GIB: u64 = 1 << 30;

/// Machine sizes for "a bigger machine" suggestions (GB, Apple's configurations).
const MACHINES_GB: [u64; 12] = [8, 16, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512];

/// Everything about one candidate: the phases' bytes.
struct Eval {
    plan: Plan,
    phases: BTreeMap<String, u64>,
}

impl Eval {
    fn peak(&self) -> u64 {
        self.phases.values().copied().max().unwrap_or(0)
    }
}

/// The planner: shapes, job, machine, runtime abilities, overrides.
#[derive(Clone, Copy)]
pub struct Planner<'a> {
    pub arch: &'a Arch,
    pub machine: Machine,
    pub overrides: &'a Overrides,
    pub runtime: Runtime,
}

impl<'a> Planner<'a> {
    pub fn new(arch: &'a Arch, machine: Machine, overrides: &'a Overrides) -> Self {
        Self {
            arch,
            machine,
            overrides,
            runtime: RUNTIME,
        }
    }

    fn k(&self) -> &'static Constants {
        self.machine.backend.constants()
    }

    fn budget(&self, machine_bytes: u64) -> u64 {
        (machine_bytes as f64 * self.k().budget_fraction) as u64
    }

    fn latent(&self, job: &Job) -> Result<[i32; 4]> {
        let cfg = job.task.config();
        let f = cfg.latent_frames(job.frame_num)?;
        let (w, h) = job.size;
        if w <= 0 || h <= 0 {
            return Err(Error::Input(format!("size {w}×{h} must be positive")));
        }
        Ok([cfg.z_dim, f, h / cfg.vae_stride[1], w / cfg.vae_stride[2]])
    }

    /// The backend's default first, then bf16 (the CPU's memory fallback).
    fn dtypes(&self, pinned: Option<Dtype>) -> Vec<Dtype> {
        let first = self.machine.backend.default_dtype();
        match pinned {
            Some(d) => vec![d],
            None if first == Dtype::Bfloat16 => vec![first],
            None => vec![first, Dtype::Bfloat16],
        }
    }

    /// Quantization levels in quality order, with whether each is done while loading.
    fn quant_levels(&self) -> Vec<(Option<QuantSpec>, bool)> {
        let on_load = |q: QuantSpec| (Some(q), self.arch.folder_quant != Some(q));
        match (self.overrides.quantize, self.arch.folder_quant) {
            (Some(choice), _) => vec![choice.map_or((None, false), on_load)],
            (None, Some(q)) => vec![(Some(q), false)],
            (None, None) if self.runtime.on_load_quantization => vec![
                (None, false),
                (Some(QuantSpec::Q8), true),
                (Some(QuantSpec::Q4), true),
            ],
            (None, None) => vec![(None, false)],
        }
    }

    /// Token chunks per block to try, fewest first: the whole sequence, then halving the
    /// chunk down to [`MIN_CHUNK_TOKENS`] (smaller chunks buy little memory — the block's
    /// full-length tensors stay — and cost a synchronisation each).
    fn chunk_options(&self, job: &Job) -> Result<Vec<u32>> {
        if let Some(n) = self.overrides.token_chunks {
            return Ok(vec![n.max(1)]);
        }
        let tokens = model::dit_tokens(&self.arch.dit, self.latent(job)?);
        Ok(std::iter::successors(Some(1u32), |n| n.checked_mul(2))
            .take_while(|&n| n == 1 || tokens / n as u64 >= MIN_CHUNK_TOKENS)
            .collect())
    }

    fn bools(o: Option<bool>, default_first: bool) -> Vec<bool> {
        match o {
            Some(v) => vec![v],
            None => vec![default_first, !default_first],
        }
    }

    /// The text phase: umT5 weights + one prompt's encode (prompts run one at a time).
    fn text_bytes(&self, job: &Job, t5_dtype: Dtype) -> u64 {
        if job.text_cached {
            return 0;
        }
        let a = self.arch;
        let tokens = crate::t5::TEXT_LEN as u64;
        model::t5_bytes(&a.t5, t5_dtype)
            + model::t5_encode_bytes(&a.t5, tokens, t5_dtype, self.k())
            + 2 * tokens * a.t5.dim as u64 * 4
    }

    /// Contexts kept from the text phase: two `[≤ text_len, text_dim]` f32.
    fn contexts(&self) -> u64 {
        2 * crate::t5::TEXT_LEN as u64 * self.arch.dit.text_dim as u64 * 4
    }

    /// The image phase: VAE weights, the input (ti2v: one frame; i2v-A14B: the whole clip
    /// with zero frames, joined), one chunk of the encoder over a tile of `tile` latent
    /// cells (`None`: the whole frame).
    fn image_bytes(&self, job: &Job, vae: u64, tile: Option<i32>) -> Result<u64> {
        let (w, h) = job.size;
        let [_, _, lh, lw] = self.latent(job)?;
        let (th, tw) = tile.map_or((lh, lw), |t| (t.min(lh), t.min(lw)));
        let frames = if job.task == Task::I2vA14B {
            job.frame_num
        } else {
            1
        };
        let copies = if frames > 1 { 3 } else { 2 };
        Ok(vae
            + self.contexts()
            + copies * model::video_bytes(frames, w, h)
            + model::vae_encode_chunk_bytes(&self.arch.vae, frames, th, tw, self.k()))
    }

    /// Load and denoise phases of one DiT configuration.
    #[allow(clippy::too_many_arguments)]
    fn dit_phases(
        &self,
        job: &Job,
        dtype: Dtype,
        quant: Option<QuantSpec>,
        one_expert: bool,
        batch_cfg: bool,
        chunks: u32,
        vae_resident: u64,
    ) -> Result<(u64, u64)> {
        let a = self.arch;
        let recipe = quant.map(Recipe::all);
        let source = if a.folder_quant.is_some() {
            dtype
        } else {
            a.dit_source
        };
        let b = model::dit_bytes_of(&a.dit_params, dtype, recipe.as_ref(), source);
        let resident_experts = if a.experts > 1 && !one_expert { 2 } else { 1 };
        let dit = resident_experts * b.resident;
        // The DiT being read: with the per-tensor load transform, the finished tensors
        // plus the one being cast/quantized; without it (and to merge a LoRA, which runs
        // in float32) the whole DiT in float32 first, then cast.
        let f32_total =
            model::dit_bytes_of(&a.dit_params, Dtype::Float32, None, Dtype::Float32).resident;
        let loading = if self.runtime.per_tensor_load_cast && !job.lora {
            b.resident + b.largest_source_tensor
        } else {
            f32_total + b.largest_source_tensor
        };
        let load = vae_resident + self.contexts() + (resident_experts - 1) * b.resident + loading;
        let latent = self.latent(job)?;
        let tokens = model::dit_tokens(&a.dit, latent);
        let batch = if batch_cfg { 2 } else { 1 };
        // With the K/V cache the embedded contexts are a transient of computing the K/V
        // (once per run); without it every step embeds them again and keeps them.
        let (kv, embedded) = if self.runtime.context_kv_cache {
            (
                resident_experts * model::context_kv_bytes(&a.dit, 2, dtype),
                0,
            )
        } else {
            (0, model::dit_context_bytes(&a.dit, 2))
        };
        let cond = if job.task == Task::I2vA14B {
            a.dit.in_dim - latent[0]
        } else {
            0
        };
        let denoise = vae_resident
            + self.contexts()
            + dit
            + embedded
            + kv
            + model::sampler_state_bytes(latent, cond)
            + model::dit_step_bytes(&a.dit, tokens, batch, dtype, self.k(), chunks);
        Ok((load, denoise))
    }

    /// The decode phase with tiles of `tile` latent cells (`None`: whole frame).
    fn decode_bytes(&self, job: &Job, vae: u64, tile: Option<i32>) -> Result<u64> {
        let [_, _, lh, lw] = self.latent(job)?;
        let (th, tw) = match tile {
            Some(t) => (t.min(lh), t.min(lw)),
            None => (lh, lw),
        };
        let (w, h) = job.size;
        let k = self.k();
        Ok(vae
            + model::vae_decode_chunk_bytes(&self.arch.vae, th, tw, k)
            + (k.vae_video_copies * model::video_bytes(job.frame_num, w, h) as f64) as u64)
    }

    /// Tile for a VAE phase whose bytes are `f(tile)`: the whole frame when it fits the
    /// budget (exactly official), else the largest tile that does not raise the job's peak
    /// above `target` (tile size buys little quality), else the largest that fits the
    /// budget. `None` when not even the smallest tile fits.
    fn pick_tile(
        &self,
        pinned: Option<Option<i32>>,
        cells: i32,
        target: u64,
        budget: u64,
        f: &dyn Fn(Option<i32>) -> Result<u64>,
    ) -> Result<Option<Option<i32>>> {
        if let Some(t) = pinned {
            return Ok((f(t)? <= budget).then_some(t));
        }
        if f(None)? <= budget {
            return Ok(Some(None));
        }
        let tiles: Vec<i32> = (MIN_TILE..cells).rev().collect();
        for limit in [target.min(budget), budget] {
            for &t in &tiles {
                if f(Some(t))? <= limit {
                    return Ok(Some(Some(t)));
                }
            }
        }
        Ok(None)
    }

    /// The best plan that fits `budget`, or the leanest one tried and the phase that broke.
    fn search(&self, job: &Job, budget: u64) -> Result<std::result::Result<Eval, (Eval, String)>> {
        let a = self.arch;
        let vae = a.vae_bytes;
        let [_, _, lh, lw] = self.latent(job)?;
        let cells = lh.max(lw);
        // Text: the best umT5 dtype that fits.
        let t5s = self.dtypes(self.overrides.t5_dtype);
        let t5_dtype = t5s
            .iter()
            .copied()
            .find(|&d| self.text_bytes(job, d) <= budget)
            .unwrap_or(*t5s.last().expect("one dtype at least"));
        let text = self.text_bytes(job, t5_dtype);
        let tiling = |t: Option<i32>| {
            t.map(|t| Tiling {
                tile: t,
                overlap: (t / 4).max(1),
            })
        };
        // Denoise (+ load): quality first, then speed; then the VAE tiles around it.
        let experts: Vec<bool> = if a.experts > 1 {
            Self::bools(self.overrides.one_expert_at_a_time, false)
        } else {
            vec![false]
        };
        let keeps = if job.image {
            vec![true, false]
        } else {
            vec![false]
        };
        let chunk_options = self.chunk_options(job)?;
        let mut leanest: Option<Eval> = None;
        for (quant, on_load) in self.quant_levels() {
            for &dtype in &self.dtypes(self.overrides.dtype) {
                for &one in &experts {
                    for &batch_cfg in &Self::bools(self.overrides.batch_cfg, true) {
                        for (chunks, &keep) in chunk_options
                            .iter()
                            .flat_map(|&n| keeps.iter().map(move |k| (n, k)))
                        {
                            let (load, denoise) = self.dit_phases(
                                job,
                                dtype,
                                quant,
                                one,
                                batch_cfg,
                                chunks,
                                if keep { vae } else { 0 },
                            )?;
                            let target = load.max(denoise).max(text);
                            let enc = if job.image {
                                self.pick_tile(None, cells, target, budget, &|t| {
                                    self.image_bytes(job, vae, t)
                                })?
                            } else {
                                Some(None)
                            };
                            let dec = self.pick_tile(
                                self.overrides.vae_tile,
                                cells,
                                target,
                                budget,
                                &|t| self.decode_bytes(job, vae, t),
                            )?;
                            let (enc_t, dec_t) = (enc.flatten(), dec.flatten());
                            let mut phases = BTreeMap::new();
                            phases.insert("text".to_string(), text);
                            if job.image {
                                phases.insert(
                                    "image".to_string(),
                                    self.image_bytes(job, vae, enc_t)?,
                                );
                            }
                            phases.insert("load".to_string(), load);
                            phases.insert("denoise".to_string(), denoise);
                            phases
                                .insert("decode".to_string(), self.decode_bytes(job, vae, dec_t)?);
                            let eval = Eval {
                                plan: Plan {
                                    dtype,
                                    quantization: quant,
                                    quantize_on_load: on_load,
                                    one_expert_at_a_time: one,
                                    batch_cfg,
                                    token_chunks: chunks,
                                    t5_dtype,
                                    t5_released: true,
                                    text_from_cache: job.text_cached,
                                    keep_vae: keep,
                                    vae_tile: tiling(dec_t),
                                    vae_encode_tile: tiling(enc_t),
                                },
                                phases,
                            };
                            if eval.peak() <= budget && enc.is_some() && dec.is_some() {
                                return Ok(Ok(eval));
                            }
                            if leanest.as_ref().is_none_or(|l| eval.peak() < l.peak()) {
                                leanest = Some(eval);
                            }
                        }
                    }
                }
            }
        }
        let eval = leanest.expect("at least one candidate");
        let (worst, bytes) = eval
            .phases
            .iter()
            .max_by_key(|(_, b)| **b)
            .map(|(k, &b)| (k.clone(), b))
            .unwrap_or_default();
        let what = format!("the {worst} phase needs ≈ {}", gb(bytes));
        Ok(Err((eval, what)))
    }

    /// Choose the plan for `job` on this machine.
    pub fn choose(&self, job: &Job) -> Result<PlanReport> {
        let budget = self.budget(self.machine.bytes);
        let (eval, reason) = match self.search(job, budget)? {
            Ok(e) => (e, None),
            Err((e, what)) => {
                let hint = self.suggest(job)?;
                (
                    e,
                    Some(format!(
                        "{what} but {} of this {} machine may be used; {hint}",
                        gb(budget),
                        gb(self.machine.bytes)
                    )),
                )
            }
        };
        let peak = eval.peak();
        let fits = reason.is_none();
        let summary = if fits {
            format!(
                "≈ {} of {} · {}",
                gb(peak),
                gb(self.machine.bytes),
                eval.plan.tags().join(" · ")
            )
        } else {
            format!("does not fit: ≈ {} of {}", gb(peak), gb(self.machine.bytes))
        };
        Ok(PlanReport {
            fits,
            predicted_peak_bytes: peak,
            phases: eval.phases,
            budget_bytes: budget,
            machine_bytes: self.machine.bytes,
            backend: self.machine.backend,
            plan: eval.plan,
            reason,
            summary,
        })
    }

    fn fits(&self, job: &Job) -> Result<bool> {
        Ok(self.search(job, self.budget(self.machine.bytes))?.is_ok())
    }

    /// What would fit instead: fewer frames, a smaller size, q4, a bigger machine.
    fn suggest(&self, job: &Job) -> Result<String> {
        let mut ideas = Vec::new();
        // Fewer frames (4n+1), the most that fit.
        let mut n = (job.frame_num - 1) / 4;
        while n > 0 {
            n -= 1;
            let j = Job {
                frame_num: 4 * n + 1,
                ..*job
            };
            if self.fits(&j)? {
                ideas.push(format!("{} frames", j.frame_num));
                break;
            }
        }
        // A smaller size of the same aspect (multiples of the task's size step).
        let (mw, mh) = job.task.config().size_multiple();
        for s in [0.75, 0.5, 0.375, 0.25] {
            let w = ((job.size.0 as f64 * s) as i32 / mw).max(1) * mw;
            let h = ((job.size.1 as f64 * s) as i32 / mh).max(1) * mh;
            let j = Job {
                size: (w, h),
                ..*job
            };
            if (w, h) != job.size && self.fits(&j)? {
                ideas.push(format!("{w}×{h}"));
                break;
            }
        }
        // q4, when the folder or the runtime allows it and the user did not pin it.
        if self.overrides.quantize.is_none()
            && self.arch.folder_quant.is_none()
            && !self.runtime.on_load_quantization
        {
            let o = Overrides {
                quantize: Some(Some(QuantSpec::Q4)),
                ..self.overrides.clone()
            };
            let p = Planner {
                overrides: &o,
                ..*self
            };
            if p.fits(job)? {
                ideas.push("q4 weights (convert --quantize q4)".into());
            }
        }
        // A bigger machine.
        if let Some(m) = MACHINES_GB.iter().find(|&&g| {
            let p = Planner {
                machine: Machine {
                    bytes: g * GIB,
                    ..self.machine
                },
                ..*self
            };
            g * GIB > self.machine.bytes && p.fits(job).unwrap_or(false)
        }) {
            ideas.push(format!("a {m} GB machine"));
        }
        Ok(if ideas.is_empty() {
            "no smaller setting fits either".into()
        } else {
            format!("would fit: {}", ideas.join(", or "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(task: Task, size: (i32, i32), frames: i32, gb: u64, backend: Backend) -> PlanReport {
        let arch = Arch::official(task);
        let o = Overrides::default();
        let mut p = Planner::new(
            &arch,
            Machine {
                bytes: gb << 30,
                backend,
            },
            &o,
        );
        p.runtime = Runtime::COMPLETE;
        p.choose(&Job {
            task,
            size,
            frame_num: frames,
            image: false,
            lora: false,
            text_cached: false,
        })
        .unwrap()
    }

    /// The README plan table (Metal, with the companion issues' runtime): which plan each
    /// Mac gets for the official sizes, and the refusal for a job no plan fits.
    #[test]
    fn readme_plan_table() {
        let ti2v = |gb| plan(Task::Ti2v5B, (1280, 704), 121, gb, Backend::Metal);
        let a14b = |gb| plan(Task::T2vA14B, (1280, 720), 81, gb, Backend::Metal);
        let q = |r: &PlanReport| r.plan.quantization.map(|q| q.bits);
        // TI2V-5B 1280×704×121: bf16 everywhere, the smaller Macs by token chunks.
        let shape = |r: &PlanReport| (r.fits, q(r), r.plan.batch_cfg, r.plan.token_chunks);
        let r16 = ti2v(16);
        assert_eq!(shape(&r16), (true, None, false, 8), "{r16:?}");
        assert!(r16.plan.vae_tile.is_some());
        let r24 = ti2v(24);
        assert_eq!(shape(&r24), (true, None, true, 4), "{r24:?}");
        let r32 = ti2v(32);
        assert_eq!(shape(&r32), (true, None, true, 1), "{r32:?}");
        for r in [&r16, &r24, &r32] {
            assert!(r.predicted_peak_bytes <= r.budget_bytes);
            assert_eq!(r.plan.dtype, Dtype::Bfloat16);
            assert_eq!(r.plan.t5_dtype, Dtype::Bfloat16);
            assert!(r.summary.starts_with('≈'), "{}", r.summary);
        }
        assert!(
            r16.summary
                .ends_with("bf16 · sequential CFG · 8 token chunks · tiled decode")
        );
        // A14B 1280×720×81: 32 GB fits at q8, one expert, by token chunks; 16 GB does not.
        let r = a14b(16);
        assert!(!r.fits);
        let reason = r.reason.as_deref().unwrap();
        assert!(reason.contains("the denoise phase needs"), "{reason}");
        assert!(reason.contains("a 24 GB machine"), "{reason}");
        let r = a14b(32);
        assert!(r.plan.one_expert_at_a_time, "{r:?}");
        assert_eq!(shape(&r), (true, Some(8), false, 16), "{r:?}");
        let r = a14b(48);
        assert!(r.plan.one_expert_at_a_time, "{r:?}");
        assert_eq!(shape(&r), (true, None, false, 16), "{r:?}");
        let r = a14b(64);
        assert!(r.plan.one_expert_at_a_time, "{r:?}");
        assert_eq!(shape(&r), (true, None, true, 8), "{r:?}");
        let r = a14b(128);
        assert!(!r.plan.one_expert_at_a_time, "{r:?}");
        assert_eq!(shape(&r), (true, None, true, 1), "{r:?}");
        assert_eq!(
            r.summary,
            format!(
                "≈ {} of 128.0 GB · bf16 · tiled decode",
                gb(r.predicted_peak_bytes)
            )
        );
    }

    /// A job that fits nothing is refused with every phase's bytes and what would fit.
    #[test]
    fn a_job_no_plan_fits_is_refused_with_a_suggestion() {
        // The CPU backend materialises the attention scores (for one chunk of queries
        // against every key): TI2V-5B at 720p does not fit 16 GB even in 16 token chunks.
        let r = plan(Task::Ti2v5B, (1280, 704), 121, 16, Backend::Cpu);
        assert!(!r.fits);
        let reason = r.reason.unwrap();
        assert!(reason.starts_with("the denoise phase needs ≈"), "{reason}");
        assert!(
            reason.contains("of this 16.0 GB machine may be used"),
            "{reason}"
        );
        assert!(reason.contains("would fit:"), "{reason}");
        assert!(reason.contains("frames"), "{reason}");
        // Its leanest try: bf16, CFG one pass at a time, the most chunks (≥ 1024 tokens).
        assert!(
            r.plan.dtype == Dtype::Bfloat16 && !r.plan.batch_cfg && r.plan.token_chunks == 16,
            "{:?}",
            r.plan
        );
        assert!(r.phases["denoise"] > r.budget_bytes);
        // Pinned choices are kept: dense weights and the whole sequence at once.
        let arch = Arch::official(Task::Ti2v5B);
        let o = Overrides {
            quantize: Some(None),
            token_chunks: Some(1),
            ..Overrides::default()
        };
        let mut p = Planner::new(
            &arch,
            Machine {
                bytes: 16 << 30,
                backend: Backend::Metal,
            },
            &o,
        );
        p.runtime = Runtime::COMPLETE;
        let job = Job {
            task: Task::Ti2v5B,
            size: (1280, 704),
            frame_num: 121,
            image: false,
            lora: false,
            text_cached: false,
        };
        let r = p.choose(&job).unwrap();
        assert!(
            !r.fits && r.plan.quantization.is_none() && r.plan.token_chunks == 1,
            "{r:?}"
        );
        // Bad jobs are errors, not plans.
        assert!(
            p.choose(&Job {
                frame_num: 8,
                ..job
            })
            .is_err()
        );
    }

    #[test]
    fn without_on_load_quantization_a_dense_folder_stays_dense() {
        let arch = Arch::official(Task::Ti2v5B);
        // Whole-sequence blocks (token chunks would fit bf16 in 16 GB).
        let o = Overrides {
            token_chunks: Some(1),
            ..Overrides::default()
        };
        let p = Planner {
            runtime: Runtime {
                on_load_quantization: false,
                ..Runtime::COMPLETE
            },
            ..Planner::new(
                &arch,
                Machine {
                    bytes: 16 << 30,
                    backend: Backend::Metal,
                },
                &o,
            )
        };
        let r = p
            .choose(&Job {
                task: Task::Ti2v5B,
                size: (1280, 704),
                frame_num: 121,
                image: false,
                lora: false,
                text_cached: false,
            })
            .unwrap();
        assert!(!r.fits && r.plan.quantization.is_none());
        assert!(r.reason.unwrap().contains("q4 weights"));
        // A folder already quantized to q8 is planned as such.
        let q8 = Arch {
            folder_quant: Some(QuantSpec::Q8),
            ..arch.clone()
        };
        let p = Planner { arch: &q8, ..p };
        let r = p
            .choose(&Job {
                task: Task::Ti2v5B,
                size: (1280, 704),
                frame_num: 121,
                image: false,
                lora: false,
                text_cached: false,
            })
            .unwrap();
        assert!(r.fits && r.plan.quantization == Some(QuantSpec::Q8) && !r.plan.quantize_on_load);
    }

    #[test]
    fn memory_sizes_parse_as_apple_counts_them() {
        assert_eq!(super::super::parse_bytes("16GB").unwrap(), 16 << 30);
        assert_eq!(super::super::parse_bytes(" 24 gb").unwrap(), 24 << 30);
        assert_eq!(super::super::parse_bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(super::super::parse_bytes("1000").unwrap(), 1000);
        assert!(super::super::parse_bytes("lots").is_err());
        assert!(super::super::parse_bytes("16XB").is_err());
        assert!(super::super::parse_bytes("-1GB").is_err());
        assert_eq!(gb(16 << 30), "16.0 GB");
        assert_eq!(gb(300 << 20), "300 MB");
    }
}
