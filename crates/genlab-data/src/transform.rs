//! Transforms, in the order the experiment lists them. Pixels arrive as 0..=255; a scale transform
//! maps them to [0, 1] or [-1, 1]. `resize` is applied once when the dataset is loaded (it is
//! deterministic); the others are applied to every batch, drawing from the caller's seeded stream
//! (the training batch source keeps one in its checkpointed state).

use crate::image_set::LabelledBatch;
use genlab_core::SeededRng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// x / 255: pixels in [0, 1].
    ScaleUnit,
    /// x / 127.5 - 1: pixels in [-1, 1].
    ScaleSymmetric,
    /// Dynamic binarisation (Salakhutdinov & Murray 2008): each pixel becomes 1 with probability
    /// equal to its [0, 1] intensity, drawn afresh every time an image is used.
    Binarize,
    /// Horizontal flip with probability 1/2.
    Hflip,
    /// Bilinear resize to `[height, width]`, at load time.
    Resize([usize; 2]),
}

impl Transform {
    /// Checks the order of a transform list; the error says what is wrong with which entry.
    pub fn validate(list: &[Transform]) -> Result<(), String> {
        let mut scaled: Option<Transform> = None;
        for (i, t) in list.iter().enumerate() {
            match t {
                Transform::ScaleUnit | Transform::ScaleSymmetric => {
                    if let Some(prev) = scaled {
                        return Err(format!("transforms[{i}]: a second scale transform ({prev:?} came first); use one of scale_unit, scale_symmetric"));
                    }
                    scaled = Some(*t);
                }
                Transform::Binarize if scaled != Some(Transform::ScaleUnit) => {
                    return Err(format!(
                        "transforms[{i}]: binarize needs pixels in [0, 1]: put \"scale_unit\" before it"
                    ));
                }
                Transform::Resize([h, w]) if *h == 0 || *w == 0 => {
                    return Err(format!("transforms[{i}]: resize to [{h}, {w}]: both sides must be at least 1"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Refuses a `resize` of `n` images of `channels` channels to `[h, w]` that cannot fit in
    /// memory: the resized bytes, and the float batches built from them (about 5 bytes a pixel).
    pub fn check_resize_memory(n: usize, channels: usize, [h, w]: [usize; 2]) -> crate::Result<()> {
        let needs = genlab_core::memory::Bytes(n as u128 * channels as u128 * h as u128 * w as u128 * 5);
        genlab_core::memory::check(|| format!("data.transforms resize to {h}x{w} of {n} images"), needs)
            .map_err(|e| crate::DataError::Config(e.to_string()))
    }

    /// The size a resize transform in `list` asks for, if any (the last one wins).
    pub fn resize_of(list: &[Transform]) -> Option<[usize; 2]> {
        list.iter().rev().find_map(|t| match t {
            Transform::Resize(s) => Some(*s),
            _ => None,
        })
    }

    /// Applies every per-batch transform of `list` to `batch`, in order.
    pub fn apply_all(list: &[Transform], batch: &mut LabelledBatch, rng: &mut SeededRng) {
        for t in list {
            t.apply(batch, rng);
        }
    }

    fn apply(&self, b: &mut LabelledBatch, rng: &mut SeededRng) {
        match self {
            Transform::ScaleUnit => b.data.iter_mut().for_each(|x| *x /= 255.0),
            Transform::ScaleSymmetric => b.data.iter_mut().for_each(|x| *x = *x / 127.5 - 1.0),
            Transform::Binarize => {
                let u = rng.uniform_vec(b.data.len());
                b.data.iter_mut().zip(u).for_each(|(x, u)| *x = if u < *x { 1.0 } else { 0.0 });
            }
            Transform::Hflip => {
                let img = b.channels * b.height * b.width;
                for i in 0..b.n {
                    if rng.uniform() < 0.5 {
                        for row in b.data[i * img..(i + 1) * img].chunks_mut(b.width) {
                            row.reverse();
                        }
                    }
                }
            }
            Transform::Resize(_) => {} // applied at load time
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(data: Vec<f32>, n: usize, h: usize, w: usize) -> LabelledBatch {
        LabelledBatch { data, labels: None, n, channels: 1, height: h, width: w }
    }

    #[test]
    fn scales_and_binarizes() {
        let mut b = batch(vec![0.0, 255.0, 127.5, 51.0], 1, 2, 2);
        Transform::apply_all(&[Transform::ScaleSymmetric], &mut b, &mut SeededRng::new(0));
        assert_eq!(b.data, vec![-1.0, 1.0, 0.0, -0.6]);
        // Binarize: mean of many draws of a 0.3 pixel approaches 0.3.
        let mut b = batch(vec![0.3 * 255.0; 100_000], 1, 1, 100_000);
        Transform::apply_all(&[Transform::ScaleUnit, Transform::Binarize], &mut b, &mut SeededRng::new(1));
        assert!(b.data.iter().all(|&x| x == 0.0 || x == 1.0));
        let mean = b.data.iter().sum::<f32>() / 100_000.0;
        assert!((mean - 0.3).abs() < 0.01, "{mean}");
    }

    #[test]
    fn hflip_flips_rows_of_about_half_the_images() {
        let n = 1000;
        let mut b = batch((0..n).flat_map(|_| [1.0, 2.0, 3.0]).collect(), n, 1, 3);
        Transform::apply_all(&[Transform::Hflip], &mut b, &mut SeededRng::new(2));
        let flipped = b.data.chunks(3).filter(|r| r == &[3.0, 2.0, 1.0]).count();
        let kept = b.data.chunks(3).filter(|r| r == &[1.0, 2.0, 3.0]).count();
        assert_eq!(flipped + kept, n);
        assert!((400..600).contains(&flipped), "{flipped}");
    }

    #[test]
    fn order_is_checked() {
        assert!(Transform::validate(&[Transform::ScaleUnit, Transform::Binarize]).is_ok());
        let e = Transform::validate(&[Transform::Binarize]).unwrap_err();
        assert!(e.contains("transforms[0]") && e.contains("scale_unit"), "{e}");
        assert!(Transform::validate(&[Transform::ScaleUnit, Transform::ScaleSymmetric]).is_err());
        assert!(Transform::validate(&[Transform::Resize([0, 4])]).is_err());
    }
}
