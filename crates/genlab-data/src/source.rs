//! Where a dataset comes from: a vendored or packaged name, or a path with its format.

use crate::error::{DataError, Result};
use crate::folder::{read_image_folder, Color};
use crate::image_set::ImageSet;
use crate::text::TextCorpus;
use crate::toy::ToyDistribution;
use crate::transform::Transform;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Datasets known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// MNIST digits, vendored in `data/mnist/` (IDX, gzip).
    Mnist,
    /// Fashion-MNIST, from Debian's `dataset-fashion-mnist` in `/usr/share/datasets/fashion-mnist/`.
    FashionMnist,
    /// Shakespeare's plays and poems, vendored in `data/shakespeare/`.
    Shakespeare,
    /// The MOSES benchmark's molecules as SMILES, vendored in `data/moses/` (the test split and a
    /// 250,000-molecule subset of the training split).
    Moses,
}

/// `dataset = "mnist"`, `{ idx = "DIR-or-FILE", labels = "FILE" }`, `{ images = "DIR", color = "rgb" }`,
/// or `{ text = "FILE" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSource", into = "RawSource")]
pub enum DatasetSource {
    Named(DatasetName),
    /// A directory holding `train-images-idx3-ubyte[.gz]` etc., or one IDX image file.
    Idx {
        idx: PathBuf,
        labels: Option<PathBuf>,
    },
    Images {
        images: PathBuf,
        color: Color,
    },
    Text {
        text: PathBuf,
    },
    /// Molecules as SMILES, one per line (a `SMILES` header line optional); rows that do not parse
    /// are skipped and counted.
    Smiles {
        smiles: PathBuf,
    },
    /// A 2-D toy density generated in code (`"two-moons"`, `"eight-gaussians"`, `"checkerboard"`).
    Toy(ToyDistribution),
}

/// What kind of examples a dataset holds, resolved once from its source: the kind decides which
/// families can model it and which batch source feeds the trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// Images `[channels, height, width]`, with labels when the source has them.
    Images,
    /// Points of the plane (the 2-D toy densities).
    Points,
    /// A text corpus, read as a stream of character tokens.
    Text,
    /// Molecules, one SMILES per row, read by the language families as a text of one molecule
    /// per line (SMILES or SELFIES tokens) and scored by the MOSES metrics.
    Molecules,
}

impl DataKind {
    pub fn describe(self) -> &'static str {
        match self {
            DataKind::Images => "images",
            DataKind::Points => "2-D points",
            DataKind::Text => "text",
            DataKind::Molecules => "molecules (SMILES)",
        }
    }
}

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Test,
}

/// The serialised shape of [`DatasetSource`]; conversion gives one clear message on a bad value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RawSource {
    Name(String),
    Table(SourceTable),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceTable {
    #[serde(skip_serializing_if = "Option::is_none")]
    idx: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    color: Option<Color>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smiles: Option<PathBuf>,
}

const SOURCE_FORMS: &str = "expected \"mnist\", \"fashion-mnist\", \"shakespeare\", \"moses\", a 2-D toy (\"two-moons\", \"eight-gaussians\", \"checkerboard\"), { idx = PATH }, { images = DIR }, { text = FILE }, or { smiles = FILE }";

impl TryFrom<RawSource> for DatasetSource {
    type Error = String;
    fn try_from(raw: RawSource) -> std::result::Result<Self, String> {
        match raw {
            RawSource::Name(n) => match n.as_str() {
                "mnist" => Ok(DatasetSource::Named(DatasetName::Mnist)),
                "fashion-mnist" => Ok(DatasetSource::Named(DatasetName::FashionMnist)),
                "shakespeare" => Ok(DatasetSource::Named(DatasetName::Shakespeare)),
                "moses" => Ok(DatasetSource::Named(DatasetName::Moses)),
                n if ToyDistribution::from_name(n).is_some() => {
                    Ok(DatasetSource::Toy(ToyDistribution::from_name(n).expect("just matched")))
                }
                _ => Err(format!("unknown dataset \"{n}\": {SOURCE_FORMS}")),
            },
            RawSource::Table(t) => match t {
                SourceTable { idx: Some(idx), labels, images: None, color: None, text: None, smiles: None } => {
                    Ok(DatasetSource::Idx { idx, labels })
                }
                SourceTable { images: Some(images), color, idx: None, labels: None, text: None, smiles: None } => {
                    Ok(DatasetSource::Images { images, color: color.unwrap_or_default() })
                }
                SourceTable { text: Some(text), idx: None, labels: None, images: None, color: None, smiles: None } => {
                    Ok(DatasetSource::Text { text })
                }
                SourceTable {
                    smiles: Some(smiles),
                    idx: None,
                    labels: None,
                    images: None,
                    color: None,
                    text: None,
                } => Ok(DatasetSource::Smiles { smiles }),
                _ => Err(format!("dataset table has a wrong mix of keys: {SOURCE_FORMS}")),
            },
        }
    }
}

impl From<DatasetSource> for RawSource {
    fn from(s: DatasetSource) -> RawSource {
        match s {
            DatasetSource::Named(n) => RawSource::Name(
                match n {
                    DatasetName::Mnist => "mnist",
                    DatasetName::FashionMnist => "fashion-mnist",
                    DatasetName::Shakespeare => "shakespeare",
                    DatasetName::Moses => "moses",
                }
                .into(),
            ),
            DatasetSource::Idx { idx, labels } => {
                RawSource::Table(SourceTable { idx: Some(idx), labels, ..Default::default() })
            }
            DatasetSource::Images { images, color } => {
                RawSource::Table(SourceTable { images: Some(images), color: Some(color), ..Default::default() })
            }
            DatasetSource::Text { text } => RawSource::Table(SourceTable { text: Some(text), ..Default::default() }),
            DatasetSource::Smiles { smiles } => {
                RawSource::Table(SourceTable { smiles: Some(smiles), ..Default::default() })
            }
            DatasetSource::Toy(t) => RawSource::Name(t.name().into()),
        }
    }
}

/// Where the vendored datasets live: `$GENLAB_DATA_DIR`, else `./data` when it holds them, else the
/// repository's `data/` (found from this crate's source location at build time).
pub fn data_dir() -> PathBuf {
    if let Ok(d) = std::env::var("GENLAB_DATA_DIR") {
        return PathBuf::from(d);
    }
    let local = PathBuf::from("data");
    if local.join("mnist").is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// Where Debian's `dataset-fashion-mnist` installs (`$GENLAB_FASHION_MNIST_DIR` overrides).
pub fn fashion_mnist_dir() -> PathBuf {
    std::env::var("GENLAB_FASHION_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/share/datasets/fashion-mnist"))
}

impl DatasetSource {
    /// A name (`mnist`) or a path given on the command line: a directory of IDX files, a directory of
    /// images, an IDX file, or a text file.
    pub fn from_arg(arg: &str) -> Result<Self> {
        if let Ok(s) = DatasetSource::try_from(RawSource::Name(arg.to_string())) {
            return Ok(s);
        }
        let p = PathBuf::from(arg);
        if !p.exists() {
            return Err(DataError::NotFound {
                name: arg.into(),
                reason: "not a dataset name (mnist, fashion-mnist, shakespeare, moses, two-moons, eight-gaussians, checkerboard) nor an existing path".into(),
            });
        }
        if p.is_dir() {
            let has_idx = std::fs::read_dir(&p)
                .map_err(DataError::io(&p))?
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().contains("-idx"));
            return Ok(if has_idx {
                DatasetSource::Idx { idx: p, labels: None }
            } else {
                DatasetSource::Images { images: p, color: Color::Gray }
            });
        }
        // A name that says IDX (`train-images-idx3-ubyte`) is read as IDX, so a damaged one gets
        // the IDX reader's error rather than being taken for text.
        let head = crate::files::head(&p, 4)?;
        let named_idx = p.file_name().is_some_and(|n| n.to_string_lossy().contains("-idx"));
        let is_idx = named_idx || head.starts_with(&[0, 0]);
        if is_idx {
            return Ok(DatasetSource::Idx { idx: p, labels: None });
        }
        // A file of SMILES: a `.smi` name, or a first line `SMILES` (MOSES's CSV header).
        let smi = p.extension().is_some_and(|e| e == "smi");
        let first_line = crate::files::head(&p, 7)?;
        Ok(if smi || first_line.starts_with(b"SMILES") {
            DatasetSource::Smiles { smiles: p }
        } else {
            DatasetSource::Text { text: p }
        })
    }

    /// The kind of examples this source holds.
    /// The dataset's licence and origin, as `data/LICENSES.md` records them; for the user's own
    /// files, that their licence is not recorded.
    pub fn licence(&self) -> &'static str {
        match self {
            DatasetSource::Named(DatasetName::Mnist) => {
                "Creative Commons Attribution-Share Alike 3.0 (Yann LeCun, Corinna Cortes), vendored in data/mnist"
            }
            DatasetSource::Named(DatasetName::FashionMnist) => {
                "MIT (Zalando Research), read from Debian's dataset-fashion-mnist package"
            }
            DatasetSource::Named(DatasetName::Shakespeare) => {
                "public domain (Project Gutenberg's texts), vendored in data/shakespeare"
            }
            DatasetSource::Named(DatasetName::Moses) => {
                "MIT (Insilico Medicine's MOSES benchmark, PyPI molsets 0.3.1), vendored in data/moses"
            }
            DatasetSource::Toy(_) => "generated in code: no licence needed",
            _ => "the user's own files: their licence and consent are not recorded here",
        }
    }

    pub fn kind(&self) -> DataKind {
        match self {
            DatasetSource::Named(DatasetName::Shakespeare) | DatasetSource::Text { .. } => DataKind::Text,
            DatasetSource::Toy(_) => DataKind::Points,
            DatasetSource::Named(DatasetName::Moses) | DatasetSource::Smiles { .. } => DataKind::Molecules,
            DatasetSource::Named(_) | DatasetSource::Idx { .. } | DatasetSource::Images { .. } => DataKind::Images,
        }
    }

    /// The toy distribution, for a 2-D point dataset.
    pub fn toy(&self) -> Option<ToyDistribution> {
        match self {
            DatasetSource::Toy(t) => Some(*t),
            _ => None,
        }
    }

    /// Loads one split of an image dataset, with any `resize` transform applied.
    pub fn load_images(&self, split: Split, transforms: &[Transform]) -> Result<ImageSet> {
        let set = match self {
            DatasetSource::Named(DatasetName::Mnist) => idx_dir_split("mnist", &data_dir().join("mnist"), split)?,
            DatasetSource::Named(DatasetName::FashionMnist) => {
                let dir = fashion_mnist_dir();
                if !dir.is_dir() {
                    return Err(DataError::NotFound {
                        name: "fashion-mnist".into(),
                        reason: format!("{} does not exist: install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)", dir.display()),
                    });
                }
                idx_dir_split("fashion-mnist", &dir, split)?
            }
            DatasetSource::Named(DatasetName::Shakespeare) | DatasetSource::Text { .. } => {
                return Err(DataError::Config(format!("{} is a text dataset, not images", self.describe())))
            }
            DatasetSource::Toy(_) => {
                return Err(DataError::Config(format!("{} is a 2-D point dataset, not images", self.describe())))
            }
            DatasetSource::Named(DatasetName::Moses) | DatasetSource::Smiles { .. } => {
                return Err(DataError::Config(format!(
                    "{} is a molecule dataset (SMILES), not images",
                    self.describe()
                )))
            }
            DatasetSource::Idx { idx, labels } => {
                if idx.is_dir() {
                    idx_dir_split(&idx.display().to_string(), idx, split)?
                } else if split == Split::Test {
                    return Err(DataError::Config(format!(
                        "{}: a single IDX file has no test split; use validation = {{ fraction = 0.1 }}",
                        idx.display()
                    )));
                } else {
                    ensure_exists(idx)?;
                    ImageSet::from_idx(&idx.display().to_string(), idx, labels.as_deref())?
                }
            }
            DatasetSource::Images { images, color } => {
                ensure_exists(images)?;
                let split_dir = images.join(match split {
                    Split::Train => "train",
                    Split::Test => "test",
                });
                if split_dir.is_dir() {
                    read_image_folder(&split_dir, *color, Transform::resize_of(transforms))?
                } else if split == Split::Test {
                    return Err(DataError::Config(format!(
                        "{}: no test/ sub-folder, so no test split; use validation = {{ fraction = 0.1 }}",
                        images.display()
                    )));
                } else {
                    read_image_folder(images, *color, Transform::resize_of(transforms))?
                }
            }
        };
        Ok(match Transform::resize_of(transforms) {
            Some([h, w]) => {
                Transform::check_resize_memory(set.n, set.channels, [h, w])?;
                set.resized(h, w)
            }
            None => set,
        })
    }

    /// Loads a text dataset.
    pub fn load_text(&self) -> Result<TextCorpus> {
        match self {
            DatasetSource::Named(DatasetName::Shakespeare) => {
                TextCorpus::read(&data_dir().join("shakespeare/shakespeare.txt.gz"))
            }
            DatasetSource::Text { text } => TextCorpus::read(text),
            _ => Err(DataError::Config(format!("{} is not a text dataset", self.describe()))),
        }
    }

    /// Loads a molecule dataset: MOSES's vendored splits, or a SMILES file with its last
    /// `fraction` held out (required for a file).
    pub fn load_molecules(&self, fraction: Option<f64>) -> Result<crate::molecules::MoleculeSet> {
        match (self, fraction) {
            (DatasetSource::Named(DatasetName::Moses), None) => crate::molecules::load_moses(),
            (DatasetSource::Named(DatasetName::Moses), Some(_)) => Err(DataError::Config(
                "data.validation: moses has its own test split; expected { from = \"test\" } (the default)".into(),
            )),
            (DatasetSource::Smiles { smiles }, Some(f)) => {
                ensure_exists(smiles)?;
                crate::molecules::MoleculeSet::from_file(smiles, f)
            }
            (DatasetSource::Smiles { smiles }, None) => Err(DataError::Config(format!(
                "data.validation: {} is one file with no test split; hold out its last rows with {{ fraction = 0.1 }}",
                smiles.display()
            ))),
            _ => Err(DataError::Config(format!("{} is not a molecule dataset", self.describe()))),
        }
    }

    /// A short human name for messages and reports.
    pub fn describe(&self) -> String {
        match self {
            DatasetSource::Named(n) => match n {
                DatasetName::Mnist => "mnist".into(),
                DatasetName::FashionMnist => "fashion-mnist".into(),
                DatasetName::Shakespeare => "shakespeare".into(),
                DatasetName::Moses => "moses".into(),
            },
            DatasetSource::Idx { idx, .. } => format!("IDX {}", idx.display()),
            DatasetSource::Images { images, .. } => format!("image folder {}", images.display()),
            DatasetSource::Text { text } => format!("text {}", text.display()),
            DatasetSource::Smiles { smiles } => format!("SMILES {}", smiles.display()),
            DatasetSource::Toy(t) => t.name().into(),
        }
    }
}

fn ensure_exists(p: &Path) -> Result<()> {
    if p.exists() {
        Ok(())
    } else {
        Err(DataError::NotFound { name: p.display().to_string(), reason: "no such file or directory".into() })
    }
}

/// MNIST-style directory: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-...`.
fn idx_dir_split(name: &str, dir: &Path, split: Split) -> Result<ImageSet> {
    ensure_exists(dir)?;
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |kind: &str| -> Option<PathBuf> {
        [format!("{prefix}-{kind}.gz"), format!("{prefix}-{kind}")]
            .into_iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
    };
    let images = find("images-idx3-ubyte").ok_or_else(|| DataError::NotFound {
        name: name.into(),
        reason: format!("{} has no {prefix}-images-idx3-ubyte[.gz]", dir.display()),
    })?;
    ImageSet::from_idx(name, &images, find("labels-idx1-ubyte").as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Holder {
        dataset: DatasetSource,
    }

    #[test]
    fn every_source_form_parses_and_round_trips() {
        for s in [
            r#"dataset = "mnist""#,
            r#"dataset = { idx = "x/y", labels = "l" }"#,
            r#"dataset = { images = "dir", color = "rgb" }"#,
            r#"dataset = { text = "t.txt" }"#,
        ] {
            let h: Holder = toml::from_str(s).unwrap();
            let again: Holder = toml::from_str(&toml::to_string(&h).unwrap()).unwrap();
            assert_eq!(again.dataset, h.dataset);
        }
        let e = toml::from_str::<Holder>(r#"dataset = "cifar""#).err().unwrap().to_string();
        assert!(e.contains("unknown dataset \"cifar\""), "{e}");
        let e = toml::from_str::<Holder>(r#"dataset = { idx = "a", text = "b" }"#).err().unwrap().to_string();
        assert!(e.contains("wrong mix"), "{e}");
    }

    #[test]
    fn vendored_mnist_has_the_canonical_counts() {
        let test = DatasetSource::Named(DatasetName::Mnist).load_images(Split::Test, &[]).unwrap();
        assert_eq!((test.n, test.channels, test.height, test.width), (10_000, 1, 28, 28));
        let labels = test.labels.unwrap();
        let zeros = labels.iter().filter(|&&l| l == 0).count();
        assert_eq!(zeros, 980, "MNIST test has 980 zeros");
    }

    /// Needs Debian's `dataset-fashion-mnist` (`.ci/run` installs it).
    #[test]
    fn debian_fashion_mnist_reads_with_balanced_classes() {
        let src = DatasetSource::Named(DatasetName::FashionMnist);
        let train = src.load_images(Split::Train, &[]).unwrap_or_else(|e| panic!("{e}"));
        let test = src.load_images(Split::Test, &[]).unwrap();
        assert_eq!((train.n, test.n, train.height, train.width), (60_000, 10_000, 28, 28));
        let labels = train.labels.unwrap();
        for c in 0..10 {
            assert_eq!(labels.iter().filter(|&&l| l == c).count(), 6_000, "class {c}");
        }
    }

    #[test]
    fn missing_path_is_named() {
        let s = DatasetSource::Idx { idx: "/nonexistent/mnist".into(), labels: None };
        let e = s.load_images(Split::Train, &[]).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/mnist") && e.contains("no such file"), "{e}");
    }
}
