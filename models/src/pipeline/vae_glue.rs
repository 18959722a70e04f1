//! The pipelines' view of the Wan VAEs ([`LatentVae`]): chunked encode, decode with
//! automatic tiling under the memory budget (untiled — exactly official — when a frame
//! fits), cancellation between chunks/tiles, and x0 previews through the fitted previewer.
use mlx_rs::Array;

use super::api::{CancelToken, Preview};
use super::run::LatentVae;
use crate::error::Result;
use crate::vae::preview::Previewer;
use crate::vae::{RunOpts, WanVae};

pub struct VaeComponent {
    pub vae: WanVae,
    /// Fast previewer (`preview_mlx.safetensors` beside converted weights), if any.
    pub previewer: Option<Previewer>,
}

impl LatentVae for VaeComponent {
    fn encode(&self, video: &Array, cancel: &CancelToken) -> Result<Array> {
        Ok(self
            .vae
            .encode_with(
                video,
                RunOpts {
                    cancel: Some(cancel),
                    ..Default::default()
                },
            )?
            .latent)
    }

    fn decode(
        &self,
        latent: &Array,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Array> {
        self.vae.decode_auto(
            latent,
            None,
            RunOpts {
                cancel: Some(cancel),
                progress: Some(progress),
                trace: None,
            },
        )
    }

    fn preview(&self, x0: &Array) -> Result<Option<Preview>> {
        self.previewer.as_ref().map(|p| p.preview(x0)).transpose()
    }
}
