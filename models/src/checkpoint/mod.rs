//! Checkpoint I/O: strict safetensors, tensor sources, PyTorch → MLX layout, strict loading.
//!
//! Model code never reads files: it asks a [`TensorSource`] for tensors by official key.
//! Layout changes (PyTorch channels-first conv weights → MLX channels-last) happen here,
//! once, keyed by name and rank ([`to_mlx_layout`]).
pub mod convert;
pub mod folder;
pub mod index;
pub mod infer;
pub mod inspect;
pub mod pickle;
pub mod pth;
pub mod safetensors;

pub use folder::{Checkpoint, Expert, FolderKind, open_source};
pub use index::Shards;
pub use infer::{T5Dims, VaeDims};
pub use pth::PthFile;

use std::collections::{BTreeMap, HashSet};

use mlx_rs::module::ModuleParameters;
use mlx_rs::{Array, Dtype};

use crate::error::{Error, Result};

/// How the tensors of a source are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Official PyTorch layout (conv weights `[O, I, k...]`, VAE gammas `[C,1,1(,1)]`).
    PyTorch,
    /// Our converted layout (conv weights channels-last, gammas `[C]`).
    Mlx,
}

/// Anything that can hand out tensors by official key.
pub trait TensorSource {
    fn tensor_names(&self) -> Vec<String>;
    /// Shape as stored (in the source's layout).
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>>;
    /// The tensor as stored (dtype and layout of the source).
    fn load_tensor(&self, name: &str) -> Result<Array>;
    fn layout(&self) -> Layout;
    /// Stored element type, when known from the header (inspection, conversion).
    fn tensor_dtype(&self, _name: &str) -> Option<safetensors::StDtype> {
        None
    }
    /// Hint that `name` will not be read again (memory-mapped sources drop its pages).
    fn release(&self, _name: &str) {}
    /// Header metadata of the file(s) (`__metadata__` of a safetensors; empty otherwise).
    fn file_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// A borrowed source is a source (adapters such as `quant::QuantizedSource` wrap either).
impl<T: TensorSource + ?Sized> TensorSource for &T {
    fn tensor_names(&self) -> Vec<String> {
        (**self).tensor_names()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        (**self).tensor_shape(name)
    }
    fn load_tensor(&self, name: &str) -> Result<Array> {
        (**self).load_tensor(name)
    }
    fn layout(&self) -> Layout {
        (**self).layout()
    }
    fn tensor_dtype(&self, name: &str) -> Option<safetensors::StDtype> {
        (**self).tensor_dtype(name)
    }
    fn release(&self, name: &str) {
        (**self).release(name)
    }
    fn file_metadata(&self) -> BTreeMap<String, String> {
        (**self).file_metadata()
    }
}

impl<T: TensorSource + ?Sized> TensorSource for Box<T> {
    fn tensor_names(&self) -> Vec<String> {
        (**self).tensor_names()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        (**self).tensor_shape(name)
    }
    fn load_tensor(&self, name: &str) -> Result<Array> {
        (**self).load_tensor(name)
    }
    fn layout(&self) -> Layout {
        (**self).layout()
    }
    fn tensor_dtype(&self, name: &str) -> Option<safetensors::StDtype> {
        (**self).tensor_dtype(name)
    }
    fn release(&self, name: &str) {
        (**self).release(name)
    }
    fn file_metadata(&self) -> BTreeMap<String, String> {
        (**self).file_metadata()
    }
}

/// In-memory tensors in official PyTorch layout (fixtures, tests).
impl TensorSource for BTreeMap<String, Array> {
    fn tensor_names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        self.get(name).map(|a| a.shape().to_vec())
    }
    fn load_tensor(&self, name: &str) -> Result<Array> {
        self.get(name)
            .cloned()
            .ok_or_else(|| Error::Weights(vec![format!("missing `{name}`")]))
    }
    fn layout(&self) -> Layout {
        Layout::PyTorch
    }
    fn tensor_dtype(&self, name: &str) -> Option<safetensors::StDtype> {
        self.get(name)
            .and_then(|a| safetensors::StDtype::from_mlx(a.dtype()))
    }
}

/// Rename the numbered `nn.Sequential` segments of a key through a model's one table of
/// (official, ours) segment pairs: official → ours, or back when `to_official`.
pub fn rename_segments(key: &str, table: &[(&str, &str)], to_official: bool) -> String {
    let mut k = key.to_string();
    for &(official, ours) in table {
        let (from, to) = if to_official {
            (ours, official)
        } else {
            (official, ours)
        };
        if k.contains(from) {
            k = k.replacen(from, to, 1);
        }
    }
    k
}

/// Is this key a convolution weight that MLX wants channels-last?
fn is_conv_weight(name: &str, rank: usize) -> bool {
    name.ends_with("weight") && (rank == 4 || rank == 5)
}

/// Shape of a tensor after [`to_mlx_layout`].
pub fn mlx_shape(name: &str, shape: &[i32]) -> Vec<i32> {
    if is_conv_weight(name, shape.len()) {
        let mut s = vec![shape[0]];
        s.extend_from_slice(&shape[2..]);
        s.push(shape[1]);
        s
    } else if name.ends_with("gamma") && shape.len() > 1 && shape[1..].iter().all(|&d| d == 1) {
        vec![shape[0]]
    } else {
        shape.to_vec()
    }
}

/// PyTorch layout → MLX layout: Conv3d `[O,I,D,H,W]→[O,D,H,W,I]`, Conv2d `[O,I,H,W]→[O,H,W,I]`,
/// VAE RMS-norm gammas `[C,1,1(,1)]→[C]`. Everything else (Linear `[out,in]`) is unchanged.
pub fn to_mlx_layout(name: &str, a: Array) -> Result<Array> {
    let rank = a.ndim();
    if is_conv_weight(name, rank) {
        let axes: Vec<i32> = if rank == 5 {
            vec![0, 2, 3, 4, 1]
        } else {
            vec![0, 2, 3, 1]
        };
        Ok(a.transpose_axes(&axes)?)
    } else if name.ends_with("gamma") && rank > 1 && a.shape()[1..].iter().all(|&d| d == 1) {
        Ok(a.reshape(&[a.shape()[0]])?)
    } else {
        Ok(a)
    }
}

/// Inverse of [`to_mlx_layout`] for conv weights (used when exporting in official layout).
pub fn to_pytorch_layout(name: &str, a: Array, official_shape: &[i32]) -> Result<Array> {
    let rank = a.ndim();
    if is_conv_weight(name, rank) {
        let axes: Vec<i32> = if rank == 5 {
            vec![0, 4, 1, 2, 3]
        } else {
            vec![0, 3, 1, 2]
        };
        Ok(a.transpose_axes(&axes)?)
    } else if a.shape() != official_shape {
        Ok(a.reshape(official_shape)?)
    } else {
        Ok(a)
    }
}

/// Check that `src` holds exactly the expected tensors (official key → MLX-layout shape),
/// reporting every missing, unexpected and mis-shaped key at once. Nothing is loaded.
pub fn check_tensors(src: &dyn TensorSource, expected: &[(String, Vec<i32>)]) -> Result<()> {
    let names: HashSet<String> = src.tensor_names().into_iter().collect();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (key, shape) in expected {
        seen.insert(key.as_str());
        match src.tensor_shape(key) {
            None => problems.push(format!("missing `{key}` (expected {shape:?})")),
            Some(got) => {
                let got = match src.layout() {
                    Layout::PyTorch => mlx_shape(key, &got),
                    Layout::Mlx => got,
                };
                if &got != shape {
                    problems.push(format!("`{key}`: expected shape {shape:?}, got {got:?}"));
                }
            }
        }
    }
    let mut unexpected: Vec<&String> = names
        .iter()
        .filter(|n| !seen.contains(n.as_str()))
        .collect();
    unexpected.sort();
    for n in unexpected {
        problems.push(format!("unexpected `{n}`"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Weights(problems))
    }
}

/// The module's parameters as (official key, MLX-layout shape), sorted.
pub fn expected_params<M: ModuleParameters + ?Sized>(
    module: &M,
    to_official: &dyn Fn(&str) -> String,
) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = module
        .parameters()
        .flatten()
        .iter()
        .map(|(k, a)| (to_official(k), a.shape().to_vec()))
        .collect();
    out.sort();
    out
}

/// Strictly load a module: every parameter must come from `src` under its official key
/// (`to_official` maps the module's own key to it), with the right shape, and nothing may
/// be left over. Tensors are converted to MLX layout and float tensors cast to `dtype`
/// when given (a packed quantized weight keeps its integer dtype).
pub fn load_strict<M: ModuleParameters + ?Sized>(
    module: &mut M,
    src: &dyn TensorSource,
    to_official: &dyn Fn(&str) -> String,
    dtype: Option<Dtype>,
) -> Result<()> {
    load_strict_with(module, src, to_official, &|_| dtype)
}

fn is_float_dtype(d: Dtype) -> bool {
    matches!(
        d,
        Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float64
    )
}

/// [`load_strict`] with a dtype per tensor (`dtype_of(official key)`). Each tensor is
/// transformed as it is read — layout, cast — and evaluated before the next one, and the
/// source's pages are released: loading an f32 file into bf16 holds the bf16 model plus
/// one tensor in flight, never an f32 copy of the model.
pub fn load_strict_with<M: ModuleParameters + ?Sized>(
    module: &mut M,
    src: &dyn TensorSource,
    to_official: &dyn Fn(&str) -> String,
    dtype_of: &dyn Fn(&str) -> Option<Dtype>,
) -> Result<()> {
    check_tensors(src, &expected_params(module, to_official))?;
    let mut params = module.parameters_mut().flatten();
    for (internal, slot) in params.iter_mut() {
        let official = to_official(internal);
        let mut a = src.load_tensor(&official)?;
        // The bytes were copied into `a`: let a memory-mapped source drop its pages so a
        // loaded model is resident once, not twice.
        src.release(&official);
        if src.layout() == Layout::PyTorch {
            a = to_mlx_layout(&official, a)?;
        }
        if let Some(d) = dtype_of(&official)
            && a.dtype() != d
            && is_float_dtype(a.dtype())
        {
            a = a.as_dtype(d)?;
        }
        // Materialise now: the source copy (and its graph) is dropped before the next read.
        a.eval()?;
        **slot = a;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arange(shape: &[i32]) -> Array {
        let n: i32 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
        Array::from_slice(&v, shape)
    }

    #[test]
    fn conv3d_weights_become_channels_last() {
        // PyTorch [O=2, I=3, D=1, H=2, W=2]; MLX [O, D, H, W, I]
        let w = arange(&[2, 3, 1, 2, 2]);
        let m = to_mlx_layout("patch_embedding.weight", w.clone()).unwrap();
        assert_eq!(m.shape(), &[2, 1, 2, 2, 3]);
        assert_eq!(
            mlx_shape("patch_embedding.weight", &[2, 3, 1, 2, 2]),
            vec![2, 1, 2, 2, 3]
        );
        let v: Vec<f32> = m.contiguous().unwrap().as_slice().to_vec();
        // m[o=1, 0, h=1, w=0, i=2] == w[1, 2, 0, 1, 0] = 1·12 + 2·4 + 1·2 = 22
        assert_eq!(v[12 + 2 * 3 + 2], 22.0);
        let back = to_pytorch_layout("patch_embedding.weight", m, &[2, 3, 1, 2, 2]).unwrap();
        assert_eq!(
            back.contiguous().unwrap().as_slice::<f32>(),
            w.as_slice::<f32>()
        );
    }

    #[test]
    fn conv2d_weights_gammas_and_linears() {
        let w = arange(&[4, 3, 3, 3]);
        assert_eq!(
            to_mlx_layout("resample.1.weight", w).unwrap().shape(),
            &[4, 3, 3, 3]
        );
        assert_eq!(mlx_shape("x.weight", &[4, 2, 3, 5]), vec![4, 3, 5, 2]);
        let g = arange(&[8, 1, 1, 1]);
        assert_eq!(to_mlx_layout("head.0.gamma", g).unwrap().shape(), &[8]);
        let l = arange(&[6, 5]);
        assert_eq!(
            to_mlx_layout("blocks.0.self_attn.q.weight", l)
                .unwrap()
                .shape(),
            &[6, 5]
        );
        // biases and non-conv 4-D/5-D tensors that are not weights are left alone
        assert_eq!(mlx_shape("x.bias", &[4]), vec![4]);
    }
}
