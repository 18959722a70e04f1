//! Training data sources. `synthetic`: procedurally generated clips (the from-scratch run);
//! `folder`: a user folder of videos/images with captions; `cache`: their precomputed
//! latents and text contexts.
pub mod cache;
pub mod folder;
pub mod synthetic;
