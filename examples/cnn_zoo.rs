//! The model zoo at a glance: builds every model of `shapesafe::models`, prints its summary
//! (layers, output shapes, parameters, all computed from the types) and times one eval-mode
//! forward at batch 1 (224x224 for the ImageNet models, each other model at its own size).
//! Ends with a table of parameter counts and times.
//!
//! ```text
//! cargo run --release --example cnn_zoo -- [--model NAME] [--repeats N]
//! ```
//!
//! `--model` keeps the models whose name contains NAME (case-insensitive), `--repeats` sets
//! how many timed forwards each gets after one warm-up (the median is reported; default 3).

mod cli;

use shapesafe::models::*;
use shapesafe::prelude::*;
use shapesafe::shape::thousands;
use shapesafe::Result;
use std::time::Instant;

/// Builds every zoo model, prints its summary and parameter count, and times one forward
/// pass at batch 1.
#[derive(clap::Parser)]
#[command(name = "cnn_zoo")]
struct Args {
    /// Only the models whose name contains this, ignoring case (e.g. resnet) [default: all].
    #[arg(long, value_parser = lowercase)]
    model: Option<String>,
    /// Timed forward passes per model, after one warm-up; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = cli::count)]
    repeats: usize,
}

fn lowercase(s: &str) -> Result<String, String> {
    Ok(s.to_lowercase())
}

/// Builds, summarises and times one model.
type Runner<'a> = Box<dyn Fn() -> Row + 'a>;

/// One table row.
struct Row {
    name: &'static str,
    input: [usize; 3],
    params: usize,
    build_ms: f64,
    forward_ms: f64,
}

/// Builds `M`, prints its summary, and times `repeats` forwards of one random image.
fn measure<M, const C: usize, const H: usize, const W: usize>(
    name: &'static str,
    dev: &Cpu,
    repeats: usize,
) -> Row
where
    M: ShapeInfer<Rank3<C, H, W>> + BuildOnDevice<Cpu, f32>,
    M::Built: Module<Tensor<Rank4<1, C, H, W>, f32, Cpu>>,
{
    println!("== {name}\n{}\n", Summary::of::<M, Rank3<C, H, W>>());
    let start = Instant::now();
    let model = dev.build_module::<M, f32>();
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    let x: Tensor<Rank4<1, C, H, W>, f32, Cpu> = dev.sample_normal();
    let _ = model.forward(x.clone());
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            let _ = model.forward(x.clone());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Row {
        name,
        input: [C, H, W],
        params: <M as ShapeInfer<Rank3<C, H, W>>>::PARAMS,
        build_ms,
        forward_ms: times[times.len() / 2],
    }
}

fn main() {
    let args = <Args as clap::Parser>::parse();
    let dev = Cpu::seed_from_u64(0);
    let wanted = |name: &str| {
        args.model
            .as_ref()
            .is_none_or(|m| name.to_lowercase().contains(m.as_str()))
    };
    let r = args.repeats;
    type Vit = VisionTransformer<3, 224, 16, 768, 12, 3072, 12, 1000>;
    // One line per model: its name, its type and the input it is timed on.
    macro_rules! zoo {
        ($($name:literal => $model:ty, $c:literal x $h:literal x $w:literal;)*) => {
            vec![$(($name, Box::new(|| measure::<$model, $c, $h, $w>($name, &dev, r)) as Runner)),*]
        };
    }
    let all: Vec<(&str, Runner)> = zoo![
        "LeNet-5" => LeNet5, 1 x 28 x 28;
        "AlexNet" => AlexNet, 3 x 224 x 224;
        "VGG-11" => Vgg11, 3 x 224 x 224;
        "VGG-16" => Vgg16, 3 x 224 x 224;
        "VGG-16-BN" => Vgg16Bn, 3 x 224 x 224;
        "VGG-19" => Vgg19, 3 x 224 x 224;
        "VGG (CIFAR)" => VggCifar, 3 x 32 x 32;
        "GoogLeNet" => GoogLeNet, 3 x 224 x 224;
        "ResNet-18" => ResNet18, 3 x 224 x 224;
        "ResNet-34" => ResNet34, 3 x 224 x 224;
        "ResNet-50" => ResNet50, 3 x 224 x 224;
        "ResNet-101" => ResNet101, 3 x 224 x 224;
        "ResNet-152" => ResNet152, 3 x 224 x 224;
        "MobileNetV2" => MobileNetV2, 3 x 224 x 224;
        "ShuffleNetV2" => ShuffleNetV2, 3 x 224 x 224;
        "ViT-B/16" => Vit, 3 x 224 x 224;
        "U-Net" => UNet<3, 2>, 3 x 224 x 224;
    ];
    let rows: Vec<Row> = all
        .iter()
        .filter(|(name, _)| wanted(name))
        .map(|(_, run)| run())
        .collect();
    if rows.is_empty() {
        eprintln!(
            "error: no zoo model's name contains {:?}",
            args.model.unwrap_or_default()
        );
        std::process::exit(2);
    }
    println!(
        "{} threads, batch 1, eval mode, median of {r} forwards\n",
        rayon::current_num_threads()
    );
    println!("| model | input | parameters | build (ms) | forward (ms) |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for row in rows {
        let [c, h, w] = row.input;
        println!(
            "| {} | {c}x{h}x{w} | {} | {:.0} | {:.1} |",
            row.name,
            thousands(row.params),
            row.build_ms,
            row.forward_ms
        );
    }
}
