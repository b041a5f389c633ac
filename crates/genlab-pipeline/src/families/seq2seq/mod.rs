//! The sequence-to-sequence family: an encoder-decoder transformer (`genlab_models::lm::seq2seq`)
//! that corrects text and fills masked spans, trained on pairs drawn fresh from the training
//! text's lines (`genlab_data::pairs`) and judged on pairs from the held-out text only: the
//! character error rate of 1,000 corrupted lines before and after correction, the exact-match
//! rate of 1,000 infilled spans, and the loss per target token.
//!
//! Tokens: the run's characters (and `<unk>`), then six of the family's own: padding, BOS, EOS,
//! the mask, and the two task markers a source starts with (correct, fill).

use crate::data::{Data, DataFacts};
use crate::error::{PipelineError, Result};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, FamilyOptions, PeriodicContext, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use crate::metric::Metric;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_core::SeededRng;
use genlab_data::pairs::{corrupt, draw_pair, mask_span, padded, pair_lines, PairBatches, PairEncoder, PairTask, TextPair};
use genlab_data::{DataKind, Tokenizer};
use genlab_models::lm::sampling::Sampling;
use genlab_models::lm::seq2seq::{beam_search, greedy_batch, Seq2Seq, Seq2SeqConfig, SourceDecoder};
use genlab_models::lm::{generate, Generation};
use crate::language::{matrix_decay_optimizers, run_tokenizer};
use genlab_train::Optimizers;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::Arc;

/// The family's own keys in `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairOptions {
    /// The chance that each character of a training or evaluation line is edited.
    #[serde(default = "default_rate")]
    pub edit_rate: f64,
    /// The fraction of training pairs that are infilling (the rest are correction).
    #[serde(default = "half")]
    pub infill_fraction: f64,
    /// Lines of this many characters (after trimming) make pairs.
    #[serde(default = "default_min_line")]
    pub min_line: usize,
    #[serde(default = "default_max_line")]
    pub max_line: usize,
    /// Held-out lines of each task in the evaluation.
    #[serde(default = "default_eval_lines")]
    pub eval_lines: usize,
    /// Keep a correction only when the model finds it likelier than the text left as it is (the
    /// decoded hypothesis reranked against the identity one); false keeps every decoding.
    #[serde(default = "yes")]
    pub rerank: bool,
    /// Beams of `genlab sample --correct/--infill` when `--beam` is absent (1: greedy).
    #[serde(default = "one")]
    pub beam: usize,
}

fn default_rate() -> f64 {
    0.05
}
fn yes() -> bool {
    true
}
fn half() -> f64 {
    0.5
}
fn default_min_line() -> usize {
    16
}
fn default_max_line() -> usize {
    64
}
fn default_eval_lines() -> usize {
    1000
}
fn one() -> usize {
    1
}

impl FamilyOptions for PairOptions {
    const KEYS: &'static [&'static str] = &["edit_rate", "infill_fraction", "min_line", "max_line", "eval_lines", "rerank", "beam"];
}

/// The text that stands for the span to fill in `--infill`.
pub const MASK_TEXT: &str = "<mask>";

/// The family's tokens after the tokenizer's.
#[derive(Debug, Clone, Copy)]
struct Specials {
    pad: u32,
    bos: u32,
    eos: u32,
    mask: u32,
    fix: u32,
    fill: u32,
}

impl Specials {
    /// A target sequence: BOS, the text's tokens, EOS, cut to `max` tokens.
    fn target(self, tok: &Tokenizer, text: &str, max: usize) -> Vec<u32> {
        let mut t = vec![self.bos];
        t.extend(tok.encode_lossy(text).0);
        t.push(self.eos);
        t.truncate(max);
        t
    }

    fn after(vocab: usize) -> Self {
        let v = vocab as u32;
        Specials { pad: v, bos: v + 1, eos: v + 2, mask: v + 3, fix: v + 4, fill: v + 5 }
    }
    const COUNT: usize = 6;
}

pub struct Seq2SeqFamily {
    config: Seq2SeqConfig,
    options: PairOptions,
    tokenizer: Option<Tokenizer>,
    exp: Experiment,
}

/// Pairs scored per forward pass, and sources decoded per batch.
const EVAL_BATCH: usize = 50;

/// Text for a markdown table cell: its pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Levenshtein distance between `a` and `b`, in characters.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let up = row[j + 1];
            row[j + 1] = (up + 1).min(row[j] + 1).min(diag + usize::from(ca != b[j]));
            diag = up;
        }
    }
    row[b.len()]
}

impl Seq2SeqFamily {
    fn tokenizer(&self) -> Result<&Tokenizer> {
        run_tokenizer(&self.tokenizer)
    }

    fn specials(&self) -> Result<Specials> {
        Ok(Specials::after(self.tokenizer()?.vocab_size()))
    }

    /// The token ids of a pair, cut to the model's `max_len`.
    fn encoder(&self) -> Result<Arc<PairEncoder>> {
        let tok = self.tokenizer()?.clone();
        let sp = self.specials()?;
        let max = self.config.max_len;
        Ok(Arc::new(move |p: &TextPair| {
            let ids = |t: &str| tok.encode_lossy(t).0;
            let mut src = vec![if p.task == PairTask::Correct { sp.fix } else { sp.fill }];
            for (i, part) in p.source.iter().enumerate() {
                if i > 0 {
                    src.push(sp.mask);
                }
                src.extend(ids(part));
            }
            src.truncate(max);
            (src, sp.target(&tok, &p.target, max))
        }))
    }

    /// The alphabet of insertions and substitutions: the tokenizer's characters.
    fn alphabet(&self) -> Result<Vec<char>> {
        match self.tokenizer()? {
            Tokenizer::Char(c) => Ok(c.chars().to_vec()),
            _ => Err(PipelineError::Config(
                "data.tokenizer: the seq2seq family edits characters; expected \"char\"".into(),
            )),
        }
    }

    /// Fixed held-out pairs: `n` of the evaluation text's lines, drawn with `seed`.
    fn held_out(&self, data: &Data, n: usize, seed: u64) -> Result<Vec<(String, TextPair)>> {
        let lines = pair_lines(&data.text()?.eval_text, self.options.min_line, self.options.max_line);
        if lines.is_empty() {
            return Err(PipelineError::Config(format!(
                "data.validation: the held-out text has no line of {}..={} characters to make pairs from",
                self.options.min_line, self.options.max_line
            )));
        }
        let alphabet = self.alphabet()?;
        let mut rng = SeededRng::stream(seed, 0x4e1d);
        Ok((0..n)
            .map(|_| {
                let line = lines[rng.below(lines.len())].clone();
                let pair = draw_pair(&line, self.options.edit_rate, 0.5, &alphabet, &mut rng);
                (line, pair)
            })
            .collect())
    }

    /// Mean negative log-likelihood per target token of `pairs`.
    fn pair_loss(&self, m: &Seq2Seq, pairs: &[(String, TextPair)], device: &Device) -> Result<f64> {
        let enc = self.encoder()?;
        let pad = self.specials()?.pad;
        let (mut nats, mut count) = (0.0, 0);
        for chunk in pairs.chunks(EVAL_BATCH) {
            let (src, tgt): (Vec<_>, Vec<_>) = chunk.iter().map(|(_, p)| enc(p)).unzip();
            let (nll, n) = m.nll(padded(&src, pad, device), padded(&tgt, pad, device), None);
            nats += genlab_core::tensors::to_f32_vec(nll)[0] as f64;
            count += n;
        }
        Ok(nats / count.max(1) as f64)
    }

    /// For each correction `pairs[i]` and its decoding `hyps[i]`: the decoding when the model
    /// gives it a higher probability than the corrupted text itself, else the corrupted text.
    fn keep_likelier(&self, m: &Seq2Seq, pairs: &[TextPair], hyps: &[String]) -> Result<Vec<String>> {
        let (enc, sp, tok) = (self.encoder()?, self.specials()?, self.tokenizer()?);
        let device = m.wte.device();
        let target = |text: &str| sp.target(tok, text, self.config.max_len);
        let mut kept = Vec::with_capacity(pairs.len());
        for (chunk, hs) in pairs.chunks(EVAL_BATCH).zip(hyps.chunks(EVAL_BATCH)) {
            let sources: Vec<Vec<u32>> = chunk.iter().map(|p| enc(p).0).collect();
            let src = padded(&sources, sp.pad, &device);
            let decoded: Vec<Vec<u32>> = hs.iter().map(|h| target(h)).collect();
            let unchanged: Vec<Vec<u32>> = chunk.iter().map(|p| target(&p.source[0])).collect();
            let a = m.sequence_log_probs(src.clone(), padded(&decoded, sp.pad, &device));
            let b = m.sequence_log_probs(src, padded(&unchanged, sp.pad, &device));
            for (i, p) in chunk.iter().enumerate() {
                kept.push(if a[i] > b[i] { hs[i].clone() } else { p.source[0].clone() });
            }
        }
        Ok(kept)
    }

    /// Greedy decodings of `pairs`' sources, as text.
    fn decode_all(&self, m: &Seq2Seq, pairs: &[TextPair], events: &dyn EventSink) -> Result<Vec<String>> {
        let enc = self.encoder()?;
        let (sp, tok) = (self.specials()?, self.tokenizer()?);
        let mut bar = events.progress("decoding", pairs.len() as u64, 0);
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(EVAL_BATCH) {
            let sources: Vec<Vec<u32>> = chunk.iter().map(|p| enc(p).0).collect();
            let decoded = greedy_batch(m, &sources, sp.bos, sp.eos, self.config.max_len - 1);
            out.extend(decoded.iter().map(|t| tok.decode(t)));
            bar.update(out.len() as u64, "lines");
        }
        bar.finish();
        Ok(out)
    }
}

impl Family for Seq2SeqFamily {
    type Network = Seq2SeqConfig;
    type Options = PairOptions;
    type Model = Seq2Seq;
    type Validation = Vec<(String, TextPair)>;

    const CARD: FamilyCard = FamilyCard {
        name: "seq2seq",
        summary: "encoder-decoder transformer with cross-attention, for text correction and infilling; greedy and beam search",
        data: &[DataKind::Text],
    };

    fn check(s: &Section<Seq2SeqConfig, PairOptions>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        let o = &s.options;
        let bad = |k: &str, v: String, e: String| Err((format!("model.{k}"), format!(" = {v}: {e}")));
        if !(0.0..1.0).contains(&o.edit_rate) {
            return bad("edit_rate", o.edit_rate.to_string(), "expected a value in [0, 1)".into());
        }
        if !(0.0..=1.0).contains(&o.infill_fraction) {
            return bad("infill_fraction", o.infill_fraction.to_string(), "expected a value in [0, 1]".into());
        }
        if o.min_line == 0 || o.min_line > o.max_line {
            return bad("min_line", o.min_line.to_string(), format!("expected 1..=max_line ({})", o.max_line));
        }
        if o.max_line + 2 > s.network.max_len {
            return bad(
                "max_line",
                o.max_line.to_string(),
                format!("a target line and its BOS and EOS must fit in max_len ({}); expected at most {}", s.network.max_len, s.network.max_len.saturating_sub(2)),
            );
        }
        if o.beam == 0 {
            return bad("beam", "0".into(), "expected at least 1".into());
        }
        if exp.data.validation.fraction.is_none() {
            return Err(("data.validation".into(), ": pairs are held out from the corpus's tail; expected { fraction = 0.1 }".into()));
        }
        if exp.data.tokenizer != genlab_data::TokenizerSpec::Char {
            return Err(("data.tokenizer".into(), ": the seq2seq family edits characters; expected \"char\"".into()));
        }
        Ok(())
    }

    fn metrics(_: &Section<Seq2SeqConfig, PairOptions>, _: DataKind) -> Vec<Metric> {
        vec![Metric::NllNats, Metric::CharErrorRate, Metric::InfillExactMatch]
    }

    fn output(_: &Section<Seq2SeqConfig, PairOptions>, _: DataKind) -> OutputKind {
        OutputKind::Text
    }

    fn new(s: Section<Seq2SeqConfig, PairOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        Seq2SeqFamily { config: s.network, options: s.options, tokenizer: facts.tokenizer.clone(), exp: exp.clone() }
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Seq2Seq> {
        let vocab = self.tokenizer()?.vocab_size() + Specials::COUNT;
        Ok(self.config.init(vocab, self.specials()?.pad, seed, device)?)
    }

    fn optimizers(&self, exp: &Experiment) -> Optimizers {
        matrix_decay_optimizers(exp)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<Seq2Seq>> {
        let lines = pair_lines(&data.text()?.train_text, self.options.min_line, self.options.max_line);
        if lines.is_empty() {
            return Err(PipelineError::Config(format!(
                "model.min_line: the training text has no line of {}..={} characters to make pairs from",
                self.options.min_line, self.options.max_line
            )));
        }
        let t = &exp.train;
        Ok(Box::new(PairBatches::new(
            Arc::new(lines),
            self.alphabet()?,
            (self.options.edit_rate, self.options.infill_fraction),
            t.batch_size,
            self.specials()?.pad,
            self.encoder()?,
            t.seed,
        )))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<Self::Validation> {
        self.held_out(data, exp.eval.periodic_examples, exp.eval.seed ^ 0x7a11)
    }

    fn validate(&self, _: u64, m: &Seq2Seq, set: &Self::Validation, cx: &PeriodicContext<'_>) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![("val_loss", self.pair_loss(m, set, cx.device)?)])
    }

    fn evaluate(&self, m: &Seq2Seq, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let n = self.options.eval_lines;
        let lines = pair_lines(&data.text()?.eval_text, self.options.min_line, self.options.max_line);
        if lines.is_empty() {
            return Err(PipelineError::Config("data.validation: the held-out text has no line to make pairs from".into()));
        }
        let alphabet = self.alphabet()?;
        let mut rng = SeededRng::stream(self.exp.eval.seed, 0xe7a1);
        // Correction: n held-out lines, each corrupted once.
        let originals: Vec<String> = (0..n).map(|_| lines[rng.below(lines.len())].clone()).collect();
        let corrections: Vec<TextPair> = originals
            .iter()
            .map(|l| TextPair {
                task: PairTask::Correct,
                source: vec![corrupt(l, self.options.edit_rate, &alphabet, &mut rng)],
                target: l.clone(),
            })
            .collect();
        // Infilling: n held-out lines, each with one masked span.
        let fills: Vec<TextPair> = (0..n)
            .map(|_| {
                let (before, span, after) = mask_span(&lines[rng.below(lines.len())], &mut rng);
                TextPair { task: PairTask::Infill, source: vec![before, after], target: span }
            })
            .collect();
        cx.events.message(&format!("correcting {n} held-out corrupted lines and filling {n} held-out masked spans (greedy)"));
        let decoded = self.decode_all(m, &corrections, &**cx.events)?;
        let reranked = self.keep_likelier(m, &corrections, &decoded)?;
        let corrected = if self.options.rerank { reranked.clone() } else { decoded.clone() };
        let filled = self.decode_all(m, &fills, &**cx.events)?;
        let ref_chars: usize = originals.iter().map(|l| l.chars().count()).sum();
        let cer = |texts: &mut dyn Iterator<Item = &String>| {
            texts.zip(&originals).map(|(c, l)| levenshtein(c, l)).sum::<usize>() as f64 / ref_chars as f64
        };
        let cer_before = cer(&mut corrections.iter().map(|p| &p.source[0]));
        let (cer_greedy, cer_reranked) = (cer(&mut decoded.iter()), cer(&mut reranked.iter()));
        let cer_after = if self.options.rerank { cer_reranked } else { cer_greedy };
        // The other corrector, on the same corrupted lines: SymSpell against the training text's
        // words (distance 2, prefix 7: its defaults).
        let speller = genlab_post::symspell::SymSpell::from_text(&data.text()?.train_text, 2, 7);
        let spelled: Vec<String> = corrections.iter().map(|p| speller.correct_line(&p.source[0])).collect();
        let cer_symspell = cer(&mut spelled.iter());
        let exact = filled.iter().zip(&fills).filter(|(f, p)| **f == p.target).count();
        let exact_rate = exact as f64 / n.max(1) as f64;
        let unchanged = corrections.iter().zip(&originals).filter(|(p, l)| p.source[0] == **l).count();
        let fixed = corrected.iter().zip(&originals).filter(|(c, l)| c == l).count();
        let held = self.held_out(data, n, self.exp.eval.seed ^ 0x1055)?;
        let loss = self.pair_loss(m, &held, &cx.device)?;
        cx.events.message(&format!(
            "correction: character error rate {cer_before:.4} before, {cer_after:.4} after; infilling exact match {exact_rate:.3}; loss {loss:.4} nats per target token"
        ));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| held-out lines | before correction | after correction |\n|---|---|---|\n\
             | character error rate ({n} corrupted lines, {ref_chars} characters) | {cer_before:.4} | {cer_after:.4} |\n\
             | lines exactly right | {unchanged} | {fixed} |\n\n\
             The decoding alone (greedy) gives a character error rate of {cer_greedy:.4}; kept only where the model finds \
             it likelier than the line left as it is, {cer_reranked:.4} ({} of the two is reported above, \
             `model.rerank = {}`). The SymSpell corrector of `[post] text` (each word outside the training text's {} \
             words replaced by the nearest within 2 edits, the most frequent first) on the same lines: {cer_symspell:.4}.\n\n\
             | infilling | exact match |\n|---|---|\n| {n} masked spans of 1 to 3 words | {exact_rate:.3} ({exact}) |\n\n\
             Loss on {n} held-out pairs (half of each task): {loss:.4} nats per target token.\n\n\
             Protocol: {} weights of step {}; lines of {}..={} characters from the held-out text only (never trained on), \
             each character edited with probability {} (deletion, insertion, substitution or swap, uniformly), or one span \
             of 1 to 3 words replaced by the mask; greedy decoding; the character error rate is the Levenshtein distance \
             to the original line summed over lines, divided by the originals' characters.\n",
            if self.options.rerank { "the second" } else { "the first" },
            self.options.rerank,
            speller.len(),
            self.exp.weights_word(),
            cx.step,
            self.options.min_line,
            self.options.max_line,
            self.options.edit_rate
        );
        let _ = writeln!(s, "### Examples\n\n| corrupted | corrected | original |\n|---|---|---|");
        for i in 0..5.min(n) {
            let _ = writeln!(s, "| `{}` | `{}` | `{}` |", cell(&corrections[i].source[0]), cell(&corrected[i]), cell(&originals[i]));
        }
        let _ = writeln!(s, "\n| masked | filled | span |\n|---|---|---|");
        for i in 0..5.min(n) {
            let masked = format!("{}{MASK_TEXT}{}", fills[i].source[0], fills[i].source[1]);
            let _ = writeln!(s, "| `{}` | `{}` | `{}` |", cell(&masked), cell(&filled[i]), cell(&fills[i].target));
        }
        s.push('\n');
        Ok(Evaluation {
            metrics: vec![(Metric::NllNats, loss), (Metric::CharErrorRate, cer_after), (Metric::InfillExactMatch, exact_rate)],
            log: vec![("cer_before", cer_before.into()), ("lines", n.into())],
            record: serde_json::json!({
                "correction": { "lines": n, "chars": ref_chars, "cer_before": cer_before, "cer_after": cer_after, "cer_greedy": cer_greedy, "cer_reranked": cer_reranked, "cer_symspell": cer_symspell, "rerank": self.options.rerank, "unchanged_before": unchanged, "exact_after": fixed },
                "infilling": { "spans": n, "exact_match": exact_rate },
                "loss_nats_per_token": loss,
            }),
            section: s,
            figures: vec![],
            summary: format!(
                "character error rate {cer_before:.4} -> {cer_after:.4} after correction; infilling exact match {exact_rate:.3}"
            ),
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "encoder-decoder transformer: {} + {} layers, {} heads, width {}, max length {}, dropout {}",
            c.encoder_layers, c.decoder_layers, c.heads, c.width, c.max_len, c.dropout
        )
    }

    fn loss_curve(&self) -> LossCurve {
        LossCurve::train_and_validation("Loss: cross-entropy (nats per target token)".into(), "nats", "val_loss", 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { temperature: true, correct: true, infill: true, beam: true, ..Capabilities::plain(OutputKind::Text) }
    }

    fn generate(&self, m: &Seq2Seq, r: &GenerateRequest, _: &Device, progress: Option<&dyn EventSink>) -> Result<Generated> {
        let tok = self.tokenizer()?;
        let sp = self.specials()?;
        let (task, text) = match (&r.correct, &r.infill) {
            (Some(t), None) => (PairTask::Correct, t),
            (None, Some(t)) => (PairTask::Infill, t),
            _ => {
                return Err(PipelineError::Config(
                    "sample: the seq2seq family takes --correct TEXT or --infill TEXT (with one <mask>)".into(),
                ))
            }
        };
        let (what, parts): (&str, Vec<&str>) = match task {
            PairTask::Correct => ("--correct", vec![text.as_str()]),
            PairTask::Infill => ("--infill", text.split(MASK_TEXT).collect()),
        };
        if task == PairTask::Infill && parts.len() != 2 {
            return Err(PipelineError::Config(format!(
                "--infill: {} {MASK_TEXT} in {text:?}; expected exactly one",
                parts.len() - 1
            )));
        }
        let mut source = vec![if task == PairTask::Correct { sp.fix } else { sp.fill }];
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                source.push(sp.mask);
            }
            source.extend(tok.encode_strict(part, what)?);
        }
        if source.len() > self.config.max_len {
            return Err(PipelineError::Config(format!(
                "{what}: {} tokens with its task marker; the model reads at most {} (max_len)",
                source.len(),
                self.config.max_len
            )));
        }
        let beam = r.beam.unwrap_or(self.options.beam);
        let max_new = r.max_tokens.unwrap_or(self.config.max_len - 1).min(self.config.max_len - 1);
        let mut texts = Vec::with_capacity(r.count);
        for i in 0..r.count {
            let tokens = if beam > 1 {
                beam_search(m, &source, beam, sp.bos, sp.eos, max_new).tokens
            } else {
                let g = Generation {
                    max_tokens: max_new,
                    sampling: Sampling { temperature: r.temperature.unwrap_or(0.0), top_k: r.top_k, top_p: r.top_p, repetition_penalty: 1.0, watermark: None },
                    stop: vec![],
                    end: Some(sp.eos),
                    seed: r.seed.wrapping_add(i as u64),
                };
                generate(&SourceDecoder::new(m, &source), &[sp.bos], &g, &|t| tok.decode(t), &mut |_| {}).tokens
            };
            let out = tok.decode(&tokens);
            let text = match task {
                PairTask::Correct if self.options.rerank => {
                    let pair = TextPair { task, source: vec![text.clone()], target: String::new() };
                    self.keep_likelier(m, &[pair], &[out])?.remove(0)
                }
                PairTask::Correct => out,
                PairTask::Infill => format!("{}{out}{}", parts[0], parts[1]),
            };
            if let Some(p) = progress {
                p.text(&format!("{text}\n"));
            }
            texts.push(text);
        }
        Ok(Generated::Text(texts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("Too bee or not too be", "To be or not to be"), 3);
        assert_eq!(levenshtein("flaw", "lawn"), 2);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
