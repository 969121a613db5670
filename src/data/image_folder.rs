//! `ImageFolder`: a folder of class folders of PNG and JPEG images, decoded, resized and
//! center-cropped to a static size, as torchvision's `ImageFolder` with `Resize`,
//! `CenterCrop` and `ToTensor`.

use super::dataset::Dataset;
use crate::{Error, Result};
use dfdx::shapes::{Const, Rank3};
use image::RgbImage;
use std::path::{Path, PathBuf};

/// The file extensions read (compared without case), of torchvision's list the ones this
/// build decodes.
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Resizes an image so that its shorter side is `size` pixels, keeping the aspect ratio:
/// torchvision's `Resize(size)` on a PIL image (Pillow's antialiased bilinear resampling,
/// [`resize_bilinear`](super::resize_bilinear), byte for byte; the longer side is
/// `int(size * long / short)`).
///
/// # Shapes
/// `(3, H, W) -> (3, size, size * W / H)` for `H <= W`.
///
/// ```
/// use shapesafe::data::Resize;
/// let image = image::RgbImage::new(400, 300);
/// assert_eq!(Resize::new(256).apply(&image).dimensions(), (341, 256));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize {
    /// The shorter side after resizing.
    pub size: usize,
}

impl Resize {
    /// Shorter side to `size`.
    pub fn new(size: usize) -> Self {
        Self { size }
    }

    /// The resized image (the same image when its shorter side is already `size`).
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let (short, long) = (w.min(h), w.max(h));
        if short == self.size || short == 0 {
            return image.clone();
        }
        let new_long = (self.size as f64 * long as f64 / short as f64) as usize;
        let (new_w, new_h) = if w <= h {
            (self.size, new_long)
        } else {
            (new_long, self.size)
        };
        super::resample::resize_bilinear(image, new_w as u32, new_h as u32)
    }
}

/// Cuts the central `size x size` square, padding with black where the image is smaller:
/// torchvision's `CenterCrop(size)` (the offset `round((H - size) / 2)`, ties to even).
///
/// # Shapes
/// `(3, H, W) -> (3, size, size)`.
///
/// ```
/// use shapesafe::data::CenterCrop;
/// let image = image::RgbImage::new(341, 256);
/// assert_eq!(CenterCrop::new(224).apply(&image).dimensions(), (224, 224));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CenterCrop {
    /// The side of the square kept.
    pub size: usize,
}

impl CenterCrop {
    /// A `size x size` center crop.
    pub fn new(size: usize) -> Self {
        Self { size }
    }

    /// The cropped (or padded) image.
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        let size = self.size as i64;
        let offset = |extent: u32| ((extent as f64 - size as f64) / 2.0).round_ties_even() as i64;
        let (left, top) = (offset(image.width()), offset(image.height()));
        RgbImage::from_fn(self.size as u32, self.size as u32, |x, y| {
            let (sx, sy) = (x as i64 + left, y as i64 + top);
            if sx >= 0 && sy >= 0 && sx < image.width() as i64 && sy < image.height() as i64 {
                *image.get_pixel(sx as u32, sy as u32)
            } else {
                image::Rgb([0, 0, 0])
            }
        })
    }
}

/// An RGB image as channel-major values in `[0, 1]`: torchvision's `ToTensor`.
///
/// # Shapes
/// `(H, W) RGB pixels -> (3, H, W)` values.
///
/// ```
/// let image = image::RgbImage::from_pixel(2, 1, image::Rgb([255, 0, 51]));
/// assert_eq!(shapesafe::data::to_tensor(&image), [1.0, 1.0, 0.0, 0.0, 0.2, 0.2]);
/// ```
pub fn to_tensor(image: &RgbImage) -> Vec<f32> {
    let plane = image.width() as usize * image.height() as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(pixel[c]) / 255.0;
        }
    }
    out
}

/// Decodes the image file at `path` (PNG or JPEG; grey or with alpha converted to RGB, as
/// torchvision's loader does), resizes it when `resize` is given, and center-crops it to
/// `SIZE x SIZE`: the input a torchvision classifier gets from `Resize`, `CenterCrop` and
/// `ToTensor` (add [`Normalize::imagenet`](super::Normalize::imagenet) for ImageNet models).
///
/// # Errors
/// [`Error::Io`] for a file that cannot be read, [`Error::Image`] naming the file for one
/// that is not a whole PNG or JPEG image.
///
/// # Shapes
/// Any image file -> `(3, SIZE, SIZE)` values in `[0, 1]`.
///
/// ```
/// let path = std::env::temp_dir().join("shapesafe-doc-load-image.png");
/// image::RgbImage::from_pixel(8, 6, image::Rgb([255, 0, 0])).save(&path).unwrap();
/// let values = shapesafe::data::load_image::<4>(&path, Some(shapesafe::data::Resize::new(4)))?;
/// assert_eq!(values.len(), 3 * 4 * 4);
/// assert_eq!((values[0], values[16]), (1.0, 0.0));
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn load_image<const SIZE: usize>(path: &Path, resize: Option<Resize>) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let decoded = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| image_error(path, e.to_string()))?
        .decode()
        .map_err(|e| image_error(path, e.to_string()))?;
    let rgb = decoded.to_rgb8();
    let rgb = match resize {
        Some(resize) => resize.apply(&rgb),
        None => rgb,
    };
    Ok(to_tensor(&CenterCrop::new(SIZE).apply(&rgb)))
}

fn image_error(path: &Path, reason: String) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        reason,
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every PNG or JPEG file under `dir`, recursively, ordered as torchvision's
/// `sorted(os.walk(dir))` with sorted file names: by folder, then by name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).map_err(io_error(&folder))? {
            let path = entry.map_err(io_error(&folder))?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
            {
                files.push(path);
            }
        }
    }
    // As strings, as Python sorts them: folder paths, then names within a folder.
    let key = |p: &PathBuf| {
        let folder = p.parent().map(|f| f.to_string_lossy().into_owned());
        (
            folder,
            p.file_name().map(|n| n.to_string_lossy().into_owned()),
        )
    };
    files.sort_by_key(key);
    Ok(files)
}

/// A data set of images in class folders, `root/<class>/**/*.png|jpg|jpeg`, as torchvision's
/// `datasets.ImageFolder`: classes are the folder names sorted, labelled from 0 in that order;
/// each example is decoded when it is asked for, optionally resized, and center-cropped to
/// `SIZE x SIZE` RGB values in `[0, 1]` (compose `Normalize::imagenet()` in the loader).
///
/// The class count is part of the type, so batches and models agree on it at compile time;
/// a folder with another number of classes is an error when it is opened. A corrupt file is
/// an error naming it when its batch is built, or, after [`Self::skip_unreadable`], left out
/// and counted.
///
/// # Generics
/// - `SIZE`: the side of the square images served (the `CenterCrop`).
/// - `CLASSES`: how many class folders `root` holds.
///
/// # Shapes
/// Examples `(Const<3>, Const<SIZE>, Const<SIZE>)`, classes `Const<CLASSES>`.
///
/// ```
/// use shapesafe::data::{DataLoader, Dataset, ImageFolder, Normalize, Resize};
/// let root = std::env::temp_dir().join("shapesafe-doc-image-folder");
/// for (class, colour) in [("red", [255, 0, 0]), ("blue", [0, 0, 255])] {
///     std::fs::create_dir_all(root.join(class)).unwrap();
///     image::RgbImage::from_pixel(10, 8, image::Rgb(colour)).save(root.join(class).join("a.png")).unwrap();
/// }
/// let folder = ImageFolder::<8, 2>::new(&root)?.resize(Resize::new(8));
/// assert_eq!(folder.classes(), ["blue", "red"]);
/// let loader = DataLoader::new(&folder, 2)?.transform(Normalize::imagenet());
/// let batch = loader.epoch(0, &dfdx::tensor::Cpu::default()).next().unwrap()?;
/// assert_eq!(batch.labels, [0, 1]);
/// assert!(ImageFolder::<8, 3>::new(&root).is_err());
/// # std::fs::remove_dir_all(&root).unwrap();
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ImageFolder<const SIZE: usize, const CLASSES: usize> {
    classes: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
    resize: Option<Resize>,
    skipped: Vec<(PathBuf, String)>,
}

impl<const SIZE: usize, const CLASSES: usize> ImageFolder<SIZE, CLASSES> {
    /// Scans `root`: its subfolders are the classes, the image files under each its examples.
    /// Images are center-cropped to `SIZE` without resizing unless [`Self::resize`] says so.
    ///
    /// # Errors
    /// `root` cannot be read, has another number of class folders than `CLASSES`, or a class
    /// folder holds no PNG or JPEG file.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(root).map_err(io_error(root))? {
            let path = entry.map_err(io_error(root))?.path();
            if path.is_dir() {
                classes.push(
                    path.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        classes.sort();
        if classes.len() != CLASSES {
            return Err(Error::Usage(format!(
                "{} has {} class folders ({}), but the data set's type asks for {CLASSES}",
                root.display(),
                classes.len(),
                classes.join(", ")
            )));
        }
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let files = image_files(&root.join(class))?;
            if files.is_empty() {
                return Err(Error::Usage(format!(
                    "the class folder {} holds no .png, .jpg or .jpeg file",
                    root.join(class).display()
                )));
            }
            samples.extend(files.into_iter().map(|f| (f, label)));
        }
        Ok(Self {
            classes,
            samples,
            resize: None,
            skipped: Vec::new(),
        })
    }

    /// The same data set, resizing each image's shorter side to `resize` before the crop
    /// (ImageNet's evaluation: `Resize::new(256)` for `SIZE` 224).
    pub fn resize(mut self, resize: Resize) -> Self {
        self.resize = Some(resize);
        self
    }

    /// Decodes every image once and leaves out those that fail, keeping each one's path and
    /// reason in [`Self::skipped`]; without it, a bad file is an error when it is read.
    pub fn skip_unreadable(mut self) -> Self {
        let resize = self.resize;
        let (good, bad): (Vec<_>, Vec<_>) = self
            .samples
            .into_iter()
            .map(|(path, label)| {
                let outcome = load_image::<SIZE>(&path, resize).err();
                (path, label, outcome)
            })
            .partition(|(_, _, error)| error.is_none());
        self.samples = good.into_iter().map(|(p, l, _)| (p, l)).collect();
        self.skipped.extend(
            bad.into_iter()
                .map(|(p, _, e)| (p, e.map(|e| e.to_string()).unwrap_or_default())),
        );
        self
    }

    /// The class names, sorted; a label is an index into them.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Every example's file and label, in order.
    pub fn samples(&self) -> &[(PathBuf, usize)] {
        &self.samples
    }

    /// The files [`Self::skip_unreadable`] left out, with the reason.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }
}

impl<const SIZE: usize, const CLASSES: usize> Dataset for ImageFolder<SIZE, CLASSES> {
    type Shape = Rank3<3, SIZE, SIZE>;
    type Classes = Const<CLASSES>;

    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize, out: &mut [f32]) -> Result<usize> {
        let (path, label) = self.samples.get(index).ok_or(Error::IndexOutOfRange {
            index,
            len: self.samples.len(),
        })?;
        let values = load_image::<SIZE>(path, self.resize)?;
        out.copy_from_slice(&values);
        Ok(*label)
    }
}
