//! LoRA and weight-delta files for a Wan DiT, in the formats users have, parsed to the
//! official parameter keys they change ([`read`]) and merged into a loaded model ([`merge`]).
//!
//! Accepted key layouts (any of the prefixes `diffusion_model.`, `model.diffusion_model.`,
//! `transformer.`, `base_model.model.`, or none):
//! - **(a)** ComfyUI / Lightning: `<site>.lora_down.weight` `[r, in]`, `<site>.lora_up.weight`
//!   `[out, r]`, `<site>.alpha` (scale α/r);
//! - **(b)** PEFT / diffusers: `<site>.lora_A.weight`, `<site>.lora_B.weight`, alpha optional
//!   (absent: α = r, scale 1);
//! - **(c)** kohya / musubi-tuner: `lora_unet_<site with _>.lora_down.weight` / `.lora_up.weight`
//!   / `.alpha` (also `lora_transformer_`);
//! - **(d)** diffusers-native names for the site: `blocks.N.attn1.to_q` (self-attention),
//!   `attn2` (cross), `to_out.0`, `ffn.net.0.proj`, `ffn.net.2`, `norm2` (our `norm3`),
//!   `scale_shift_table`, `condition_embedder.{time_embedder,text_embedder}.linear_{1,2}`,
//!   `condition_embedder.time_proj`, `proj_out`;
//! - **(e)** full deltas: `<site>.diff` (added to the weight — or to the parameter itself, e.g.
//!   `modulation`) and `<site>.diff_b` (added to the bias), on any parameter, blocks or not
//!   (`head.head`, `time_embedding.0`, `time_projection.1`, `text_embedding.2`, norms, …).
//!
//! `<site>` is an official key without its `.weight`, in official or diffusers naming. Every
//! tensor must map to a parameter of the model with a fitting shape: anything else is an error
//! that names every offending key, and nothing is merged.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};
use serde::{Deserialize, Serialize};

use crate::checkpoint::folder::Expert;
use crate::checkpoint::safetensors::SafeTensors;
use crate::checkpoint::{mlx_shape, to_mlx_layout};
use crate::dit::{WanModel, keys};
use crate::error::{Error, Result};

/// A change to one parameter (official key), before the user's scale.
#[derive(Debug, Clone)]
pub enum Delta {
    /// `W += (α/r)·up·down` for a `[out, in]` weight; `alpha: None` means α = r.
    LowRank {
        down: Array,
        up: Array,
        alpha: Option<f32>,
    },
    /// `p += diff` (official layout, the parameter's shape).
    Full(Array),
}

/// The parsed file: one delta per official parameter key.
#[derive(Debug, Clone, Default)]
pub struct LoraFile {
    pub deltas: BTreeMap<String, Delta>,
}

const PREFIXES: &[&str] = &[
    "model.diffusion_model.",
    "diffusion_model.",
    "base_model.model.",
    "transformer.",
];

/// Diffusers-native segments → official ones (whole-segment matches, in this order).
const DIFFUSERS: &[(&str, &str)] = &[
    (
        "condition_embedder.time_embedder.linear_1",
        "time_embedding.0",
    ),
    (
        "condition_embedder.time_embedder.linear_2",
        "time_embedding.2",
    ),
    (
        "condition_embedder.text_embedder.linear_1",
        "text_embedding.0",
    ),
    (
        "condition_embedder.text_embedder.linear_2",
        "text_embedding.2",
    ),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("proj_out", "head.head"),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
    ("attn1", "self_attn"),
    ("attn2", "cross_attn"),
    ("to_out.0", "o"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("norm2", "norm3"),
];

/// A diffusers-native site name in official naming (unchanged if already official).
fn from_diffusers(site: &str) -> String {
    if site == "scale_shift_table" {
        return "head.modulation".into();
    }
    let mut s = format!(".{site}.");
    for (d, o) in DIFFUSERS {
        s = s.replace(&format!(".{d}."), &format!(".{o}."));
    }
    s = s.replace(".scale_shift_table.", ".modulation.");
    s.trim_matches('.').to_string()
}

/// What a tensor name says: the site (official naming) and which part of an adapter it is.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Down,
    Up,
    Alpha,
    Diff,
    DiffBias,
}

const SUFFIXES: &[(&str, Part)] = &[
    (".lora_down.weight", Part::Down),
    (".lora_up.weight", Part::Up),
    (".lora_A.weight", Part::Down),
    (".lora_B.weight", Part::Up),
    (".alpha", Part::Alpha),
    (".diff_b", Part::DiffBias),
    (".diff", Part::Diff),
];

/// Official sites of a model (parameter keys without `.weight`), and their kohya spelling.
struct Sites {
    /// official key → shape (MLX layout)
    params: BTreeMap<String, Vec<i32>>,
    kohya: HashMap<String, String>,
}

impl Sites {
    fn of(model: &WanModel) -> Self {
        // official key → MLX-layout shape (only the patch-embedding conv differs)
        let params: BTreeMap<String, Vec<i32>> = model.expected_params().into_iter().collect();
        let mut kohya = HashMap::new();
        for key in params.keys() {
            let site = key.strip_suffix(".weight").unwrap_or(key);
            kohya.insert(site.replace('.', "_"), site.to_string());
        }
        Self { params, kohya }
    }

    /// `(site, part)` of a tensor name, or `None` when it is no adapter tensor we know.
    fn parse(&self, name: &str) -> Option<(String, Part)> {
        let (stem, part) = SUFFIXES
            .iter()
            .find_map(|(s, p)| name.strip_suffix(s).map(|stem| (stem, p.clone())))?;
        for kp in ["lora_unet_", "lora_transformer_"] {
            if let Some(k) = stem.strip_prefix(kp) {
                let official = self
                    .kohya
                    .get(k)
                    .cloned()
                    .or_else(|| self.kohya_diffusers(k))?;
                return Some((official, part));
            }
        }
        let stem = PREFIXES
            .iter()
            .find_map(|p| stem.strip_prefix(p))
            .unwrap_or(stem);
        Some((from_diffusers(stem), part))
    }

    /// kohya spelling of a diffusers-native site (`blocks_0_attn1_to_q`).
    fn kohya_diffusers(&self, k: &str) -> Option<String> {
        let mut s = format!("_{k}_");
        for (d, o) in DIFFUSERS {
            s = s.replace(
                &format!("_{}_", d.replace('.', "_")),
                &format!("_{}_", o.replace('.', "_")),
            );
        }
        s = s.replace("_scale_shift_table_", "_modulation_");
        self.kohya.get(s.trim_matches('_')).cloned()
    }
}

fn scalar(a: &Array) -> Result<f32> {
    if a.size() != 1 {
        return Err(Error::Input(format!(
            "an alpha must be one number, got shape {:?}",
            a.shape()
        )));
    }
    Ok(a.as_dtype(Dtype::Float32)?
        .reshape(&[1])?
        .item_cast::<f32>())
}

/// Parse `path` against `model`'s parameters: every tensor maps to a parameter (with a
/// fitting shape) or the whole file is refused, naming every problem.
pub fn read(path: &Path, model: &WanModel) -> Result<LoraFile> {
    let st = SafeTensors::open(path)?;
    let sites = Sites::of(model);
    #[derive(Default)]
    struct Pending {
        down: Option<(String, Array)>,
        up: Option<(String, Array)>,
        alpha: Option<(String, f32)>,
    }
    let mut lowrank: BTreeMap<String, Pending> = BTreeMap::new();
    let mut out = LoraFile::default();
    let mut problems = Vec::new();
    for name in st.names() {
        let Some((site, part)) = sites.parse(name) else {
            problems.push(format!(
                "`{name}` is not a LoRA or delta tensor of a Wan DiT parameter"
            ));
            continue;
        };
        let a = st.array(name)?;
        let weight = format!("{site}.weight");
        match part {
            Part::Down | Part::Up | Part::Alpha => {
                if !sites.params.contains_key(&weight) {
                    problems.push(format!("`{name}`: the model has no weight `{weight}`"));
                    continue;
                }
                let e = lowrank.entry(weight).or_default();
                match part {
                    Part::Down => e.down = Some((name.to_string(), a)),
                    Part::Up => e.up = Some((name.to_string(), a)),
                    _ => match scalar(&a) {
                        Ok(v) => e.alpha = Some((name.to_string(), v)),
                        Err(err) => problems.push(format!("`{name}`: {err}")),
                    },
                }
            }
            Part::Diff | Part::DiffBias => {
                let key = match part {
                    Part::DiffBias => format!("{site}.bias"),
                    _ if sites.params.contains_key(&weight) => weight,
                    _ => site.clone(),
                };
                match sites.params.get(&key) {
                    None => problems.push(format!("`{name}`: the model has no parameter `{key}`")),
                    Some(shape) if mlx_shape(&key, a.shape()) != *shape => problems.push(format!(
                        "`{name}`: shape {:?} does not fit `{key}` {shape:?}",
                        a.shape()
                    )),
                    Some(_) => {
                        if out.deltas.insert(key.clone(), Delta::Full(a)).is_some() {
                            problems.push(format!("`{name}`: a second delta for `{key}`"));
                        }
                    }
                }
            }
        }
    }
    for (key, p) in lowrank {
        let shape = &sites.params[&key];
        let (Some((dn, down)), Some((un, up))) = (p.down, p.up) else {
            problems.push(format!(
                "`{key}`: a LoRA needs both its down/A and up/B matrices"
            ));
            continue;
        };
        let (sd, su) = (down.shape().to_vec(), up.shape().to_vec());
        if shape.len() != 2
            || sd.len() != 2
            || su.len() != 2
            || sd[1] != shape[1]
            || su[0] != shape[0]
            || sd[0] != su[1]
        {
            problems.push(format!(
                "`{dn}` {sd:?} / `{un}` {su:?} do not fit `{key}` {shape:?}"
            ));
            continue;
        }
        if out.deltas.contains_key(&key) {
            problems.push(format!("`{dn}`: `{key}` also has a full delta"));
            continue;
        }
        let alpha = p.alpha.map(|(_, v)| v);
        out.deltas.insert(key, Delta::LowRank { down, up, alpha });
    }
    if problems.is_empty() && out.deltas.is_empty() {
        problems.push("the file holds no tensors".into());
    }
    if !problems.is_empty() {
        return Err(Error::format(path, problems.join("; ")));
    }
    Ok(out)
}

impl Delta {
    /// `scale ·` this delta in float32, official layout.
    fn dense(&self, scale: f32) -> Result<Array> {
        Ok(match self {
            Delta::LowRank { down, up, alpha } => {
                let r = down.shape()[0] as f32;
                let k = scale * alpha.unwrap_or(r) / r;
                up.as_dtype(Dtype::Float32)?
                    .matmul(down.as_dtype(Dtype::Float32)?)?
                    .multiply(Array::from_f32(k))?
            }
            Delta::Full(d) => d
                .as_dtype(Dtype::Float32)?
                .multiply(Array::from_f32(scale))?,
        })
    }
}

/// Merge `file` into `model` at `scale` (`p ← p + scale·delta` in float32, stored in `p`'s
/// dtype). Returns the number of parameters changed.
pub fn merge(model: &mut WanModel, file: &LoraFile, scale: f32) -> Result<usize> {
    // Everything is computed before anything is written: a failure changes nothing.
    let mut updates: Vec<(String, Array)> = Vec::with_capacity(file.deltas.len());
    {
        let params = model.parameters().flatten();
        for (official, delta) in &file.deltas {
            let internal = keys::to_internal(official);
            let p = params.get(internal.as_str()).ok_or_else(|| {
                Error::Input(format!("LoRA: the model has no parameter `{official}`"))
            })?;
            let d = to_mlx_layout(official, delta.dense(scale)?)?;
            let w = p.as_dtype(Dtype::Float32)?.add(&d)?.as_dtype(p.dtype())?;
            w.eval()?;
            updates.push((internal, w));
        }
    }
    let n = updates.len();
    let mut params = model.parameters_mut().flatten();
    for (internal, w) in updates {
        if let Some(slot) = params.get_mut(internal.as_str()) {
            **slot = w;
        }
    }
    Ok(n)
}

/// [`read`] + [`merge`].
pub fn merge_file(model: &mut WanModel, path: &Path, scale: f32) -> Result<usize> {
    let file = read(path, model)?;
    merge(model, &file, scale)
}

/// The LoRA setting of a generation: which file goes into which DiT, at what scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    pub scale: f32,
    /// For every DiT (ti2v-5B, or both A14B experts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<PathBuf>,
    /// A14B: the high-noise expert's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<PathBuf>,
    /// A14B: the low-noise expert's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<PathBuf>,
}

/// File names of the Lightning layout: one LoRA per A14B expert in a folder.
pub const HIGH_FILE: &str = "high_noise_model.safetensors";
pub const LOW_FILE: &str = "low_noise_model.safetensors";

impl LoraSpec {
    /// A file for every DiT, or a folder in the Lightning layout (`high_noise_model.safetensors`
    /// + `low_noise_model.safetensors`, either may be missing but not both).
    pub fn from_path(path: &Path, scale: f32) -> Result<Self> {
        if !(scale.is_finite()) {
            return Err(Error::Input("--lora_scale must be a number".into()));
        }
        if path.is_dir() {
            let (h, l) = (path.join(HIGH_FILE), path.join(LOW_FILE));
            let (high, low) = (h.is_file().then_some(h), l.is_file().then_some(l));
            if high.is_none() && low.is_none() {
                return Err(Error::Input(format!(
                    "{}: a LoRA folder must hold {HIGH_FILE} and/or {LOW_FILE}",
                    path.display()
                )));
            }
            return Ok(Self {
                scale,
                all: None,
                high,
                low,
            });
        }
        if !path.is_file() {
            return Err(Error::Missing(path.to_path_buf()));
        }
        Ok(Self {
            scale,
            all: Some(path.to_path_buf()),
            high: None,
            low: None,
        })
    }

    /// Separate files for the A14B experts (`--lora_high`, `--lora_low`).
    pub fn per_expert(high: Option<PathBuf>, low: Option<PathBuf>, scale: f32) -> Result<Self> {
        for p in high.iter().chain(low.iter()) {
            if !p.is_file() {
                return Err(Error::Missing(p.clone()));
            }
        }
        if high.is_none() && low.is_none() {
            return Err(Error::Input("no LoRA file given".into()));
        }
        Ok(Self {
            scale,
            all: None,
            high,
            low,
        })
    }

    /// The same spec with an `all` that is a folder (the app sends what the user picked)
    /// resolved to its Lightning-layout expert files.
    pub fn resolved(&self) -> Result<Self> {
        match &self.all {
            Some(dir) if dir.is_dir() => Self::from_path(dir, self.scale),
            _ => Ok(self.clone()),
        }
    }

    /// Whether the spec names expert files (only A14B has experts).
    pub fn is_per_expert(&self) -> bool {
        self.high.is_some() || self.low.is_some()
    }

    /// The file for one DiT.
    pub fn file_for(&self, expert: Expert) -> Option<&Path> {
        match expert {
            Expert::HighNoise => self.high.as_deref().or(self.all.as_deref()),
            Expert::LowNoise => self.low.as_deref().or(self.all.as_deref()),
            Expert::Main => self.all.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dit::{ModelType, WanConfig};

    /// A tiny random DiT, the same weights every call.
    fn model() -> WanModel {
        thread_local! {
            static WEIGHTS: std::cell::RefCell<Option<BTreeMap<String, Array>>> = const { std::cell::RefCell::new(None) };
        }
        let mut c = WanConfig::t2v_a14b();
        c.model_type = ModelType::T2v;
        (
            c.in_dim,
            c.out_dim,
            c.dim,
            c.ffn_dim,
            c.num_heads,
            c.num_layers,
        ) = (4, 4, 12, 16, 2, 2);
        (c.text_dim, c.freq_dim) = (6, 4);
        let mut m = WanModel::new(c).unwrap();
        WEIGHTS.with(|w| {
            let mut w = w.borrow_mut();
            let saved = w.get_or_insert_with(|| {
                crate::bench::randomize(&mut m, 7).unwrap();
                m.parameters()
                    .flatten()
                    .iter()
                    .map(|(k, v)| (k.to_string(), (*v).clone()))
                    .collect()
            });
            for (k, p) in m.parameters_mut().flatten() {
                *p = saved[&*k].clone();
            }
        });
        m
    }

    fn params(m: &WanModel) -> BTreeMap<String, Vec<f32>> {
        m.parameters()
            .flatten()
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_slice::<f32>().to_vec()))
            .collect()
    }

    fn host(a: &[f32], shape: &[i32]) -> Array {
        Array::from_slice(a, shape)
    }

    /// Deterministic small numbers (no MLX involved).
    fn vals(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 1000.0 - 0.5)
                    * 0.2
            })
            .collect()
    }

    /// `k·B·A` on the host, `[out, in]`.
    fn product(b: &[f32], a: &[f32], out: usize, r: usize, inp: usize, k: f64) -> Vec<f32> {
        let mut d = vec![0f32; out * inp];
        for o in 0..out {
            for i in 0..inp {
                let s: f64 = (0..r)
                    .map(|j| b[o * r + j] as f64 * a[j * inp + i] as f64)
                    .sum();
                d[o * inp + i] = (k * s) as f32;
            }
        }
        d
    }

    fn write(tag: &str, t: &BTreeMap<String, Array>) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("wan-lora-{tag}-{}.safetensors", std::process::id()));
        crate::checkpoint::safetensors::save(&p, t, &BTreeMap::new()).unwrap();
        p
    }

    #[test]
    fn every_format_merges_to_the_same_weights() {
        // Three sites (self-attn q, cross-attn o, FFN in), rank 2, α = 4 → scale 2.
        let (d, f, r) = (12usize, 16usize, 2usize);
        let sites = [
            ("blocks.0.self_attn.q", "blocks.0.attn1.to_q", d, d),
            ("blocks.1.cross_attn.o", "blocks.1.attn2.to_out.0", d, d),
            ("blocks.0.ffn.0", "blocks.0.ffn.net.0.proj", f, d),
        ];
        let base = params(&model());
        let mut files: Vec<(&str, BTreeMap<String, Array>)> = Vec::new();
        let mut expected: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut fmt = |name: &'static str| {
            files.push((name, BTreeMap::new()));
            files.len() - 1
        };
        let (fa, fb, fc, fd, fe) = (fmt("a"), fmt("b"), fmt("c"), fmt("d"), fmt("e"));
        for (n, (site, diffusers, out, inp)) in sites.iter().enumerate() {
            let a = vals(r * inp, 11 + n as u32);
            let b = vals(out * r, 23 + n as u32);
            let (sa, sb) = ([r as i32, *inp as i32], [*out as i32, r as i32]);
            let alpha = Array::from_f32(4.0);
            let kohya = site.replace('.', "_");
            let t = &mut files[fa].1;
            t.insert(
                format!("diffusion_model.{site}.lora_down.weight"),
                host(&a, &sa),
            );
            t.insert(
                format!("diffusion_model.{site}.lora_up.weight"),
                host(&b, &sb),
            );
            t.insert(format!("diffusion_model.{site}.alpha"), alpha.clone());
            // (b) no alpha (scale 1): B carries the factor 2
            let b2: Vec<f32> = b.iter().map(|v| 2.0 * v).collect();
            let t = &mut files[fb].1;
            t.insert(format!("{site}.lora_A.weight"), host(&a, &sa));
            t.insert(format!("{site}.lora_B.weight"), host(&b2, &sb));
            let t = &mut files[fc].1;
            t.insert(format!("lora_unet_{kohya}.lora_down.weight"), host(&a, &sa));
            t.insert(format!("lora_unet_{kohya}.lora_up.weight"), host(&b, &sb));
            t.insert(format!("lora_unet_{kohya}.alpha"), alpha.clone());
            let t = &mut files[fd].1;
            t.insert(
                format!("transformer.{diffusers}.lora_A.weight"),
                host(&a, &sa),
            );
            t.insert(
                format!("transformer.{diffusers}.lora_B.weight"),
                host(&b, &sb),
            );
            t.insert(format!("transformer.{diffusers}.alpha"), alpha.clone());
            let delta = product(&b, &a, *out, r, *inp, 2.0);
            files[fe].1.insert(
                format!("diffusion_model.{site}.diff"),
                host(&delta, &[*out as i32, *inp as i32]),
            );
            let key = keys::to_internal(&format!("{site}.weight"));
            let w: Vec<f32> = base[&key].iter().zip(&delta).map(|(w, d)| w + d).collect();
            expected.insert(key, w);
        }
        for (name, t) in &files {
            let path = write(name, t);
            let mut m = model();
            let n =
                merge_file(&mut m, &path, 1.0).unwrap_or_else(|e| panic!("format ({name}): {e}"));
            assert_eq!(n, 3, "format ({name})");
            let got = params(&m);
            for (k, v) in &got {
                match expected.get(k) {
                    Some(want) => {
                        let err = v
                            .iter()
                            .zip(want)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0f32, f32::max);
                        assert!(err <= 1e-6, "format ({name}) {k}: {err}");
                    }
                    None => assert_eq!(v, &base[k], "format ({name}) changed {k}"),
                }
            }
            std::fs::remove_file(&path).ok();
        }
    }

    #[test]
    fn full_deltas_change_exactly_their_tensors_inside_and_outside_the_blocks() {
        let d = 12;
        let db = vals(d, 3);
        let dn = vals(d, 5);
        let dh = vals(16, 9); // head.head bias: patch volume 1·2·2 × out_dim 4
        let dt = vals(d * 4, 13); // time_embedding.0 weight [dim, freq_dim]
        let t = BTreeMap::from([
            (
                "diffusion_model.blocks.1.cross_attn.o.diff_b".to_string(),
                host(&db, &[d as i32]),
            ),
            (
                "diffusion_model.blocks.0.norm3.diff".to_string(),
                host(&dn, &[d as i32]),
            ),
            (
                "diffusion_model.head.head.diff_b".to_string(),
                host(&dh, &[16]),
            ),
            (
                "diffusion_model.time_embedding.0.diff".to_string(),
                host(&dt, &[d as i32, 4]),
            ),
        ]);
        let path = write("diff", &t);
        let base = params(&model());
        let mut m = model();
        assert_eq!(merge_file(&mut m, &path, 0.5).unwrap(), 4);
        let changed = BTreeMap::from([
            ("blocks.1.cross_attn.o.bias", &db),
            ("blocks.0.norm3.weight", &dn),
            ("head.head.bias", &dh),
            ("time_embedding.fc1.weight", &dt),
        ]);
        for (k, v) in params(&m) {
            match changed.get(k.as_str()) {
                Some(delta) => {
                    for ((got, was), dd) in v.iter().zip(&base[&k]).zip(delta.iter()) {
                        assert!((got - (was + 0.5 * dd)).abs() <= 1e-7, "{k}");
                    }
                }
                None => assert_eq!(v, base[&k], "{k} must not change"),
            }
        }
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn unknown_or_misfit_keys_are_named_and_nothing_is_merged() {
        let good = vals(24, 1);
        let t = BTreeMap::from([
            (
                "diffusion_model.blocks.0.self_attn.q.lora_A.weight".to_string(),
                host(&good, &[2, 12]),
            ),
            (
                "diffusion_model.blocks.0.self_attn.q.lora_B.weight".to_string(),
                host(&good, &[12, 2]),
            ),
            (
                "diffusion_model.blocks.0.img_attn.q.lora_A.weight".to_string(),
                host(&good, &[2, 12]),
            ),
            (
                "diffusion_model.blocks.0.self_attn.k.lora_A.weight".to_string(),
                host(&good, &[2, 12]),
            ),
            (
                "diffusion_model.blocks.7.ffn.2.diff_b".to_string(),
                host(&good[..12], &[12]),
            ),
            (
                "diffusion_model.blocks.0.norm3.diff".to_string(),
                host(&good, &[24]),
            ),
            ("vae.decoder.conv_in.weight".to_string(), host(&good, &[24])),
        ]);
        let path = write("bad", &t);
        let mut m = model();
        let base = params(&m);
        let e = merge_file(&mut m, &path, 1.0).unwrap_err().to_string();
        for needle in [
            "blocks.0.img_attn.q.lora_A.weight`: the model has no weight",
            "`blocks.0.self_attn.k.weight`: a LoRA needs both",
            "blocks.7.ffn.2.diff_b`: the model has no parameter `blocks.7.ffn.2.bias`",
            "norm3.diff`: shape [24] does not fit",
            "`vae.decoder.conv_in.weight` is not a LoRA or delta tensor",
        ] {
            assert!(e.contains(needle), "missing `{needle}` in {e}");
        }
        assert_eq!(params(&m), base, "nothing merged");
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn lightning_folders_name_their_experts() {
        let dir = std::env::temp_dir().join(format!("wan-lightning-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = LoraSpec::from_path(&dir, 1.0).unwrap_err().to_string();
        assert!(e.contains(HIGH_FILE), "{e}");
        std::fs::write(dir.join(HIGH_FILE), b"x").unwrap();
        std::fs::write(dir.join(LOW_FILE), b"x").unwrap();
        let s = LoraSpec::from_path(&dir, 0.8).unwrap();
        assert_eq!(
            s.file_for(Expert::HighNoise),
            Some(dir.join(HIGH_FILE).as_path())
        );
        assert_eq!(
            s.file_for(Expert::LowNoise),
            Some(dir.join(LOW_FILE).as_path())
        );
        assert_eq!(s.file_for(Expert::Main), None);
        assert!(s.is_per_expert());
        std::fs::remove_dir_all(&dir).ok();
    }
}
