//! The sentence-VAE family (Bowman et al. 2016, <https://arxiv.org/abs/1511.06349>) on the lines
//! of a text corpus: trained with KL annealing, word dropout and free bits; judged by the
//! importance-weighted NLL of held-out lines (Burda et al. 2016), the KL and the active latent
//! units (a unit is active when its posterior mean varies across lines: Cov(E_q[z_u]) > 0.01,
//! Burda et al.), a posterior-collapse monitor during training; the report shows homotopies
//! (lines decoded along the segment between two encoded lines), lines drawn from the prior, and
//! the least likely held-out lines by their ELBO per token (anomaly scores). With `compare_lm`
//! naming a finished `rnn_lm` run on the same corpus, the report puts that language model's NLL
//! of the same lines beside the VAE's.

use crate::data::{Data, DataFacts};
use crate::error::{PipelineError, Result};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, FamilyOptions, PeriodicContext, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use crate::metric::Metric;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::{BatchLoader, BatchSource, DataKind, Tokenizer};
use genlab_models::lm::rnn::RnnLm;
use genlab_models::lm::sampling::Sampling;
use genlab_models::sentence_vae::{argmax, Lines, SentenceVae, SentenceVaeConfig};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The evaluation noise's stream.
const EVAL_STREAM: u64 = 0x5e1e;
/// The prior samples' stream.
const SAMPLE_STREAM: u64 = 0x5e5a;
/// Lines scored per batch.
const LINE_BATCH: usize = 50;
/// Points along each homotopy, its ends included.
const HOMOTOPY_STEPS: usize = 7;

/// The sentence VAE's own keys in `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentenceOptions {
    /// Lines of the corpus with at least this many tokens are modelled (blank lines never).
    #[serde(default = "default_min_tokens")]
    pub min_tokens: usize,
    /// ... and at most this many.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Importance samples of the held-out NLL.
    #[serde(default = "default_iwae_k")]
    pub iwae_k: usize,
    /// Sampling temperature of the prior samples in the report and `genlab sample`.
    #[serde(default = "one")]
    pub temperature: f64,
    /// A finished `rnn_lm` run on the same corpus: its NLL of the same held-out lines goes beside
    /// the VAE's.
    #[serde(default)]
    pub compare_lm: Option<PathBuf>,
}

fn default_min_tokens() -> usize {
    8
}
fn default_max_tokens() -> usize {
    64
}
fn default_iwae_k() -> usize {
    20
}
fn one() -> f64 {
    1.0
}

impl FamilyOptions for SentenceOptions {
    const KEYS: &'static [&'static str] = &["min_tokens", "max_tokens", "iwae_k", "temperature", "compare_lm"];
}

pub struct SentenceVaeFamily {
    config: SentenceVaeConfig,
    options: SentenceOptions,
    tokenizer: Option<Tokenizer>,
    exp: Experiment,
}

/// The lines of `text` with `min..=max` tokens (blank lines skipped), as the corpus writes them.
pub fn corpus_lines(text: &str, tok: &Tokenizer, min: usize, max: usize) -> Vec<Vec<u32>> {
    text.split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(|l| tok.encode_lossy(l).0)
        .filter(|t| (min..=max).contains(&t.len()))
        .collect()
}

/// Shuffled batches of lines, resumable.
struct LineBatches {
    lines: Arc<Vec<Vec<u32>>>,
    end: u32,
    loader: BatchLoader,
}

impl BatchSource for LineBatches {
    type Batch = Lines;

    fn next_batch(&mut self, _: &Device) -> Lines {
        let rows = self.loader.next_batch();
        let picked: Vec<&[u32]> = rows.iter().map(|&r| self.lines[r].as_slice()).collect();
        Lines::new(&picked, self.end)
    }

    fn state(&self) -> Value {
        json!({ "loader": self.loader.state() })
    }

    fn restore(&mut self, state: Value) -> std::result::Result<(), String> {
        let s = serde_json::from_value(state["loader"].clone()).map_err(|e| format!("loader state: {e}"))?;
        self.loader.restore(s)
    }
}

/// What the held-out lines score, line by line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LineScores {
    /// -ELBO per line (one posterior sample, analytic KL), nats.
    pub neg_elbo: Vec<f64>,
    /// KL per line, nats.
    pub kl: Vec<f64>,
    /// -(IWAE bound) per line, nats; empty when not asked.
    pub nll: Vec<f64>,
    /// Tokens per line, its end included.
    pub tokens: Vec<usize>,
    /// Latent units whose posterior mean varies across the lines (Cov > 0.01).
    pub active_units: usize,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Scores `lines` under `m`; `k = 0` skips the IWAE bound.
fn score(m: &SentenceVae, lines: &[Vec<u32>], k: usize, seed: u64, device: &Device, events: Option<&dyn EventSink>) -> LineScores {
    let mut rng = SeededRng::stream(seed, EVAL_STREAM);
    let l = m.latent_dim;
    let mut s = LineScores::default();
    let mut means: Vec<f32> = Vec::with_capacity(lines.len() * l);
    let mut bar = events.map(|e| e.progress("score lines", lines.len() as u64, 0));
    for chunk in lines.chunks(LINE_BATCH) {
        let refs: Vec<&[u32]> = chunk.iter().map(|c| c.as_slice()).collect();
        let batch = Lines::new(&refs, m.end());
        let b = batch.len();
        let eps = Tensor::from_data(TensorData::new(rng.normal_vec(b * l), [b, l]), device);
        let t = m.terms(&batch, eps, None);
        let (nll, kl) = (to_f32_vec(t.nll), to_f32_vec(t.kl.sum_dim(1)));
        s.neg_elbo.extend(nll.iter().zip(&kl).map(|(&a, &c)| a as f64 + c as f64));
        s.kl.extend(kl.iter().map(|&c| c as f64));
        s.tokens.extend(chunk.iter().map(|c| c.len() + 1));
        means.extend(to_f32_vec(t.mu));
        if k > 0 {
            let eps = Tensor::from_data(TensorData::new(rng.normal_vec(k * b * l), [k, b, l]), device);
            s.nll.extend(to_f32_vec(m.iwae_bound(&batch, eps)).into_iter().map(|v| -(v as f64)));
        }
        if let Some(bar) = bar.as_mut() {
            bar.update(s.tokens.len() as u64, "lines");
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    let n = lines.len().max(2) as f64;
    s.active_units = (0..l)
        .filter(|&j| {
            let col: Vec<f64> = means.iter().skip(j).step_by(l).map(|&v| v as f64).collect();
            let mu = mean(&col);
            col.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / (n - 1.0) > 0.01
        })
        .count();
    s
}

/// -log p(line + newline | a preceding newline) per line under a recurrent language model.
fn lm_nll(lm: &RnnLm, lines: &[Vec<u32>], newline: u32, device: &Device) -> Vec<f64> {
    lines
        .iter()
        .map(|line| {
            let window: Vec<i64> = std::iter::once(newline)
                .chain(line.iter().copied())
                .chain(std::iter::once(newline))
                .map(i64::from)
                .collect();
            let n = window.len();
            let w = Tensor::<2, burn::tensor::Int>::from_data(TensorData::new(window, [1, n]), device);
            -to_f32_vec(lm.token_log_probs(w, None)).iter().map(|&v| v as f64).sum::<f64>()
        })
        .collect()
}

impl SentenceVaeFamily {
    fn tokenizer(&self) -> Result<&Tokenizer> {
        crate::language::run_tokenizer(&self.tokenizer)
    }

    fn lines(&self, text: &str) -> Result<Vec<Vec<u32>>> {
        let o = &self.options;
        Ok(corpus_lines(text, self.tokenizer()?, o.min_tokens, o.max_tokens))
    }

    fn held_out(&self, data: &Data, n: Option<usize>) -> Result<Vec<Vec<u32>>> {
        let mut lines = self.lines(&data.text()?.eval_text)?;
        if lines.is_empty() {
            return Err(PipelineError::Config(format!(
                "model.min_tokens = {}, model.max_tokens = {}: no held-out line has that many tokens",
                self.options.min_tokens, self.options.max_tokens
            )));
        }
        lines.truncate(n.unwrap_or(usize::MAX));
        Ok(lines)
    }

    /// The language model of `model.compare_lm`, checked to be a finished `rnn_lm` run with this
    /// run's tokenizer; None when there is no such directory (not run yet: the report says so).
    fn comparison_lm(&self, dir: &std::path::Path, device: &Device) -> Result<Option<RnnLm>> {
        if !dir.exists() {
            return Ok(None);
        }
        let run = crate::stages::open_run::<crate::families::rnn_lm::RnnLmFamily>(dir, "model.compare_lm", "sentence_vae", device)?;
        if run.target.info.tokenizer.as_ref() != Some(self.tokenizer()?) {
            return Err(PipelineError::Config(format!(
                "model.compare_lm = \"{}\": its tokenizer is not this run's; compare a language model of the same corpus and tokenizer",
                dir.display()
            )));
        }
        Ok(Some(run.model))
    }

    fn sampling(&self, r: &GenerateRequest) -> Sampling {
        Sampling { temperature: r.temperature.unwrap_or(self.options.temperature), top_k: r.top_k, top_p: r.top_p, repetition_penalty: 1.0, watermark: None }
    }

    /// Lines drawn from the prior with `sampling`.
    fn prior_lines(&self, m: &SentenceVae, n: usize, seed: u64, sampling: &Sampling, max_len: usize, device: &Device) -> Result<Vec<String>> {
        let tok = self.tokenizer()?;
        let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
        let z = Tensor::from_data(TensorData::new(rng.normal_vec(n * m.latent_dim), [n, m.latent_dim]), device);
        // A molecule model never draws <unk> or the text's line end (no molecule holds either; the
        // VAE ends a line with its own token), nor begins a line with its end (a molecule has at
        // least one atom) or with a symbol no line of the data begins with.
        let (unk, end) = (tok.vocab_size() - 1, m.vocab);
        let line_end = tok.molecule_end();
        let not_first = tok.not_first();
        let lines = m.decode(z, max_len, &mut |l, position| {
            if let Some(line_end) = line_end {
                l[unk] = f32::NEG_INFINITY;
                l[line_end as usize] = f32::NEG_INFINITY;
                if position == 0 {
                    for &t in not_first.iter().chain([&(end as u32)]) {
                        l[t as usize] = f32::NEG_INFINITY;
                    }
                }
            }
            sampling.pick(l, &[], &mut rng)
        });
        Ok(lines.iter().map(|l| tok.decode(l)).collect())
    }

    /// Greedy lines along the segment between the posterior means of pairs of `lines`.
    fn homotopies(&self, m: &SentenceVae, lines: &[Vec<u32>], device: &Device) -> Result<Vec<Vec<String>>> {
        let tok = self.tokenizer()?;
        let pairs: Vec<(&Vec<u32>, &Vec<u32>)> = lines.chunks(2).filter(|c| c.len() == 2).take(3).map(|c| (&c[0], &c[1])).collect();
        let mut out = vec![];
        for (a, b) in pairs {
            let (mu, _) = m.encode(&Lines::new(&[a, b], m.end()));
            let mu = to_f32_vec(mu);
            let l = m.latent_dim;
            let mut z = Vec::with_capacity(HOMOTOPY_STEPS * l);
            for s in 0..HOMOTOPY_STEPS {
                let t = s as f32 / (HOMOTOPY_STEPS - 1) as f32;
                z.extend((0..l).map(|j| (1.0 - t) * mu[j] + t * mu[l + j]));
            }
            let z = Tensor::from_data(TensorData::new(z, [HOMOTOPY_STEPS, l]), device);
            let decoded = m.decode(z, self.options.max_tokens, &mut |v, _| argmax(v));
            let mut rows = vec![tok.decode(a)];
            rows.extend(decoded.iter().map(|d| tok.decode(d)));
            rows.push(tok.decode(b));
            if tok.molecule_end().is_some() {
                // A molecule's row: its SMILES (a SELFIES model's decoded) and whether it is valid.
                for r in &mut rows {
                    let smiles = genlab_data::molecules::generated_smiles(r, tok.is_selfies());
                    let valid = genlab_chem::parse(&smiles).is_ok();
                    *r = format!("{smiles}{}", if valid { "" } else { " (invalid)" });
                }
            }
            out.push(rows);
        }
        Ok(out)
    }
}

/// A line for a markdown table cell.
fn cell(s: &str) -> String {
    format!("`{}`", s.replace('`', "'").replace('|', "\\|"))
}

impl Family for SentenceVaeFamily {
    type Network = SentenceVaeConfig;
    type Options = SentenceOptions;
    type Model = SentenceVae;
    type Validation = Vec<Vec<u32>>;

    const CARD: FamilyCard = FamilyCard {
        name: "sentence_vae",
        summary: "Bowman et al.'s sentence VAE on a corpus's lines (LSTM/GRU encoder and decoder, KL annealing, word dropout, free bits)",
        data: &[DataKind::Text, DataKind::Molecules],
    };

    fn check(s: &Section<SentenceVaeConfig, SentenceOptions>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        let o = &s.options;
        if o.min_tokens == 0 || o.max_tokens < o.min_tokens {
            return Err((
                "model.max_tokens".into(),
                format!(" = {}: expected at least model.min_tokens ({}), which is at least 1", o.max_tokens, o.min_tokens),
            ));
        }
        if o.iwae_k == 0 {
            return Err(("model.iwae_k".into(), " = 0: expected at least 1".into()));
        }
        if !(o.temperature >= 0.0 && o.temperature.is_finite()) {
            return Err(("model.temperature".into(), format!(" = {}: expected a finite number >= 0", o.temperature)));
        }
        if exp.data.validation.fraction.is_none() && exp.data.dataset.kind() != DataKind::Molecules {
            return Err(("data.validation".into(), ": a text holds out its tail; expected { fraction = 0.1 }".into()));
        }
        Ok(())
    }

    fn metrics(_: &Section<SentenceVaeConfig, SentenceOptions>, _: DataKind) -> Vec<Metric> {
        vec![Metric::NllNats, Metric::NegElboNats, Metric::BitsPerChar]
    }

    fn output(_: &Section<SentenceVaeConfig, SentenceOptions>, _: DataKind) -> OutputKind {
        OutputKind::Text
    }

    fn new(s: Section<SentenceVaeConfig, SentenceOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        SentenceVaeFamily { config: s.network, options: s.options, tokenizer: facts.tokenizer.clone(), exp: exp.clone() }
    }

    /// The comparison language model is checked before training, not after it.
    fn check_data(&self, _: &Data) -> Result<()> {
        if let Some(dir) = &self.options.compare_lm {
            self.comparison_lm(dir, &self.exp.train.device.device()?)?;
        }
        Ok(())
    }

    fn init(&self, seed: u64, device: &Device) -> Result<SentenceVae> {
        Ok(self.config.init(self.tokenizer()?.vocab_size(), seed, device)?)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<SentenceVae>> {
        let lines = self.lines(&data.text()?.train_text)?;
        let t = &exp.train;
        if lines.len() < t.batch_size {
            return Err(PipelineError::Config(format!(
                "train.batch_size = {}: the training text has {} lines of {}..={} tokens",
                t.batch_size,
                lines.len(),
                self.options.min_tokens,
                self.options.max_tokens
            )));
        }
        let loader = BatchLoader::new((0..lines.len()).collect(), t.batch_size, true, t.drop_last, t.seed);
        Ok(Box::new(LineBatches { end: self.tokenizer()?.vocab_size() as u32, lines: Arc::new(lines), loader }))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<Vec<Vec<u32>>> {
        self.held_out(data, Some(exp.eval.periodic_examples))
    }

    fn validate(&self, _: u64, m: &SentenceVae, set: &Vec<Vec<u32>>, cx: &PeriodicContext<'_>) -> Result<Vec<(&'static str, f64)>> {
        let s = score(m, set, 0, self.exp.eval.seed, cx.device, None);
        Ok(vec![
            ("val_elbo", -mean(&s.neg_elbo)),
            ("val_kl", mean(&s.kl)),
            ("val_active_units", s.active_units as f64),
        ])
    }

    fn evaluate(&self, m: &SentenceVae, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let lines = self.held_out(data, cx.exp.eval.examples)?;
        let k = self.options.iwae_k;
        let s = score(m, &lines, k, cx.exp.eval.seed, &cx.device, Some(&**cx.events));
        let tok = self.tokenizer()?;
        let tokens: usize = s.tokens.iter().sum();
        let (nll, elbo, kl) = (mean(&s.nll), -mean(&s.neg_elbo), mean(&s.kl));
        let bits = s.nll.iter().sum::<f64>() / tokens as f64 / std::f64::consts::LN_2;
        let lm = match &self.options.compare_lm {
            Some(dir) => match self.comparison_lm(dir, &cx.device)? {
                Some(model) => {
                    let newline = tok.encode_lossy("\n").0.first().copied().unwrap_or(0);
                    Some((dir.clone(), mean(&lm_nll(&model, &lines, newline, &cx.device))))
                }
                None => {
                    cx.events.message(&format!("model.compare_lm: {} does not exist yet; the report leaves the language model out", dir.display()));
                    None
                }
            },
            None => None,
        };
        cx.events.message(&format!(
            "held-out lines: NLL (IWAE k={k}) {nll:.2} nats per line ({bits:.4} bits per token), ELBO {elbo:.2}, KL {kl:.2}, {} of {} latent units active, {} lines",
            s.active_units,
            m.latent_dim,
            lines.len()
        ));
        let homotopies = self.homotopies(m, &lines, &cx.device)?;
        let sampling = Sampling { temperature: self.options.temperature, ..Sampling::default() };
        let samples = self.prior_lines(m, 10, cx.exp.eval.seed, &sampling, self.options.max_tokens, &cx.device)?;
        let text = data.text()?;
        let molecules = match (tok.molecule_end(), cx.exp.eval.metric_samples) {
            (Some(_), n) if n > 0 && text.molecules.is_some() => {
                cx.events.message(&format!("decoding {n} molecules from the prior at temperature 1 for the MOSES metrics"));
                let mut bar = cx.events.progress("molecules", n as u64, 0);
                let mut drawn = Vec::with_capacity(n);
                while drawn.len() < n {
                    let b = crate::molecules::SAMPLE_BATCH.min(n - drawn.len());
                    let seed = cx.exp.eval.seed.wrapping_add(4 + drawn.len() as u64);
                    drawn.extend(self.prior_lines(m, b, seed, &Sampling::default(), crate::molecules::MAX_TOKENS, &cx.device)?);
                    bar.update(drawn.len() as u64, "molecules");
                }
                bar.finish();
                Some(crate::molecules::evaluate(&drawn, text, cx)?)
            }
            _ => None,
        };
        let mut order: Vec<usize> = (0..lines.len()).collect();
        let per_token = |i: usize| s.neg_elbo[i] / s.tokens[i] as f64;
        order.sort_by(|&a, &b| per_token(b).total_cmp(&per_token(a)));
        // A line that recurs (a speaker's name) is listed once, at its least likely occurrence.
        let mut seen = std::collections::HashSet::new();
        order.retain(|&i| seen.insert(&lines[i]));

        let split = crate::report::split_name(cx.exp);
        let mut md = String::new();
        let _ = writeln!(md, "## Held-out lines, from {split}\n\n| metric | value |\n|---|---|");
        let _ = writeln!(md, "| NLL, minus the IWAE bound with k = {k} (nats per line) | {nll:.3} |");
        match (&lm, &self.options.compare_lm) {
            (Some((dir, lm_nll)), _) => {
                let link = crate::stages::report_link(cx.run_dir, dir);
                let _ = writeln!(md, "| the LSTM language model's NLL of the same lines ([{}]({link}), nats per line) | {lm_nll:.3} |", dir.display());
            }
            (None, Some(dir)) => {
                let _ = writeln!(md, "| the LSTM language model's NLL of the same lines | {} not run yet |", dir.display());
            }
            (None, None) => {}
        }
        let _ = writeln!(md, "| NLL in bits per token (char tokenizer: per character, the line's end included) | {bits:.4} |");
        let _ = writeln!(md, "| ELBO (nats per line) | {elbo:.3} |");
        let _ = writeln!(md, "| KL(q(z given x) from p(z)) (nats per line) | {kl:.3} |");
        let _ = writeln!(md, "| active latent units (Cov of the posterior mean > 0.01) | {} of {} |", s.active_units, m.latent_dim);
        let _ = writeln!(md, "| lines ({}..={} tokens) | {} |\n", self.options.min_tokens, self.options.max_tokens, lines.len());
        let _ = writeln!(
            md,
            "Protocol: {} weights of step {}; the first {} lines of the held-out text with {}..={} tokens, as the corpus writes them; \
             the ELBO with one posterior sample and the analytic KL; the NLL as minus the importance-weighted bound (Burda et al. 2016) with k = {k}; \
             a language model's NLL of a line is -log p(line, newline | newline) from its zero state. A KL near 0 with no active units is posterior collapse.\n",
            cx.exp.weights_word(),
            cx.step,
            lines.len(),
            self.options.min_tokens,
            self.options.max_tokens
        );
        if let Some(e) = &molecules {
            md.push_str(&e.section);
        }
        let _ = writeln!(md, "## Homotopies\n\nLines decoded greedily at {HOMOTOPY_STEPS} evenly spaced points between the posterior means of two held-out lines (first and last rows: the lines themselves).\n");
        for (i, h) in homotopies.iter().enumerate() {
            let _ = writeln!(md, "| {} | line |\n|---|---|", i + 1);
            for (j, row) in h.iter().enumerate() {
                let label = if j == 0 || j + 1 == h.len() { "input".to_string() } else { format!("t = {:.2}", (j - 1) as f64 / (HOMOTOPY_STEPS - 1) as f64) };
                let _ = writeln!(md, "| {label} | {} |", cell(row));
            }
            md.push('\n');
        }
        let _ = writeln!(md, "## Lines from the prior (temperature {})\n", self.options.temperature);
        for l in &samples {
            let _ = writeln!(md, "- {}", cell(l));
        }
        let _ = writeln!(md, "\n## Least likely held-out lines (anomaly scores)\n\nThe 10 distinct held-out lines with the lowest ELBO per token (nats; the line's end counted as a token; a recurring line at its least likely occurrence).\n\n| -ELBO per token | -ELBO | line |\n|---|---|---|");
        for &i in order.iter().take(10) {
            let _ = writeln!(md, "| {:.3} | {:.2} | {} |", per_token(i), s.neg_elbo[i], cell(&tok.decode(&lines[i])));
        }
        md.push('\n');
        let lm_record = lm.as_ref().map(|(d, v)| json!({ "run": d, "nll_nats_per_line": v }));
        let mut metrics = vec![(Metric::NllNats, nll), (Metric::NegElboNats, -elbo), (Metric::BitsPerChar, bits)];
        let mut summary = format!("NLL {nll:.2} nats per line ({bits:.4} bits per token); KL {kl:.2}; {} of {} units active", s.active_units, m.latent_dim);
        let mut figures = vec![];
        if let Some(e) = &molecules {
            metrics.extend(e.metrics.iter().copied());
            summary = format!("{summary}; {}", e.summary);
            figures.extend(e.figures.iter().cloned());
        }
        Ok(Evaluation {
            metrics,
            log: vec![("kl_nats", kl.into()), ("active_units", s.active_units.into()), ("iwae_k", k.into()), ("lines", lines.len().into())],
            section: md,
            record: json!({ "nll_nats_per_line": nll, "elbo_nats_per_line": elbo, "kl_nats_per_line": kl, "bits_per_token": bits,
                "active_units": s.active_units, "latent_dim": m.latent_dim, "lines": lines.len(), "iwae_k": k, "lm": lm_record,
                "homotopies": homotopies, "samples": samples, "molecules": molecules.as_ref().map(|e| e.record.clone()) }),
            figures,
            summary,
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "sentence VAE: {:?} encoder and decoder of {}, embedding {}, latent {}, word dropout {}, KL annealed over {} steps, free bits {} per unit",
            c.cell, c.hidden, c.embedding, c.latent_dim, c.word_dropout, c.kl_anneal_steps, c.free_bits
        )
    }

    fn loss_curve(&self) -> LossCurve {
        let mut curve = LossCurve::train_and_validation(
            "Loss: reconstruction NLL + annealed KL (free bits) per line; validation: the negative ELBO".into(),
            "nats per line",
            "val_elbo",
            -1.0,
        );
        curve.series.push(crate::evaluation::CurveSeries { name: "training KL".into(), split: "train", key: "kl", sign: 1.0 });
        curve.series.push(crate::evaluation::CurveSeries { name: "validation KL".into(), split: "eval", key: "val_kl", sign: 1.0 });
        curve
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { temperature: true, top_k: true, top_p: true, max_tokens: true, ..Capabilities::plain(OutputKind::Text) }
    }

    fn generate(&self, m: &SentenceVae, r: &GenerateRequest, device: &Device, _: Option<&dyn EventSink>) -> Result<Generated> {
        let max_len = r.max_tokens.unwrap_or(self.options.max_tokens);
        Ok(Generated::Text(self.prior_lines(m, r.count, r.seed, &self.sampling(r), max_len, device)?))
    }
}
