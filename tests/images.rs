//! The image pipeline against torchvision: `ImageFolder`'s classes and order, and decoding,
//! `Resize` and `CenterCrop` byte for byte against Pillow (`tests/pytorch/images_golden.txt`,
//! from `tests/pytorch/make_image_golden.py`); bad files are errors naming them, or skipped.

use shapesafe::data::{data_dir, load_image, DataLoader, Dataset, ImageFolder, Normalize, Resize};
use shapesafe::{Error, Result};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    data_dir().join("images")
}

/// 64-bit FNV-1a, as the golden script hashes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `load_image`'s channel-major values in [0, 1] back to Pillow's interleaved RGB bytes.
fn rgb_bytes(values: &[f32], size: usize) -> Vec<u8> {
    let plane = size * size;
    (0..plane)
        .flat_map(|i| (0..3).map(move |c| (values[c * plane + i] * 255.0).round() as u8))
        .collect()
}

fn crop<const SIZE: usize>(path: &Path, resize: usize) -> Result<u64> {
    let values = load_image::<SIZE>(path, Some(Resize::new(resize)))?;
    Ok(fnv1a(&rgb_bytes(&values, SIZE)))
}

#[test]
fn decoding_resize_and_crop_match_torchvision_byte_for_byte() -> Result<()> {
    let golden = std::fs::read_to_string("tests/pytorch/images_golden.txt").unwrap();
    let mut checked = 0;
    for line in golden.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(' ').collect();
        let path = root().join(f[0]);
        let expected = u64::from_str_radix(f[3], 16).unwrap();
        let ours = match (f[1], f[2]) {
            ("256", "224") => crop::<224>(&path, 256)?,
            ("64", "56") => crop::<56>(&path, 64)?,
            other => panic!("no case for {other:?}"),
        };
        // JPEG decoders round differently (tested below); PNG leaves nothing to differ.
        if f[0].ends_with(".png") {
            assert_eq!(
                ours, expected,
                "{} Resize({}) CenterCrop({})",
                f[0], f[1], f[2]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
    Ok(())
}

#[test]
fn jpeg_crops_are_within_three_levels_of_torchvision() -> Result<()> {
    for name in ["coffee", "rocket"] {
        let ours = rgb_bytes(
            &load_image::<56>(
                &root().join(format!("object/{name}.jpg")),
                Some(Resize::new(64)),
            )?,
            56,
        );
        let theirs = image::open(format!("tests/pytorch/{name}-64-56.png"))
            .unwrap()
            .to_rgb8()
            .into_raw();
        let diffs: Vec<u8> = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        // Measured: up to 3 levels on a fifth of the decoded values (zune-jpeg against
        // Pillow's libjpeg-turbo), about 0.2 on average after resizing.
        assert!(max <= 3 && mean < 0.5, "{name}: max {max}, mean {mean}");
    }
    Ok(())
}

#[test]
fn image_folder_orders_classes_and_files_as_torchvision() -> Result<()> {
    let folder = ImageFolder::<56, 2>::new(root())?.resize(Resize::new(64));
    assert_eq!(folder.classes(), ["animal", "object"]);
    let names: Vec<(String, usize)> = folder
        .samples()
        .iter()
        .map(|(p, l)| (p.file_name().unwrap().to_string_lossy().into_owned(), *l))
        .collect();
    assert_eq!(
        names,
        [
            ("chelsea.png".to_string(), 0),
            ("horse.png".to_string(), 0),
            ("coffee.jpg".to_string(), 1),
            ("rocket.jpg".to_string(), 1)
        ]
    );
    // Through the loader, normalized for ImageNet: the first pixel of the cat, red channel.
    let loader = DataLoader::new(&folder, 4)?.transform(Normalize::imagenet());
    let batch = loader
        .epoch(0, &dfdx::tensor::Cpu::default())
        .next()
        .unwrap()?;
    assert_eq!(batch.labels, [0, 0, 1, 1]);
    let raw = load_image::<56>(&folder.samples()[0].0, Some(Resize::new(64)))?;
    let first = batch.inputs.as_vec()[0];
    assert!((first - (raw[0] - 0.485) / 0.229).abs() < 1e-6);
    Ok(())
}

/// A copy of data/images in a scratch folder, plus `extra` files as (path, bytes).
fn scratch_copy(name: &str, extra: &[(&str, &[u8])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shapesafe-images-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for class in ["animal", "object"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for entry in std::fs::read_dir(root().join(class)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(class).join(path.file_name().unwrap())).unwrap();
        }
    }
    for (path, bytes) in extra {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

#[test]
fn bad_files_are_errors_naming_them_or_skipped_with_a_count() -> Result<()> {
    let png = std::fs::read(root().join("animal/chelsea.png")).unwrap();
    let dir = scratch_copy(
        "bad",
        &[
            ("animal/truncated.png", &png[..png.len() / 3]),
            ("object/notes.jpg", b"these are not JPEG bytes"),
            ("object/readme.txt", b"ignored: not an image extension"),
        ],
    );
    let folder = ImageFolder::<32, 2>::new(&dir)?;
    assert_eq!(folder.len(), 6);
    let mut out = vec![0.0; 3 * 32 * 32];
    let truncated = folder
        .samples()
        .iter()
        .position(|(p, _)| p.ends_with("truncated.png"))
        .unwrap();
    let err = folder.get(truncated, &mut out).unwrap_err();
    assert!(
        matches!(&err, Error::Image { path, .. } if path.ends_with("truncated.png")),
        "{err}"
    );
    // In a loader, the batch that holds it fails with the same error; nothing panics.
    let loader = DataLoader::new(&folder, 6)?;
    let batch = loader
        .epoch(0, &dfdx::tensor::Cpu::default())
        .next()
        .unwrap();
    assert!(batch
        .unwrap_err()
        .to_string()
        .contains("could not be decoded"));

    let kept = folder.skip_unreadable();
    assert_eq!((kept.len(), kept.skipped().len()), (4, 2));
    assert!(kept.skipped().iter().any(|(p, _)| p.ends_with("notes.jpg")));
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

#[test]
fn folders_that_do_not_fit_the_type_are_errors() {
    let err = ImageFolder::<32, 3>::new(root()).unwrap_err().to_string();
    assert!(
        err.contains("has 2 class folders (animal, object)") && err.contains("asks for 3"),
        "{err}"
    );
    let dir = scratch_copy("empty", &[("zebra/readme.txt", b"no images here")]);
    let err = ImageFolder::<32, 3>::new(&dir).unwrap_err().to_string();
    assert!(err.contains("zebra") && err.contains("holds no"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(ImageFolder::<32, 2>::new("no/such/folder").is_err());
}
