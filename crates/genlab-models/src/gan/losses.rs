//! The adversarial losses, from the discriminator's logits (critic values for Wasserstein), each
//! a mean over the batch:
//!
//! | loss | discriminator | generator |
//! |---|---|---|
//! | non-saturating (Goodfellow et al. 2014) | `-log s(D(x)) - log(1 - s(D(G(z))))` | `-log s(D(G(z)))` |
//! | hinge (Lim & Ye 2017; Miyato et al. 2018) | `relu(1 - D(x)) + relu(1 + D(G(z)))` | `-D(G(z))` |
//! | Wasserstein (Arjovsky et al. 2017) | `D(G(z)) - D(x)` | `-D(G(z))` |
//!
//! with `s` the logistic sigmoid, computed as softplus for stability.

use burn::tensor::activation::{relu, softplus};
use burn::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanLoss {
    NonSaturating,
    Hinge,
    Wasserstein,
}

impl GanLoss {
    /// The discriminator's loss from its logits on real and on generated examples.
    ///
    /// # Shapes
    /// `real: [n]`, `fake: [m]` -> `[1]`
    pub fn discriminator(&self, real: Tensor<1>, fake: Tensor<1>) -> Tensor<1> {
        match self {
            GanLoss::NonSaturating => softplus(real.neg(), 1.0).mean() + softplus(fake, 1.0).mean(),
            GanLoss::Hinge => relu(real.neg() + 1.0).mean() + relu(fake + 1.0).mean(),
            GanLoss::Wasserstein => fake.mean() - real.mean(),
        }
    }

    /// The generator's loss from the discriminator's logits on generated examples.
    pub fn generator(&self, fake: Tensor<1>) -> Tensor<1> {
        match self {
            GanLoss::NonSaturating => softplus(fake.neg(), 1.0).mean(),
            GanLoss::Hinge | GanLoss::Wasserstein => fake.mean().neg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::tensors::to_f32_vec;

    const REAL: [f64; 4] = [1.5, -0.3, 0.0, 2.2];
    const FAKE: [f64; 4] = [-0.75, 0.4, -2.5, 0.9]; // -2.5 sits on the flat side of the hinge

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// (value, d/d real, d/d fake) of the discriminator loss and (value, d/d fake) of the generator's.
    type Expected = ((f64, Vec<f64>, Vec<f64>), (f64, Vec<f64>));

    /// The losses and their gradients computed by hand, in float64.
    fn by_hand(loss: GanLoss) -> Expected {
        let n = 4.0;
        let mean = |f: &dyn Fn(f64) -> f64, v: &[f64]| v.iter().map(|&x| f(x)).sum::<f64>() / n;
        let each = |f: &dyn Fn(f64) -> f64, v: &[f64]| v.iter().map(|&x| f(x) / n).collect::<Vec<_>>();
        match loss {
            GanLoss::NonSaturating => (
                (
                    mean(&|r| -sig(r).ln(), &REAL) + mean(&|f| -(1.0 - sig(f)).ln(), &FAKE),
                    each(&|r| -(1.0 - sig(r)), &REAL),
                    each(&sig, &FAKE),
                ),
                (mean(&|f| -sig(f).ln(), &FAKE), each(&|f| -(1.0 - sig(f)), &FAKE)),
            ),
            GanLoss::Hinge => (
                (
                    mean(&|r| (1.0 - r).max(0.0), &REAL) + mean(&|f| (1.0 + f).max(0.0), &FAKE),
                    each(&|r| if r < 1.0 { -1.0 } else { 0.0 }, &REAL),
                    each(&|f| if f > -1.0 { 1.0 } else { 0.0 }, &FAKE),
                ),
                (-mean(&|f| f, &FAKE), each(&|_| -1.0, &FAKE)),
            ),
            GanLoss::Wasserstein => (
                (mean(&|f| f, &FAKE) - mean(&|r| r, &REAL), each(&|_| -1.0, &REAL), each(&|_| 1.0, &FAKE)),
                (-mean(&|f| f, &FAKE), each(&|_| -1.0, &FAKE)),
            ),
        }
    }

    fn close(what: &str, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}: {got:?} vs {want:?}");
        }
    }

    #[test]
    fn values_and_gradients_match_a_hand_computation() {
        let ad = Device::flex().autodiff();
        let t = |v: &[f64]| {
            Tensor::<1>::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [4]), &ad)
                .require_grad()
        };
        for loss in [GanLoss::NonSaturating, GanLoss::Hinge, GanLoss::Wasserstein] {
            let ((dv, dr, df), (gv, gf)) = by_hand(loss);
            let (real, fake) = (t(&REAL), t(&FAKE));
            let d = loss.discriminator(real.clone(), fake.clone());
            close(&format!("{loss:?} D value"), &to_f32_vec(d.clone()), &[dv]);
            let g = d.backward();
            close(&format!("{loss:?} dD/dreal"), &to_f32_vec(real.grad(&g).expect("grad")), &dr);
            close(&format!("{loss:?} dD/dfake"), &to_f32_vec(fake.grad(&g).expect("grad")), &df);
            let fake = t(&FAKE);
            let gl = loss.generator(fake.clone());
            close(&format!("{loss:?} G value"), &to_f32_vec(gl.clone()), &[gv]);
            let g = gl.backward();
            close(&format!("{loss:?} dG/dfake"), &to_f32_vec(fake.grad(&g).expect("grad")), &gf);
        }
    }
}
