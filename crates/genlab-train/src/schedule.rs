//! Learning-rate schedules: a multiplier of the base rate as a function of the step.
//! Linear warm-up from 0 (as in "Attention is all you need" and nanoGPT), then constant, linear
//! decay, or cosine decay (Loshchilov & Hutter 2017, <https://arxiv.org/abs/1608.03983>, without
//! restarts) to `min_ratio` of the base rate at the last step.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    #[default]
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Steps of linear warm-up from 0 to the base rate.
    #[serde(default)]
    pub warmup: u64,
    /// Where linear and cosine decay end, as a fraction of the base rate.
    #[serde(default)]
    pub min_ratio: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { kind: ScheduleKind::Constant, warmup: 0, min_ratio: 0.0 }
    }
}

impl Schedule {
    /// The multiplier at 1-based `step` of `total` steps.
    pub fn factor(&self, step: u64, total: u64) -> f64 {
        if step <= self.warmup && self.warmup > 0 {
            return step as f64 / self.warmup as f64;
        }
        let span = total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup.min(step)) as f64 / span).clamp(0.0, 1.0);
        let m = self.min_ratio;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => m + (1.0 - m) * (1.0 - progress),
            ScheduleKind::Cosine => m + (1.0 - m) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let c = Schedule { kind: ScheduleKind::Cosine, warmup: 10, min_ratio: 0.1 };
        assert_eq!(c.factor(5, 110), 0.5);
        assert_eq!(c.factor(10, 110), 1.0);
        assert!((c.factor(60, 110) - 0.55).abs() < 1e-12, "half-way is the mean of 1 and 0.1");
        assert!((c.factor(110, 110) - 0.1).abs() < 1e-12);
        let l = Schedule { kind: ScheduleKind::Linear, warmup: 0, min_ratio: 0.0 };
        assert!((l.factor(25, 100) - 0.75).abs() < 1e-12);
        assert_eq!(Schedule::default().factor(7, 9), 1.0);
    }
}
