//! genlab-eval: metrics of generated samples computed from feature vectors, in float64, each
//! written to agree with the implementation the field reports numbers from (pytorch-fid for FID,
//! torch-fidelity for KID and IS, the `prdc` package for precision/recall/density/coverage).

pub mod error;
pub mod extract;
pub mod features;
pub mod fid;
pub mod folders;
pub mod inception;
pub mod inception_score;
pub mod kid;
pub mod lenet;
pub mod likelihood;
pub mod memorisation;
pub mod numpy_rng;
pub mod prdc;
pub mod preprocess;
pub mod suite;
pub mod torchscript;
pub mod weights;

pub use error::{EvalError, Result};
pub use features::Features;
