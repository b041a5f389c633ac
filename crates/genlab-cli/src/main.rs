//! The `genlab` command: argument parsing and dispatch, nothing else; the work is in the library
//! crates. Errors print as one line (`error: ...`) and exit with code 1; an interrupted run exits
//! with 130 after writing its checkpoint.

use anyhow::Context;
use clap::{Parser, Subcommand};
use genlab_core::DeviceSpec;
use genlab_pipeline::{Finished, Mode, RunOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "genlab",
    version,
    about = "Generative models from raw data to samples: one experiment file, every phase"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `run` and `train` share.
#[derive(clap::Args)]
struct RunArgs {
    /// Override a field: `--set train.steps=2000 --set model.latent_dim=32`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Device: flex (default), libtorch, libtorch-cuda:N, wgpu.
    #[arg(long)]
    device: Option<DeviceSpec>,
    /// Run directory (default runs/NAME, or runs/NAME-2, ... when taken).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

impl RunArgs {
    fn options(self) -> RunOptions {
        RunOptions { run_dir: self.run_dir, device: self.device, overrides: self.set, ..Default::default() }
    }
}

/// Parsed once per process, so the size of its largest variant (`sample`'s request options) costs
/// nothing worth boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Every phase: data, model, training, evaluation, samples, report.
    Run {
        /// The experiment file (TOML).
        file: PathBuf,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Training only; `--resume RUN` continues a run from its latest checkpoint.
    Train {
        /// The experiment file (omit with --resume).
        file: Option<PathBuf>,
        #[command(flatten)]
        args: RunArgs,
        /// Continue this run directory from `checkpoints/latest` (`--set` changes its experiment).
        #[arg(long, value_name = "RUN", conflicts_with_all = ["file", "run_dir"])]
        resume: Option<PathBuf>,
    },
    /// The evaluation protocol on a run's latest weights (writes eval.json, a metrics.jsonl entry
    /// and report.md).
    Eval {
        run: PathBuf,
        /// Change the evaluation for this command: `--set eval.metric_samples=10000`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
    /// Samples from a run's latest weights: a PNG grid, a folder of PNGs, (2-D points) a CSV file
    /// or a scatter plot, (text) a text file. Each option is checked against what the run's family
    /// can honour.
    Sample {
        run: PathBuf,
        /// How many samples (64 images or points, 1 text by default).
        #[arg(short = 'n')]
        n: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A PNG file (grid) or a new directory (folder); `samples.png` by default (`samples.txt`
        /// for text, which also streams to the terminal as it is generated).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        /// `grid`: one file; `folder`: one PNG per sample, for `genlab fid`.
        #[arg(long, default_value = "grid")]
        format: Format,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        request: RequestArgs,
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
    /// Tunes the experiment's hyperparameters: the `[tune]` section's search space, sampler
    /// (random, grid, TPE), pruner (median, ASHA) and budget. The study is an Optuna study in
    /// SQLite (`STUDY_DIR/study.db`) or in PostgreSQL (`--storage postgresql://...`, shared by
    /// workers on several machines); each trial is a run directory under `STUDY_DIR/trials/`.
    /// Ctrl-C stops it: running trials keep their checkpoints and are run again next time.
    Tune {
        /// The experiment file with a [tune] section.
        file: PathBuf,
        /// The study database (SQLAlchemy URL, as Optuna takes it): sqlite:///FILE or
        /// postgresql://USER@HOST:PORT/DATABASE.
        #[arg(long)]
        storage: Option<String>,
        /// The study's name (default: [tune] study, else the problem's name).
        #[arg(long)]
        study: Option<String>,
        /// The study directory (default: runs/STUDY).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Trials run at once by this process (default: [tune] workers).
        #[arg(long)]
        workers: Option<u32>,
        /// The study's trial budget (default: [tune] trials).
        #[arg(long)]
        trials: Option<u32>,
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
    /// Serves runs over HTTP: the generation API under /v1, OpenAI's text endpoints, the OpenAPI
    /// spec at /openapi.json, /metrics and a web page at /. Models are named by their run
    /// directories; SIGTERM lets the requests in progress finish, then exits.
    Serve {
        /// Run directories (each with a checkpoint).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to listen (loopback unless told otherwise; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// A file holding the key `/v1` asks for as `Authorization: Bearer KEY`.
        #[arg(long, value_name = "FILE")]
        api_key_file: Option<PathBuf>,
        /// Let pages from this origin call the API (CORS; repeatable). Off by default.
        #[arg(long = "cors-origin", value_name = "ORIGIN")]
        cors_origins: Vec<String>,
        /// The most requests one model answers together (1: no batching).
        #[arg(long, default_value_t = 16)]
        max_batch: usize,
        /// How long, in milliseconds, a batch waits for more requests.
        #[arg(long, default_value_t = 5)]
        max_wait_ms: u64,
        /// The most requests waiting for one model; more answer 429.
        #[arg(long, default_value_t = 256)]
        queue: usize,
        /// The most samples one request draws.
        #[arg(long, default_value_t = 64)]
        max_count: usize,
        /// The most denoising steps one request asks.
        #[arg(long, default_value_t = 1000)]
        max_steps: usize,
        /// The most tokens one completion generates.
        #[arg(long, default_value_t = 1024)]
        max_tokens: usize,
        /// The largest request body, in bytes.
        #[arg(long, default_value_t = 1 << 20)]
        max_body: usize,
        /// Seconds a request may take, its wait in the queue included.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// The most requests in progress at once; more answer 429.
        #[arg(long, default_value_t = 256)]
        max_concurrent: usize,
        /// The most open connections; more wait to be accepted.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
    },
    /// The model families: each one's data, `[model]` keys with their defaults, metrics, and what
    /// it generates.
    Families {
        /// One family (all when absent).
        name: Option<String>,
    },
    /// FID between two folders of images (PNG/JPEG), with its protocol; `--all` adds KID,
    /// precision/recall, density/coverage (and Inception Scores with `--features lenet`).
    Fid {
        /// The generated images (torch-fidelity's input1: precision is measured on these).
        dir_a: PathBuf,
        /// The real images (the manifold recall and coverage are measured against).
        dir_b: PathBuf,
        /// Feature network: `inception` (the FID Inception-v3, any image size) or `lenet` (genlab's
        /// MNIST LeNet, 28x28 gray digits; installed by `genlab run configs/mnist-lenet.toml`).
        #[arg(long, default_value = "inception")]
        features: FeatureNet,
        /// Whose preprocessing (resize, scaling) reaches the Inception: `pytorch-fid` (bilinear,
        /// 2x - 1), `torch-fidelity` (TensorFlow 1.x bilinear, (x - 128) / 128) or `clean-fid`
        /// (Pillow's antialiased bicubic, clipped); each equals its reference package.
        #[arg(long, alias = "resize", default_value = "pytorch-fid")]
        protocol: Protocol,
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        batch_size: usize,
        /// The feature network's weights file (default: in $GENLAB_WEIGHTS_DIR or ~/.cache/genlab/weights).
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(long)]
        device: Option<DeviceSpec>,
    },
    /// Datasets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Molecules: MOSES's metrics of generated SMILES.
    Molecules {
        #[command(subcommand)]
        command: MoleculesCommand,
    },
    /// Feature-network weights.
    Weights {
        #[command(subcommand)]
        command: WeightsCommand,
    },
    /// The invisible image watermark of [post] (invisible-watermark's dwtDct).
    Watermark {
        #[command(subcommand)]
        command: WatermarkCommand,
    },
}

#[derive(Subcommand)]
enum WatermarkCommand {
    /// Reads the watermark of a PNG or JPEG image, or of each in a directory, and says which carry
    /// the key (28 or more of its 32 bits read back); with --text, scores a text file for the
    /// green-list watermark of the language model run --run (a z-score above 4 is watermarked).
    Detect {
        /// An image file or a directory of images.
        #[arg(required_unless_present = "text", conflicts_with = "text")]
        path: Option<PathBuf>,
        /// A text file to score (with --run).
        #[arg(long, requires = "run")]
        text: Option<PathBuf>,
        /// The image key, 8 hexadecimal digits.
        #[arg(long, conflicts_with_all = ["run", "text"])]
        key: Option<String>,
        /// A run whose [post] watermark (images) or text_watermark (--text) to look for.
        #[arg(long)]
        run: Option<PathBuf>,
    },
}

/// What `genlab sample` asks of the family beyond count and seed.
#[derive(clap::Args)]
struct RequestArgs {
    /// Sampling temperature: a flow's prior standard deviation (the run's `model.temperature`
    /// when absent).
    #[arg(long)]
    temperature: Option<f64>,
    /// The class a conditional model is asked for (0-based, as the dataset numbers its labels).
    #[arg(long)]
    class: Option<usize>,
    /// The sampler (diffusion): `ddpm`, `ddim` or `dpm-solver++` (the run's `model.sampler` when
    /// absent).
    #[arg(long)]
    sampler: Option<String>,
    /// Sampler steps (diffusion; the run's `model.sampling_steps` when absent).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (diffusion).
    #[arg(long)]
    guidance: Option<f64>,
    /// A partial image to complete (diffusion in-painting), with `--mask`.
    #[arg(long, value_name = "IMAGE.png", requires = "mask")]
    partial: Option<PathBuf>,
    /// The in-painting mask, the image's size: white pixels are generated, black ones kept from
    /// `--partial` (as diffusers' in-painting masks).
    #[arg(long, value_name = "MASK.png", requires = "partial")]
    mask: Option<PathBuf>,
    /// A prompt to continue (language models).
    #[arg(long)]
    prompt: Option<String>,
    /// Tokens to generate (language models).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Stop after this string (language models; repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Sample from the k most likely tokens (language models).
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample from the smallest set of tokens holding this probability (language models).
    #[arg(long)]
    top_p: Option<f64>,
    /// Divide the positive logits (multiply the negative ones) of tokens already in the text by
    /// this (language models; CTRL's penalty, 1 leaves them).
    #[arg(long)]
    repetition_penalty: Option<f64>,
    /// A text to correct (seq2seq).
    #[arg(long, conflicts_with = "infill")]
    correct: Option<String>,
    /// A text with one `<mask>` to fill (seq2seq).
    #[arg(long)]
    infill: Option<String>,
    /// Beams of beam search (seq2seq; 1 is greedy).
    #[arg(long)]
    beam: Option<usize>,
    /// The samples as the model made them, without the experiment's [post] steps and watermark.
    #[arg(long)]
    raw: bool,
}

impl RequestArgs {
    fn request(self, count: usize, seed: u64) -> genlab_pipeline::Result<genlab_pipeline::GenerateRequest> {
        let partial = match (&self.partial, &self.mask) {
            (Some(image), Some(mask)) => Some(genlab_pipeline::generate::PartialInput::from_files(image, mask)?),
            _ => None,
        };
        Ok(genlab_pipeline::GenerateRequest {
            count,
            seed,
            class: self.class,
            temperature: self.temperature,
            sampler: self.sampler,
            steps: self.steps,
            guidance: self.guidance,
            partial,
            prompt: self.prompt,
            max_tokens: self.max_tokens,
            stop: self.stop,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            correct: self.correct,
            infill: self.infill,
            beam: self.beam,
            latents: None,
            seeds: None,
            raw: self.raw,
        })
    }
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Writes the FID Inception weights (TorchScript) as a safetensors file with the same tensor
    /// names, recording the TorchScript file's SHA-1; `genlab fid --weights FILE.safetensors` reads it.
    ExportInception {
        /// The safetensors file to write.
        out: PathBuf,
        /// The TorchScript file (default: in $GENLAB_WEIGHTS_DIR or ~/.cache/genlab/weights).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Replace an existing output file (never the source itself).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SplitArg {
    Train,
    Test,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Grid,
    Folder,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FeatureNet {
    Inception,
    Lenet,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Protocol {
    #[value(name = "pytorch-fid", alias = "legacy")]
    PytorchFid,
    #[value(name = "torch-fidelity")]
    TorchFidelity,
    #[value(name = "clean-fid", alias = "clean")]
    CleanFid,
}

#[derive(Subcommand)]
enum MoleculesCommand {
    /// MOSES's metrics of generated molecules (a file of SMILES, one per line) against the
    /// vendored MOSES splits: validity, unique@k, novelty, IntDiv, SNN, Scaf.
    Score {
        file: PathBuf,
        /// The k of unique@k, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
        k: Vec<usize>,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Counts, shapes, value range and class histogram of a dataset (a name or a path).
    Info { dataset: String },
    /// A split of an image dataset as a folder of PNG files.
    Export {
        dataset: String,
        #[arg(long, default_value = "test")]
        split: SplitArg,
        /// At most this many images (all by default).
        #[arg(short = 'n')]
        n: Option<usize>,
        /// A new or empty directory.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    genlab_core::memory::keep_freed_buffers();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn finished(f: Finished) -> ExitCode {
    match f {
        Finished::Done { run_dir, summary, goal } => {
            if let Some(m) = summary {
                println!("{m}");
            }
            if let Some(g) = goal {
                println!("goal {g}");
            }
            println!("run directory: {}", run_dir.display());
            ExitCode::SUCCESS
        }
        Finished::Interrupted { run_dir, step } => {
            println!("stopped at step {step}; resume with: genlab train --resume {}", run_dir.display());
            ExitCode::from(130)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let events: genlab_pipeline::Events = std::sync::Arc::new(genlab_pipeline::Terminal);
    if matches!(cli.command, Command::Run { .. } | Command::Train { .. }) {
        // Ctrl-C during training writes a checkpoint and stops cleanly.
        genlab_pipeline::install_interrupt_handler();
    }
    Ok(match cli.command {
        Command::Run { file, args } => finished(genlab_pipeline::start(&file, &args.options(), Mode::Run)?),
        Command::Train { resume: Some(run), args, .. } => finished(genlab_pipeline::resume(&run, &args.options())?),
        Command::Train { file: Some(file), args, resume: None } => {
            finished(genlab_pipeline::start(&file, &args.options(), Mode::Train)?)
        }
        Command::Train { file: None, resume: None, .. } => {
            anyhow::bail!("genlab train: give an experiment file, or --resume RUN")
        }
        Command::Eval { run, set, device } => {
            println!("{}", genlab_pipeline::eval_run(&run, device, &set, events)?);
            ExitCode::SUCCESS
        }
        Command::Sample { run, n, seed, out, format, force, request, device } => {
            let format = match format {
                Format::Grid => genlab_pipeline::SampleFormat::Grid,
                Format::Folder => genlab_pipeline::SampleFormat::Folder,
            };
            let out =
                genlab_pipeline::sample_run(&run, request.request(0, seed)?, n, out, format, force, device, events)?;
            println!("{}", out.display());
            ExitCode::SUCCESS
        }
        Command::Serve {
            runs,
            addr,
            api_key_file,
            cors_origins,
            max_batch,
            max_wait_ms,
            queue,
            max_count,
            max_steps,
            max_tokens,
            max_body,
            timeout,
            max_concurrent,
            max_connections,
        } => {
            let positive = |name: &str, v: usize| {
                if v == 0 {
                    anyhow::bail!("--{name} 0: expected at least 1")
                }
                Ok(())
            };
            for (name, v) in [
                ("max-batch", max_batch),
                ("queue", queue),
                ("max-count", max_count),
                ("max-steps", max_steps),
                ("max-tokens", max_tokens),
                ("max-body", max_body),
                ("max-concurrent", max_concurrent),
                ("max-connections", max_connections),
            ] {
                positive(name, v)?;
            }
            if !(timeout > 0.0 && timeout.is_finite()) {
                anyhow::bail!("--timeout {timeout}: expected a positive number of seconds");
            }
            let api_key = match api_key_file {
                None => None,
                Some(f) => {
                    let key = std::fs::read_to_string(&f)
                        .with_context(|| format!("--api-key-file {}: cannot read it", f.display()))?;
                    let key = key.trim().to_string();
                    if key.is_empty() || key.contains(char::is_whitespace) {
                        anyhow::bail!("--api-key-file {}: expected one key with no spaces", f.display());
                    }
                    Some(key)
                }
            };
            let options = genlab_serve::ServeOptions {
                addr,
                api_key,
                cors_origins,
                batching: genlab_serve::worker::Batching {
                    max_batch,
                    max_wait: std::time::Duration::from_millis(max_wait_ms),
                    queue,
                },
                limits: genlab_serve::Limits {
                    max_count,
                    max_steps,
                    max_tokens,
                    max_body,
                    timeout: std::time::Duration::from_secs_f64(timeout),
                    max_concurrent,
                    max_connections,
                    ..Default::default()
                },
            };
            genlab_serve::serve_blocking(runs, options, |a| {
                use std::io::Write;
                println!("genlab serve: listening on http://{a}");
                let _ = std::io::stdout().flush();
            })
            .map_err(anyhow::Error::msg)?;
            eprintln!("genlab serve: stopped");
            ExitCode::SUCCESS
        }
        Command::Tune { file, storage, study, dir, workers, trials, device } => {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || {
                if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    eprintln!(
                        "\nsecond interrupt: exiting; running trials are failed and run again by the next worker"
                    );
                    std::process::exit(130);
                }
                eprintln!("\ninterrupted: running trials stop at their next step with a checkpoint");
            })
            .context("installing the Ctrl-C handler")?;
            let opts = genlab_pipeline::tune::TuneOptions {
                storage,
                study,
                workers,
                trials,
                study_dir: dir,
                device,
                events: events.clone(),
                stop: stop.clone(),
            };
            let s = genlab_pipeline::tune::tune(&file, &opts)?;
            match s.best {
                Some((n, v)) => println!("best trial {n}: {v}"),
                None => println!("no trial completed"),
            }
            if let Some(p) = &s.best_experiment {
                println!("best experiment: {}", p.display());
            }
            println!("study directory: {} (report.md)", s.study_dir.display());
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Families { name } => {
            print!("{}", genlab_pipeline::registry::describe(name.as_deref())?);
            ExitCode::SUCCESS
        }
        Command::Fid { dir_a, dir_b, features, protocol, all, batch_size, weights, device } => {
            let options = genlab_eval::folders::FidOptions {
                features: match features {
                    FeatureNet::Inception => genlab_eval::extract::FeatureNetwork::Inception,
                    FeatureNet::Lenet => genlab_eval::extract::FeatureNetwork::MnistLenet,
                },
                protocol: match protocol {
                    Protocol::PytorchFid => genlab_eval::preprocess::FidProtocol::PytorchFid,
                    Protocol::TorchFidelity => genlab_eval::preprocess::FidProtocol::TorchFidelity,
                    Protocol::CleanFid => genlab_eval::preprocess::FidProtocol::CleanFid,
                },
                all,
                batch_size: batch_size.max(1),
                weights,
                device: device.unwrap_or_default().device()?,
            };
            println!("{}", genlab_eval::folders::fid_folders(&dir_a, &dir_b, &options, &*events)?);
            ExitCode::SUCCESS
        }
        Command::Data { command: DataCommand::Export { dataset, split, n, out } } => {
            let split = match split {
                SplitArg::Train => genlab_data::Split::Train,
                SplitArg::Test => genlab_data::Split::Test,
            };
            let set = genlab_data::DatasetSource::from_arg(&dataset)?.load_images(split, &[])?;
            let written = genlab_data::export::export_png(&set, n.unwrap_or(usize::MAX), &out)?;
            println!("{written} images in {}", out.display());
            ExitCode::SUCCESS
        }
        Command::Weights { command: WeightsCommand::ExportInception { out, weights, force } } => {
            let source = weights.unwrap_or_else(|| genlab_eval::extract::FeatureNetwork::Inception.default_path());
            let sha1 = genlab_eval::weights::export_fid_inception(&source, &out, force)?;
            println!("{} (sha1 {sha1}), from {}", out.display(), source.display());
            ExitCode::SUCCESS
        }
        Command::Watermark { command: WatermarkCommand::Detect { text: Some(text), run: Some(run), .. } } => {
            let r = genlab_pipeline::post::detect_text_watermark(&text, &run)?;
            let d = r.detection;
            let expected = r.green_list.fraction() * d.scored as f64;
            let verdict = if d.z > genlab_pipeline::post::TEXT_Z_THRESHOLD { "watermarked" } else { "not watermarked" };
            println!(
                "{}: z = {:.2} ({} of {} distinct token pairs green, {expected:.1} expected by chance): {verdict}",
                text.display(),
                d.z,
                d.green,
                d.scored
            );
            ExitCode::SUCCESS
        }
        Command::Watermark { command: WatermarkCommand::Detect { path, key, run, .. } } => {
            let path = path.expect("clap requires a path without --text");
            let found = genlab_pipeline::post::watermark_key(key.as_deref(), run.as_deref())?;
            let scale = match &run {
                Some(run) => genlab_pipeline::post::watermark_scale(run)?,
                None => genlab_post::watermark::DEFAULT_SCALE,
            };
            let readings = genlab_pipeline::post::detect_watermarks(&path, &found, scale)?;
            let marked = readings.iter().filter(|r| r.reading.marked() == Some(true)).count();
            for r in &readings {
                let matching = r.reading.matching.unwrap_or(0);
                let verdict = if r.reading.marked() == Some(true) { "marked" } else { "not marked" };
                println!("{}: {matching}/32 key bits, {verdict}", r.path.display());
            }
            println!("{marked} of {} images carry key {}", readings.len(), found.to_hex());
            ExitCode::SUCCESS
        }
        Command::Molecules { command: MoleculesCommand::Score { file, k } } => {
            let generated = genlab_data::molecules::read_generated(&file)?;
            print!("{}", genlab_data::molecules::score_report(&generated, &k)?);
            ExitCode::SUCCESS
        }
        Command::Data { command: DataCommand::Info { dataset } } => {
            let source = genlab_data::DatasetSource::from_arg(&dataset)?;
            print!("{}", genlab_data::info::describe(&source).with_context(|| format!("reading {dataset}"))?);
            ExitCode::SUCCESS
        }
    })
}
