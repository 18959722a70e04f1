//! Training in MLX: flow-matching objective, PyTorch-exact AdamW, the trainer step,
//! training checkpoints (resumable), LoRA adapters (+ gradient checkpointing and the
//! dataset-folder fine-tuning run), and the synthetic dataset used to train a small DiT
//! from scratch.
pub mod adamw;
pub mod checkpoint;
pub mod data;
pub mod finetune;
pub mod grad_checkpoint;
pub mod init;
pub mod lora;
pub mod objective;
pub mod scratch;
pub mod trainer;

pub use adamw::{AdamW, AdamWConfig, LrSchedule};
pub use objective::{FlowBatch, Rng, SigmaSampling};
pub use trainer::{FlowModel, StepStats, Trainer};
