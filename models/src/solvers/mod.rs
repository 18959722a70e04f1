//! Flow-matching solvers and their sigma schedules (spec §5): pure math over arrays, no
//! model knowledge. One [`Solver`] instance spans a whole sampling loop — including both
//! A14B experts, as officially (the multistep history crosses the expert switch).
pub mod dpmpp;
pub mod euler;
pub mod schedule;
pub mod unipc;

use mlx_rs::Array;

pub use dpmpp::DpmPp;
pub use euler::Euler;
pub use schedule::Schedule;
pub use unipc::UniPc;

use crate::error::Result;
use crate::pipeline::SolverKind;

/// What one solver step returns.
pub struct StepOut {
    /// The latent for the next step (after the final step: the final latent).
    pub sample: Array,
    /// The data prediction `x_i − σ_i·v_i` of this step (for previews and parity).
    pub x0: Array,
}

/// The three solvers behind one interface: `step(v_i, i, x_i) → x_{i+1}`.
pub enum Solver {
    Unipc(UniPc),
    Dpmpp(DpmPp),
    Euler(Euler),
}

impl Solver {
    /// A fresh solver with the schedule the official pipelines build for `kind`
    /// (DPM++ has its own σ grid starting at exactly 1; Euler reuses UniPC's).
    pub fn new(kind: SolverKind, steps: usize, shift: f64) -> Result<Self> {
        Ok(match kind {
            SolverKind::Unipc => Solver::Unipc(UniPc::new(Schedule::unipc(steps, shift)?)),
            SolverKind::Dpmpp => Solver::Dpmpp(DpmPp::new(Schedule::dpmpp(steps, shift)?)),
            SolverKind::Euler => Solver::Euler(Euler::new(Schedule::unipc(steps, shift)?)),
        })
    }

    pub fn schedule(&self) -> &Schedule {
        match self {
            Solver::Unipc(s) => s.schedule(),
            Solver::Dpmpp(s) => s.schedule(),
            Solver::Euler(s) => s.schedule(),
        }
    }

    /// Integer timesteps fed to the DiT.
    pub fn timesteps(&self) -> &[i64] {
        &self.schedule().timesteps
    }

    /// Advance from `x` (the latent at step `i`) with the model output `v`.
    pub fn step(&mut self, v: &Array, i: usize, x: &Array) -> Result<StepOut> {
        match self {
            Solver::Unipc(s) => s.step(v, i, x),
            Solver::Dpmpp(s) => s.step(v, i, x),
            Solver::Euler(s) => s.step(v, i, x),
        }
    }
}

/// `λ(σ) = ln(1 − σ) − ln σ` in float32 (−∞ at σ = 1, +∞ at σ = 0).
pub(crate) fn lambda(sigma: f32) -> f32 {
    (1.0 - sigma).ln() - sigma.ln()
}

/// `a · c` with a float32 scalar (keeps the array's dtype).
/// Every solver is stateful (history, step counter): refuse a step that is not the next one.
pub(crate) fn check_step_order(solver: &str, i: usize, expected: usize, n: usize) -> Result<()> {
    if i != expected || i >= n {
        return Err(crate::error::Error::Input(format!(
            "{solver} step {i} called out of order (expected {expected} of {n})"
        )));
    }
    Ok(())
}

pub(crate) fn scale(a: &Array, c: f32) -> Result<Array> {
    Ok(a.multiply(Array::from_f32(c).as_dtype(a.dtype())?)?)
}

/// `a / c` with a float32 scalar (the reference divides by the 0-d tensor).
pub(crate) fn div(a: &Array, c: f32) -> Result<Array> {
    Ok(a.divide(Array::from_f32(c).as_dtype(a.dtype())?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(v: &[f32]) -> Array {
        Array::from_slice(v, &[v.len() as i32])
    }

    fn vals(a: &Array) -> Vec<f32> {
        a.as_slice::<f32>().to_vec()
    }

    /// A model that predicts the exact velocity of a fixed (x0, ε) pair: every solver must
    /// land on x0 (the flow is a straight line, so all steps are exact).
    #[test]
    fn all_solvers_recover_x0_on_a_straight_flow() {
        let x0 = [0.5f32, -1.0, 2.0];
        let eps = [1.0f32, 0.3, -0.7];
        for kind in [SolverKind::Unipc, SolverKind::Dpmpp, SolverKind::Euler] {
            let mut s = Solver::new(kind, 6, 5.0).unwrap();
            let sig0 = s.schedule().sigmas[0];
            let mut x = arr(&x0
                .iter()
                .zip(&eps)
                .map(|(a, e)| (1.0 - sig0) * a + sig0 * e)
                .collect::<Vec<_>>());
            let v = arr(&eps.iter().zip(&x0).map(|(e, a)| e - a).collect::<Vec<_>>());
            for i in 0..s.schedule().len() {
                let out = s.step(&v, i, &x).unwrap();
                x = out.sample;
                assert!(vals(&x).iter().all(|v| v.is_finite()), "{kind:?} step {i}");
            }
            for (got, want) in vals(&x).iter().zip(&x0) {
                assert!((got - want).abs() < 1e-4, "{kind:?}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn out_of_order_steps_are_refused() {
        let mut s = Solver::new(SolverKind::Unipc, 3, 5.0).unwrap();
        let x = arr(&[1.0]);
        assert!(s.step(&x, 1, &x).is_err());
        s.step(&x, 0, &x).unwrap();
        assert!(s.step(&x, 0, &x).is_err());
    }

    #[test]
    fn lambda_has_ieee_ends() {
        assert_eq!(lambda(1.0), f32::NEG_INFINITY);
        assert_eq!(lambda(0.0), f32::INFINITY);
        assert!(lambda(0.5).abs() < 1e-7);
    }
}
