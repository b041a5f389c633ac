//! Recurrent cells with PyTorch's equations, gate order and initialisation, so a genlab
//! recurrent model is a `torch.nn.LSTM`/`GRU` twin: the LSTM (Hochreiter & Schmidhuber 1997, with
//! the forget gate of Gers et al. 2000), gates (i, f, g, o) from one input and one recurrent
//! projection, each with its bias; the GRU (Cho et al. 2014, <https://arxiv.org/abs/1406.1078>) in
//! PyTorch's form, the reset gate applied to the recurrent projection of the candidate,
//! `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`. Every weight and bias is drawn
//! U(-1/sqrt(hidden), 1/sqrt(hidden)), as PyTorch's `reset_parameters` draws them.
//!
//! A layer runs a whole sequence: the input projection of every step in one matrix product, then
//! one small product per step for the recurrence; on flex, an LSTM's recurrence is one fused
//! operation with its own backward pass ([`crate::fused_lstm`]).

use crate::flex_ops::on_flex_f32;
use crate::fused_lstm::fused_lstm;
use crate::linear::linear;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;

/// Which cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    Lstm,
    Gru,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
}

/// One recurrent layer. `ih` maps the input and `hh` the previous hidden state to every gate at
/// once (burn stores `[in, gates * hidden]`, PyTorch's `weight_ih_l0` transposed).
#[derive(Module, Debug)]
pub struct RecurrentLayer {
    pub ih: Linear,
    pub hh: Linear,
    /// True for an LSTM, false for a GRU.
    pub lstm: bool,
}

/// A layer's state: the hidden state `[batch, hidden]`, and an LSTM's cell state.
#[derive(Debug, Clone)]
pub struct LayerState {
    pub h: Tensor<2>,
    pub c: Option<Tensor<2>>,
}

fn uniform_linear(rng: &mut SeededRng, d_in: usize, d_out: usize, bound: f32, device: &Device) -> Linear {
    let mut l = LinearConfig::new(d_in, d_out).init(device);
    l.weight = Param::from_data(TensorData::new(rng.symmetric_uniform_vec(d_in * d_out, bound), [d_in, d_out]), device);
    l.bias = Some(Param::from_data(TensorData::new(rng.symmetric_uniform_vec(d_out, bound), [d_out]), device));
    l
}

impl RecurrentLayer {
    /// A layer of `cell` from `input` to `hidden` features, PyTorch's initialisation.
    pub fn new(cell: Cell, input: usize, hidden: usize, rng: &mut SeededRng, device: &Device) -> Self {
        let bound = 1.0 / (hidden as f32).sqrt();
        let g = cell.gates() * hidden;
        RecurrentLayer {
            ih: uniform_linear(rng, input, g, bound, device),
            hh: uniform_linear(rng, hidden, g, bound, device),
            lstm: cell == Cell::Lstm,
        }
    }

    pub fn hidden(&self) -> usize {
        self.hh.weight.dims()[0]
    }

    /// The zero state for `batch` sequences.
    pub fn zero_state(&self, batch: usize, device: &Device) -> LayerState {
        let z = || Tensor::zeros([batch, self.hidden()], device);
        LayerState { h: z(), c: self.lstm.then(z) }
    }

    /// One step from the input's projection `xi` `[batch, gates * hidden]`.
    fn step(&self, xi: Tensor<2>, s: LayerState) -> LayerState {
        let h = self.hidden();
        let hp = self.hh.forward(s.h.clone()); // [batch, gates * hidden]
        let part = |t: &Tensor<2>, i: usize| t.clone().narrow(1, i * h, h);
        if self.lstm {
            let g = xi + hp;
            let (i, f, c_new, o) =
                (sigmoid(part(&g, 0)), sigmoid(part(&g, 1)), part(&g, 2).tanh(), sigmoid(part(&g, 3)));
            let c = f * s.c.expect("an LSTM state has a cell state") + i * c_new;
            LayerState { h: o * c.clone().tanh(), c: Some(c) }
        } else {
            let r = sigmoid(part(&xi, 0) + part(&hp, 0));
            let z = sigmoid(part(&xi, 1) + part(&hp, 1));
            let n = (part(&xi, 2) + r * part(&hp, 2)).tanh();
            LayerState { h: n.clone() + z * (s.h - n), c: None }
        }
    }

    /// The LSTM's recurrence as one fused operation ([`crate::fused_lstm`]), from the input's
    /// projection `xi` `[b, t, 4 * hidden]`.
    fn fused(&self, xi: Tensor<3>, state: LayerState) -> (Tensor<3>, LayerState) {
        let [b, t, _] = xi.dims();
        let h = self.hidden();
        let c0 = state.c.expect("an LSTM state has a cell state");
        let bias = self.hh.bias.as_ref().expect("recurrent layers have biases").val();
        let states = fused_lstm(xi, state.h, c0, self.hh.weight.val(), bias); // [b, t, 2 * hidden]
        let last = states.clone().narrow(1, t - 1, 1).reshape([b, 2 * h]);
        let last = LayerState { h: last.clone().narrow(1, 0, h), c: Some(last.narrow(1, h, h)) };
        (states.narrow(2, 0, h), last)
    }

    /// Runs the layer over a sequence from `state`.
    ///
    /// # Shapes
    /// - `x`: `[batch, steps, input]`
    /// - returns the outputs `[batch, steps, hidden]` and the final state
    pub fn forward(&self, x: Tensor<3>, state: LayerState) -> (Tensor<3>, LayerState) {
        let xi = linear(&self.ih, x); // [b, t, gates * hidden]
        if self.lstm && on_flex_f32(&xi.device(), xi.dtype()) {
            return self.fused(xi, state);
        }
        self.composed(xi, state)
    }

    /// [`forward`](Self::forward) step by step in tensor operations, as every backend runs it (the
    /// fused path's reference).
    pub fn forward_composed(&self, x: Tensor<3>, state: LayerState) -> (Tensor<3>, LayerState) {
        self.composed(linear(&self.ih, x), state)
    }

    fn composed(&self, xi: Tensor<3>, mut state: LayerState) -> (Tensor<3>, LayerState) {
        let [b, t, g] = xi.dims();
        let mut outputs = Vec::with_capacity(t);
        for step in 0..t {
            state = self.step(xi.clone().narrow(1, step, 1).reshape([b, g]), state);
            outputs.push(state.h.clone().unsqueeze_dim::<3>(1));
        }
        (Tensor::cat(outputs, 1), state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn floats(v: &Value, key: &str) -> Vec<f32> {
        v[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    /// PyTorch's `[out, in]` weight as burn's `[in, out]` parameter.
    fn transposed(w: Vec<f32>, out: usize, input: usize, device: &Device) -> Param<Tensor<2>> {
        let t: Vec<f32> =
            (0..input).flat_map(|i| (0..out).map(move |o| (i, o))).map(|(i, o)| w[o * input + i]).collect();
        Param::from_data(TensorData::new(t, [input, out]), device)
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        let err = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(err < 2e-5, "{what}: max error {err}");
    }

    /// The cells against PyTorch's `nn.LSTM` and `nn.GRU` (fixtures/recurrent/, made by the script
    /// beside them): outputs, final state, and the gradients of sum(outputs * R).
    #[test]
    fn cells_match_pytorch() {
        let fixture: Value = serde_json::from_str(include_str!("../fixtures/recurrent/recurrent.json")).unwrap();
        let s = &fixture["shape"];
        let dim = |k: &str| s[k].as_u64().unwrap() as usize;
        let (t, b, i, h) = (dim("steps"), dim("batch"), dim("input"), dim("hidden"));
        let dev = Device::flex().autodiff();
        for (name, cell) in [("lstm", Cell::Lstm), ("gru", Cell::Gru)] {
            let f = &fixture[name];
            let g = cell.gates() * h;
            let mut layer = RecurrentLayer::new(cell, i, h, &mut SeededRng::new(0), &dev);
            layer.ih.weight = transposed(floats(f, "w_ih"), g, i, &dev);
            layer.hh.weight = transposed(floats(f, "w_hh"), g, h, &dev);
            layer.ih.bias = Some(Param::from_data(TensorData::new(floats(f, "b_ih"), [g]), &dev));
            layer.hh.bias = Some(Param::from_data(TensorData::new(floats(f, "b_hh"), [g]), &dev));
            // PyTorch's sequences are [steps, batch, features]; genlab's [batch, steps, features].
            let x =
                Tensor::<3>::from_data(TensorData::new(floats(f, "x"), [t, b, i]), &dev).swap_dims(0, 1).require_grad();
            let state = LayerState {
                h: Tensor::from_data(TensorData::new(floats(f, "h0"), [b, h]), &dev),
                c: (cell == Cell::Lstm).then(|| Tensor::from_data(TensorData::new(floats(f, "c0"), [b, h]), &dev)),
            };
            let (y, last) = layer.forward(x.clone(), state);
            let r = Tensor::<3>::from_data(TensorData::new(floats(f, "r"), [t, b, h]), &dev).swap_dims(0, 1);
            let grads = (y.clone() * r).sum().backward();
            let to_vec = |t: Tensor<3>| genlab_core::tensors::to_f32_vec(t.swap_dims(0, 1));
            close(&to_vec(y), &floats(f, "y"), &format!("{name} outputs"));
            close(&genlab_core::tensors::to_f32_vec(last.h), &floats(f, "h_n"), &format!("{name} h_n"));
            if let Some(c) = last.c {
                close(&genlab_core::tensors::to_f32_vec(c), &floats(f, "c_n"), "lstm c_n");
            }
            let gx = x.grad(&grads).unwrap();
            close(
                &genlab_core::tensors::to_f32_vec(gx.swap_dims(0, 1)),
                &floats(f, "grad_x"),
                &format!("{name} grad x"),
            );
            let gw = layer.hh.weight.val().grad(&grads).unwrap(); // [hidden, gates * hidden]
            close(
                &genlab_core::tensors::to_f32_vec(gw.transpose()),
                &floats(f, "grad_w_hh"),
                &format!("{name} grad w_hh"),
            );
        }
    }
}
