//! Generation pipelines (the only place that knows the order of things).
pub mod api;
pub mod denoise;
pub mod experts;
pub mod step_cache;

pub use api::{CancelToken, Event, GenerateParams, Preview, SolverKind, Stage, Timings, Video};
pub use denoise::{DenoiseSpec, Denoised, StepInfo, StepTrace, denoise};
pub use experts::{ExpertSlot, Experts};
pub use step_cache::{StepCache, StepRecord};
pub mod run;
pub use run::{
    Components, ImageTensors, LatentVae, PromptEncoder, RunOptions, RunRecord, run, seeded_noise,
};
pub mod load;
pub use load::{
    LoadOptions, Loaded, check_folder, folder_identity, load, load_experts, load_models,
    load_text_encoder, previewer_for,
};
pub mod phases;
pub use phases::{PhaseMemory, PhaseRecord, PhasedOptions};
pub mod vae_glue;
pub use vae_glue::VaeComponent;
