//! The `Dataset` trait: indexed examples of a static shape with integer labels.

use crate::shape::StaticShape;
use crate::Result;
use dfdx::shapes::ConstDim;

/// A collection of labelled examples, each of the static shape `Self::Shape`.
///
/// PyTorch equivalent: a map-style `torch.utils.data.Dataset` returning
/// `(tensor, label)`. Values are `f32` in the dataset's natural scale (pixels in
/// `[0, 1]`, as torchvision's `ToTensor` gives); normalisation is a transform.
///
/// # Shapes
/// One example is `Self::Shape`, e.g. `Rank3<1, 28, 28>`; its label is below `Classes::SIZE`.
///
/// ```
/// use shapesafe::data::Dataset;
/// use shapesafe::prelude::*;
///
/// struct Pairs;
/// impl Dataset for Pairs {
///     type Shape = Rank1<2>;
///     type Classes = Const<2>;
///     fn len(&self) -> usize { 3 }
///     fn get(&self, index: usize, out: &mut [f32]) -> shapesafe::Result<usize> {
///         out.copy_from_slice(&[index as f32, 1.0]);
///         Ok(index % 2)
///     }
/// }
/// let mut x = [0.0; 2];
/// assert_eq!(Pairs.get(2, &mut x).unwrap(), 0);
/// assert_eq!(x, [2.0, 1.0]);
/// ```
pub trait Dataset {
    /// The unbatched shape of one example.
    type Shape: StaticShape + Batchable;
    /// The number of classes, as a dim (so one-hot targets and logits share a type).
    type Classes: ConstDim;

    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes example `index` into `out` (`Self::Shape::NUMEL` values, row-major)
    /// and returns its label. An index past the end is an error, not a panic.
    fn get(&self, index: usize, out: &mut [f32]) -> Result<usize>;
}

/// A static shape that can take a leading runtime batch dim.
///
/// # Shapes
/// `(C, H, W)` becomes `(usize, C, H, W)`.
///
/// ```
/// use shapesafe::data::Batchable;
/// use shapesafe::prelude::*;
/// let s: (usize, Const<1>, Const<28>, Const<28>) = <Rank3<1, 28, 28> as Batchable>::batched(5);
/// assert_eq!(s.concrete(), [5, 1, 28, 28]);
/// ```
pub trait Batchable: dfdx::shapes::Shape {
    /// This shape with a leading `usize` batch dim.
    type Batched: dfdx::shapes::Shape;
    /// The batched shape for `batch` examples.
    fn batched(batch: usize) -> Self::Batched;
}

macro_rules! batchable {
    ($($d:ident),+) => {
        impl<$($d: ConstDim),+> Batchable for ($($d,)+) {
            type Batched = (usize, $($d,)+);
            fn batched(batch: usize) -> Self::Batched {
                (batch, $($d::default(),)+)
            }
        }
    };
}
batchable!(A);
batchable!(A, B);
batchable!(A, B, C);
batchable!(A, B, C, D);
batchable!(A, B, C, D, E);

impl Dataset for crate::data::MnistSplit {
    type Shape = dfdx::shapes::Rank3<1, 28, 28>;
    type Classes = dfdx::shapes::Const<10>;

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Pixels scaled to `[0, 1]`, as torchvision's `ToTensor` does.
    fn get(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        let (image, label) = self.get_image(index).zip(self.labels.get(index)).ok_or(
            crate::Error::IndexOutOfRange {
                index,
                len: self.labels.len(),
            },
        )?;
        for (o, &p) in out.iter_mut().zip(image) {
            *o = p as f32 / 255.0;
        }
        Ok(*label as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::MnistSplit;

    #[test]
    fn mnist_examples_scale_pixels_and_reject_indices_past_the_end() {
        let mut pixels = vec![0u8; 2 * 784];
        pixels[784] = 255;
        let split = MnistSplit::new(pixels, vec![3, 7]).unwrap();
        let mut out = [0.0; 784];
        assert_eq!(split.get(1, &mut out).unwrap(), 7);
        assert_eq!(out[0], 1.0);
        assert!(matches!(
            split.get(2, &mut out),
            Err(crate::Error::IndexOutOfRange { index: 2, len: 2 })
        ));
    }
}
