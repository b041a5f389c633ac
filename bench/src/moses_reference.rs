//! The MOSES table's "Train" row, recomputed with genlab's metrics: `--n` molecules drawn (seeded)
//! from the vendored training subset, scored as generated molecules against the vendored test
//! split (SNN and Scaf against all 176,074; IntDiv over the `--n`; novelty against the rest of the
//! subset). The paper's row (Polykovskiy et al. 2020, table 2): IntDiv 0.857, IntDiv2 0.851, SNN/Test
//! 0.642, Frag/Test 1.000, Scaf/Test 0.991 (on the whole training set).
//! `moses-reference [--n 10000]`; prints the metrics and the seconds each took.

use genlab_bench::{arg, fail};
use genlab_chem::moses::{metrics, Reference};
use genlab_core::SeededRng;

fn main() {
    let n: usize = arg("--n", "10000").parse().unwrap_or_else(|_| fail("--n: expected a count"));
    let set = genlab_data::molecules::load_moses().unwrap_or_else(|e| fail(&e.to_string()));
    let mut order: Vec<usize> = (0..set.train.len()).collect();
    SeededRng::new(0).shuffle(&mut order);
    let drawn: Vec<String> = order[..n].iter().map(|&i| set.train[i].clone()).collect();
    let rest: Vec<String> = order[n..].iter().map(|&i| set.train[i].clone()).collect();
    let t0 = std::time::Instant::now();
    let reference = Reference::new(&rest, &set.test);
    let prepared = t0.elapsed().as_secs_f64();
    let m = metrics(&drawn, &reference, &[1000, 10000]);
    println!("{n} training molecules against the test split ({} molecules)", set.test.len());
    println!(
        "valid {:.4}, unique {:?}, novelty {:.4}, IntDiv1 {:.4}, IntDiv2 {:.4}, SNN/Test {:.4}, Frag/Test {:.4}, Scaf/Test {:.4}",
        m.valid, m.unique, m.novelty, m.int_div1, m.int_div2, m.snn, m.frag, m.scaf
    );
    println!("reference prepared in {prepared:.1} s, metrics in {:.1} s", t0.elapsed().as_secs_f64() - prepared);
}
