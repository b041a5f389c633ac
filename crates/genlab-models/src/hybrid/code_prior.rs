//! An autoregressive prior over a VQ-VAE's code grids: the GPT of `lm::gpt` reads an image's
//! codes row by row after a start token (one token for every image, or the image's class), and
//! generation draws the codes one by one with the KV cache, then decodes the grid with the
//! VQ-VAE's decoder. The VQ-VAE is part of the module, frozen, so a checkpoint of the prior holds
//! the very codebook and decoder its codes mean.
//!
//! Token ids: `0..codes` are the codebook's codes; `codes + c` is the start token of class `c`
//! (or the one start token, `c = 0`, of an unconditional prior).

use crate::lm::gpt::{Gpt, KvCache};
use crate::lm::sampling::Sampling;
use crate::vqvae::VqVae;
use burn::module::Module;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_train::{StepContext, StepOutput, TrainStep};

#[derive(Module, Debug)]
pub struct CodePrior {
    pub gpt: Gpt,
    /// The first stage, frozen.
    pub vqvae: VqVae,
    /// Start tokens: the classes of a class-conditional prior, else 1.
    pub starts: usize,
}

impl CodePrior {
    /// `vqvae` is frozen (no gradient reaches it); `gpt` must read `vqvae`'s codes and `starts`
    /// start tokens and hold a whole grid.
    pub fn new(gpt: Gpt, vqvae: VqVae, starts: usize) -> Self {
        assert_eq!(
            gpt.vocab(),
            vqvae.codebook_size() + starts,
            "the prior's vocabulary should be codes + start tokens"
        );
        assert!(gpt.block_size >= vqvae.tokens(), "the prior's block should hold a whole code grid");
        CodePrior { gpt, vqvae: vqvae.no_grad(), starts }
    }

    pub fn codes(&self) -> usize {
        self.vqvae.codebook_size()
    }

    /// Training windows of code grids `[batch, tokens]` and their start tokens `[batch]`:
    /// `[start, c_0, ..., c_{T-1}]`, `[batch, tokens + 1]`.
    pub fn windows(&self, grids: &[u32], starts: &[u32], device: &Device) -> Tensor<2, Int> {
        let t = self.vqvae.tokens();
        let k = self.codes() as i64;
        let v: Vec<i64> = starts
            .iter()
            .zip(grids.chunks(t))
            .flat_map(|(&s, g)| std::iter::once(k + i64::from(s)).chain(g.iter().map(|&c| i64::from(c))))
            .collect();
        Tensor::from_data(TensorData::new(v, [starts.len(), t + 1]), device)
    }

    /// Mean negative log-likelihood of the codes of `windows`, nats per code.
    pub fn loss(&self, windows: Tensor<2, Int>, rng: Option<&mut SeededRng>) -> Tensor<1> {
        self.gpt.loss(windows, rng)
    }

    /// Draws one code grid per start token of `starts`, `[n, tokens]`, with `sampling` restricted
    /// to the codes (a start token is never drawn). One uniform draw per code from `rng`, image
    /// by image within each position.
    pub fn sample_codes(&self, starts: &[u32], sampling: &Sampling, rng: &mut SeededRng) -> Vec<u32> {
        let (n, t, k) = (starts.len(), self.vqvae.tokens(), self.codes());
        let device = self.gpt.wte.device();
        let vocab = self.gpt.vocab();
        let mut cache = KvCache::default();
        let mut grids = vec![0u32; n * t];
        let first: Vec<i64> = starts.iter().map(|&s| (k as u32 + s) as i64).collect();
        let mut input = Tensor::<2, Int>::from_data(TensorData::new(first, [n, 1]), &device);
        for pos in 0..t {
            let logits = to_f32_vec(self.gpt.forward(input, Some(&mut cache), None)); // [n, 1, vocab]
            let next: Vec<u32> = (0..n).map(|i| sampling.pick(&logits[i * vocab..i * vocab + k], &[], rng)).collect();
            for (i, &c) in next.iter().enumerate() {
                grids[i * t + pos] = c;
            }
            let v: Vec<i64> = next.iter().map(|&c| i64::from(c)).collect();
            input = Tensor::from_data(TensorData::new(v, [n, 1]), &device);
        }
        grids
    }

    /// Images of code grids `[n * tokens]`.
    pub fn decode(&self, grids: &[u32]) -> Tensor<4> {
        let t = self.vqvae.tokens();
        let v: Vec<i64> = grids.iter().map(|&c| i64::from(c)).collect();
        let codes = Tensor::<2, Int>::from_data(TensorData::new(v, [grids.len() / t, t]), &self.gpt.wte.device());
        self.vqvae.decode(codes)
    }
}

impl TrainStep for CodePrior {
    /// Windows `[start, codes...]`, `[batch, tokens + 1]`.
    type Batch = Tensor<2, Int>;

    fn train_step(self, windows: Tensor<2, Int>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let loss = self.loss(windows, Some(ctx.rng));
        let shown = to_f32_vec(loss.clone().detach())[0] as f64;
        let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        (model, StepOutput { loss: shown, scalars: vec![] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::gpt::GptConfig;
    use crate::vqvae::VqVaeConfig;

    fn prior(device: &Device) -> CodePrior {
        let vq = VqVaeConfig {
            channels: vec![4, 4],
            residual_blocks: 0,
            codebook_size: 5,
            code_dim: 2,
            ..Default::default()
        };
        let vqvae = vq.init([1, 8, 8], 0, device).unwrap();
        let gpt = GptConfig { layers: 1, heads: 2, width: 8, block_size: 4, ..Default::default() }
            .init(5 + 2, 1, device)
            .unwrap();
        CodePrior::new(gpt, vqvae, 2)
    }

    /// The cached batched sampler draws what the uncached model's softmax over the codes gives:
    /// greedy sampling picks, at each position, the code with the largest logit of the full
    /// forward pass over the window so far.
    #[test]
    fn greedy_codes_follow_the_uncached_forward_pass() {
        let dev = Device::flex();
        let p = prior(&dev);
        let starts = [0u32, 1, 1];
        let grids = p.sample_codes(&starts, &Sampling::greedy(), &mut SeededRng::new(0));
        for (i, &s) in starts.iter().enumerate() {
            let mut window = vec![5 + s];
            for pos in 0..4 {
                let w = p.windows(&[0; 4], &[s], &dev).narrow(1, 0, 1); // the start token
                let v: Vec<i64> = window.iter().map(|&c| i64::from(c)).collect();
                let x = Tensor::<2, Int>::from_data(TensorData::new(v, [1, window.len()]), &dev);
                assert_eq!(genlab_core::tensors::to_i64_vec(w)[0], i64::from(5 + s));
                let logits = to_f32_vec(p.gpt.forward(x, None, None).narrow(1, pos, 1));
                let best = (0..5).max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a))).unwrap() as u32;
                assert_eq!(grids[i * 4 + pos], best, "image {i}, position {pos}");
                window.push(best);
            }
        }
        assert!(grids.iter().all(|&c| c < 5), "a start token was drawn");
        assert_eq!(p.decode(&grids).dims(), [3, 1, 8, 8]);
    }

    /// The frozen VQ-VAE gets no gradient from the prior's loss.
    #[test]
    fn only_the_prior_trains() {
        use genlab_train::{OptimizerConfig, Optimizers};
        let ad = Device::flex().autodiff();
        let p = prior(&ad);
        let before = to_f32_vec(p.vqvae.quantizer.codebook.val());
        let dec_before = to_f32_vec(p.vqvae.decoder.post_quant.weight.val());
        let wte_before = to_f32_vec(p.gpt.wte.val());
        let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-2, ..Default::default() }, None);
        let mut rng = SeededRng::new(0);
        let w = p.windows(&[0, 1, 2, 3, 4, 3, 2, 1], &[0, 1], &ad);
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step: 1, device: &ad };
        let (p, _) = p.train_step(w, &mut ctx);
        assert_eq!(to_f32_vec(p.vqvae.quantizer.codebook.val()), before);
        assert_eq!(to_f32_vec(p.vqvae.decoder.post_quant.weight.val()), dec_before);
        assert_ne!(to_f32_vec(p.gpt.wte.val()), wte_before);
    }
}
