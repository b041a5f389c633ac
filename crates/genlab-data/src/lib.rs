//! genlab-data: datasets and how they reach a model: readers (IDX, image folders, text), named
//! datasets (vendored MNIST and Shakespeare, Debian's Fashion-MNIST), transforms, the seeded,
//! resumable batch loader, and the batch sources the trainer reads (images, points, tokens).

pub mod batches;
pub mod error;
pub mod export;
pub mod files;
pub mod folder;
pub mod idx;
pub mod image_set;
pub mod info;
pub mod loader;
pub mod molecules;
pub mod pairs;
pub mod source;
pub mod splits;
pub mod text;
pub mod tokenizer;
pub mod toy;
pub mod transform;

pub use batches::{BatchSource, ImageBatches, LabelledBatches, PointBatches, TokenBatches};
pub use error::{DataError, Result};
pub use image_set::{ImageSet, LabelledBatch};
pub use loader::{BatchLoader, LoaderState};
pub use source::{data_dir, DataKind, DatasetName, DatasetSource, Split};
pub use splits::{EvalImages, Holdout, Splits};
pub use text::{TextCorpus, TextSplits};
pub use tokenizer::{CharTokenizer, Tokenizer, TokenizerSpec};
pub use toy::{ToyDistribution, ToyPoints};
pub use transform::Transform;
