//! Per-example transforms with torchvision's names and semantics: normalise, crop, flip, affine.
//!
//! A transform edits one example in place. It sees the example's dims (`(C, H, W)` for
//! images) and a random generator that the [`DataLoader`](super::DataLoader) seeds from
//! `(seed, epoch, example index)`, so augmentation is reproducible and a resumed epoch
//! gets the same pixels it would have got the first time.
//!
//! Transforms never panic on a bad example or bad parameters: an example whose length does
//! not match its dims, or a transform that cannot apply to it, is left unchanged, and
//! [`Transform::check`] reports the mismatch as an error. The loader calls `check` once per
//! epoch so such a mistake surfaces as an `Err` rather than as silently unaugmented data.

use std::f64::consts::PI;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::Rng;

use crate::error::{Error, Result};

/// An in-place edit of one example; torchvision's transform classes, on `f32` slices.
///
/// `dims` are the example's dims, outermost first: `(C, H, W)` for images. Image transforms
/// also accept `(H, W)` as one channel. `rng` is the only source of randomness a transform may
/// use, so the same generator state gives the same output.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{Normalize, RandomHorizontalFlip, Transform};
///
/// let t = (RandomHorizontalFlip { p: 1.0 }, Normalize::new(vec![0.5], vec![0.5])?);
/// let mut x = [0.0, 1.0];
/// t.apply(&mut x, &[1, 1, 2], &mut StdRng::seed_from_u64(0));
/// assert_eq!(x, [1.0, -1.0]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub trait Transform: Send + Sync {
    /// Transforms `example` (laid out row-major by `dims`) in place.
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng);

    /// Whether this transform can apply to examples of `dims`. `apply` on unsuitable dims
    /// leaves the example unchanged, so callers check first to turn that into an error.
    ///
    /// ```
    /// use shapesafe::data::{RandomCrop, Transform};
    /// assert!(RandomCrop::new(28, 4).check(&[1, 28, 28]).is_ok());
    /// assert!(RandomCrop::new(32, 4).check(&[1, 28, 28]).is_err());
    /// ```
    fn check(&self, dims: &[usize]) -> Result<()> {
        let _ = dims;
        Ok(())
    }
}

impl<T: Transform + ?Sized> Transform for Box<T> {
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        (**self).apply(example, dims, rng)
    }
    fn check(&self, dims: &[usize]) -> Result<()> {
        (**self).check(dims)
    }
}

impl<T: Transform + ?Sized> Transform for Arc<T> {
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        (**self).apply(example, dims, rng)
    }
    fn check(&self, dims: &[usize]) -> Result<()> {
        (**self).check(dims)
    }
}

macro_rules! tuple_transform {
    ($($t:ident),+) => {
        /// Applies the elements in order, like torchvision's `Compose`.
        impl<$($t: Transform),+> Transform for ($($t,)+) {
            #[allow(non_snake_case)]
            fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
                let ($($t,)+) = self;
                $($t.apply(example, dims, rng);)+
            }
            #[allow(non_snake_case)]
            fn check(&self, dims: &[usize]) -> Result<()> {
                let ($($t,)+) = self;
                $($t.check(dims)?;)+
                Ok(())
            }
        }
    };
}
tuple_transform!(A);
tuple_transform!(A, B);
tuple_transform!(A, B, C);
tuple_transform!(A, B, C, D);
tuple_transform!(A, B, C, D, E);
tuple_transform!(A, B, C, D, E, F);

/// A sequence of boxed transforms applied in order: torchvision's `transforms.Compose`.
///
/// Tuples of transforms compose too; `Compose` is for a list built at run time.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{Compose, Normalize, RandomHorizontalFlip, Transform};
///
/// let t = Compose::new()
///     .then(RandomHorizontalFlip { p: 1.0 })
///     .then(Normalize::new(vec![1.0], vec![2.0])?);
/// let mut x = [1.0, 5.0];
/// t.apply(&mut x, &[1, 1, 2], &mut StdRng::seed_from_u64(0));
/// assert_eq!(x, [2.0, 0.0]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Default)]
pub struct Compose(pub Vec<Box<dyn Transform>>);

impl Compose {
    /// An empty composition (the identity).
    ///
    /// ```
    /// use shapesafe::data::Compose;
    /// assert!(Compose::new().0.is_empty());
    /// ```
    pub fn new() -> Self {
        Compose(Vec::new())
    }

    /// This composition followed by `t`.
    ///
    /// ```
    /// use shapesafe::data::{Compose, Normalize};
    /// assert_eq!(Compose::new().then(Normalize::mnist()).0.len(), 1);
    /// ```
    pub fn then(mut self, t: impl Transform + 'static) -> Self {
        self.0.push(Box::new(t));
        self
    }
}

impl std::fmt::Debug for Compose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compose({} transforms)", self.0.len())
    }
}

impl Transform for Compose {
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        for t in &self.0 {
            t.apply(example, dims, rng);
        }
    }
    fn check(&self, dims: &[usize]) -> Result<()> {
        self.0.iter().try_for_each(|t| t.check(dims))
    }
}

/// A transform from a closure: torchvision's `transforms.Lambda`.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{Lambda, Transform};
///
/// let clamp = Lambda(|x: &mut [f32], _: &[usize], _: &mut StdRng| {
///     x.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0))
/// });
/// let mut x = [-1.0, 0.5, 3.0];
/// clamp.apply(&mut x, &[3], &mut StdRng::seed_from_u64(0));
/// assert_eq!(x, [0.0, 0.5, 1.0]);
/// ```
#[derive(Debug, Clone)]
pub struct Lambda<F>(pub F);

impl<F> Transform for Lambda<F>
where
    F: Fn(&mut [f32], &[usize], &mut StdRng) + Send + Sync,
{
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        (self.0)(example, dims, rng)
    }
}

/// Reads `dims` as `(C, H, W)`; `(H, W)` is one channel. `None` for any other rank, or when
/// `len` is not the product, so callers leave such examples alone.
fn chw(dims: &[usize], len: usize) -> Option<(usize, usize, usize)> {
    let (c, h, w) = match *dims {
        [c, h, w] => (c, h, w),
        [h, w] => (1, h, w),
        _ => return None,
    };
    (c.checked_mul(h)?.checked_mul(w)? == len).then_some((c, h, w))
}

/// The error for a transform that cannot apply to examples of `dims`.
fn unsuitable(transform: &str, dims: &[usize], why: &str) -> Error {
    Error::Usage(format!(
        "{transform} cannot transform examples of shape {dims:?}: {why}"
    ))
}

fn image_check(transform: &str, dims: &[usize]) -> Result<(usize, usize, usize)> {
    let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    numel
        .and_then(|n| chw(dims, n))
        .ok_or_else(|| unsuitable(transform, dims, "it needs (C, H, W) or (H, W) images"))
}

/// A uniform draw from `[lo, hi]` that cannot panic: reversed or equal bounds are fine, so
/// transforms need not validate their ranges before sampling. Always consumes one draw, so
/// the generator's state after a transform does not depend on its parameters.
fn uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    let u: f64 = rng.gen();
    lo + (hi - lo) * u
}

/// Subtracts a per-channel mean and divides by a per-channel standard deviation:
/// torchvision's `transforms.Normalize`.
///
/// Channel `c` of a `(C, H, W)` example becomes `(x - mean[c]) / std[c]`. A `mean` and `std`
/// of length 1 apply to every channel (and to examples of any other rank, which count as one
/// channel). Build with [`Normalize::new`] to have the values checked.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{Normalize, Transform};
///
/// let n = Normalize::new(vec![0.5, 1.0], vec![0.25, 2.0])?;
/// let mut x = [1.0, 0.5, 3.0, 1.0]; // two channels of two pixels
/// n.apply(&mut x, &[2, 1, 2], &mut StdRng::seed_from_u64(0));
/// assert_eq!(x, [2.0, 0.0, 1.0, 0.0]);
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// Per-channel means (or one for all channels).
    pub mean: Vec<f32>,
    /// Per-channel standard deviations (or one for all channels); none may be zero.
    pub std: Vec<f32>,
}

impl Normalize {
    /// A normalisation with the given per-channel means and standard deviations.
    ///
    /// # Errors
    /// [`Error::Usage`] if the lists are empty or differ in length, or a value is not finite
    /// or a standard deviation is zero (PyTorch raises `ValueError` there too).
    ///
    /// ```
    /// use shapesafe::data::Normalize;
    /// assert!(Normalize::new(vec![0.5], vec![0.0]).is_err());
    /// assert!(Normalize::new(vec![0.5, 0.5], vec![0.2]).is_err());
    /// ```
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        let n = Normalize { mean, std };
        n.validate()?;
        Ok(n)
    }

    /// MNIST's training-set statistics, 0.1307 and 0.3081 (for pixels in `[0, 1]`).
    ///
    /// ```
    /// use shapesafe::data::Normalize;
    /// assert_eq!(Normalize::mnist().mean, [0.1307]);
    /// ```
    pub fn mnist() -> Self {
        Normalize {
            mean: vec![crate::data::MNIST_MEAN],
            std: vec![crate::data::MNIST_STD],
        }
    }

    /// Fashion-MNIST's training-set statistics, 0.2860 and 0.3530 (for pixels in `[0, 1]`).
    ///
    /// ```
    /// use shapesafe::data::Normalize;
    /// assert_eq!(Normalize::fashion_mnist().std, [0.3530]);
    /// ```
    pub fn fashion_mnist() -> Self {
        Normalize {
            mean: vec![0.2860],
            std: vec![0.3530],
        }
    }

    /// ImageNet's per-channel statistics, as every torchvision classifier expects its RGB
    /// input: means 0.485, 0.456, 0.406 and standard deviations 0.229, 0.224, 0.225 (for
    /// pixels in `[0, 1]`).
    ///
    /// ```
    /// use shapesafe::data::Normalize;
    /// assert_eq!(Normalize::imagenet().mean, [0.485, 0.456, 0.406]);
    /// ```
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Usage(format!("Normalize: {why}")));
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return bad(format!(
                "mean and std need the same, non-zero length, but have {} and {}",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(v) = self.mean.iter().chain(&self.std).find(|v| !v.is_finite()) {
            return bad(format!("{v} is not a finite number"));
        }
        if self.std.contains(&0.0) {
            return bad(format!("a standard deviation is zero in {:?}", self.std));
        }
        Ok(())
    }

    /// The `(mean, std)` for channel `c`, if this normalisation has one.
    fn channel(&self, c: usize) -> Option<(f32, f32)> {
        let pick = |v: &[f32]| match v {
            [one] => Some(*one),
            _ => v.get(c).copied(),
        };
        Some((pick(&self.mean)?, pick(&self.std)?))
    }

    /// Channels and values per channel: dim 0 of a `(C, H, W)` example, else one channel.
    fn planes(dims: &[usize], len: usize) -> (usize, usize) {
        match chw(dims, len) {
            Some((c, h, w)) if dims.len() == 3 => (c, h * w),
            _ => (1, len),
        }
    }
}

impl Transform for Normalize {
    fn apply(&self, example: &mut [f32], dims: &[usize], _rng: &mut StdRng) {
        let (channels, plane) = Self::planes(dims, example.len());
        if plane == 0 {
            return;
        }
        for (c, values) in example.chunks_mut(plane).take(channels).enumerate() {
            if let Some((m, s)) = self.channel(c) {
                values.iter_mut().for_each(|v| *v = (*v - m) / s);
            }
        }
    }

    fn check(&self, dims: &[usize]) -> Result<()> {
        self.validate()?;
        let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let (channels, _) = Self::planes(dims, numel.unwrap_or(0));
        if self.mean.len() != 1 && self.mean.len() != channels {
            return Err(unsuitable(
                "Normalize",
                dims,
                &format!(
                    "it has {} means but the examples have {channels} channels",
                    self.mean.len()
                ),
            ));
        }
        Ok(())
    }
}

/// Pads the image with zeros on every side, then crops a random window of `size`:
/// torchvision's `transforms.RandomCrop(size, padding)`.
///
/// Examples have a static shape, so `size` must equal the image's `(H, W)`: the crop shifts
/// the image by up to `padding` pixels each way. The window's top-left corner in the padded
/// image is drawn as `i = rng.gen_range(0..=2 * padding)` (row), then `j` (column) the same
/// way, as torchvision draws it; every channel gets the same window.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{RandomCrop, Transform};
///
/// let mut x = [1.0, 2.0, 3.0, 4.0];
/// RandomCrop::new(2, 0).apply(&mut x, &[1, 2, 2], &mut StdRng::seed_from_u64(0));
/// assert_eq!(x, [1.0, 2.0, 3.0, 4.0]); // no padding: the only window is the image
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomCrop {
    /// Output `(height, width)`; must equal the input's.
    pub size: (usize, usize),
    /// Zero padding added on each of the four sides before cropping.
    pub padding: usize,
}

impl RandomCrop {
    /// A square crop of `size` after `padding` pixels of zeros on each side.
    ///
    /// ```
    /// use shapesafe::data::RandomCrop;
    /// assert_eq!(RandomCrop::new(28, 2).size, (28, 28));
    /// ```
    pub fn new(size: usize, padding: usize) -> Self {
        RandomCrop {
            size: (size, size),
            padding,
        }
    }
}

impl Transform for RandomCrop {
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        let Some((_, h, w)) = chw(dims, example.len()) else {
            return;
        };
        if self.size != (h, w) || h == 0 || w == 0 {
            return;
        }
        // Bounding the padding keeps the signed offsets below from overflowing.
        if self.padding > isize::MAX as usize / 2 {
            return;
        }
        let span = self.padding * 2;
        // Offsets of the window relative to the unpadded image, in [-padding, padding].
        let dy = rng.gen_range(0..=span) as isize - self.padding as isize;
        let dx = rng.gen_range(0..=span) as isize - self.padding as isize;
        shift(example, h, w, dy, dx);
    }

    fn check(&self, dims: &[usize]) -> Result<()> {
        let (_, h, w) = image_check("RandomCrop", dims)?;
        if self.size != (h, w) {
            return Err(unsuitable(
                "RandomCrop",
                dims,
                &format!(
                    "the crop size {:?} must equal the image size ({h}, {w}) since examples have a static shape",
                    self.size
                ),
            ));
        }
        if self.padding > isize::MAX as usize / 2 {
            return Err(unsuitable("RandomCrop", dims, "the padding is too large"));
        }
        Ok(())
    }
}

/// Sets each `h` x `w` plane to itself read at `(y + dy, x + dx)`, with zeros outside.
fn shift(example: &mut [f32], h: usize, w: usize, dy: isize, dx: isize) {
    let plane = h * w;
    let mut src = vec![0.0f32; plane];
    for channel in example.chunks_exact_mut(plane) {
        src.copy_from_slice(channel);
        for (y, row) in channel.chunks_exact_mut(w).enumerate() {
            let sy = y as isize + dy;
            for (x, out) in row.iter_mut().enumerate() {
                let sx = x as isize + dx;
                *out = if (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx) {
                    src[sy as usize * w + sx as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

/// Mirrors the image left to right with probability `p`: torchvision's
/// `transforms.RandomHorizontalFlip(p)`.
///
/// Draws `u = rng.gen::<f32>()` and flips when `u < p`, so `p = 1` always flips and `p = 0`
/// never does.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{RandomHorizontalFlip, Transform};
///
/// let mut x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// RandomHorizontalFlip { p: 1.0 }.apply(&mut x, &[1, 2, 3], &mut StdRng::seed_from_u64(0));
/// assert_eq!(x, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    /// Probability of flipping.
    pub p: f32,
}

impl Default for RandomHorizontalFlip {
    /// `p = 0.5`, torchvision's default.
    fn default() -> Self {
        RandomHorizontalFlip { p: 0.5 }
    }
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        let Some((_, _, w)) = chw(dims, example.len()) else {
            return;
        };
        if rng.gen::<f32>() < self.p && w > 0 {
            example.chunks_exact_mut(w).for_each(<[f32]>::reverse);
        }
    }

    fn check(&self, dims: &[usize]) -> Result<()> {
        image_check("RandomHorizontalFlip", dims).map(|_| ())
    }
}

/// Mirrors the image top to bottom with probability `p`: torchvision's
/// `transforms.RandomVerticalFlip(p)`.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{RandomVerticalFlip, Transform};
///
/// let mut x = [1.0, 2.0, 3.0, 4.0];
/// RandomVerticalFlip { p: 1.0 }.apply(&mut x, &[1, 2, 2], &mut StdRng::seed_from_u64(0));
/// assert_eq!(x, [3.0, 4.0, 1.0, 2.0]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomVerticalFlip {
    /// Probability of flipping.
    pub p: f32,
}

impl Transform for RandomVerticalFlip {
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        let Some((_, h, w)) = chw(dims, example.len()) else {
            return;
        };
        if rng.gen::<f32>() < self.p && h > 0 && w > 0 {
            for plane in example.chunks_exact_mut(h * w) {
                for y in 0..h / 2 {
                    let (top, bottom) = plane.split_at_mut((h - 1 - y) * w);
                    top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
                }
            }
        }
    }

    fn check(&self, dims: &[usize]) -> Result<()> {
        image_check("RandomVerticalFlip", dims).map(|_| ())
    }
}

/// A random rotation, translation and scaling about the image centre: torchvision's
/// `transforms.RandomAffine(degrees, translate, scale, interpolation=BILINEAR)`.
///
/// Per example it draws, in this order, an angle uniformly from `degrees`, a horizontal shift
/// `round(u * translate.0 * W)` and a vertical shift `round(u * translate.1 * H)` pixels with
/// `u` uniform in `[-1, 1]`, and a scale uniformly from `scale`; then applies [`affine`]. A
/// positive angle turns the image clockwise, as in torchvision's `functional.affine`.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use shapesafe::data::{RandomAffine, Transform};
///
/// let t = RandomAffine::new(15.0).translate(0.1, 0.1).scale(0.9, 1.1);
/// let mut a = vec![1.0; 64];
/// let mut b = a.clone();
/// t.apply(&mut a, &[1, 8, 8], &mut StdRng::seed_from_u64(7));
/// t.apply(&mut b, &[1, 8, 8], &mut StdRng::seed_from_u64(7));
/// assert_eq!(a, b); // same generator state, same output
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomAffine {
    /// The range `(min, max)` of rotation angles in degrees.
    pub degrees: (f32, f32),
    /// Largest shift as a fraction of `(width, height)`.
    pub translate: (f32, f32),
    /// The range `(min, max)` of scale factors; both must be positive.
    pub scale: (f32, f32),
}

impl RandomAffine {
    /// Rotation by up to `degrees` either way, no translation, no scaling.
    ///
    /// ```
    /// use shapesafe::data::RandomAffine;
    /// assert_eq!(RandomAffine::new(10.0).degrees, (-10.0, 10.0));
    /// ```
    pub fn new(degrees: f32) -> Self {
        RandomAffine {
            degrees: (-degrees, degrees),
            translate: (0.0, 0.0),
            scale: (1.0, 1.0),
        }
    }

    /// Shifts of up to `x` of the width and `y` of the height.
    ///
    /// ```
    /// use shapesafe::data::RandomAffine;
    /// assert_eq!(RandomAffine::new(0.0).translate(0.1, 0.2).translate, (0.1, 0.2));
    /// ```
    pub fn translate(mut self, x: f32, y: f32) -> Self {
        self.translate = (x, y);
        self
    }

    /// Scale factors drawn from `[min, max]`.
    ///
    /// ```
    /// use shapesafe::data::RandomAffine;
    /// assert_eq!(RandomAffine::new(0.0).scale(0.9, 1.1).scale, (0.9, 1.1));
    /// ```
    pub fn scale(mut self, min: f32, max: f32) -> Self {
        self.scale = (min, max);
        self
    }

    fn valid(&self) -> bool {
        let all = [
            self.degrees.0,
            self.degrees.1,
            self.translate.0,
            self.translate.1,
            self.scale.0,
            self.scale.1,
        ];
        all.iter().all(|v| v.is_finite()) && self.scale.0 > 0.0 && self.scale.1 > 0.0
    }
}

impl Transform for RandomAffine {
    fn apply(&self, example: &mut [f32], dims: &[usize], rng: &mut StdRng) {
        let Some((_, h, w)) = chw(dims, example.len()) else {
            return;
        };
        let angle = uniform(rng, self.degrees.0.into(), self.degrees.1.into());
        let max_dx = f64::from(self.translate.0) * w as f64;
        let max_dy = f64::from(self.translate.1) * h as f64;
        let tx = uniform(rng, -max_dx, max_dx).round();
        let ty = uniform(rng, -max_dy, max_dy).round();
        let scale = uniform(rng, self.scale.0.into(), self.scale.1.into());
        if self.valid() {
            affine_f64(example, dims, angle, (tx, ty), scale);
        }
    }

    fn check(&self, dims: &[usize]) -> Result<()> {
        image_check("RandomAffine", dims)?;
        if !self.valid() {
            return Err(Error::Usage(format!(
                "RandomAffine: every parameter must be finite and the scales positive, but got {self:?}"
            )));
        }
        Ok(())
    }
}

/// Rotates by `angle` degrees clockwise about the image centre, scales by `scale`, then
/// shifts by `translate = (x, y)` pixels: torchvision's `functional.affine` with bilinear
/// interpolation, no shear, and zeros outside the image.
///
/// The centre is `((W - 1) / 2, (H - 1) / 2)` in pixel indices, so a square image rotated by
/// 90 degrees lands exactly on its own grid. Each output pixel samples the input at the
/// inverse-transformed position; a tap outside the image counts as zero. Examples that are not
/// `(C, H, W)` or `(H, W)`, and a scale that is not positive and finite, leave `example`
/// unchanged.
///
/// ```
/// use shapesafe::data::affine;
///
/// // A 1-pixel shift right.
/// let mut x = [1.0, 2.0, 3.0, 4.0];
/// affine(&mut x, &[1, 2, 2], 0.0, (1.0, 0.0), 1.0);
/// assert_eq!(x, [0.0, 1.0, 0.0, 3.0]);
/// ```
pub fn affine(example: &mut [f32], dims: &[usize], angle: f32, translate: (f32, f32), scale: f32) {
    affine_f64(
        example,
        dims,
        angle.into(),
        (translate.0.into(), translate.1.into()),
        scale.into(),
    );
}

/// The work of [`affine`], in `f64` so that rotations by multiples of 90 degrees land within
/// 1e-15 of grid points and do not blur.
fn affine_f64(example: &mut [f32], dims: &[usize], angle: f64, t: (f64, f64), scale: f64) {
    let Some((_, h, w)) = chw(dims, example.len()) else {
        return;
    };
    let usable = [angle, t.0, t.1, scale].iter().all(|v| v.is_finite()) && scale > 0.0;
    if !usable || h == 0 || w == 0 {
        return;
    }
    let (sin, cos) = (angle * PI / 180.0).sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let plane = h * w;
    let mut src = vec![0.0f32; plane];
    for channel in example.chunks_exact_mut(plane) {
        src.copy_from_slice(channel);
        for y in 0..h {
            for x in 0..w {
                // Undo the shift, then the clockwise rotation and the scale.
                let dx = x as f64 - cx - t.0;
                let dy = y as f64 - cy - t.1;
                let sx = (cos * dx + sin * dy) / scale + cx;
                let sy = (-sin * dx + cos * dy) / scale + cy;
                channel[y * w + x] = bilinear(&src, h, w, sy, sx);
            }
        }
    }
}

/// Samples `plane` (`h` x `w`) at the continuous position `(y, x)`; taps outside are zero.
fn bilinear(plane: &[f32], h: usize, w: usize, y: f64, x: f64) -> f32 {
    // Far outside the image every tap is zero; this also keeps the casts below in range.
    if !(y > -1.0 && y < h as f64 && x > -1.0 && x < w as f64) {
        return 0.0;
    }
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let (y0, x0) = (y0 as isize, x0 as isize);
    let mut acc = 0.0f64;
    for (yy, wy) in [(y0, 1.0 - fy), (y0 + 1, fy)] {
        for (xx, wx) in [(x0, 1.0 - fx), (x0 + 1, fx)] {
            let weight = wy * wx;
            // Zero-weight taps are skipped so an identity transform copies exactly, even
            // next to infinite values.
            if weight != 0.0 && (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx) {
                acc += weight * f64::from(plane[yy as usize * w + xx as usize]);
            }
        }
    }
    acc as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn malformed_examples_are_left_alone() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut x = [1.0, 2.0, 3.0];
        RandomCrop::new(2, 1).apply(&mut x, &[1, 2, 2], &mut rng);
        RandomHorizontalFlip { p: 1.0 }.apply(&mut x, &[1, 2, 2], &mut rng);
        RandomVerticalFlip { p: 1.0 }.apply(&mut x, &[usize::MAX, 2, 2], &mut rng);
        RandomAffine::new(90.0).apply(&mut x, &[3], &mut rng);
        affine(&mut x, &[1, 1, 3], 10.0, (0.0, 0.0), -1.0);
        affine(&mut x, &[1, 1, 3], f32::NAN, (0.0, 0.0), 1.0);
        assert_eq!(x, [1.0, 2.0, 3.0]);
        assert!(RandomAffine::new(f32::NAN).check(&[1, 2, 2]).is_err());
        assert!(RandomAffine::new(1.0)
            .scale(0.0, 1.0)
            .check(&[1, 2, 2])
            .is_err());
        assert!(RandomCrop::new(2, usize::MAX).check(&[1, 2, 2]).is_err());
        assert!(Normalize::mnist().check(&[3, 2, 2]).is_ok());
        assert!(Normalize::new(vec![0.0; 2], vec![1.0; 2])
            .unwrap()
            .check(&[3, 2, 2])
            .is_err());
    }

    #[test]
    fn vertical_flip_odd_height_keeps_middle_row() {
        let mut x = [1.0, 2.0, 3.0];
        RandomVerticalFlip { p: 1.0 }.apply(&mut x, &[3, 1], &mut StdRng::seed_from_u64(0));
        assert_eq!(x, [3.0, 2.0, 1.0]);
    }
}
