//! One error type for the whole library. Binaries wrap it in `anyhow`; the app maps
//! it to `{ code, message }` through [`Error::code`].
use std::path::PathBuf;

/// Library result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that is not what it claims to be (bad header, truncated, hostile ranges).
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// A `.pth` pickle that uses something a plain state_dict never needs.
    #[error("{path}: refused pickle: {reason}")]
    Pickle { path: PathBuf, reason: String },
    /// Weights that do not fit the model: every problem, listed at once.
    #[error("weights do not match the model ({} problem(s)):\n  {}", .0.len(), .0.join("\n  "))]
    Weights(Vec<String>),
    #[error("tensor `{key}`: expected shape {expected:?}, got {got:?}")]
    Shape {
        key: String,
        expected: Vec<i32>,
        got: Vec<i32>,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("missing file: {0}")]
    Missing(PathBuf),
    /// The user (or the app) cancelled the job; nothing was written.
    #[error("cancelled")]
    Cancelled,
    #[error("external tool: {0}")]
    External(String),
    /// No way to run the job fits the machine's memory (the plan says what would).
    #[error("does not fit in memory: {0}")]
    Memory(String),
    /// No ffmpeg anywhere the lookup searches (`video::ffmpeg`); says what to install.
    #[error("{0}")]
    FfmpegMissing(String),
    /// A download could not reach the server or the server refused (`hub`).
    #[error("{0}")]
    Network(String),
    /// A downloaded file does not hash to what the server reported; it was not kept.
    #[error("{path}: checksum mismatch (expected {expected}, got {got}); the file was discarded")]
    Checksum {
        path: PathBuf,
        expected: String,
        got: String,
    },
    /// Not enough free disk space for what is left to download (checked before starting).
    #[error("not enough disk space in {path}: {needed} bytes needed, {free} free")]
    DiskSpace {
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("MLX: {0}")]
    Mlx(#[from] mlx_rs::error::Exception),
}

impl Error {
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// Stable machine-readable code (for the app's IPC errors and for tests).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Format { .. } => "format",
            Error::Pickle { .. } => "pickle",
            Error::Weights(_) => "weights",
            Error::Shape { .. } => "shape",
            Error::Config(_) => "config",
            Error::Input(_) => "input",
            Error::Unsupported(_) => "unsupported",
            Error::Missing(_) => "missing",
            Error::Cancelled => "cancelled",
            Error::External(_) => "external",
            Error::Memory(_) => "memory",
            Error::FfmpegMissing(_) => "ffmpeg",
            Error::Network(_) => "network",
            Error::Checksum { .. } => "checksum",
            Error::DiskSpace { .. } => "disk_space",
            Error::Mlx(_) => "mlx",
        }
    }
}
