//! Quantized tensors in checkpoints: [`QuantizedSource`] presents a dense source as the
//! quantized one a plan asks for (each weight quantized when it is read, so `convert`
//! and loading never hold more than one dense tensor), and [`stored_specs`] checks the
//! triples of a folder that was written quantized before anything is loaded.
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};

use mlx_rs::{Array, Dtype};

use super::{QuantPlan, QuantSpec, quantize_weight};
use crate::checkpoint::safetensors::StDtype;
use crate::checkpoint::{Layout, TensorSource, mlx_shape};
use crate::error::{Error, Result};

/// `blocks.0.ffn.0.weight` → `blocks.0.ffn.0`.
fn base_of(weight_key: &str) -> &str {
    weight_key.strip_suffix(".weight").unwrap_or(weight_key)
}

/// A dense source seen through a quantization plan: every planned Linear weight `K.weight`
/// appears as packed `K.weight` (u32) + `K.scales` + `K.biases` (in `dtype`); everything
/// else passes through unchanged. A weight is read, cast to `dtype`, quantized and
/// evaluated on first request of any of its three parts; the dense copy is dropped then.
pub struct QuantizedSource<S> {
    inner: S,
    specs: BTreeMap<String, QuantSpec>,
    /// Dtype the weight is quantized in, and of its scales and biases.
    dtype: Dtype,
    /// Triples computed but not yet handed out entirely.
    pending: RefCell<BTreeMap<String, [Option<Array>; 3]>>,
}

impl<S: TensorSource> QuantizedSource<S> {
    /// Plan every tensor of `inner`; a targeted tensor that cannot be packed is an error
    /// naming it, and an already quantized source is refused (no double quantization).
    pub fn new(inner: S, plan: &dyn QuantPlan, dtype: Dtype) -> Result<Self> {
        let mut specs = BTreeMap::new();
        let mut problems = Vec::new();
        for name in inner.tensor_names() {
            if name.ends_with(".scales") || inner.tensor_dtype(&name) == Some(StDtype::U32) {
                return Err(Error::Input(format!(
                    "`{name}`: these weights are already quantized; quantize from the \
                     official or a dense converted folder"
                )));
            }
            let Some(shape) = inner.tensor_shape(&name) else {
                continue;
            };
            let shape = match inner.layout() {
                Layout::PyTorch => mlx_shape(&name, &shape),
                Layout::Mlx => shape,
            };
            match plan.spec_for(&name, &shape) {
                Ok(Some(s)) => {
                    specs.insert(name, s);
                }
                Ok(None) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Weights(problems));
        }
        Ok(Self {
            inner,
            specs,
            dtype,
            pending: RefCell::new(BTreeMap::new()),
        })
    }

    /// The quantized weight keys and their settings.
    pub fn specs(&self) -> &BTreeMap<String, QuantSpec> {
        &self.specs
    }

    /// `(weight key, part)` of a quantized tensor name: 0 packed, 1 scales, 2 biases.
    fn part(&self, name: &str) -> Option<(String, usize)> {
        if self.specs.contains_key(name) {
            return Some((name.to_string(), 0));
        }
        for (suffix, i) in [(".scales", 1), (".biases", 2)] {
            if let Some(b) = name.strip_suffix(suffix) {
                let w = format!("{b}.weight");
                if self.specs.contains_key(&w) {
                    return Some((w, i));
                }
            }
        }
        None
    }

    fn dense_shape(&self, weight: &str) -> Option<Vec<i32>> {
        self.inner.tensor_shape(weight)
    }
}

impl<S: TensorSource> TensorSource for QuantizedSource<S> {
    fn tensor_names(&self) -> Vec<String> {
        let mut names = self.inner.tensor_names();
        for w in self.specs.keys() {
            let b = base_of(w);
            names.push(format!("{b}.scales"));
            names.push(format!("{b}.biases"));
        }
        names
    }

    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        match self.part(name) {
            Some((w, part)) => {
                let s = self.dense_shape(&w)?;
                let spec = self.specs[&w];
                Some(match part {
                    0 => vec![s[0], s[1] * spec.bits / 32],
                    _ => vec![s[0], s[1] / spec.group_size],
                })
            }
            None => self.inner.tensor_shape(name),
        }
    }

    fn tensor_dtype(&self, name: &str) -> Option<StDtype> {
        match self.part(name) {
            Some((_, 0)) => Some(StDtype::U32),
            Some(_) => StDtype::from_mlx(self.dtype),
            None => self.inner.tensor_dtype(name),
        }
    }

    fn load_tensor(&self, name: &str) -> Result<Array> {
        let Some((w, part)) = self.part(name) else {
            return self.inner.load_tensor(name);
        };
        let mut pending = self.pending.borrow_mut();
        if !pending.contains_key(&w) {
            let mut dense = self.inner.load_tensor(&w)?;
            if dense.dtype() != self.dtype {
                dense = dense.as_dtype(self.dtype)?;
            }
            let (q, s, b) = quantize_weight(&dense, self.specs[&w])?;
            drop(dense);
            self.inner.release(&w);
            pending.insert(w.clone(), [Some(q), Some(s), Some(b)]);
        }
        let parts = pending.get_mut(&w).expect("inserted above");
        let a = parts[part].take().ok_or_else(|| {
            Error::Input(format!("`{name}` was read twice from a quantizing source"))
        })?;
        if parts.iter().all(Option::is_none) {
            pending.remove(&w);
        }
        Ok(a)
    }

    fn layout(&self) -> Layout {
        self.inner.layout()
    }

    fn file_metadata(&self) -> BTreeMap<String, String> {
        self.inner.file_metadata()
    }

    fn release(&self, name: &str) {
        if self.part(name).is_none() {
            self.inner.release(name);
        }
    }
}

/// Check the quantized Linears a source stores and return their settings (weight key →
/// spec). `linears` lists every Linear weight of the model with its dense `[out, in]`
/// shape; a Linear is quantized in the source when its weight is packed `U32` or it has
/// `.scales` / `.biases`. Every problem is reported at once, naming its tensor: a packed
/// weight without its scales or biases, scales without a packed weight, a packing or a
/// group count that fits no 4/8-bit setting with group 32/64/128, or one that differs
/// from the setting the file declares (`declared`).
pub fn stored_specs(
    src: &dyn TensorSource,
    linears: &[(String, [i32; 2])],
    declared: Option<QuantSpec>,
) -> Result<BTreeMap<String, QuantSpec>> {
    let names: HashSet<String> = src.tensor_names().into_iter().collect();
    let mut specs = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, [out, inp]) in linears {
        let b = base_of(key);
        let (sk, bk) = (format!("{b}.scales"), format!("{b}.biases"));
        let packed = src.tensor_dtype(key) == Some(StDtype::U32);
        let (has_s, has_b) = (names.contains(&sk), names.contains(&bk));
        if !packed && !has_s && !has_b {
            continue;
        }
        if !packed {
            problems.push(format!(
                "`{key}` has {} but is stored as {}, not a packed U32 weight",
                if has_s { "scales" } else { "biases" },
                src.tensor_dtype(key).map_or("nothing", |d| d.name())
            ));
            continue;
        }
        let mut missing = false;
        for (k, has) in [(&sk, has_s), (&bk, has_b)] {
            if !has {
                problems.push(format!(
                    "`{key}` is quantized (packed U32) but `{k}` is missing"
                ));
                missing = true;
            }
        }
        if missing {
            continue;
        }
        let ws = src.tensor_shape(key).unwrap_or_default();
        let ss = src.tensor_shape(&sk).unwrap_or_default();
        let bs = src.tensor_shape(&bk).unwrap_or_default();
        let bits = match ws[..] {
            [o, p] if o == *out && (p * 32) % inp == 0 && matches!(p * 32 / inp, 4 | 8) => {
                p * 32 / inp
            }
            _ => {
                problems.push(format!(
                    "`{key}`: packed shape {ws:?} is no 4- or 8-bit packing of a [{out}, {inp}] weight"
                ));
                continue;
            }
        };
        let group_size = match ss[..] {
            [o, g] if o == *out && g > 0 && inp % g == 0 && matches!(inp / g, 32 | 64 | 128) => {
                inp / g
            }
            _ => {
                problems.push(format!(
                    "`{sk}`: shape {ss:?} is no group size 32, 64 or 128 of a [{out}, {inp}] weight"
                ));
                continue;
            }
        };
        if bs != ss {
            problems.push(format!(
                "`{bk}`: shape {bs:?} differs from its scales {ss:?}"
            ));
            continue;
        }
        let float = |k: &str| {
            matches!(
                src.tensor_dtype(k),
                Some(StDtype::F32 | StDtype::F16 | StDtype::BF16)
            )
        };
        if !float(&sk) || !float(&bk) || src.tensor_dtype(&sk) != src.tensor_dtype(&bk) {
            problems.push(format!(
                "`{sk}` / `{bk}` must share one float dtype (f32, f16 or bf16)"
            ));
            continue;
        }
        let spec = QuantSpec { bits, group_size };
        if let Some(d) = declared
            && d != spec
        {
            problems.push(format!(
                "`{key}` is packed as {} group {} but the file declares {} group {}",
                spec.name(),
                spec.group_size,
                d.name(),
                d.group_size
            ));
            continue;
        }
        specs.insert(key.clone(), spec);
    }
    // Scales or biases of something that is not a Linear of this model.
    let known: HashSet<String> = linears
        .iter()
        .map(|(k, _)| base_of(k).to_string())
        .collect();
    let mut orphans: Vec<&String> = names
        .iter()
        .filter(|n| {
            (n.ends_with(".scales") || n.ends_with(".biases"))
                && !known.contains(n.rsplit_once('.').map_or("", |(b, _)| b))
        })
        .collect();
    orphans.sort();
    for n in orphans {
        problems.push(format!("`{n}` belongs to no Linear of this model"));
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(Error::Weights(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Recipe;

    fn dense() -> BTreeMap<String, Array> {
        let k = mlx_rs::random::key(5).unwrap();
        let w = mlx_rs::random::normal::<f32>(&[8, 64], None, None, &k).unwrap();
        BTreeMap::from([
            ("blocks.0.ffn.0.weight".to_string(), w.clone()),
            (
                "blocks.0.ffn.0.bias".to_string(),
                Array::from_slice(&[0.5f32; 8], &[8]),
            ),
            ("head.head.weight".to_string(), w),
        ])
    }

    #[test]
    fn quantizing_source_presents_triples_and_passes_the_rest() {
        let src =
            QuantizedSource::new(dense(), &Recipe::all(QuantSpec::Q4), Dtype::Float32).unwrap();
        let mut names = src.tensor_names();
        names.sort();
        assert_eq!(
            names,
            [
                "blocks.0.ffn.0.bias",
                "blocks.0.ffn.0.biases",
                "blocks.0.ffn.0.scales",
                "blocks.0.ffn.0.weight",
                "head.head.weight"
            ]
        );
        assert_eq!(
            src.tensor_shape("blocks.0.ffn.0.weight").unwrap(),
            vec![8, 8]
        );
        assert_eq!(
            src.tensor_shape("blocks.0.ffn.0.scales").unwrap(),
            vec![8, 1]
        );
        assert_eq!(
            src.tensor_dtype("blocks.0.ffn.0.weight"),
            Some(StDtype::U32)
        );
        assert_eq!(
            src.tensor_dtype("blocks.0.ffn.0.biases"),
            Some(StDtype::F32)
        );
        // any order; each part exactly once
        let s = src.load_tensor("blocks.0.ffn.0.scales").unwrap();
        let w = src.load_tensor("blocks.0.ffn.0.weight").unwrap();
        let b = src.load_tensor("blocks.0.ffn.0.biases").unwrap();
        assert_eq!((w.dtype(), w.shape()), (Dtype::Uint32, &[8, 8][..]));
        assert_eq!(s.shape(), b.shape());
        assert!(src.pending.borrow().is_empty());
        assert_eq!(
            src.load_tensor("head.head.weight").unwrap().dtype(),
            Dtype::Float32
        );

        // the stored triples pass the folder check with the setting recovered from shapes
        let stored: BTreeMap<String, Array> = BTreeMap::from([
            ("blocks.0.ffn.0.weight".to_string(), w),
            ("blocks.0.ffn.0.scales".to_string(), s),
            ("blocks.0.ffn.0.biases".to_string(), b),
        ]);
        let lin = [("blocks.0.ffn.0.weight".to_string(), [8, 64])];
        let specs = stored_specs(&stored, &lin, Some(QuantSpec::Q4)).unwrap();
        assert_eq!(specs["blocks.0.ffn.0.weight"], QuantSpec::Q4);
        let e = stored_specs(&stored, &lin, Some(QuantSpec::Q8)).unwrap_err();
        assert!(e.to_string().contains("declares q8"), "{e}");
    }

    #[test]
    fn stored_triples_are_checked_tensor_by_tensor() {
        let src =
            QuantizedSource::new(dense(), &Recipe::all(QuantSpec::Q8), Dtype::Float32).unwrap();
        let mut m: BTreeMap<String, Array> = BTreeMap::new();
        for n in src.tensor_names() {
            m.insert(n.clone(), src.load_tensor(&n).unwrap());
        }
        let lin = [("blocks.0.ffn.0.weight".to_string(), [8, 64])];
        let mut no_scales = m.clone();
        no_scales.remove("blocks.0.ffn.0.scales");
        let e = stored_specs(&no_scales, &lin, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`blocks.0.ffn.0.scales` is missing"), "{e}");
        // a packing that is no 4/8-bit layout of [8, 64]
        let mut bad = m.clone();
        bad.insert(
            "blocks.0.ffn.0.weight".into(),
            mlx_rs::ops::zeros_dtype(&[8, 6], Dtype::Uint32).unwrap(),
        );
        let e = stored_specs(&bad, &lin, None).unwrap_err().to_string();
        assert!(
            e.contains("`blocks.0.ffn.0.weight`: packed shape [8, 6]"),
            "{e}"
        );
        // scales whose group count gives group size 16
        let mut g16 = m.clone();
        g16.insert(
            "blocks.0.ffn.0.scales".into(),
            mlx_rs::ops::zeros::<f32>(&[8, 4]).unwrap(),
        );
        let e = stored_specs(&g16, &lin, None).unwrap_err().to_string();
        assert!(e.contains("`blocks.0.ffn.0.scales`: shape [8, 4]"), "{e}");
        // scales of no Linear
        let mut orphan = m.clone();
        orphan.insert(
            "head.head.scales".into(),
            mlx_rs::ops::zeros::<f32>(&[8, 1]).unwrap(),
        );
        let e = stored_specs(&orphan, &lin, None).unwrap_err().to_string();
        assert!(e.contains("`head.head.scales` belongs to no Linear"), "{e}");
        // and a quantized source is never quantized again
        let e = QuantizedSource::new(m, &Recipe::all(QuantSpec::Q8), Dtype::Float32)
            .err()
            .unwrap();
        assert!(e.to_string().contains("already quantized"), "{e}");
    }
}
