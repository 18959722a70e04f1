//! PyTorch zip checkpoints (`torch.save` since 1.6), read without torch and without running
//! any pickle code: the official `Wan2.1_VAE.pth`, `Wan2.2_VAE.pth` and
//! `models_t5_umt5-xxl-enc-bf16.pth`.
//!
//! Layout: `<top>/data.pkl` (the state_dict pickle, interpreted by [`super::pickle`]) and one
//! stored (uncompressed) record `<top>/data/<key>` per storage, raw little-endian bytes. The
//! file is memory-mapped; opening reads only the zip directory and the pickle, and checks
//! every tensor view against its record before any tensor byte is touched.
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use mlx_rs::Array;

use super::pickle::{self, TensorRef};
use super::safetensors::{StDtype, array_from_bytes, release_range};
use super::{Layout, TensorSource};
use crate::error::{Error, Result};

/// A `data.pkl` larger than this is not a state_dict (the 5B T5's is well under 1 MB).
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// One validated tensor: a contiguous byte range of the mapped file.
#[derive(Debug, Clone)]
pub struct PthTensor {
    pub dtype: StDtype,
    pub shape: Vec<i32>,
    /// Absolute byte range in the file.
    pub start: u64,
    pub end: u64,
}

impl PthTensor {
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
    pub fn nbytes(&self) -> u64 {
        self.end - self.start
    }
}

/// A validated torch zip checkpoint.
pub struct PthFile {
    path: PathBuf,
    mmap: Mmap,
    /// Tensors in pickle order.
    pub order: Vec<String>,
    pub tensors: BTreeMap<String, PthTensor>,
}

/// Where a stored zip record's bytes lie in the file.
struct Record {
    start: u64,
    len: u64,
}

impl PthFile {
    /// Open and validate (zip directory, pickle, every view against its record).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |r: String| Error::format(path, r);
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut zip = zip::ZipArchive::new(f)
            .map_err(|e| bad(format!("not a readable torch zip checkpoint: {e}")))?;

        let pkls: Vec<String> = zip
            .file_names()
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .collect();
        let pkl_name = match &pkls[..] {
            [one] => one.clone(),
            [] => {
                return Err(bad(
                    "no `<top>/data.pkl` record: not a torch zip checkpoint".into(),
                ));
            }
            _ => return Err(bad(format!("several data.pkl records: {pkls:?}"))),
        };
        let top = pkl_name.trim_end_matches("/data.pkl").to_string();

        let mut record = |name: &str| -> Result<Record> {
            let idx = zip
                .index_for_name(name)
                .ok_or_else(|| bad(format!("record `{name}` is missing")))?;
            let e = zip
                .by_index(idx)
                .map_err(|e| bad(format!("record `{name}`: {e}")))?;
            if e.compression() != zip::CompressionMethod::Stored || e.size() != e.compressed_size()
            {
                return Err(Error::Unsupported(format!(
                    "{}: record `{name}` is compressed ({:?}); torch writes stored records",
                    path.display(),
                    e.compression()
                )));
            }
            let start = e
                .data_start()
                .ok_or_else(|| bad(format!("record `{name}`: unknown data offset")))?;
            let len = e.size();
            if start.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(bad(format!(
                    "record `{name}` runs past the end of the file"
                )));
            }
            Ok(Record { start, len })
        };

        let pkl = record(&pkl_name)?;
        if pkl.len > MAX_PICKLE_BYTES {
            return Err(bad(format!(
                "data.pkl of {} bytes is not a state_dict",
                pkl.len
            )));
        }
        // SAFETY: read-only map of a file we only read; ranges are checked against its length.
        let mmap = unsafe { Mmap::map(&File::open(path).map_err(|e| Error::io(path, e))?) }
            .map_err(|e| Error::io(path, e))?;
        if (mmap.len() as u64) < file_len {
            return Err(bad("file shrank while being read".into()));
        }
        let pkl_bytes = &mmap[pkl.start as usize..(pkl.start + pkl.len) as usize];
        let refuse = |reason: String| Error::Pickle {
            path: path.to_path_buf(),
            reason,
        };
        let value = pickle::unpickle(pkl_bytes).map_err(refuse)?;
        let flat = pickle::flatten_state_dict(&value).map_err(refuse)?;

        let mut records: BTreeMap<String, Record> = BTreeMap::new();
        let mut order = Vec::with_capacity(flat.len());
        let mut tensors = BTreeMap::new();
        for (key, t) in flat {
            if !records.contains_key(&t.storage_key) {
                let r = record(&format!("{top}/data/{}", t.storage_key))?;
                records.insert(t.storage_key.clone(), r);
            }
            let rec = &records[&t.storage_key];
            let pt = view(&key, &t, rec).map_err(&bad)?;
            if tensors.insert(key.clone(), pt).is_some() {
                return Err(bad(format!("tensor `{key}` appears twice")));
            }
            order.push(key);
        }
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            order,
            tensors,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Raw little-endian bytes of one tensor.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::Weights(vec![format!("missing `{name}`")]))?;
        Ok(&self.mmap[t.start as usize..t.end as usize])
    }
}

/// Check a view against its storage record and reduce it to one contiguous byte range.
fn view(key: &str, t: &TensorRef, rec: &Record) -> std::result::Result<PthTensor, String> {
    let item = t.dtype.size();
    let need = t
        .storage_numel
        .checked_mul(item)
        .ok_or_else(|| format!("`{key}`: storage size overflows"))?;
    if rec.len < need {
        return Err(format!(
            "`{key}`: storage record `{}` holds {} bytes, but its {} elements of {} need {need}",
            t.storage_key,
            rec.len,
            t.storage_numel,
            t.dtype.name()
        ));
    }
    if t.offset > t.storage_numel {
        return Err(format!(
            "`{key}`: storage offset {} is past the {}-element storage",
            t.offset, t.storage_numel
        ));
    }
    let mut numel: u64 = 1;
    let mut last: u64 = t.offset; // offset of the view's last element
    for (&s, &st) in t.shape.iter().zip(&t.stride) {
        if s > i32::MAX as u64 {
            return Err(format!("`{key}`: dimension {s} is too large"));
        }
        numel = numel
            .checked_mul(s)
            .ok_or_else(|| format!("`{key}`: element count overflows"))?;
        if s > 0 {
            last = (s - 1)
                .checked_mul(st)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| format!("`{key}`: view extent overflows"))?;
        }
    }
    if numel > 0 && last >= t.storage_numel {
        return Err(format!(
            "`{key}`: view (offset {}, size {:?}, stride {:?}) reaches element {} of a {}-element storage",
            t.offset, t.shape, t.stride, last, t.storage_numel
        ));
    }
    // Row-major contiguity; strides of size-1 dimensions are irrelevant.
    let mut expect = 1u64;
    for (&s, &st) in t.shape.iter().zip(&t.stride).rev() {
        if s != 1 && st != expect {
            return Err(format!(
                "`{key}`: non-contiguous view (size {:?}, stride {:?}) is not supported",
                t.shape, t.stride
            ));
        }
        expect = expect.saturating_mul(s);
    }
    let start = rec.start + t.offset * item;
    Ok(PthTensor {
        dtype: t.dtype,
        shape: t.shape.iter().map(|&d| d as i32).collect(),
        start,
        end: start + numel * item,
    })
}

impl TensorSource for PthFile {
    fn tensor_names(&self) -> Vec<String> {
        self.order.clone()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<i32>> {
        self.tensors.get(name).map(|t| t.shape.clone())
    }
    fn load_tensor(&self, name: &str) -> Result<Array> {
        let t = &self.tensors.get(name).ok_or_else(|| {
            Error::Weights(vec![format!("missing `{name}` in {}", self.path.display())])
        })?;
        Ok(array_from_bytes(self.bytes(name)?, &t.shape, t.dtype))
    }
    fn layout(&self) -> Layout {
        Layout::PyTorch
    }
    fn tensor_dtype(&self, name: &str) -> Option<StDtype> {
        self.tensors.get(name).map(|t| t.dtype)
    }
    fn release(&self, name: &str) {
        if let Some(t) = self.tensors.get(name) {
            release_range(&self.mmap, t.start as usize, t.end as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(offset: u64, shape: &[u64], stride: &[u64], numel: u64) -> TensorRef {
        TensorRef {
            storage_key: "0".into(),
            dtype: StDtype::F32,
            storage_numel: numel,
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }
    const REC: Record = Record {
        start: 100,
        len: 64,
    };

    #[test]
    fn contiguous_views_become_byte_ranges() {
        let v = view("w", &t(2, &[2, 3], &[3, 1], 16), &REC).unwrap();
        assert_eq!((v.start, v.end), (108, 132));
        // size-1 dimensions may carry any stride (torch writes [C,1,1,1] gammas so)
        view("g", &t(0, &[8, 1, 1, 1], &[1, 1, 1, 1], 8), &REC).unwrap();
        // empty tensors are fine
        let v = view("e", &t(16, &[0, 4], &[4, 1], 16), &REC).unwrap();
        assert_eq!(v.start, v.end);
    }

    #[test]
    fn bad_views_are_refused() {
        let e = view("w", &t(0, &[4, 4], &[1, 4], 16), &REC).unwrap_err();
        assert!(e.contains("non-contiguous"), "{e}");
        let e = view("w", &t(1, &[4, 4], &[4, 1], 16), &REC).unwrap_err();
        assert!(e.contains("reaches element 16"), "{e}");
        let e = view("w", &t(0, &[2], &[1], 17), &REC).unwrap_err();
        assert!(e.contains("holds 64 bytes"), "{e}");
        let e = view("w", &t(u64::MAX / 2, &[0], &[1], 16), &REC).unwrap_err();
        assert!(e.contains("offset"), "{e}");
        let e = view("w", &t(0, &[u64::MAX, 2], &[2, 1], 16), &REC).unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }
}
