//! A fully connected layer applied to the last dimension of a tensor of any rank as one matrix
//! product over all leading dimensions: burn multiplies a 3-D input batch by batch (a broadcast
//! batched product), which on flex packs the weight again for every batch element; folded into the
//! rows it is packed once (the LSTM's input projections, the GPT's attention and MLP layers).

use burn::nn::Linear;
use burn::Tensor;

/// `layer` applied to `x`'s last dimension (`[..., d_in]` -> `[..., d_out]`).
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    if D <= 2 {
        return layer.forward(x);
    }
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product();
    let y = layer.forward(x.reshape([rows, dims[D - 1]])); // [rows, d_out]
    dims[D - 1] = y.dims()[1];
    y.reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    /// The folded product equals burn's batched one (values and the weight's gradient).
    #[test]
    fn equals_burns_linear_on_a_3d_input() {
        let device = Device::flex().autodiff();
        let layer = crate::init::linear(&mut SeededRng::new(3), 5, 4, &device);
        let v = SeededRng::new(4).symmetric_uniform_vec(2 * 3 * 5, 1.0);
        let x = Tensor::<3>::from_data(TensorData::new(v, [2, 3, 5]), &device);
        let (ours, burns) = (linear(&layer, x.clone()), layer.forward(x));
        assert_eq!(ours.dims(), [2, 3, 4]);
        let (go, gb) = (ours.clone().sum().backward(), burns.clone().sum().backward());
        let f = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in f(ours).iter().zip(f(burns)) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let w = |g| layer.weight.val().grad(g).expect("a gradient").into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in w(&go).iter().zip(w(&gb)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
