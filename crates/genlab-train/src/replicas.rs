//! Data parallelism on one machine: PyTorch's `DistributedDataParallel` with threads in place of
//! processes. A batch is split into shards; each shard's forward and backward pass runs on a replica
//! of the model (the same weights, its own autodiff graph) on its own thread; the gradients are
//! averaged, each weighted by its shard's share of the batch, and the optimiser makes one update.
//! For a loss that is a mean over examples and a model with no batch statistics, that update is the
//! whole batch's up to float rounding.
//!
//! Why: burn's CPU backend keeps one core busy for much of a step (its element-wise and small
//! operations run on the calling thread), so two replicas on a 2-core machine overlap what one
//! leaves idle (BENCHMARKS.md, the diffusion step). The result depends on the replica count, never on
//! the machine's cores: the split and the order of the sum are fixed.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::Tensor;
use std::ops::Range;

/// The example ranges of `replicas` contiguous shards of `n` examples, as equal as can be, the
/// larger first (empty shards are left out).
pub fn shards(n: usize, replicas: usize) -> Vec<Range<usize>> {
    let replicas = replicas.max(1);
    let mut start = 0;
    (0..replicas)
        .map(|i| {
            let size = n / replicas + usize::from(i < n % replicas);
            start += size;
            start - size..start
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// `f` of each item, each on its own scoped thread, the results in the items' order (a panic on a
/// thread is resumed on the caller's).
pub fn on_threads<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.into_iter().map(|item| scope.spawn(move || f(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Runs `loss_of(replica, shard)` for every shard, each on its own thread with its own replica of
/// `module`, and returns the gradients of the batch loss, the mean of the shard losses weighted by
/// `weight` (each shard's share of the batch, summing to 1), with that loss's value.
pub fn replicated_gradients<M, S>(
    module: &M,
    shards: Vec<(S, f64)>,
    loss_of: impl Fn(&M, S) -> Tensor<1> + Sync,
) -> (GradientsParams, f64)
where
    M: Module,
    S: Send,
{
    let device = module.devices().into_iter().next().expect("a model with parameters");
    // A fork detaches the parameters and asks for their gradients again: new graph nodes with the
    // same parameter ids, so each replica's backward pass is its own.
    let work: Vec<(M, S, f64)> =
        shards.into_iter().map(|(shard, weight)| (module.clone().fork(&device), shard, weight)).collect();
    let parts = on_threads(work, |(replica, shard, weight)| {
        let loss = loss_of(&replica, shard);
        let value = genlab_core::tensors::to_f32_vec(loss.clone().detach())[0] as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &replica);
        (grads, value, weight)
    });
    let loss = parts.iter().map(|(_, value, weight)| value * weight).sum();
    let mut out = GradientsParams::new();
    for (mut grads, _, weight) in parts {
        module.visit(&mut AddScaled { from: &mut grads, into: &mut out, scale: weight });
    }
    (out, loss)
}

/// Moves each gradient of `from`, times `scale`, into the running sums of `into` (a parameter's
/// sums in the order the calls come: part by part, the same order on every machine).
pub(crate) struct AddScaled<'a> {
    pub from: &'a mut GradientsParams,
    pub into: &'a mut GradientsParams,
    pub scale: f64,
}

impl ModuleVisitor for AddScaled<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.from.remove::<D>(param.id) else { return };
        let g = if self.scale == 1.0 { g } else { g * self.scale };
        let sum = match self.into.remove::<D>(param.id) {
            Some(acc) => acc + g,
            None => g,
        };
        self.into.register(param.id, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;
    use burn::tensor::TensorData;
    use genlab_core::tensors::to_f32_vec;

    #[test]
    fn shards_cover_the_batch() {
        assert_eq!(shards(32, 2), vec![0..16, 16..32]);
        assert_eq!(shards(7, 3), vec![0..3, 3..5, 5..7]);
        assert_eq!(shards(1, 2), vec![0..1]);
        assert_eq!(shards(5, 1), vec![0..5]);
    }

    /// The gradients of a mean loss over a batch split unevenly across three replicas equal those
    /// of the whole batch on one model, checked against a float64 recomputation of the closed form
    /// (d/dW of mean (Wx + b)^2).
    #[test]
    fn replicas_give_the_whole_batch_gradient() {
        let device = Device::flex().autodiff();
        let model: Linear = LinearConfig::new(3, 1).init(&device);
        let xs: Vec<f32> = (0..21).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
        let x: Tensor<2> = Tensor::from_data(TensorData::new(xs.clone(), [7, 3]), &device);
        let parts = shards(7, 3).into_iter().map(|r| (x.clone().slice(r.clone()), r.len() as f64 / 7.0)).collect();
        let (grads, loss) = replicated_gradients(&model, parts, |m: &Linear, x: Tensor<2>| {
            let y = m.forward(x);
            y.clone().mul(y).mean()
        });
        let w: Vec<f64> = to_f32_vec(model.weight.val()).into_iter().map(f64::from).collect();
        let b = to_f32_vec(model.bias.as_ref().unwrap().val())[0] as f64;
        let (mut gw, mut gb, mut l) = ([0.0f64; 3], 0.0f64, 0.0f64);
        for row in xs.chunks(3) {
            let y: f64 = row.iter().zip(&w).map(|(&x, w)| x as f64 * w).sum::<f64>() + b;
            l += y * y / 7.0;
            gb += 2.0 * y / 7.0;
            for (g, &x) in gw.iter_mut().zip(row) {
                *g += 2.0 * y * x as f64 / 7.0;
            }
        }
        let got_w = to_f32_vec(grads.get::<2>(model.weight.id).unwrap());
        let got_b = to_f32_vec(grads.get::<1>(model.bias.as_ref().unwrap().id).unwrap())[0];
        for (g, want) in got_w.iter().zip(gw) {
            assert!((*g as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "{g} vs {want}");
        }
        assert!((got_b as f64 - gb).abs() < 1e-5 * (1.0 + gb.abs()), "{got_b} vs {gb}");
        assert!((loss - l).abs() < 1e-5 * (1.0 + l), "{loss} vs {l}");
    }
}
