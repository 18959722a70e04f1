//! The text side: prompt cleaning and umT5 tokenizer, the umT5-XXL encoder, and the
//! trimmed per-prompt contexts the DiT takes (official `wan/modules/t5.py`,
//! `wan/modules/tokenizers.py`).
pub mod cache;
pub mod clean;
pub mod config;
pub mod context;
pub mod encoder;
pub mod keys;
pub mod load;
pub mod tokenizer;

pub use config::T5Config;
pub use context::TextEncoder;
pub use encoder::T5Encoder;
pub use tokenizer::{T5Tokenizer, TEXT_LEN, Tokenized, TokenizedBatch};
