//! Classifies your own images with a zoo model and torchvision's trained weights: prints each
//! image's top-5 ImageNet classes with their probabilities, as torchvision's weights'
//! `transforms()` and `meta["categories"]` would.
//!
//! Export the weights once, in two lines of Python:
//!
//! ```text
//! import torchvision, safetensors.torch
//! safetensors.torch.save_file(torchvision.models.resnet50(weights="DEFAULT").state_dict(), "resnet50.safetensors")
//! ```
//!
//! then
//!
//! ```text
//! cargo run --release --example classify -- --model resnet50 --weights resnet50.safetensors \
//!     data/images/animal/chelsea.png data/images/object/coffee.jpg
//! ```

#[cfg(test)]
mod weights;

use clap::Parser;
use shapesafe::data::{data_dir, load_image, Normalize, Resize, Transform};
use shapesafe::models::*;
use shapesafe::prelude::*;
use shapesafe::{Error, Result};
use std::path::{Path, PathBuf};

/// The zoo models torchvision also builds, by torchvision's builder names.
const MODELS: [&str; 17] = [
    "alexnet",
    "googlenet",
    "mobilenet_v2",
    "shufflenet_v2_x1_0",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
];

/// Top-5 ImageNet classes of your images, from a torchvision-trained zoo model.
#[derive(Parser, Debug)]
#[command(name = "classify")]
struct Args {
    /// The architecture, by torchvision's name.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(MODELS))]
    model: String,
    /// The model's state dict as torchvision saved it
    /// (`safetensors.torch.save_file(model.state_dict(), path)`).
    #[arg(long)]
    weights: PathBuf,
    /// Images to classify (PNG or JPEG); each is resized to 256 on its shorter side and
    /// center-cropped to 224, as torchvision's ImageNet weights expect.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    top: u16,
    /// ImageNet's class names, one per line in class order.
    #[arg(long, default_value_os_t = data_dir().join("imagenet_classes.txt"))]
    classes: PathBuf,
}

/// The input of every torchvision ImageNet classifier.
type Images = Tensor<(usize, Const<3>, Const<224>, Const<224>), f32, Cpu>;
/// Their output.
type Logits = Tensor<(usize, Const<1000>), f32, Cpu>;

/// Images per forward pass, so a long list does not hold every activation at once.
const CHUNK: usize = 8;

/// `images` as `M` with the torchvision weights at `weights` sees them: ImageNet's logits,
/// one row per image.
fn logits<M>(weights: &Path, images: &[PathBuf]) -> Result<Vec<Vec<f32>>>
where
    M: Torchvision + BuildOnDevice<Cpu, f32>,
    M::Built:
        TensorCollection<f32, Cpu> + Clone + Module<Images, Output = Logits, Error = CpuError>,
{
    let dev = Cpu::default();
    let mut model = M::try_build_on_device(&dev).map_err(Error::device)?;
    M::load_torchvision(&mut model, weights)?;
    let normalize = Normalize::imagenet();
    let mut rng = rand::SeedableRng::seed_from_u64(0);
    let mut rows = Vec::with_capacity(images.len());
    for chunk in images.chunks(CHUNK) {
        let mut values = Vec::with_capacity(chunk.len() * 3 * 224 * 224);
        for path in chunk {
            let mut image = load_image::<224>(path, Some(Resize::new(256)))?;
            normalize.apply(&mut image, &[3, 224, 224], &mut rng);
            values.extend(image);
        }
        let x: Images = dev
            .try_tensor_from_vec(values, (chunk.len(), Const, Const, Const))
            .map_err(Error::device)?;
        let y = model.try_forward(x).map_err(Error::device)?;
        rows.extend(y.as_vec().chunks(1000).map(<[f32]>::to_vec));
    }
    Ok(rows)
}

/// Dispatches the runtime model name to its type.
fn logits_of(model: &str, weights: &Path, images: &[PathBuf]) -> Result<Vec<Vec<f32>>> {
    macro_rules! by_name {
        ($($name:literal => $model:ty,)*) => {
            match model {
                $($name => logits::<$model>(weights, images),)*
                other => Err(Error::Usage(format!("unknown model {other:?}"))),
            }
        };
    }
    by_name! {
        "alexnet" => AlexNet,
        "googlenet" => GoogLeNet,
        "mobilenet_v2" => MobileNetV2,
        "shufflenet_v2_x1_0" => ShuffleNetV2,
        "resnet18" => ResNet18,
        "resnet34" => ResNet34,
        "resnet50" => ResNet50,
        "resnet101" => ResNet101,
        "resnet152" => ResNet152,
        "vgg11" => Vgg11,
        "vgg11_bn" => Vgg11Bn,
        "vgg13" => Vgg13,
        "vgg13_bn" => Vgg13Bn,
        "vgg16" => Vgg16,
        "vgg16_bn" => Vgg16Bn,
        "vgg19" => Vgg19,
        "vgg19_bn" => Vgg19Bn,
    }
}

/// The `k` most likely classes of one row of logits: (class, softmax probability), most
/// likely first.
fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f64)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    let mut ranked: Vec<(usize, f64)> = exps.iter().map(|e| e / total).enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}

fn class_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let names: Vec<String> = text.lines().map(str::to_string).collect();
    if names.len() != 1000 {
        return Err(Error::Usage(format!(
            "{} holds {} class names; ImageNet has 1000",
            path.display(),
            names.len()
        )));
    }
    Ok(names)
}

fn run(args: Args) -> Result<()> {
    let names = class_names(&args.classes)?;
    let rows = logits_of(&args.model, &args.weights, &args.images)?;
    for (path, row) in args.images.iter().zip(&rows) {
        println!("{}", path.display());
        for (class, p) in top_k(row, usize::from(args.top)) {
            println!("  {:>6.2}%  {class:>4}  {}", 100.0 * p, names[class]);
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample images, in the order the golden script read them (ImageFolder's).
    fn samples() -> Vec<PathBuf> {
        [
            "animal/chelsea.png",
            "animal/horse.png",
            "object/coffee.jpg",
            "object/rocket.jpg",
        ]
        .iter()
        .map(|p| data_dir().join("images").join(p))
        .collect()
    }

    fn golden() -> Vec<Vec<f32>> {
        let bytes = std::fs::read("tests/pytorch/classify_golden.safetensors").unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let view = file.tensor("logits").unwrap();
        assert_eq!(view.shape(), [4, 1000]);
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        values.chunks(1000).map(<[f32]>::to_vec).collect()
    }

    /// torchvision's ShuffleNetV2 with the golden script's deterministic weights, on the
    /// sample images, end to end: weights file, decoding, resizing, cropping, normalizing,
    /// forward. PNGs decode to the same bytes as Pillow's, so their logits agree to f32
    /// noise; the JPEGs decode within 3 levels of Pillow's and land further off.
    #[test]
    fn logits_match_torchvision() {
        let path =
            std::env::temp_dir().join(format!("classify-{}.safetensors", std::process::id()));
        weights::write_torchvision_like::<ShuffleNetV2>(&path).unwrap();
        let ours = logits_of("shufflenet_v2_x1_0", &path, &samples()).unwrap();
        std::fs::remove_file(&path).unwrap();
        for (i, (ours, theirs)) in ours.iter().zip(golden()).enumerate() {
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!("image {i}: largest logit difference {worst:.2e}, largest logit {scale:.1}");
            let bound = if i < 2 { 1e-4 } else { 5e-2 };
            assert!(worst <= bound * scale, "image {i}: {worst} of {scale}");
            let top = |row: &[f32]| {
                top_k(row, 5)
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect::<Vec<_>>()
            };
            if i < 2 {
                assert_eq!(top(ours), top(&theirs), "image {i}");
            }
        }
    }

    #[test]
    fn top_k_is_the_softmax_ranked() {
        let ranked = top_k(&[0.0, 2.0f32.ln(), 0.0, 1.0f32.ln() - 10.0], 3);
        assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 0, 2]);
        let total = 4.0 + (-10f64).exp();
        assert!(
            (ranked[0].1 - 2.0 / total).abs() < 1e-6 && (ranked[1].1 - 1.0 / total).abs() < 1e-6
        );
    }

    #[test]
    fn the_command_line_rejects_what_would_not_work() {
        let parse = |args: &[&str]| Args::try_parse_from([&["classify"], args].concat());
        assert!(parse(&["--model", "resnet50", "--weights", "w", "a.png"]).is_ok());
        for bad in [
            vec!["--model", "resnet51", "--weights", "w", "a.png"],
            vec!["--model", "resnet50", "--weights", "w"],
            vec![
                "--model",
                "resnet50",
                "--weights",
                "w",
                "--top",
                "0",
                "a.png",
            ],
        ] {
            let err = parse(&bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn a_wrong_weights_file_names_the_first_tensor_that_does_not_fit() {
        let path =
            std::env::temp_dir().join(format!("classify-wrong-{}.safetensors", std::process::id()));
        weights::write_torchvision_like::<ShuffleNetV2>(&path).unwrap();
        let err = logits_of("mobilenet_v2", &path, &samples()[..1])
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("features.0.0.weight"), "{err}");
    }
}
