//! What the benchmark binaries share: `--name value` arguments and a one-line fatal error.

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

/// Prints `error: msg` and exits with code 2.
pub fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// `--device`, `--warmup` and `--steps` of a training-step benchmark (and the allocator set as `genlab` sets it).
pub fn step_args() -> (genlab_core::DeviceSpec, usize, usize) {
    genlab_core::memory::keep_freed_buffers(); // as the genlab command does
    let spec = arg("--device", "flex").parse().unwrap_or_else(|e| fail(&format!("{e}")));
    let warmup: usize = arg("--warmup", "5").parse().unwrap_or_else(|_| fail("--warmup: expected a count"));
    let steps: usize = arg("--steps", "30")
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| fail("--steps: expected a count of at least 1"));
    (spec, warmup, steps)
}

/// Runs `step` (1-based step number -> the loss, read back to the host, which synchronises the
/// device) `warmup + steps` times and prints the RESULT line `bench/compare.py` reads: the median,
/// least and greatest time of the timed steps, and the first and last loss.
pub fn time_steps(spec: genlab_core::DeviceSpec, warmup: usize, steps: usize, mut step: impl FnMut(u64) -> f64) {
    let (mut times, mut losses) = (Vec::new(), Vec::new());
    for i in 1..=(warmup + steps) as u64 {
        let t0 = std::time::Instant::now();
        losses.push(step(i));
        if i as usize > warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "RESULT impl=genlab-{spec} median_ms={:.3} min_ms={:.3} max_ms={:.3} loss_first={:.3} loss_last={:.3}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        losses[0],
        losses[losses.len() - 1]
    );
}
