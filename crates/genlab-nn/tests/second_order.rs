//! Evidence for the README's statement that burn 0.22.1 has no second-order gradients, which the
//! WGAN-GP gradient penalty and the R1 penalty need (their loss is a function of dD/dx, and its
//! gradient with respect to D's weights is a second derivative). burn's autodiff returns each
//! gradient as a tensor of the inner backend (`AutodiffBackend::grad` gives
//! `B::FloatTensorPrimitive`), outside any graph, so nothing built from it reaches the weights.
//! If a burn upgrade makes this test fail, the penalties can be built.

use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;

#[test]
fn a_gradient_is_outside_the_graph_so_no_penalty_on_it_can_be_differentiated() {
    let ad = Device::flex().autodiff();
    let w = Tensor::<1>::from_data(TensorData::new(vec![0.5f32, -1.5, 2.0], [3]), &ad).require_grad();
    let x = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [3]), &ad).require_grad();
    // A one-layer "critic" D(x) = sum(w * x^2); dD/dx = 2 w x depends on w.
    let d = (w.clone() * x.clone().powi_scalar(2)).sum();
    let g = d.backward();
    let dx = x.grad(&g).expect("x has a first-order gradient");
    assert_eq!(to_f32_vec(dx.clone()), vec![1.0, -6.0, 12.0], "the first-order gradient is right");
    assert!(!dx.is_require_grad(), "the gradient is not tracked");
    // A gradient penalty ||dD/dx||^2 built from it is not tracked at all...
    let on_ad = Tensor::<1>::from_data(dx.to_data(), &ad);
    let penalty = on_ad.clone().powi_scalar(2).sum();
    assert!(!penalty.is_require_grad(), "burn now tracks gradients: build WGAN-GP and R1");
    // ... and joined to the graph through w, its gradient with respect to w is 0, where the
    // exact second-order gradient d/dw ||2 w x||^2 = 8 w x^2 is [4, -48, 144].
    let joined = penalty + (w.clone() * 0.0).sum();
    let g2 = joined.backward();
    assert_eq!(to_f32_vec(w.grad(&g2).expect("w is in the graph")), vec![0.0, 0.0, 0.0]);
}
