//! The language-model family: everything a language model's folder does not say itself. A
//! folder (`families/gpt`, `families/rnn_lm`) implements [`LmNetwork`] for its network's config,
//! and `LmFamily<Config>` is the family the registry lists.

use super::*;
use crate::data::{Data, DataFacts};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, PeriodicContext, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use crate::metric::Metric;
use genlab_core::events::EventSink;
use genlab_data::{DataKind, TokenBatches};
use genlab_train::Optimizers;

/// Windows scored per forward pass in validation.
const SCORE_BATCH: usize = 64;

/// A language-model family over network `N`: the data, training, validation, evaluation and
/// generation every language model shares.
pub struct LmFamily<N: LmNetwork> {
    config: N,
    options: LmOptions,
    tokenizer: Option<Tokenizer>,
    exp: Experiment,
}

impl<N: LmNetwork> LmFamily<N> {
    fn tokenizer(&self) -> Result<&Tokenizer> {
        run_tokenizer(&self.tokenizer)
    }

    fn loss(&self, m: &N::Model, tokens: &[u32], max_windows: Option<usize>, device: &Device) -> Result<StreamLoss> {
        let tok = self.tokenizer()?;
        Ok(stream_loss(tokens, self.config.block_size(), max_windows, SCORE_BATCH, tok, device, |w| {
            genlab_core::tensors::to_f32_vec(m.token_log_probs(w))
        }))
    }

    /// The experiment's `[post] text_watermark` over the tokenizer's vocabulary, unless the request
    /// asks for the raw model.
    fn watermark(&self, r: &GenerateRequest, tok: &Tokenizer) -> Option<genlab_models::lm::watermark::GreenList> {
        crate::post::green_list(&self.exp, tok).filter(|_| !r.raw)
    }

    /// One text after `prompt`, streamed to `on_text`.
    fn text(&self, m: &N::Model, prompt: &[u32], g: &Generation, on_text: &mut dyn FnMut(&str)) -> Result<String> {
        let tok = self.tokenizer()?;
        Ok(genlab_models::lm::generate(m, prompt, g, &|t| tok.decode(t), on_text).text)
    }
}

impl<N: LmNetwork> Family for LmFamily<N> {
    type Network = N;
    type Options = LmOptions;
    type Model = N::Model;
    type Validation = Vec<u32>;

    const CARD: FamilyCard = N::CARD;

    fn check(s: &Section<N, LmOptions>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        s.options.check()?;
        if exp.data.validation.fraction.is_none() && exp.data.dataset.kind() != DataKind::Molecules {
            return Err((
                "data.validation".into(),
                ": a language model holds out the corpus's tail; expected { fraction = 0.1 }".into(),
            ));
        }
        Ok(())
    }

    fn metrics(_: &Section<N, LmOptions>, _: DataKind) -> Vec<Metric> {
        vec![Metric::NllNats, Metric::BitsPerChar, Metric::Perplexity]
    }

    fn output(_: &Section<N, LmOptions>, _: DataKind) -> OutputKind {
        OutputKind::Text
    }

    fn trains_privately() -> bool {
        true
    }

    fn new(s: Section<N, LmOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        LmFamily { config: s.network, options: s.options, tokenizer: facts.tokenizer.clone(), exp: exp.clone() }
    }

    fn init(&self, seed: u64, device: &Device) -> Result<N::Model> {
        Ok(self.config.init(self.tokenizer()?.vocab_size(), seed, device)?)
    }

    /// Weight decay (AdamW's) on weight matrices and embeddings only, as nanoGPT groups them.
    fn optimizers(&self, exp: &Experiment) -> Optimizers {
        matrix_decay_optimizers(exp)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<N::Model>> {
        let t = &exp.train;
        let text = data.text()?;
        let block = self.config.block_size();
        let batches =
            TokenBatches::new(text.train.clone(), block, t.batch_size, t.drop_last, t.seed).ok_or_else(|| {
                PipelineError::Config(format!(
                    "model.block_size = {block}: larger than the training text ({} tokens); expected at most {}",
                    text.train.len(),
                    text.train.len().saturating_sub(2)
                ))
            })?;
        if text.eval.len() < 2 {
            return Err(PipelineError::Config(format!(
                "data.validation: the held-out text has {} token(s); expected at least 2",
                text.eval.len()
            )));
        }
        Ok(Box::new(batches))
    }

    fn validation_set(&self, data: &Data, _: &Experiment, _: &dyn EventSink) -> Result<Vec<u32>> {
        Ok(data.text()?.eval.to_vec())
    }

    fn validate(
        &self,
        _: u64,
        m: &N::Model,
        set: &Vec<u32>,
        cx: &PeriodicContext<'_>,
    ) -> Result<Vec<(&'static str, f64)>> {
        let l = self.loss(m, set, Some(cx.exp.eval.periodic_examples), cx.device)?;
        Ok(vec![("val_loss", l.nats_per_token), ("val_bpc", l.bits_per_char)])
    }

    fn evaluate(&self, m: &N::Model, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let text = data.text()?;
        cx.events.message("scoring every validation token");
        let l = self.loss(m, &text.eval, self.exp.eval.examples, &cx.device)?;
        let ppl = l.perplexity();
        cx.events.message(&format!(
            "validation: {:.4} nats per token, {:.4} bits per character, perplexity {ppl:.3} ({} tokens)",
            l.nats_per_token, l.bits_per_char, l.tokens
        ));
        let tok = self.tokenizer()?;
        let prompt = tok.encode_strict(&self.options.sample_prompt, "model.sample_prompt")?;
        let prompt = &prompt[prompt.len().saturating_sub(self.config.context().unwrap_or(usize::MAX))..];
        let seed = self.exp.eval.seed;
        let mut section = loss_table(&l, &self.exp, cx.step, self.config.block_size());
        let mut samples = Vec::new();
        for &t in &self.options.sample_temperatures {
            let g = Generation {
                max_tokens: self.options.sample_tokens,
                sampling: genlab_models::lm::sampling::Sampling { temperature: t, ..Default::default() },
                stop: vec![],
                end: None,
                seed,
            };
            samples.push((t, self.text(m, prompt, &g, &mut |_| {})?));
        }
        section.push_str(&samples_section(&samples, &self.options.sample_prompt));
        let memo = if self.options.memorisation_tokens > 0 {
            cx.events.message(&format!(
                "memorisation: {} tokens at temperature 1 against the training text",
                self.options.memorisation_tokens
            ));
            let g = Generation {
                max_tokens: self.options.memorisation_tokens,
                sampling: Default::default(),
                stop: vec![],
                end: None,
                seed: seed.wrapping_add(1),
            };
            let generated = self.text(m, prompt, &g, &mut |_| {})?;
            let index = TrainingIndex::new(&text.train_text);
            let memo = memorisation(&index, &generated, MEMORISATION_WINDOW);
            section.push_str(&memorisation_section(&memo, self.options.memorisation_tokens));
            Some(memo)
        } else {
            None
        };
        let watermark = match crate::post::green_list(&self.exp, tok) {
            Some(mark) => {
                cx.events.message(&format!(
                    "text watermark: {} samples of {} tokens with and without it",
                    super::watermark::WATERMARK_SAMPLES,
                    super::watermark::WATERMARK_TOKENS
                ));
                let mut bar = cx.events.progress("watermark samples", super::watermark::WATERMARK_SAMPLES as u64, 0);
                let mut failed = None;
                let w = super::watermark::evaluate(
                    mark,
                    seed.wrapping_add(2),
                    &text.eval,
                    |g| genlab_models::lm::generate(m, prompt, g, &|t| tok.decode(t), &mut |_| {}).tokens,
                    |tokens| {
                        let all: Vec<u32> = prompt.iter().chain(tokens).copied().collect();
                        match self.loss(m, &all, None, &cx.device) {
                            Ok(l) => l.nats_per_token,
                            Err(e) => {
                                failed = Some(e);
                                f64::NAN
                            }
                        }
                    },
                    |i| bar.update(i as u64, ""),
                );
                bar.finish();
                if let Some(e) = failed {
                    return Err(e);
                }
                section.push_str(&super::watermark::section(&w));
                Some(w)
            }
            None => None,
        };
        let post_text = match &self.exp.post.text {
            Some(config) => {
                cx.events.message("text post-processing: in-vocabulary words before and after");
                let corrector = match &config.corrector {
                    Some(dir) => Some(crate::post::load_corrector(dir, cx.events.clone())?),
                    None => None,
                };
                let corrector = corrector.as_deref();
                let (md, record) =
                    super::post_text::evaluate(config, &text.train_text, seed.wrapping_add(3), corrector, |g| {
                        genlab_models::lm::generate(m, prompt, g, &|t| tok.decode(t), &mut |_| {}).text
                    });
                section.push_str(&md);
                Some(record)
            }
            None => None,
        };
        let molecules = match (tok.molecule_end(), self.exp.eval.metric_samples) {
            (Some(end), n) if n > 0 && text.molecules.is_some() => {
                cx.events.message(&format!("sampling {n} molecules at temperature 1 for the MOSES metrics"));
                let mut bar = cx.events.progress("molecules", n as u64, 0);
                let not_first = tok.not_first();
                let spec = genlab_models::lm::LineSpec {
                    count: n,
                    batch: crate::molecules::SAMPLE_BATCH,
                    start: end,
                    end,
                    max_tokens: crate::molecules::MAX_TOKENS,
                    // <unk> is no molecule's token.
                    banned: &[tok.vocab_size() as u32 - 1],
                    not_first: &not_first,
                };
                let lines =
                    genlab_models::lm::sample_lines(m, &spec, &Sampling::default(), seed.wrapping_add(4), |k| {
                        bar.update(k as u64, "molecules")
                    });
                bar.finish();
                let lines: Vec<String> = lines.iter().map(|l| tok.decode(l)).collect();
                let e = crate::molecules::evaluate(&lines, text, cx)?;
                section.push_str(&e.section);
                Some(e)
            }
            _ => None,
        };
        std::fs::create_dir_all(cx.run_dir.join("samples"))
            .map_err(genlab_core::CoreError::io(cx.run_dir.join("samples")))?;
        let all: String = samples
            .iter()
            .map(|(t, s)| format!("=== temperature {t} ===\n{}{s}\n\n", self.options.sample_prompt))
            .collect();
        genlab_core::atomic::write_atomic(&cx.run_dir.join("samples/text.txt"), all.as_bytes())?;
        let mut metrics = vec![
            (Metric::NllNats, l.nats_per_token),
            (Metric::BitsPerChar, l.bits_per_char),
            (Metric::Perplexity, ppl),
        ];
        let mut summary = format!(
            "validation loss {:.4} nats per token, {:.4} bits per character, perplexity {ppl:.3}",
            l.nats_per_token, l.bits_per_char
        );
        let mut figures = vec![];
        if let Some(e) = &molecules {
            metrics.extend(e.metrics.iter().copied());
            summary = format!("{summary}; {}", e.summary);
            figures.extend(e.figures.iter().cloned());
        }
        Ok(Evaluation {
            metrics,
            log: vec![("tokens", l.tokens.into()), ("chars", l.chars.into())],
            record: serde_json::json!({
                "validation": { "nats_per_token": l.nats_per_token, "bits_per_char": l.bits_per_char, "perplexity": ppl, "tokens": l.tokens, "chars": l.chars },
                "samples": samples.iter().map(|(t, s)| serde_json::json!({ "temperature": t, "text": s })).collect::<Vec<_>>(),
                "watermark": watermark,
                "post_text": post_text,
                "memorisation": memo.as_ref().map(|m| serde_json::json!({
                    "window": m.window, "windows": m.windows, "copied": m.copied, "fraction": m.fraction(), "longest": m.longest, "longest_text": m.longest_text,
                })),
                "molecules": molecules.as_ref().map(|e| e.record.clone()),
            }),
            section,
            figures,
            summary,
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        self.config.describe()
    }

    fn loss_curve(&self) -> LossCurve {
        LossCurve::train_and_validation("Loss: cross-entropy (nats per token)".into(), "nats", "val_loss", 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            temperature: true,
            prompt: true,
            max_tokens: true,
            stop: true,
            top_k: true,
            top_p: true,
            repetition_penalty: true,
            ..Capabilities::plain(OutputKind::Text)
        }
    }

    fn generate(
        &self,
        m: &N::Model,
        r: &GenerateRequest,
        _: &Device,
        progress: Option<&dyn EventSink>,
    ) -> Result<Generated> {
        let tok = self.tokenizer()?;
        let prompt = prompt_tokens(r, &self.options, tok, self.config.context())?;
        let mut texts = Vec::with_capacity(r.count);
        for i in 0..r.count {
            let g = Generation {
                max_tokens: r.max_tokens.unwrap_or(self.options.sample_tokens),
                sampling: Sampling { watermark: self.watermark(r, tok), ..sampling(r, &self.options) },
                stop: r.stop.clone(),
                end: None,
                seed: r.seed.wrapping_add(i as u64),
            };
            let prompt_text = r.prompt.clone().unwrap_or_else(|| self.options.sample_prompt.clone());
            if let Some(p) = progress {
                p.text(&prompt_text);
            }
            let text = self.text(m, &prompt, &g, &mut |s| {
                if let Some(p) = progress {
                    p.text(s)
                }
            })?;
            if let Some(p) = progress {
                p.text("\n\n");
            }
            texts.push(format!("{prompt_text}{text}"));
        }
        Ok(Generated::Text(texts))
    }
}
