//! Golden fixture files (see `../shared/fixtures/README.md`): self-describing safetensors
//! with `param/*`, `input/*`, `inter/*`, `output/*` tensors and JSON metadata. Also the one
//! comparison metric every parity check uses.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlx_rs::{Array, Dtype};
use serde_json::Value;

use crate::checkpoint::safetensors::SafeTensors;
use crate::error::{Error, Result};

pub struct Fixture {
    pub path: PathBuf,
    st: SafeTensors,
    /// metadata `case` (e.g. `dit_ti2v`); empty when absent.
    pub case: String,
    /// metadata `config` parsed as JSON (`Null` when absent).
    pub config: Value,
}

impl Fixture {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let st = SafeTensors::open(&path)?;
        let case = st.metadata().get("case").cloned().unwrap_or_default();
        let config = match st.metadata().get("config") {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| Error::format(&path, format!("metadata config: {e}")))?,
            None => Value::Null,
        };
        Ok(Self {
            path,
            st,
            case,
            config,
        })
    }

    /// Folder holding the fixture file (relative paths in configs resolve against it).
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    pub fn has(&self, name: &str) -> bool {
        self.st.info(name).is_some()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.st.names()
    }

    /// Tensor names starting with `prefix`, sorted.
    pub fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.st
            .names()
            .filter(|n| n.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<Array> {
        if !self.has(name) {
            return Err(Error::format(
                &self.path,
                format!("fixture has no tensor `{name}`"),
            ));
        }
        self.st.array(name)
    }

    /// A tensor as f32 (integers converted).
    pub fn get_f32(&self, name: &str) -> Result<Array> {
        Ok(self.get(name)?.as_dtype(Dtype::Float32)?)
    }

    pub fn get_vec_f32(&self, name: &str) -> Result<Vec<f32>> {
        let a = self.get_f32(name)?;
        a.to_vec_cast::<f32>()
            .map_err(|e| Error::format(&self.path, e.to_string()))
    }

    pub fn get_vec_i64(&self, name: &str) -> Result<Vec<i64>> {
        let a = self.get(name)?.as_dtype(Dtype::Int64)?;
        a.to_vec_cast::<i64>()
            .map_err(|e| Error::format(&self.path, e.to_string()))
    }

    /// All `param/<key>` tensors, keyed by the official key (prefix stripped).
    pub fn params(&self) -> Result<BTreeMap<String, Array>> {
        self.params_with_prefix("param/")
    }

    pub fn params_with_prefix(&self, prefix: &str) -> Result<BTreeMap<String, Array>> {
        let mut out = BTreeMap::new();
        for n in self.with_prefix(prefix) {
            out.insert(n[prefix.len()..].to_string(), self.get(&n)?);
        }
        Ok(out)
    }

    /// `config.<path>` (dot-separated) or an error naming it.
    pub fn cfg(&self, path: &str) -> Result<&Value> {
        let mut v = &self.config;
        for p in path.split('.') {
            v = v.get(p).ok_or_else(|| {
                Error::format(&self.path, format!("metadata config has no `{path}`"))
            })?;
        }
        Ok(v)
    }
    pub fn cfg_i64(&self, path: &str) -> Result<i64> {
        self.cfg(path)?
            .as_i64()
            .ok_or_else(|| Error::format(&self.path, format!("config `{path}` is not an integer")))
    }
    pub fn cfg_f64(&self, path: &str) -> Result<f64> {
        self.cfg(path)?
            .as_f64()
            .ok_or_else(|| Error::format(&self.path, format!("config `{path}` is not a number")))
    }
}

/// One compared tensor.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub shape: Vec<i32>,
    /// max|got − ref| / max|ref| (normalized max error), or absolute when `absolute`.
    pub err: f64,
    pub tol: f64,
    pub absolute: bool,
    pub note: String,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.err.is_finite() && self.err <= self.tol
    }
    pub fn line(&self) -> String {
        format!(
            "{:<44} {:<20} {}={:<10.3e} tol={:<8.1e} {}{}",
            self.name,
            format!("{:?}", self.shape),
            if self.absolute {
                "max|err|"
            } else {
                "err/max|ref|"
            },
            self.err,
            self.tol,
            if self.passed() { "PASS" } else { "FAIL" },
            if self.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", self.note)
            }
        )
    }
}

/// Normalized max error between `got` and `want` (shapes must match exactly).
pub fn compare(name: &str, got: &Array, want: &Array, tol: f64) -> Result<Check> {
    compare_impl(name, got, want, tol, false)
}

/// Absolute max error (for tensors whose scale is fixed, e.g. sigmas, cos/sin tables).
pub fn compare_abs(name: &str, got: &Array, want: &Array, tol: f64) -> Result<Check> {
    compare_impl(name, got, want, tol, true)
}

fn compare_impl(name: &str, got: &Array, want: &Array, tol: f64, absolute: bool) -> Result<Check> {
    let shape = want.shape().to_vec();
    if got.shape() != want.shape() {
        return Ok(Check {
            name: name.into(),
            shape,
            err: f64::INFINITY,
            tol,
            absolute,
            note: format!("shape mismatch: got {:?}", got.shape()),
        });
    }
    let g = got.as_dtype(Dtype::Float32)?;
    let w = want.as_dtype(Dtype::Float32)?;
    let diff = g.subtract(&w)?.abs()?.max(None)?.item_cast::<f32>() as f64;
    let scale = if absolute {
        1.0
    } else {
        w.abs()?.max(None)?.item_cast::<f32>() as f64
    };
    let err = if scale > 0.0 { diff / scale } else { diff };
    let err = if err.is_nan() { f64::INFINITY } else { err };
    Ok(Check {
        name: name.into(),
        shape,
        err,
        tol,
        absolute,
        note: String::new(),
    })
}

/// Exact equality for integer tensors (ids, masks, timesteps, experts).
pub fn compare_exact(name: &str, got: &[i64], want: &[i64], shape: Vec<i32>) -> Check {
    let mismatches =
        got.len().abs_diff(want.len()) + got.iter().zip(want).filter(|(a, b)| a != b).count();
    Check {
        name: name.into(),
        shape,
        err: mismatches as f64,
        tol: 0.0,
        absolute: true,
        note: if mismatches == 0 {
            "exact".into()
        } else {
            format!("{mismatches} element(s) differ")
        },
    }
}

/// The result of one fixture file.
#[derive(Debug, Default)]
pub struct Report {
    pub file: PathBuf,
    pub case: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(Check::passed)
    }
    pub fn worst(&self) -> Option<&Check> {
        self.checks
            .iter()
            .max_by(|a, b| (a.err / a.tol.max(1e-300)).total_cmp(&(b.err / b.tol.max(1e-300))))
    }
}
