//! Plain flow-matching Euler solver (ours; no official counterpart in Wan2.2):
//! `x_{i+1} = x_i + (σ_{i+1} − σ_i)·v_i` on the UniPC sigma grid. With the final σ = 0
//! the last step lands exactly on the x0 prediction `x − σ·v`.
use mlx_rs::Array;

use super::schedule::Schedule;
use super::{StepOut, scale};
use crate::error::Result;

pub struct Euler {
    schedule: Schedule,
    step_index: usize,
}

impl Euler {
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            step_index: 0,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn step(&mut self, v: &Array, i: usize, x: &Array) -> Result<StepOut> {
        let n = self.schedule.len();
        super::check_step_order("Euler", i, self.step_index, n)?;
        let s = &self.schedule.sigmas;
        let x0 = x.subtract(scale(v, s[i])?)?;
        let sample = if s[i + 1] == 0.0 {
            x0.clone()
        } else {
            x.add(scale(v, s[i + 1] - s[i])?)?
        };
        self.step_index += 1;
        Ok(StepOut { sample, x0 })
    }
}
