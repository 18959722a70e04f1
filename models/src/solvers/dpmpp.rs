//! Flow-matching DPM-Solver++ (spec §5.4): a port of
//! `wan/utils/fm_solvers.py:FlowDPMSolverMultistepScheduler` as the pipelines use it for
//! `--sample_solver dpm++`: `algorithm_type="dpmsolver++"`, `solver_type="midpoint"`,
//! `solver_order=2`, `lower_order_final`, `final_sigmas_type="zero"`.
//!
//! The schedule starts at σ = 1 exactly, so α₀ = 0 and λ₀ = −∞: step 0 is a plain Euler
//! step and at step 1 `r0 = +∞ ⇒ D1 = 0`. IEEE float32 gives both without a NaN as long as
//! `1/r0` (= 0) multiplies a finite difference, never `0·∞`.
use mlx_rs::Array;

use super::schedule::Schedule;
use super::{StepOut, lambda, scale};
use crate::error::{Error, Result};

pub struct DpmPp {
    schedule: Schedule,
    /// `m_{i−1}` (the previous data prediction).
    prev: Option<Array>,
    lower_order_nums: usize,
    step_index: usize,
}

impl DpmPp {
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            prev: None,
            lower_order_nums: 0,
            step_index: 0,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    pub fn step(&mut self, v: &Array, i: usize, x: &Array) -> Result<StepOut> {
        let n = self.schedule.len();
        super::check_step_order("DPM++", i, self.step_index, n)?;
        let s = &self.schedule.sigmas;
        let m = x.subtract(scale(v, s[i])?)?;
        // First order at the first step and at the final one (final σ is zero).
        let first_order = self.lower_order_nums < 1 || i == n - 1;

        let (sig_t, sig_s0) = (s[i + 1], s[i]);
        let alpha_t = 1.0 - sig_t;
        let lam_s0 = lambda(sig_s0);
        let h = lambda(sig_t) - lam_s0;
        let coef = alpha_t * ((-h).exp() - 1.0); // α_t·(e^{−h} − 1)
        let mut next = scale(x, sig_t / sig_s0)?.subtract(scale(&m, coef)?)?;
        if !first_order {
            let m1 = self
                .prev
                .as_ref()
                .ok_or_else(|| Error::Input("DPM++ second order without history".into()))?;
            let h0 = lam_s0 - lambda(s[i - 1]);
            let r0 = h0 / h;
            // D1 = (1/r0)·(m_i − m_{i−1}); 1/∞ = 0 keeps it finite.
            let d1 = scale(&m.subtract(m1)?, 1.0 / r0)?;
            next = next.subtract(scale(&d1, 0.5 * coef)?)?;
        }
        self.prev = Some(m.clone());
        if self.lower_order_nums < 2 {
            self.lower_order_nums += 1;
        }
        self.step_index += 1;
        Ok(StepOut {
            sample: next,
            x0: m,
        })
    }
}
