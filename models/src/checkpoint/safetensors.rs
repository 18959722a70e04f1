//! Strict safetensors reader (memory-mapped, header validated before any data is touched).
//!
//! Refuses everything the format forbids instead of trusting the header: header length
//! past EOF or above 100 MB, invalid JSON, unknown dtypes, negative or overflowing shapes,
//! byte ranges that do not match `prod(shape) * itemsize`, and ranges that do not tile the
//! data section exactly (gaps, overlaps, out of bounds). Nothing is allocated from an
//! unchecked size. Tensor data is copied into MLX arrays only on request.
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use mlx_rs::{Array, Dtype};
use serde_json::Value;

use crate::error::{Error, Result};

/// Same cap as the reference library: a header is JSON text, never this large.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Element types of the safetensors format that we can hold in MLX arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StDtype {
    Bool,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    BF16,
    F32,
    F64,
}

impl StDtype {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "BOOL" => Self::Bool,
            "U8" => Self::U8,
            "I8" => Self::I8,
            "I16" => Self::I16,
            "U16" => Self::U16,
            "I32" => Self::I32,
            "U32" => Self::U32,
            "I64" => Self::I64,
            "U64" => Self::U64,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "F32" => Self::F32,
            "F64" => Self::F64,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::U8 => "U8",
            Self::I8 => "I8",
            Self::I16 => "I16",
            Self::U16 => "U16",
            Self::I32 => "I32",
            Self::U32 => "U32",
            Self::I64 => "I64",
            Self::U64 => "U64",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::F32 => "F32",
            Self::F64 => "F64",
        }
    }
    pub fn size(self) -> u64 {
        match self {
            Self::Bool | Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 | Self::F16 | Self::BF16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }
    pub fn to_mlx(self) -> Dtype {
        match self {
            Self::Bool => Dtype::Bool,
            Self::U8 => Dtype::Uint8,
            Self::I8 => Dtype::Int8,
            Self::I16 => Dtype::Int16,
            Self::U16 => Dtype::Uint16,
            Self::I32 => Dtype::Int32,
            Self::U32 => Dtype::Uint32,
            Self::I64 => Dtype::Int64,
            Self::U64 => Dtype::Uint64,
            Self::F16 => Dtype::Float16,
            Self::BF16 => Dtype::Bfloat16,
            Self::F32 => Dtype::Float32,
            Self::F64 => Dtype::Float64,
        }
    }
    pub fn from_mlx(d: Dtype) -> Option<Self> {
        Some(match d {
            Dtype::Bool => Self::Bool,
            Dtype::Uint8 => Self::U8,
            Dtype::Int8 => Self::I8,
            Dtype::Int16 => Self::I16,
            Dtype::Uint16 => Self::U16,
            Dtype::Int32 => Self::I32,
            Dtype::Uint32 => Self::U32,
            Dtype::Int64 => Self::I64,
            Dtype::Uint64 => Self::U64,
            Dtype::Float16 => Self::F16,
            Dtype::Bfloat16 => Self::BF16,
            Dtype::Float32 => Self::F32,
            Dtype::Float64 => Self::F64,
            _ => return None,
        })
    }
}

/// One validated header entry. `start..end` is relative to the data section.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub dtype: StDtype,
    pub shape: Vec<i32>,
    pub start: u64,
    pub end: u64,
}

impl TensorInfo {
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
    pub fn nbytes(&self) -> u64 {
        self.end - self.start
    }
}

/// A validated safetensors header (no tensor data read).
#[derive(Debug, Clone)]
pub struct Header {
    pub tensors: BTreeMap<String, TensorInfo>,
    pub metadata: BTreeMap<String, String>,
    /// Byte offset of the data section in the file.
    pub data_offset: u64,
}

/// Parse and validate a header given the first bytes of a file and its total length.
/// `prefix` must hold at least `8 + header_len` bytes (or the whole file).
pub fn parse_header(path: &Path, prefix: &[u8], file_len: u64) -> Result<Header> {
    let bad = |reason: String| Error::format(path, reason);
    if file_len < 8 || prefix.len() < 8 {
        return Err(bad(format!(
            "not a safetensors file: {file_len} bytes, shorter than the 8-byte header length"
        )));
    }
    let n = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit"
        )));
    }
    if 8 + n > file_len {
        return Err(bad(format!(
            "header length {n} runs past the end of the {file_len}-byte file"
        )));
    }
    let hdr = prefix
        .get(8..(8 + n) as usize)
        .ok_or_else(|| bad("header truncated".into()))?;
    let json: Value =
        serde_json::from_slice(hdr).map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("header JSON is not an object".into()))?;
    let data_len = file_len - 8 - n;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            let m = v
                .as_object()
                .ok_or_else(|| bad("__metadata__ is not an object".into()))?;
            for (k, v) in m {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad(format!("__metadata__[{k}] is not a string")))?;
                metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        let t = v
            .as_object()
            .ok_or_else(|| bad(format!("tensor `{name}`: entry is not an object")))?;
        let dt = t
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("tensor `{name}`: missing dtype")))?;
        let dtype = StDtype::parse(dt)
            .ok_or_else(|| bad(format!("tensor `{name}`: unknown dtype `{dt}`")))?;
        let shape_v = t
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("tensor `{name}`: missing shape")))?;
        let mut shape = Vec::with_capacity(shape_v.len().min(16));
        let mut numel: u64 = 1;
        for d in shape_v {
            let d = d.as_u64().ok_or_else(|| {
                bad(format!(
                    "tensor `{name}`: shape entry {d} is not a non-negative integer"
                ))
            })?;
            if d > i32::MAX as u64 {
                return Err(bad(format!("tensor `{name}`: dimension {d} is too large")));
            }
            numel = numel
                .checked_mul(d)
                .ok_or_else(|| bad(format!("tensor `{name}`: element count overflows")))?;
            shape.push(d as i32);
        }
        let nbytes = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| bad(format!("tensor `{name}`: byte size overflows")))?;
        let offs = t
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| {
                bad(format!(
                    "tensor `{name}`: data_offsets must be [begin, end]"
                ))
            })?;
        let (start, end) = match (offs[0].as_u64(), offs[1].as_u64()) {
            (Some(s), Some(e)) if s <= e => (s, e),
            _ => {
                return Err(bad(format!(
                    "tensor `{name}`: invalid data_offsets {offs:?}"
                )));
            }
        };
        if end - start != nbytes {
            return Err(bad(format!(
                "tensor `{name}`: {} {shape:?} needs {nbytes} bytes but data_offsets span {}",
                dtype.name(),
                end - start
            )));
        }
        if end > data_len {
            return Err(bad(format!(
                "tensor `{name}`: data_offsets [{start}, {end}] run past the {data_len}-byte data section (file truncated?)"
            )));
        }
        tensors.insert(
            name.clone(),
            TensorInfo {
                dtype,
                shape,
                start,
                end,
            },
        );
    }
    // Ranges must tile the data section exactly: no overlap, no gap, nothing trailing.
    let mut ranges: Vec<(u64, u64, &str)> = tensors
        .iter()
        .map(|(k, t)| (t.start, t.end, k.as_str()))
        .collect();
    ranges.sort();
    let mut pos = 0u64;
    for (s, e, k) in ranges {
        if s != pos {
            return Err(bad(format!(
                "tensor `{k}`: data_offsets start at {s}, expected {pos} ({})",
                if s < pos {
                    "overlaps the previous tensor"
                } else {
                    "gap in the data section"
                }
            )));
        }
        pos = e;
    }
    if pos != data_len {
        return Err(bad(format!(
            "data section has {data_len} bytes but the tensors cover {pos}"
        )));
    }
    Ok(Header {
        tensors,
        metadata,
        data_offset: 8 + n,
    })
}

/// Read and validate only the header of a file (fast on a 20 GB shard).
pub fn read_header(path: &Path) -> Result<Header> {
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut len = [0u8; 8];
    if file_len < 8 {
        return Err(Error::format(
            path,
            format!("not a safetensors file: {file_len} bytes"),
        ));
    }
    f.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || 8 + n > file_len {
        return parse_header(path, &len, file_len);
    }
    let mut buf = vec![0u8; 8 + n as usize];
    buf[..8].copy_from_slice(&len);
    f.read_exact(&mut buf[8..])
        .map_err(|e| Error::io(path, e))?;
    parse_header(path, &buf, file_len)
}

/// A memory-mapped, validated safetensors file.
pub struct SafeTensors {
    path: PathBuf,
    mmap: Mmap,
    pub header: Header,
}

impl SafeTensors {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map; a file truncated underneath us is the user's problem,
        // as with every mmap-based loader, and never happens for our own writes (atomic renames).
        let mmap = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        let header = parse_header(path, &mmap, mmap.len() as u64)?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            header,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.header.tensors.keys().map(String::as_str)
    }
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.get(name)
    }
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }

    /// Raw little-endian bytes of one tensor (bounds were validated at open).
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self
            .info(name)
            .ok_or_else(|| Error::format(&self.path, format!("no tensor `{name}`")))?;
        let off = self.header.data_offset;
        Ok(&self.mmap[(off + t.start) as usize..(off + t.end) as usize])
    }

    /// Release the resident pages of one tensor's bytes (see [`release_range`]).
    pub fn release(&self, name: &str) {
        if let Some(t) = self.info(name) {
            let off = self.header.data_offset;
            release_range(&self.mmap, (off + t.start) as usize, (off + t.end) as usize);
        }
    }

    /// Copy one tensor into an MLX array of its stored dtype.
    pub fn array(&self, name: &str) -> Result<Array> {
        let t = self
            .info(name)
            .ok_or_else(|| Error::format(&self.path, format!("no tensor `{name}`")))?;
        let bytes = self.bytes(name)?;
        Ok(array_from_bytes(bytes, &t.shape, t.dtype))
    }
}

/// Drop the pages of `mmap[start..end]` from this process's resident set once their bytes
/// were copied out (streaming conversion: otherwise a read-once 20 GB file shows up as
/// 20 GB RSS). Only whole pages inside the range are released; best effort.
pub fn release_range(mmap: &Mmap, start: usize, end: usize) {
    // 16 KiB: the page size of Apple silicon, a multiple of 4 KiB pages elsewhere.
    const PAGE: usize = 16 << 10;
    let a = start.div_ceil(PAGE) * PAGE;
    let b = end.min(mmap.len()) / PAGE * PAGE;
    #[cfg(unix)]
    if b > a {
        // SAFETY: a read-only file mapping; dropped pages are re-read from the file if
        // touched again, so every slice into the map keeps seeing the same bytes.
        let _ =
            unsafe { mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a) };
    }
    #[cfg(not(unix))]
    let _ = (a, b);
}

/// Copy little-endian bytes into a new MLX array (MLX copies; no alignment needed).
pub fn array_from_bytes(bytes: &[u8], shape: &[i32], dtype: StDtype) -> Array {
    debug_assert_eq!(
        bytes.len() as u64,
        shape.iter().map(|&d| d as u64).product::<u64>() * dtype.size()
    );
    if bytes.is_empty() {
        return mlx_rs::ops::zeros_dtype(shape, dtype.to_mlx()).expect("empty array");
    }
    // SAFETY: `bytes` holds exactly prod(shape) elements of `dtype` (checked at header parse).
    unsafe { Array::from_raw_data(bytes.as_ptr().cast(), shape, dtype.to_mlx()) }
}

/// Write arrays (evaluated on the way) to a safetensors file atomically: a temp file in
/// the same folder, fsync, rename. Keys are written in sorted order.
pub fn save(
    path: &Path,
    tensors: &BTreeMap<String, Array>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    use std::io::Write;
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).expect("strings"),
        );
    }
    let mut offset = 0u64;
    let mut order = Vec::with_capacity(tensors.len());
    for (k, a) in tensors {
        let dt = StDtype::from_mlx(a.dtype())
            .ok_or_else(|| Error::Unsupported(format!("dtype {:?} of `{k}`", a.dtype())))?;
        let n = a.size() as u64 * dt.size();
        header.insert(
            k.clone(),
            serde_json::json!({"dtype": dt.name(), "shape": a.shape(), "data_offsets": [offset, offset + n]}),
        );
        offset += n;
        order.push((k, a));
    }
    let mut hjson = serde_json::to_vec(&Value::Object(header)).expect("json");
    while !hjson.len().is_multiple_of(8) {
        hjson.push(b' ');
    }
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        f.write_all(&(hjson.len() as u64).to_le_bytes())?;
        f.write_all(&hjson)?;
        for (_, a) in &order {
            with_bytes(a, |b| f.write_all(b)).map_err(std::io::Error::other)??;
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Run `f` on the raw little-endian bytes of an array (made row-contiguous and
/// evaluated first).
pub fn with_bytes<R>(a: &Array, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    let c = a.contiguous()?;
    c.eval()?;
    if c.size() == 0 {
        return Ok(f(&[]));
    }
    fn raw<T: mlx_rs::ArrayElement, R>(c: &Array, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let s: &[T] = c
            .try_as_slice::<T>()
            .map_err(|e| Error::Unsupported(format!("array not readable as bytes: {e}")))?;
        // SAFETY: plain-old-data elements viewed as bytes while `c` is alive.
        let b = unsafe {
            std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s))
        };
        Ok(f(b))
    }
    match c.dtype() {
        Dtype::Float32 => raw::<f32, R>(&c, f),
        Dtype::Float16 => raw::<half::f16, R>(&c, f),
        Dtype::Bfloat16 => raw::<half::bf16, R>(&c, f),
        Dtype::Float64 => raw::<f64, R>(&c, f),
        Dtype::Int64 => raw::<i64, R>(&c, f),
        Dtype::Int32 => raw::<i32, R>(&c, f),
        Dtype::Int16 => raw::<i16, R>(&c, f),
        Dtype::Int8 => raw::<i8, R>(&c, f),
        Dtype::Uint64 => raw::<u64, R>(&c, f),
        Dtype::Uint32 => raw::<u32, R>(&c, f),
        Dtype::Uint16 => raw::<u16, R>(&c, f),
        Dtype::Uint8 => raw::<u8, R>(&c, f),
        Dtype::Bool => raw::<bool, R>(&c, f),
        d => Err(Error::Unsupported(format!("cannot serialise dtype {d:?}"))),
    }
}

/// A sibling temp path used for atomic writes.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
