//! The app's one error type. Every Tauri command returns `Result<T, AppError>`, which
//! reaches the UI as `{ code, message }` (the `code` strings are stable: the UI and
//! tests match on them).
use serde::Serialize;

pub type AppResult<T> = std::result::Result<T, AppError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    pub code: String,
    pub message: String,
}

impl AppError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
        }
    }
    /// Bad settings or paths from the UI.
    pub fn input(message: impl Into<String>) -> Self {
        Self::new("input", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("not_found", message)
    }
    pub fn io(what: &str, e: std::io::Error) -> Self {
        Self::new("io", format!("{what}: {e}"))
    }
}

impl From<wan::Error> for AppError {
    fn from(e: wan::Error) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        Self::new("format", e.to_string())
    }
}
