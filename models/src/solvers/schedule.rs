//! Sigma / timestep schedules of the official samplers (spec §5.2).
//!
//! Ports `FlowUniPCMultistepScheduler.set_timesteps` (`wan/utils/fm_solvers_unipc.py`) and
//! `get_sampling_sigmas` + `FlowDPMSolverMultistepScheduler.set_timesteps`
//! (`wan/utils/fm_solvers.py`), both built with `num_train_timesteps=1000, shift=1`.
//! The grid and the shift are computed in f64 (numpy), the network gets the **truncated**
//! integer `t = int64(σ·1000)`, the solver works with `float32(σ)`: two different numbers.
use crate::error::{Error, Result};

/// `float32(1 − 1/1000)`: the largest constructor-time sigma (`sigma_max`).
pub const SIGMA_MAX: f32 = 0.999;
const NUM_TRAIN_TIMESTEPS: f64 = 1000.0;

/// One sampling schedule: `N` timesteps and `N + 1` float32 sigmas (the last is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Integer timesteps fed to the DiT, `[N]`.
    pub timesteps: Vec<i64>,
    /// float32 sigmas used by the solver update, `[N + 1]`, `sigmas[N] = 0`.
    pub sigmas: Vec<f32>,
}

/// SD3-style shift `S·s / (1 + (S − 1)·s)` (f64, as numpy evaluates it).
pub fn shift_sigma(s: f64, shift: f64) -> f64 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

/// numpy `linspace(start, stop, num)` (the formula numpy uses: `start + i·step`, the last
/// element set to `stop` exactly).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num.max(2) - 1) as f64;
    let step = (stop - start) / div;
    let mut v: Vec<f64> = (0..num).map(|i| start + i as f64 * step).collect();
    if num > 1 {
        v[num - 1] = stop;
    }
    v
}

fn check(steps: usize, shift: f64) -> Result<()> {
    if steps == 0 || steps > 10_000 {
        return Err(Error::Input(format!(
            "sample_steps must be between 1 and 10000, got {steps}"
        )));
    }
    if !shift.is_finite() || shift <= 0.0 {
        return Err(Error::Input(format!(
            "sample_shift must be a positive number, got {shift}"
        )));
    }
    Ok(())
}

fn from_shifted(s: Vec<f64>) -> Schedule {
    // float64 → int64 truncates toward zero, as torch/numpy do.
    let timesteps = s
        .iter()
        .map(|&v| (v * NUM_TRAIN_TIMESTEPS) as i64)
        .collect();
    let mut sigmas: Vec<f32> = s.iter().map(|&v| v as f32).collect();
    sigmas.push(0.0);
    Schedule { timesteps, sigmas }
}

impl Schedule {
    /// UniPC path: `linspace(float32(0.999), 0, N+1)[:-1]`, shifted; first t = 999.
    pub fn unipc(steps: usize, shift: f64) -> Result<Self> {
        check(steps, shift)?;
        let mut s = linspace(SIGMA_MAX as f64, 0.0, steps + 1);
        s.truncate(steps);
        Ok(from_shifted(
            s.into_iter().map(|v| shift_sigma(v, shift)).collect(),
        ))
    }

    /// DPM++ path (`get_sampling_sigmas`): `linspace(1, 0, N+1)[:N]`, shifted (then the
    /// scheduler's own shift 1, a no-op); first σ is exactly 1, first t = 1000.
    pub fn dpmpp(steps: usize, shift: f64) -> Result<Self> {
        check(steps, shift)?;
        let mut s = linspace(1.0, 0.0, steps + 1);
        s.truncate(steps);
        Ok(from_shifted(
            s.into_iter()
                .map(|v| shift_sigma(shift_sigma(v, shift), 1.0))
                .collect(),
        ))
    }

    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timesteps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §11.3 (UniPC path, truncated integers).
    #[test]
    fn unipc_default_timesteps_match_spec() {
        let t2v = Schedule::unipc(40, 12.0).unwrap();
        assert_eq!(
            t2v.timesteps,
            vec![
                999, 997, 995, 993, 990, 988, 985, 982, 979, 976, 972, 969, 965, 961, 956, 952,
                947, 941, 936, 929, 922, 915, 907, 898, 888, 877, 865, 852, 837, 819, 799, 776,
                749, 717, 678, 631, 571, 492, 386, 235
            ]
        );
        assert_eq!(t2v.timesteps.iter().filter(|&&t| t >= 875).count(), 26);
        assert!((t2v.sigmas[0] - 0.999917).abs() < 1e-6);
        assert!((t2v.sigmas[39] - 0.23511).abs() < 1e-5);
        assert_eq!(t2v.sigmas.len(), 41);
        assert_eq!(t2v.sigmas[40], 0.0);

        let i2v = Schedule::unipc(40, 5.0).unwrap();
        assert_eq!(
            &i2v.timesteps[..16],
            &[
                999, 994, 989, 983, 978, 972, 965, 959, 952, 944, 937, 929, 920, 911, 902, 892
            ]
        );
        assert_eq!(&i2v.timesteps[36..], &[356, 288, 208, 113]);
        assert_eq!(i2v.timesteps.iter().filter(|&&t| t >= 900).count(), 15);

        let ti2v = Schedule::unipc(50, 5.0).unwrap();
        assert_eq!(&ti2v.timesteps[..5], &[999, 995, 991, 987, 982]);
        assert_eq!(&ti2v.timesteps[45..], &[356, 302, 241, 172, 92]);

        let animate = Schedule::unipc(20, 5.0).unwrap();
        assert_eq!(
            animate.timesteps,
            vec![
                999, 989, 978, 965, 952, 937, 920, 902, 882, 859, 833, 803, 768, 728, 681, 624,
                555, 468, 356, 208
            ]
        );
        // The e2e fixtures: 4 steps, shift 5 / 12.
        assert_eq!(
            Schedule::unipc(4, 5.0).unwrap().timesteps,
            vec![999, 937, 833, 624]
        );
        assert_eq!(
            Schedule::unipc(4, 12.0).unwrap().timesteps,
            vec![999, 972, 922, 799]
        );
    }

    #[test]
    fn dpmpp_starts_at_exactly_one() {
        let t2v = Schedule::dpmpp(40, 12.0).unwrap();
        assert_eq!(t2v.sigmas[0], 1.0);
        assert_eq!(
            &t2v.timesteps[..],
            &[
                1000, 997, 995, 993, 990, 988, 985, 982, 979, 976, 972, 969, 965, 961, 957, 952,
                947, 941, 936, 929, 923, 915, 907, 898, 888, 878, 865, 852, 837, 819, 800, 776,
                750, 717, 679, 631, 571, 493, 387, 235
            ]
        );
        let ti2v = Schedule::dpmpp(50, 5.0).unwrap();
        assert_eq!(&ti2v.timesteps[..5], &[1000, 995, 991, 987, 982]);
        assert_eq!(&ti2v.timesteps[47..], &[241, 172, 92]);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Schedule::unipc(0, 5.0).is_err());
        assert!(Schedule::dpmpp(10, 0.0).is_err());
        assert!(Schedule::unipc(10, f64::NAN).is_err());
        assert_eq!(Schedule::unipc(1, 5.0).unwrap().timesteps, vec![999]);
    }
}
