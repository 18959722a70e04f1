//! The pipelines' view of the Wan VAEs ([`LatentVae`]): chunked encode, decode with
//! automatic tiling under the memory budget (untiled — exactly official — when a frame
//! fits), cancellation between chunks/tiles, and x0 previews through the fitted previewer.
use mlx_rs::Array;

use super::api::{CancelToken, Preview};
use super::run::LatentVae;
use crate::error::Result;
use crate::vae::preview::Previewer;
use crate::vae::tiling::Tiling;
use crate::vae::{RunOpts, WanVae};

pub struct VaeComponent {
    pub vae: WanVae,
    /// Fast previewer (`preview_mlx.safetensors` beside converted weights), if any.
    pub previewer: Option<Previewer>,
    /// Encode tiles (`None`: the whole frame, as official).
    pub encode_tile: Option<Tiling>,
    /// Decode tiles: `None` chooses under MLX's memory limit (`decode_auto`);
    /// `Some(None)` the whole frame; `Some(Some(t))` these tiles (the memory plan's).
    pub decode_tile: Option<Option<Tiling>>,
}

impl VaeComponent {
    pub fn new(vae: WanVae, previewer: Option<Previewer>) -> Self {
        Self {
            vae,
            previewer,
            encode_tile: None,
            decode_tile: None,
        }
    }
}

impl LatentVae for VaeComponent {
    fn encode(&self, video: &Array, cancel: &CancelToken) -> Result<Array> {
        let opts = RunOpts {
            cancel: Some(cancel),
            ..Default::default()
        };
        match self.encode_tile {
            Some(t) => self.vae.encode_tiled(video, t, opts),
            None => Ok(self.vae.encode_with(video, opts)?.latent),
        }
    }

    fn decode(
        &self,
        latent: &Array,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Array> {
        let opts = RunOpts {
            cancel: Some(cancel),
            progress: Some(progress),
            trace: None,
        };
        match self.decode_tile {
            None => self.vae.decode_auto(latent, None, opts),
            Some(None) => self.vae.decode_with(latent, opts),
            Some(Some(t)) => self.vae.decode_tiled(latent, t, opts),
        }
    }

    fn preview(&self, x0: &Array) -> Result<Option<Preview>> {
        self.previewer.as_ref().map(|p| p.preview(x0)).transpose()
    }
}
