//! Device parity: every layer and model gives the same outputs, input gradients and parameter
//! gradients on the CPU and on a second device, from the same weights and inputs.
//!
//! The second device is `Other`: dfdx's `Cuda` under `--features cuda`, where the layers run
//! through `src/kernels/cuda.rs` (gathers and matmuls composed from dfdx ops) while the CPU runs
//! shapesafe's hand-written kernels, so the comparison cross-checks two implementations. In CPU
//! builds `Other` is a second `Cpu`: the "parity" is then between a model and its
//! `shapesafe::device::to_device` copy, which checks this harness and dfdx's copy round trip and keeps the
//! file running in `cargo test`.
//!
//! Each case builds its model on `Cpu::seed_from_u64(0)`, perturbs every tensor (so that biases,
//! batch-norm statistics, class tokens and PReLU slopes are not at their initial constants),
//! copies the model to `Other`, samples an input on the CPU and copies its values, then on both
//! devices runs forward on the traced input, takes `loss = sum(y * r)` with the same random `r`
//! and runs backward. It compares the outputs, the loss, the input gradient, every trainable
//! tensor's gradient (named, in visiting order) and every tensor of the model afterwards (batch
//! norm's running statistics after a training forward).
//!
//! `ToDevice` rebuilds a module's scalar fields (dropout probabilities, `LayerNorm::eps`,
//! `BatchNorm2d`'s `epsilon`/`momentum`, `ELU::alpha`, `LeakyReLU::negative_slope`) at their
//! defaults rather than copying them, so cases that need another value set it on both copies.

mod common;

use common::{assert_close, rng, Tolerance};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorVisitor, ViewTensorMut, ViewTensorName, ViewTensorRef,
};
use dfdx::nn::TensorOptions;
use rand::{rngs::StdRng, Rng};
use shapesafe::models::VaeOutput;
use shapesafe::prelude::*;

/// The device compared with the CPU: the GPU under `--features cuda`.
#[cfg(feature = "cuda")]
type Other = Cuda;
/// The device compared with the CPU: a second `Cpu` in CPU builds.
#[cfg(not(feature = "cuda"))]
type Other = Cpu;

/// f64 on both devices: the GPU sums in other orders (cuBLAS, tree reductions), which moves the
/// last few bits of each result; 1e-9 leaves room for that through a dozen layers.
const F64_PARITY: Tolerance = Tolerance {
    abs: 1e-9,
    rel: 1e-9,
};
/// f32 on both devices: summation order moves results by a few f32 ulps per layer.
const F32_PARITY: Tolerance = Tolerance {
    abs: 1e-4,
    rel: 1e-4,
};

/// Everything one device computed for a case, as f64.
struct Run {
    outputs: Vec<Vec<f64>>,
    loss: Option<f64>,
    input_grad: Option<Vec<f64>>,
    param_grads: Vec<(String, Vec<f64>)>,
    tensors: Vec<(String, Vec<f64>)>,
}

fn f64s<E: Dtype>(values: &[E]) -> Vec<f64> {
    values.iter().map(|v| v.to_f64().unwrap()).collect()
}

/// What a forward returns: its values, and its contribution `sum(y * r)` to the loss when it
/// carries a tape. Draws `r` from `rng` in a fixed order, so both devices use the same `r`.
trait Outputs<E: Dtype, D: Device<E>> {
    fn values(&self) -> Vec<Vec<f64>>;
    fn loss(self, rng: &mut StdRng) -> Option<Tensor<Rank0, E, D, OwnedTape<E, D>>>;
}

fn weights<E: Dtype>(rng: &mut StdRng, n: usize) -> Vec<E> {
    (0..n)
        .map(|_| E::from_f64(rng.gen_range(-1.0..1.0)).unwrap())
        .collect()
}

impl<S: Shape, E: Dtype, D: Device<E>> Outputs<E, D> for Tensor<S, E, D, OwnedTape<E, D>> {
    fn values(&self) -> Vec<Vec<f64>> {
        vec![f64s(&self.as_vec())]
    }
    fn loss(self, rng: &mut StdRng) -> Option<Tensor<Rank0, E, D, OwnedTape<E, D>>> {
        let shape = *self.shape();
        let r = self
            .device()
            .tensor_from_vec(weights(rng, shape.num_elements()), shape);
        Some((self * r).sum())
    }
}

impl<S: Shape, E: Dtype, D: Device<E>> Outputs<E, D> for Tensor<S, E, D, NoneTape> {
    fn values(&self) -> Vec<Vec<f64>> {
        vec![f64s(&self.as_vec())]
    }
    fn loss(self, _: &mut StdRng) -> Option<Tensor<Rank0, E, D, OwnedTape<E, D>>> {
        None
    }
}

fn add_losses<E: Dtype, D: Device<E>>(
    a: Option<Tensor<Rank0, E, D, OwnedTape<E, D>>>,
    b: Option<Tensor<Rank0, E, D, OwnedTape<E, D>>>,
) -> Option<Tensor<Rank0, E, D, OwnedTape<E, D>>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

impl<E: Dtype, D: Device<E>, A: Outputs<E, D>, B: Outputs<E, D>> Outputs<E, D> for (A, B) {
    fn values(&self) -> Vec<Vec<f64>> {
        [self.0.values(), self.1.values()].concat()
    }
    fn loss(self, rng: &mut StdRng) -> Option<Tensor<Rank0, E, D, OwnedTape<E, D>>> {
        let a = self.0.loss(rng);
        add_losses(a, self.1.loss(rng))
    }
}

impl<E: Dtype, D: Device<E>, R: Outputs<E, D>, L: Outputs<E, D>> Outputs<E, D> for VaeOutput<R, L> {
    fn values(&self) -> Vec<Vec<f64>> {
        [
            self.reconstruction.values(),
            self.mu.values(),
            self.log_var.values(),
        ]
        .concat()
    }
    fn loss(self, rng: &mut StdRng) -> Option<Tensor<Rank0, E, D, OwnedTape<E, D>>> {
        let a = self.reconstruction.loss(rng);
        let b = self.mu.loss(rng);
        add_losses(add_losses(a, b), self.log_var.loss(rng))
    }
}

/// Allocates a zero gradient for every trainable tensor, so that each has one to compare even
/// where the forward does not reach it, without marking them as the only leaves (as
/// `alloc_grads` does) so the input's gradient is kept too.
struct AllocParams<'a, E: Dtype, D: Device<E>>(&'a mut Gradients<E, D>);

impl<E: Dtype, D: Device<E>> TensorVisitor<E, D> for AllocParams<'_, E, D> {
    type Viewer = ViewTensorRef;
    type Err = D::Err;
    type E2 = E;
    type D2 = D;
    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, E, D>,
        t: &Tensor<S, E, D>,
    ) -> Result<Option<Tensor<S, E, D>>, D::Err> {
        if opts.do_gradient_update {
            self.0.get_or_alloc_mut(t)?;
        }
        Ok(None)
    }
}

/// Leaky gradients (the input's is kept) with every trainable tensor's allocated.
fn leaky_grads<E: Dtype, D: Device<E>, M: TensorCollection<E, D>>(model: &M) -> Gradients<E, D> {
    let mut grads = Gradients::leaky();
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut AllocParams(&mut grads),
    })
    .unwrap();
    grads
}

/// Named values of the model's tensors, in visiting order: with `grads`, the gradients of the
/// trainable ones; without, the values of all of them.
struct Collect<'a, E: Dtype, D: Device<E>> {
    grads: Option<&'a Gradients<E, D>>,
    out: Vec<(String, Vec<f64>)>,
}

impl<E: Dtype, D: Device<E>> TensorVisitor<E, D> for Collect<'_, E, D> {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = std::convert::Infallible;
    type E2 = E;
    type D2 = D;
    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, E, D>,
        (t, name): (&Tensor<S, E, D>, String),
    ) -> Result<Option<Tensor<S, E, D>>, Self::Err> {
        match self.grads {
            Some(grads) if opts.do_gradient_update => {
                self.out.push((name, f64s(&grads.get(t).as_vec())))
            }
            Some(_) => {}
            None => self.out.push((name, f64s(&t.as_vec()))),
        }
        Ok(None)
    }
}

fn collect<E: Dtype, D: Device<E>, M: TensorCollection<E, D>>(
    model: &M,
    grads: Option<&Gradients<E, D>>,
) -> Vec<(String, Vec<f64>)> {
    let mut visitor = Collect { grads, out: vec![] };
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut visitor,
    });
    visitor.out
}

/// Moves every tensor off its initial value, deterministically: `v * (1 + 0.2 u) + 0.05 u'`
/// with `u, u'` uniform in [-1, 1), which keeps running variances positive.
struct Perturb(StdRng);

impl<E: Dtype> TensorVisitor<E, Cpu> for Perturb
where
    Cpu: Device<E>,
{
    type Viewer = ViewTensorMut;
    type Err = std::convert::Infallible;
    type E2 = E;
    type D2 = Cpu;
    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, E, Cpu>,
        t: &mut Tensor<S, E, Cpu>,
    ) -> Result<Option<Tensor<S, E, Cpu>>, Self::Err> {
        let values: Vec<E> = t
            .as_vec()
            .iter()
            .map(|v| {
                let (a, b): (f64, f64) = (self.0.gen_range(-1.0..1.0), self.0.gen_range(-1.0..1.0));
                E::from_f64(v.to_f64().unwrap() * (1.0 + 0.2 * a) + 0.05 * b).unwrap()
            })
            .collect();
        t.copy_from(&values);
        Ok(None)
    }
}

fn perturb<E: Dtype, M: TensorCollection<E, Cpu>>(model: &mut M)
where
    Cpu: Device<E>,
{
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut Perturb(rng(2)),
    });
}

/// Loss, backward, and everything to compare except the input gradient, which the caller
/// reads from the returned gradients.
fn finish<E: Dtype, D: Device<E>, O: Outputs<E, D>, M: TensorCollection<E, D>>(
    y: O,
    model: &M,
) -> (Run, Option<Gradients<E, D>>) {
    let outputs = y.values();
    let (loss, grads) = match y.loss(&mut rng(1)) {
        Some(loss) => {
            let value = loss.as_vec()[0].to_f64().unwrap();
            (Some(value), Some(loss.backward()))
        }
        None => (None, None),
    };
    let param_grads = grads
        .as_ref()
        .map(|g| collect(model, Some(g)))
        .unwrap_or_default();
    let run = Run {
        outputs,
        loss,
        input_grad: None,
        param_grads,
        tensors: collect(model, None),
    };
    (run, grads)
}

#[track_caller]
fn compare(case: &str, cpu: &Run, other: &Run, tol: Tolerance) {
    assert_eq!(cpu.outputs.len(), other.outputs.len(), "{case}: outputs");
    for (i, (a, b)) in cpu.outputs.iter().zip(&other.outputs).enumerate() {
        assert_close(&format!("{case}: output {i}"), b, a, tol);
    }
    // A case whose outputs are all zero would compare nothing.
    assert!(
        cpu.outputs.iter().flatten().any(|&v| v != 0.0),
        "{case}: all outputs are zero"
    );
    assert_eq!(cpu.loss.is_some(), other.loss.is_some(), "{case}: loss");
    if let (Some(a), Some(b)) = (cpu.loss, other.loss) {
        assert_close(&format!("{case}: loss"), &[b], &[a], tol);
    }
    assert_eq!(
        cpu.input_grad.is_some(),
        other.input_grad.is_some(),
        "{case}: input gradient"
    );
    if let (Some(a), Some(b)) = (&cpu.input_grad, &other.input_grad) {
        assert_close(&format!("{case}: input gradient"), b, a, tol);
    }
    let names = |v: &[(String, Vec<f64>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&cpu.param_grads),
        names(&other.param_grads),
        "{case}: trainable tensors"
    );
    for ((name, a), (_, b)) in cpu.param_grads.iter().zip(&other.param_grads) {
        assert_close(&format!("{case}: gradient of {name}"), b, a, tol);
    }
    assert_eq!(
        names(&cpu.tensors),
        names(&other.tensors),
        "{case}: tensors"
    );
    for ((name, a), (_, b)) in cpu.tensors.iter().zip(&other.tensors) {
        assert_close(&format!("{case}: {name} afterwards"), b, a, tol);
    }
}

/// Copies a CPU tensor's values to `dev`.
fn copy_to<S: Shape, E: Unit, D: TensorFromVec<E>>(
    t: &Tensor<S, E, Cpu>,
    dev: &D,
) -> Tensor<S, E, D> {
    dev.tensor_from_vec(t.as_vec(), *t.shape())
}

/// Fixed values of shape `S` on `dev`, the same on every device: recurrent states and masks.
fn fixed<S: ConstShape, E: Dtype, D: TensorFromVec<E>>(dev: &D, seed: u64) -> Tensor<S, E, D> {
    let n = S::default().num_elements();
    dev.tensor_from_vec(weights(&mut rng(seed), n), S::default())
}

/// One parity case; see the file's header. Forms:
/// - `name: Builder, InputShape, tolerance`: f64, `forward` on a normal sample of a `Const` shape;
/// - `f32 name: ...`: the same in f32;
/// - `train name: ...`: `forward_mut` (batch statistics; the model's tensors, compared after
///   every case, then include the updated running statistics);
/// - `name: Builder, Shape = shape_value, tolerance`: a shape with `usize` dims;
/// - the full form, naming dtype, mode (`eval`, `train`, `untraced` for layers that take no
///   tape, `ids` for integer inputs), input, an optional `prepare` step run on both copies after
///   copying,
///   and the forward.
macro_rules! parity {
    (f32 $name:ident: $builder:ty, $shape:ty, $tol:expr) => {
        parity!($name: $builder, f32, eval,
            input = |dev| dev.sample_normal_like(&<$shape>::default()),
            forward = |m, x| m.forward(x),
            $tol);
    };
    (train $name:ident: $builder:ty, $shape:ty, $tol:expr) => {
        parity!($name: $builder, f64, train,
            input = |dev| dev.sample_normal_like(&<$shape>::default()),
            forward = |m, x| m.forward_mut(x),
            $tol);
    };
    ($name:ident: $builder:ty, $shape:ty = $value:expr, $tol:expr) => {
        parity!($name: $builder, f64, eval,
            input = |dev| dev.sample_normal_like::<$shape>(&$value),
            forward = |m, x| m.forward(x),
            $tol);
    };
    ($name:ident: $builder:ty, $shape:ty, $tol:expr) => {
        parity!($name: $builder, $shape = <$shape>::default(), $tol);
    };
    (
        $name:ident: $builder:ty, $e:ty, $mode:ident,
        input = |$dev:ident| $input:expr,
        $(prepare = |$pm:ident| $prepare:expr,)?
        forward = |$m:ident, $x:ident| $forward:expr,
        $tol:expr
    ) => {
        #[test]
        fn $name() {
            let cpu = Cpu::seed_from_u64(0);
            let other = Other::default();
            let mut cpu_model = cpu.build_module::<$builder, $e>();
            perturb::<$e, _>(&mut cpu_model);
            #[allow(unused_mut)]
            let mut other_model =
                shapesafe::device::to_device::<$e, Cpu, Other, _>(&cpu_model, &other).unwrap();
            let cpu_x: Tensor<_, parity!(@input_dtype $mode, $e), Cpu> = {
                let $dev = &cpu;
                $input
            };
            let other_x = copy_to(&cpu_x, &other);
            $(
                {
                    let $pm = &mut cpu_model;
                    $prepare;
                }
                {
                    let $pm = &mut other_model;
                    $prepare;
                }
            )?
            let a = parity!(@run $mode, $e, cpu_model, cpu_x, |$m, $x| $forward);
            let b = parity!(@run $mode, $e, other_model, other_x, |$m, $x| $forward);
            compare(stringify!($name), &a, &b, $tol);
        }
    };
    (@input_dtype ids, $e:ty) => { usize };
    (@input_dtype $mode:ident, $e:ty) => { $e };
    (@run eval, $e:ty, $model:ident, $input:ident, |$m:ident, $x:ident| $forward:expr) => {{
        let $x = $input.clone().traced(leaky_grads::<$e, _, _>(&$model));
        let $m = &$model;
        let (mut run, grads) = finish::<$e, _, _, _>($forward, &$model);
        run.input_grad = grads.map(|g| f64s(&g.get(&$input).as_vec()));
        run
    }};
    (@run train, $e:ty, $model:ident, $input:ident, |$m:ident, $x:ident| $forward:expr) => {{
        let $x = $input.clone().traced(leaky_grads::<$e, _, _>(&$model));
        let $m = &mut $model;
        let y = $forward;
        let (mut run, grads) = finish::<$e, _, _, _>(y, &$model);
        run.input_grad = grads.map(|g| f64s(&g.get(&$input).as_vec()));
        run
    }};
    (@run ids, $e:ty, $model:ident, $input:ident, |$m:ident, $x:ident| $forward:expr) => {{
        let $x = $input.clone().traced(leaky_grads::<$e, _, _>(&$model));
        let $m = &$model;
        finish::<$e, _, _, _>($forward, &$model).0
    }};
    (@run untraced, $e:ty, $model:ident, $input:ident, |$m:ident, $x:ident| $forward:expr) => {{
        let $x = $input.clone();
        let $m = &$model;
        finish::<$e, _, _, _>($forward, &$model).0
    }};
}

// ---- Convolutions ----

parity!(conv2d_plain: Conv2d<3, 4, 3>, Rank4<2, 3, 7, 7>, F64_PARITY);
parity!(conv2d_stride_padding_dilation: Conv2d<3, 4, 3, 2, 1, 2>, Rank4<2, 3, 9, 8>, F64_PARITY);
parity!(conv2d_grouped: Conv2d<4, 6, 3, 1, 1, 1, 2>, Rank4<2, 4, 6, 6>, F64_PARITY);
parity!(conv2d_depthwise: Conv2d<4, 4, 3, 2, 1, 1, 4>, Rank4<2, 4, 7, 7>, F64_PARITY);
parity!(conv2d_without_bias: Conv2d<3, 5, 3, 1, 1, 1, 1, false>, Rank4<2, 3, 5, 6>, F64_PARITY);
parity!(conv2d_unbatched: Conv2d<3, 4, 3, 2, 1>, Rank3<3, 7, 7>, F64_PARITY);
parity!(conv2d_usize_batch: Conv2d<3, 4, 3, 1, 1>,
    (usize, Const<3>, Const<6>, Const<5>) = (3, Const, Const, Const), F64_PARITY);
parity!(f32 conv2d_f32: Conv2d<3, 4, 3, 2, 1, 2>, Rank4<2, 3, 9, 9>, F32_PARITY);

parity!(conv_transpose2d_plain: ConvTranspose2d<3, 2, 3>, Rank4<2, 3, 4, 5>, F64_PARITY);
parity!(conv_transpose2d_stride_padding_output_padding_groups:
    ConvTranspose2d<4, 6, 3, 2, 1, 1, 1, 2>, Rank4<2, 4, 5, 4>, F64_PARITY);
parity!(conv_transpose2d_dilation: ConvTranspose2d<2, 3, 2, 1, 0, 1, 2>, Rank4<2, 2, 4, 4>, F64_PARITY);
parity!(conv_transpose2d_unbatched: ConvTranspose2d<4, 6, 3, 2, 1, 1, 1, 2>, Rank3<4, 5, 4>, F64_PARITY);
parity!(conv_transpose2d_usize_batch: ConvTranspose2d<3, 2, 3, 2, 1, 1>,
    (usize, Const<3>, Const<4>, Const<4>) = (3, Const, Const, Const), F64_PARITY);
parity!(f32 conv_transpose2d_f32: ConvTranspose2d<4, 6, 3, 2, 1, 1, 1, 2>, Rank4<2, 4, 5, 4>, F32_PARITY);

// ---- Pooling and resampling ----

parity!(max_pool2d: MaxPool2d<2>, Rank4<2, 3, 7, 6>, F64_PARITY);
parity!(max_pool2d_stride_padding: MaxPool2d<3, 2, 1>, Rank4<2, 3, 7, 7>, F64_PARITY);
parity!(max_pool2d_unbatched: MaxPool2d<3, 1, 1>, Rank3<2, 5, 5>, F64_PARITY);
parity!(avg_pool2d: AvgPool2d<2>, Rank4<2, 3, 7, 6>, F64_PARITY);
parity!(avg_pool2d_stride_padding: AvgPool2d<3, 2, 1>, Rank4<2, 3, 7, 7>, F64_PARITY);
parity!(avg_pool2d_usize_batch: AvgPool2d<3, 2, 1>,
    (usize, Const<2>, Const<6>, Const<5>) = (3, Const, Const, Const), F64_PARITY);
parity!(f32 avg_pool2d_f32: AvgPool2d<3, 2, 1>, Rank4<2, 3, 7, 7>, F32_PARITY);
parity!(adaptive_avg_pool2d_non_divisible: AdaptiveAvgPool2d<3, 2>, Rank4<2, 3, 7, 5>, F64_PARITY);
parity!(adaptive_avg_pool2d_unbatched: AdaptiveAvgPool2d<4, 3>, Rank3<2, 7, 5>, F64_PARITY);
parity!(global_avg_pool2d: GlobalAvgPool2d, Rank4<2, 3, 4, 5>, F64_PARITY);
parity!(global_avg_pool2d_unbatched: GlobalAvgPool2d, Rank3<3, 4, 5>, F64_PARITY);
parity!(upsample2d_nearest: Upsample2d<2, Nearest>, Rank4<2, 2, 3, 4>, F64_PARITY);
parity!(upsample2d_nearest_3: Upsample2d<3, Nearest>, Rank3<2, 3, 2>, F64_PARITY);
parity!(upsample2d_bilinear: Upsample2d<2, Bilinear>, Rank4<2, 2, 3, 4>, F64_PARITY);
parity!(upsample2d_bilinear_3: Upsample2d<3, Bilinear>, Rank3<2, 3, 4>, F64_PARITY);
parity!(upsample2d_bilinear_align_corners: Upsample2d<3, BilinearAlignCorners>, Rank4<2, 2, 3, 4>, F64_PARITY);
parity!(f32 upsample2d_bilinear_f32: Upsample2d<2, Bilinear>, Rank4<2, 2, 3, 4>, F32_PARITY);

// ---- Batch norm ----

parity!(batchnorm2d_eval: BatchNorm2d<3>, Rank4<2, 3, 4, 5>, F64_PARITY);
parity!(batchnorm2d_eval_unbatched: BatchNorm2d<3>, Rank3<3, 4, 5>, F64_PARITY);
parity!(train batchnorm2d_train: BatchNorm2d<3>, Rank4<4, 3, 4, 5>, F64_PARITY);
parity!(batchnorm2d_train_usize_batch: BatchNorm2d<3>, f64, train,
    input = |dev| dev.sample_normal_like(&(3, Const::<3>, Const::<4>, Const::<4>)),
    forward = |m, x| m.forward_mut(x),
    F64_PARITY);
// A momentum other than the default, set on both copies (`to_device` rebuilds it).
parity!(batchnorm2d_train_momentum: BatchNorm2d<2>, f64, train,
    input = |dev| dev.sample_normal_like(&<Rank4<3, 2, 3, 3>>::default()),
    prepare = |m| m.momentum = 0.3,
    forward = |m, x| m.forward_mut(x),
    F64_PARITY);

// ---- Linear, reshaping ----

parity!(linear_rank1: Linear<5, 3>, Rank1<5>, F64_PARITY);
parity!(linear_rank2: Linear<5, 3>, Rank2<4, 5>, F64_PARITY);
parity!(linear_sequence: Linear<5, 3>, Rank3<2, 4, 5>, F64_PARITY);
parity!(linear_sequence_usize: Linear<5, 3>,
    (usize, usize, Const<5>) = (2, 3, Const), F64_PARITY);
parity!(f32 linear_f32: Linear<5, 3>, Rank2<4, 5>, F32_PARITY);
parity!(flatten_linear: (Flatten, Linear<12, 4>), Rank4<2, 3, 2, 2>, F64_PARITY);
parity!(flatten_unbatched: Flatten, Rank3<3, 2, 2>, F64_PARITY);
parity!(unflatten: (Unflatten<2, 3, 2>, Conv2d<2, 2, 2>), Rank2<3, 12>, F64_PARITY);
parity!(unflatten_unbatched: Unflatten<2, 3, 2>, Rank1<12>, F64_PARITY);
parity!(rows: (Rows, Linear<4, 3>), Rank4<2, 1, 5, 4>, F64_PARITY);

// ---- Activations ----

parity!(relu: (Linear<4, 6>, ReLU), Rank2<3, 4>, F64_PARITY);
parity!(relu6: ReLU6, f64, eval,
    // Scaled so that inputs fall on both sides of 0 and of 6.
    input = |dev| dev.sample_normal_like(&<Rank2<4, 5>>::default()) * 5.0,
    forward = |m, x| m.forward(x),
    F64_PARITY);
parity!(prelu: PReLU, Rank2<3, 4>, F64_PARITY);
parity!(arctan: Arctan, Rank2<3, 4>, F64_PARITY);
parity!(maxout: Maxout<2>, Rank2<3, 8>, F64_PARITY);
parity!(maxout_3_unbatched: Maxout<3>, Rank1<9>, F64_PARITY);
// The step has no gradient; what its input gradient and the Linear's compare is that it is zero.
parity!(binary_step: (Linear<4, 5>, BinaryStep), Rank2<3, 4>, F64_PARITY);
parity!(tanh: Tanh, Rank2<3, 4>, F64_PARITY);
parity!(sigmoid: Sigmoid, Rank2<3, 4>, F64_PARITY);
parity!(gelu: GELU, Rank2<3, 4>, F64_PARITY);
parity!(softplus: Softplus, Rank2<3, 4>, F64_PARITY);
parity!(softmax: Softmax, Rank2<3, 4>, F64_PARITY);
parity!(identity: (Identity, Linear<4, 2>), Rank2<3, 4>, F64_PARITY);
parity!(elu: ELU, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank2<3, 4>>::default()),
    prepare = |m| m.alpha = 1.7,
    forward = |m, x| m.forward(x),
    F64_PARITY);
parity!(leaky_relu: LeakyReLU, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank2<3, 4>>::default()),
    prepare = |m| m.negative_slope = 0.2,
    forward = |m, x| m.forward(x),
    F64_PARITY);
parity!(f32 activations_f32: (Linear<4, 6>, GELU, Linear<6, 6>, Tanh, Linear<6, 4>, Sigmoid),
    Rank2<3, 4>, F32_PARITY);
// Dropout in training with p = 0 (set on both copies): the GPU draws its mask from cuRAND,
// which p = 0 makes irrelevant.
parity!(dropout_p0_train: (Linear<4, 6>, Dropout), f64, train,
    input = |dev| dev.sample_normal_like(&<Rank2<3, 4>>::default()),
    prepare = |m| m.1.p = 0.0,
    forward = |m, x| m.forward_mut(x),
    F64_PARITY);
// Inference dropout takes untraced tensors only: outputs compared, no gradients.
parity!(dropout_one_in_eval: (Linear<4, 6>, DropoutOneIn<3>), f64, untraced,
    input = |dev| dev.sample_normal_like(&<Rank2<3, 4>>::default()),
    forward = |m, x| m.forward(x),
    F64_PARITY);

// ---- Composition ----

parity!(residual: Residual<(Conv2d<2, 2, 3, 1, 1>, Tanh, Conv2d<2, 2, 3, 1, 1>)>,
    Rank4<3, 2, 5, 5>, F64_PARITY);
parity!(residual_projection: ResidualProjection<(Conv2d<2, 4, 3, 2, 1>, ReLU), Conv2d<2, 4, 1, 2>>,
    Rank4<2, 2, 6, 6>, F64_PARITY);
parity!(residual_features: Residual<(Linear<4, 4>, Tanh)>, Rank2<3, 4>, F64_PARITY);
parity!(concat: Concat<Identity, (Conv2d<3, 2, 3, 1, 1>, ReLU)>, Rank4<2, 3, 4, 4>, F64_PARITY);
parity!(concat_unbatched: Concat<Conv2d<3, 1, 1>, Conv2d<3, 2, 3, 1, 1>>, Rank3<3, 4, 4>, F64_PARITY);

// ---- Sequences: embeddings, positions, recurrent layers ----

parity!(embedding: Embedding<6, 3>, f64, ids,
    input = |dev| dev.tensor_from_vec(vec![5usize, 0, 5, 2, 1, 3], (Const::<2>, Const::<3>)),
    forward = |m, x| m.forward(x),
    F64_PARITY);
parity!(embedding_unbatched_usize: Embedding<6, 3>, f64, ids,
    input = |dev| dev.tensor_from_vec(vec![4usize, 1, 4, 0], (4usize,)),
    forward = |m, x| m.forward(x),
    F64_PARITY);
parity!(embedding_sequence_classifier:
    (Embedding<6, 4>, SinusoidalPositionalEncoding<10, 4>, Lstm<4, 3>, LastStep, Linear<3, 2>),
    f64, ids,
    input = |dev| dev.tensor_from_vec(vec![1usize, 5, 2, 0, 3, 3, 4, 1], (Const::<2>, Const::<4>)),
    forward = |m, x| m.forward(x),
    F64_PARITY);
parity!(sinusoidal_positional_encoding: SinusoidalPositionalEncoding<10, 6>, Rank3<2, 4, 6>, F64_PARITY);
parity!(learned_positional_embedding: LearnedPositionalEmbedding<7, 3>, Rank3<2, 4, 3>, F64_PARITY);
parity!(learned_positional_embedding_usize: LearnedPositionalEmbedding<7, 3>,
    (usize, Const<3>) = (5, Const), F64_PARITY);
parity!(sequence_mean: SequenceMean, Rank3<2, 4, 3>, F64_PARITY);
parity!(last_step: LastStep, Rank3<2, 5, 4>, F64_PARITY);

parity!(rnn: Rnn<3, 4>, Rank3<2, 5, 3>, F64_PARITY);
parity!(rnn_relu: RnnRelu<3, 4>, Rank3<2, 5, 3>, F64_PARITY);
parity!(lstm: Lstm<3, 4>, Rank3<2, 5, 3>, F64_PARITY);
parity!(gru: Gru<3, 4>, Rank3<2, 5, 3>, F64_PARITY);
parity!(rnn_two_layers_bidirectional: Rnn<3, 4, 2, true>, Rank3<2, 5, 3>, F64_PARITY);
parity!(rnn_relu_two_layers_bidirectional: RnnRelu<3, 4, 2, true>, Rank3<2, 5, 3>, F64_PARITY);
parity!(lstm_two_layers_bidirectional: Lstm<3, 4, 2, true>, Rank3<2, 5, 3>, F64_PARITY);
parity!(gru_two_layers_bidirectional: Gru<3, 4, 2, true>, Rank3<2, 5, 3>, F64_PARITY);
parity!(lstm_unbatched: Lstm<3, 4, 2, true>, Rank2<5, 3>, F64_PARITY);
parity!(gru_usize_batch_and_time: Gru<3, 4>,
    (usize, usize, Const<3>) = (3, 4, Const), F64_PARITY);
parity!(f32 lstm_f32: Lstm<3, 4, 2, true>, Rank3<2, 5, 3>, F32_PARITY);
// Initial states in, final states out (compared as values; they carry no tape).
parity!(lstm_with_state: Lstm<3, 4, 2, true>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank3<2, 5, 3>>::default()),
    forward = |m, x| {
        let dev = x.device().clone();
        m.forward_with_state(x, Some((fixed(&dev, 5), fixed(&dev, 6))))
    },
    F64_PARITY);
parity!(gru_with_state: Gru<3, 4, 2>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank3<2, 5, 3>>::default()),
    forward = |m, x| {
        let dev = x.device().clone();
        m.forward_with_state(x, Some(fixed(&dev, 5)))
    },
    F64_PARITY);
// Training forward with the inter-layer dropout at 0 (set on both copies).
parity!(lstm_train_dropout_0: Lstm<3, 4, 2, true>, f64, train,
    input = |dev| dev.sample_normal_like(&<Rank3<2, 5, 3>>::default()),
    prepare = |m| m.dropout = 0.0,
    forward = |m, x| m.forward_mut(x),
    F64_PARITY);
parity!(rnn_cell: RnnCell<3, 4>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank2<2, 3>>::default()),
    forward = |m, x| {
        let h = fixed::<Rank2<2, 4>, f64, _>(&x.device().clone(), 5).retaped();
        m.forward((x, h))
    },
    F64_PARITY);
parity!(lstm_cell: LstmCell<3, 4>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank2<2, 3>>::default()),
    forward = |m, x| {
        let dev = x.device().clone();
        let h = fixed::<Rank2<2, 4>, f64, _>(&dev, 5).retaped();
        let c = fixed::<Rank2<2, 4>, f64, _>(&dev, 6).retaped();
        m.forward((x, (h, c)))
    },
    F64_PARITY);
parity!(gru_cell: GruCell<3, 4>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank2<2, 3>>::default()),
    forward = |m, x| {
        let h = fixed::<Rank2<2, 4>, f64, _>(&x.device().clone(), 5).retaped();
        m.forward((x, h))
    },
    F64_PARITY);

// ---- Attention and the Transformer encoder ----

parity!(mha_self_attention: MultiHeadAttention<8, 2>, Rank3<2, 5, 8>, F64_PARITY);
parity!(mha_unbatched: MultiHeadAttention<8, 2>, Rank2<5, 8>, F64_PARITY);
parity!(mha_key_padding_mask: MultiHeadAttention<8, 2>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank3<2, 5, 8>>::default()),
    forward = |m, x| {
        let mask = x.device().tensor([[false, false, false, true, true], [false, true, false, false, false]]);
        m.try_self_attend(x, Some(&mask), false).unwrap()
    },
    F64_PARITY);
parity!(mha_causal_mask: MultiHeadAttention<8, 2>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank3<2, 5, 8>>::default()),
    forward = |m, x| m.try_self_attend(x, None, true).unwrap(),
    F64_PARITY);
// Padding only at the end, so that no query is left without a key under the causal mask.
parity!(mha_key_padding_and_causal_masks: MultiHeadAttention<8, 2>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank3<2, 5, 8>>::default()),
    forward = |m, x| {
        let mask = x.device().tensor([[false, false, false, true, true], [false, false, false, false, true]]);
        m.try_self_attend(x, Some(&mask), true).unwrap()
    },
    F64_PARITY);
parity!(f32 mha_f32: MultiHeadAttention<8, 2>, Rank3<2, 5, 8>, F32_PARITY);
parity!(layer_norm: LayerNorm<6>, Rank3<2, 4, 6>, F64_PARITY);
parity!(layer_norm_unbatched: LayerNorm<6>, Rank2<4, 6>, F64_PARITY);
parity!(encoder_layer_post_norm: TransformerEncoderLayer<8, 2, 16>, Rank3<2, 5, 8>, F64_PARITY);
parity!(encoder_layer_pre_norm: TransformerEncoderLayer<8, 2, 16, true>, Rank3<2, 5, 8>, F64_PARITY);
parity!(encoder_layer_unbatched: TransformerEncoderLayer<8, 2, 16>, Rank2<5, 8>, F64_PARITY);
parity!(encoder_two_layers: TransformerEncoder<8, 2, 16, 2>, Rank3<2, 5, 8>, F64_PARITY);
parity!(encoder_pre_norm_usize: TransformerEncoder<8, 2, 16, 2, true>,
    (usize, usize, Const<8>) = (2, 4, Const), F64_PARITY);
parity!(f32 encoder_f32: TransformerEncoder<8, 2, 16, 2>, Rank3<2, 5, 8>, F32_PARITY);
// Training forward with dropout 0 (set on both copies).
parity!(encoder_train_dropout_0: TransformerEncoder<8, 2, 16, 2>, f64, train,
    input = |dev| dev.sample_normal_like(&<Rank3<2, 5, 8>>::default()),
    prepare = |m| m.layers.iter_mut().for_each(|layer| layer.dropout = 0.0),
    forward = |m, x| m.forward_mut(x),
    F64_PARITY);

// ---- Models ----

use shapesafe::models::classic::Mlp;
use shapesafe::models::mobilenet::{FirstBlock, InvertedResidual, InvertedResidualSkip};
use shapesafe::models::resnet::{
    BasicBlock, BasicBlockDown, Bottleneck, BottleneckDown, Head, Stem,
};
use shapesafe::models::unet::DoubleConv;
use shapesafe::models::vgg::BnStage2;
use shapesafe::models::{
    ConvAutoencoder, ConvDecoder, ConvFeatures, ConvVae, LeNet5, UNetSmall, Vae, VisionTransformer,
};

parity!(mlp: Mlp<6, 8, 3>, Rank2<4, 6>, F64_PARITY);
parity!(vae_small: Vae<(Linear<6, 4>, Tanh), (Linear<2, 6>, Sigmoid), 4, 2>, Rank2<3, 6>, F64_PARITY);

parity!(lenet5: LeNet5, Rank4<2, 1, 28, 28>, F64_PARITY);
parity!(lenet5_usize_batch: LeNet5,
    (usize, Const<1>, Const<28>, Const<28>) = (3, Const, Const, Const), F64_PARITY);
parity!(f32 lenet5_f32: LeNet5, Rank4<2, 1, 28, 28>, F32_PARITY);
parity!(vgg_bn_stage2: BnStage2<3, 4>, Rank4<2, 3, 8, 8>, F64_PARITY);
parity!(train vgg_bn_stage2_train: BnStage2<3, 4>, Rank4<2, 3, 8, 8>, F64_PARITY);
parity!(resnet_basic_block: BasicBlock<4>, Rank4<2, 4, 6, 6>, F64_PARITY);
parity!(train resnet_basic_block_train: BasicBlock<4>, Rank4<2, 4, 6, 6>, F64_PARITY);
parity!(resnet_basic_block_down: BasicBlockDown<4, 8, 2>, Rank4<2, 4, 6, 6>, F64_PARITY);
parity!(train resnet_basic_block_down_train: BasicBlockDown<4, 8, 2>, Rank4<2, 4, 6, 6>, F64_PARITY);
parity!(resnet_bottleneck: Bottleneck<8, 4>, Rank4<2, 8, 5, 5>, F64_PARITY);
parity!(train resnet_bottleneck_down_train: BottleneckDown<4, 2, 8, 2>, Rank4<2, 4, 6, 6>, F64_PARITY);
// torchvision's ResNet stem (64 channels, 7x7 stride 2, max pool) into a block and the head.
parity!(resnet_stem_block_head: (Stem, BasicBlockDown<64, 8, 2>, Head<8, 3>), Rank4<2, 3, 16, 16>, F64_PARITY);
parity!(train resnet_stem_block_head_train: (Stem, BasicBlockDown<64, 8, 2>, Head<8, 3>),
    Rank4<2, 3, 16, 16>, F64_PARITY);
parity!(mobilenet_first_block: FirstBlock, Rank4<2, 32, 5, 5>, F64_PARITY);
parity!(mobilenet_inverted_residual: InvertedResidual<4, 8, 6, 2>, Rank4<2, 4, 7, 7>, F64_PARITY);
parity!(mobilenet_inverted_residual_skip: InvertedResidualSkip<4, 8>, Rank4<2, 4, 5, 5>, F64_PARITY);
parity!(train mobilenet_inverted_residual_skip_train: InvertedResidualSkip<4, 8>, Rank4<2, 4, 5, 5>, F64_PARITY);
parity!(unet_double_conv: DoubleConv<3, 4>, Rank4<2, 3, 6, 6>, F64_PARITY);
parity!(unet_small: UNetSmall<1, 2>, Rank4<2, 1, 8, 8>, F64_PARITY);
parity!(train unet_small_train: UNetSmall<1, 2>, Rank4<2, 1, 8, 8>, F64_PARITY);
parity!(conv_autoencoder: ConvAutoencoder<4>, Rank4<2, 1, 28, 28>, F64_PARITY);
parity!(conv_features_unbatched: ConvFeatures, Rank3<1, 28, 28>, F64_PARITY);
parity!(conv_decoder: ConvDecoder<4>, Rank2<2, 4>, F64_PARITY);
// Inference decodes the mean; reconstruction, mu and log_var are all compared.
parity!(conv_vae: ConvVae<4>, Rank4<2, 1, 28, 28>, F64_PARITY);
parity!(conv_vae_with_noise: ConvVae<4>, f64, eval,
    input = |dev| dev.sample_normal_like(&<Rank4<2, 1, 28, 28>>::default()),
    forward = |m, x| {
        let eps = fixed::<Rank2<2, 4>, f64, _>(&x.device().clone(), 5);
        m.forward_with_noise(x, eps)
    },
    F64_PARITY);
parity!(f32 conv_vae_f32: ConvVae<4>, Rank4<2, 1, 28, 28>, F32_PARITY);

type TinyVit = VisionTransformer<2, 4, 2, 4, 2, 6, 1, 3>;
parity!(vit_tiny: TinyVit, Rank4<2, 2, 4, 4>, F64_PARITY);
parity!(vit_tiny_unbatched: TinyVit, Rank3<2, 4, 4>, F64_PARITY);
parity!(vit_tiny_train_dropout_0: TinyVit, f64, train,
    input = |dev| dev.sample_normal_like(&<Rank4<2, 2, 4, 4>>::default()),
    prepare = |m| m.encoder.layers.iter_mut().for_each(|layer| layer.dropout = 0.0),
    forward = |m, x| m.forward_mut(x),
    F64_PARITY);

/// The pitfall the `prepare` steps above work around: dfdx's `ToDevice` rebuilds scalar fields
/// at their defaults instead of copying them, so a model moved to the GPU silently loses a
/// non-default dropout, batch-norm momentum or activation slope.
#[test]
fn to_device_rebuilds_scalar_fields_at_their_defaults() {
    let cpu = Cpu::seed_from_u64(0);
    let other = Other::default();
    let mut bn = cpu.build_module::<BatchNorm2d<2>, f64>();
    bn.momentum = 0.3;
    bn.epsilon = 1e-3;
    let copy = ToDevice::<f64, Cpu, Other>::to_device(&bn, &other);
    assert_eq!((copy.momentum, copy.epsilon), (0.1, 1e-5));
    assert_eq!(copy.running_var.as_vec(), bn.running_var.as_vec());
    let mut encoder = cpu.build_module::<TransformerEncoder<8, 2, 16, 2>, f64>();
    encoder
        .layers
        .iter_mut()
        .for_each(|layer| layer.dropout = 0.0);
    let copy = ToDevice::<f64, Cpu, Other>::to_device(&encoder, &other);
    assert!(copy.layers.iter().all(|layer| layer.dropout == 0.1));
    let elu = ToDevice::<f64, Cpu, Other>::to_device(&ELU { alpha: 1.7 }, &other);
    assert_eq!(elu.alpha, 1.0);
    // shapesafe's copy keeps the settings a module declares (the encoder's dropout), not
    // those it does not (batch norm's, the ELU's).
    let copy = shapesafe::device::to_device::<f64, Cpu, Other, _>(&encoder, &other).unwrap();
    assert!(copy.layers.iter().all(|layer| layer.dropout == 0.0));
    let copy = shapesafe::device::to_device::<f64, Cpu, Other, _>(&bn, &other).unwrap();
    assert_eq!((copy.momentum, copy.epsilon), (0.1, 1e-5));
}
