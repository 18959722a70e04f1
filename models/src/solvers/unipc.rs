//! Flow-matching UniPC multistep solver (spec §5.3): a port of
//! `wan/utils/fm_solvers_unipc.py:FlowUniPCMultistepScheduler` with the settings the
//! pipelines use: `solver_order=2`, `predict_x0`, `solver_type="bh2"`,
//! `lower_order_final`, corrector on every step, `final_sigmas_type="zero"`.
//!
//! Scalar coefficients (λ, h, φ, ρ) are float32, as the reference computes them on 0-d
//! float32 tensors; the latents are float32 arrays of any shape.
use mlx_rs::Array;

use super::schedule::Schedule;
use super::{StepOut, div, lambda, scale};
use crate::error::{Error, Result};

/// Multistep state: two past data predictions, the last corrected sample, the predictor
/// order used at the previous step.
pub struct UniPc {
    schedule: Schedule,
    /// `m_{i−2}`, `m_{i−1}` (oldest first).
    history: [Option<Array>; 2],
    last_sample: Option<Array>,
    this_order: usize,
    lower_order_nums: usize,
    step_index: usize,
}

impl UniPc {
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            history: [None, None],
            last_sample: None,
            this_order: 0,
            lower_order_nums: 0,
            step_index: 0,
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// One call of the official `step(model_output, t_i, sample)`; `i` must be the next
    /// step index (0, 1, …).
    pub fn step(&mut self, v: &Array, i: usize, x: &Array) -> Result<StepOut> {
        let n = self.schedule.len();
        super::check_step_order("UniPC", i, self.step_index, n)?;
        let s = &self.schedule.sigmas;
        // m_i = x_i − σ_i·v_i (flow prediction → x0).
        let m = x.subtract(scale(v, s[i])?)?;

        // 1. Corrector (UniC) on the sample the predictor produced last step.
        let mut x = x.clone();
        if i > 0
            && let (Some(last), Some(m1)) = (&self.last_sample, &self.history[1])
        {
            let (sig_t, sig_s0) = (s[i], s[i - 1]);
            let (lam_t, lam_s0) = (lambda(sig_t), lambda(sig_s0));
            let h = lam_t - lam_s0;
            let hh = -h;
            let phi = hh.exp_m1(); // h·φ₁(h) = e^{−h} − 1
            let b_h = phi; // bh2
            let alpha_t = 1.0 - sig_t;
            let base = scale(last, sig_t / sig_s0)?.subtract(scale(m1, alpha_t * phi)?)?;
            let d1_t = m.subtract(m1)?;
            let corr = if self.this_order == 1 {
                scale(&d1_t, 0.5)?
            } else {
                // Order 2: rks = [r, 1], b = [b1, b2]; solve [[1, 1], [r, 1]]·ρ = b.
                let m2 = self.history[0].as_ref().ok_or_else(|| {
                    Error::Input("UniPC corrector of order 2 without history".into())
                })?;
                let r = (lambda(s[i - 2]) - lam_s0) / h;
                let d1 = div(&m2.subtract(m1)?, r)?;
                let hpk1 = phi / hh - 1.0;
                let b1 = hpk1 / b_h;
                let hpk2 = hpk1 / hh - 0.5;
                let b2 = hpk2 * 2.0 / b_h;
                let rho0 = (b1 - b2) / (1.0 - r);
                let rho1 = b1 - rho0;
                scale(&d1, rho0)?.add(scale(&d1_t, rho1)?)?
            };
            x = base.subtract(scale(&corr, alpha_t * b_h)?)?;
        }

        // 2. History, 3. predictor order (warm-up and lower_order_final).
        self.history.swap(0, 1);
        self.history[1] = Some(m.clone());
        let order = 2.min(n - i).min(self.lower_order_nums + 1);
        self.this_order = order;
        self.last_sample = Some(x.clone());

        // 5. Predictor (UniP) towards σ_{i+1}.
        let (sig_t, sig_s0) = (s[i + 1], s[i]);
        let lam_s0 = lambda(sig_s0);
        let h = lambda(sig_t) - lam_s0; // +∞ at the final σ = 0
        let phi = (-h).exp_m1(); // −1 at the final step
        let alpha_t = 1.0 - sig_t;
        let mut next = scale(&x, sig_t / sig_s0)?.subtract(scale(&m, alpha_t * phi)?)?;
        if order == 2 {
            let m1 = self.history[0]
                .as_ref()
                .ok_or_else(|| Error::Input("UniPC predictor of order 2 without history".into()))?;
            let r = (lambda(s[i - 1]) - lam_s0) / h;
            let d1 = div(&m1.subtract(&m)?, r)?;
            // ρ_p = 0.5 (the reference's simplified order-2 predictor).
            next = next.subtract(scale(&scale(&d1, 0.5)?, alpha_t * phi)?)?;
        }
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
