//! `BatchNorm2d`: batch normalisation over `(B, H, W)` per channel, PyTorch's train and eval modes.

use crate::kernels::batch_norm::{cpu::BatchNormDims, try_batch_norm};
use crate::shape::{batchnorm2d_name, check_batchnorm2d, ShapeInfer, StaticDim};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, ModuleMut};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;

/// The builder (architecture) type of [`BatchNorm2d`].
pub mod builder {
    /// Batch normalisation of `CHANNELS` feature maps, with a learnable per-channel
    /// scale and shift and running statistics for inference.
    ///
    /// PyTorch equivalent: `torch.nn.BatchNorm2d(CHANNELS)` (`eps=1e-5`,
    /// `momentum=0.1`, `affine=True`, `track_running_stats=True`), with its state-dict
    /// names: `weight` (starts at 1), `bias` (0), `running_mean` (0), `running_var` (1).
    /// The running statistics are buffers, not parameters: optimizers skip them, they
    /// are not counted in [`ShapeInfer::PARAMS`](crate::shape::ShapeInfer::PARAMS), and
    /// safetensors files keep them.
    ///
    /// - **Training** (`model.train()` in PyTorch) is
    ///   [`ModuleMut::forward_mut`](dfdx::nn::ModuleMut::forward_mut): each channel is
    ///   normalised with the mean and biased variance of the batch over `(B, H, W)`, and the
    ///   running statistics move towards the batch's (the variance unbiased):
    ///   `running = (1 - momentum) * running + momentum * batch`.
    /// - **Inference** (`model.eval()`) is [`Module::forward`](dfdx::nn::Module::forward):
    ///   the running statistics normalise and nothing changes.
    ///
    /// Both modes backpropagate into the input, `weight` and `bias` with any tape.
    ///
    /// # Generics
    /// - `CHANNELS`: the channels `C` of the input; any channel dim of that size is
    ///   accepted (a `Concat`'s `SumDim`, say), and another size is a build error:
    ///
    /// ```text
    /// shape mismatch: BatchNorm2d<64> expects 64 channels, but got 32 (its input is (32, 8, 8))
    /// ```
    ///
    /// # Shapes
    /// - `(C, H, W) -> (C, H, W)` (one image: a batch of one)
    /// - `(B, C, H, W) -> (B, C, H, W)`, `B` a `Const` or `usize`.
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let mut bn = dev.build_module::<BatchNorm2d<2>, f32>();
    /// let x: Tensor<Rank4<4, 2, 3, 3>, f32, _> = dev.sample_normal();
    /// // Training: batch statistics, running statistics updated.
    /// let y = bn.forward_mut(x.clone());
    /// assert_eq!(y.shape().concrete(), [4, 2, 3, 3]);
    /// assert_ne!(bn.running_mean.array(), [0.0; 2]);
    /// // Inference: running statistics.
    /// let _ = bn.forward(x);
    /// ```
    ///
    /// A batch norm sized for other channels does not build:
    ///
    /// ```compile_fail
    /// use shapesafe::prelude::*;
    /// type Net = (Conv2d<3, 32, 3>, BatchNorm2d<64>);
    /// shapesafe::assert_shapes!(Net: Rank3<3, 8, 8> => Rank3<32, 6, 6>);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct BatchNorm2d<const CHANNELS: usize>;
}

/// A built [`BatchNorm2d`](builder::BatchNorm2d) on device `D`; see the builder for
/// the two modes.
///
/// `epsilon` and `momentum` are plain fields, as in PyTorch's constructor: they are
/// not in the state dict (nor in safetensors files), and a module rebuilt from its
/// tensors (`to_device`, `to_dtype`) gets PyTorch's defaults back.
///
/// # Shapes
/// As [`builder::BatchNorm2d`].
///
/// ```
/// use shapesafe::prelude::*;
/// let bn = Cpu::default().build_module::<BatchNorm2d<8>, f32>();
/// assert_eq!(bn.weight.array(), [1.0; 8]);
/// assert_eq!(bn.running_var.array(), [1.0; 8]);
/// assert_eq!(bn.num_trainable_params(), 16);
/// ```
#[derive(Debug, Clone)]
pub struct BatchNorm2d<const CHANNELS: usize, E: Dtype, D: Storage<E>> {
    /// Per-channel scale `gamma`, trainable; starts at 1.
    pub weight: Tensor<Rank1<CHANNELS>, E, D>,
    /// Per-channel shift `beta`, trainable; starts at 0.
    pub bias: Tensor<Rank1<CHANNELS>, E, D>,
    /// Running mean of the channels, a buffer updated by training forwards; starts at 0.
    pub running_mean: Tensor<Rank1<CHANNELS>, E, D>,
    /// Running unbiased variance of the channels, a buffer; starts at 1.
    pub running_var: Tensor<Rank1<CHANNELS>, E, D>,
    /// Added to the variance before the square root; PyTorch's `eps`, 1e-5.
    pub epsilon: f64,
    /// Weight of the batch statistics in the running update; PyTorch's `momentum`, 0.1.
    pub momentum: f64,
}

impl<const CHANNELS: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::BatchNorm2d<CHANNELS>
where
    BatchNorm2d<CHANNELS, E, D>: BuildModule<D, E>,
{
    type Built = BatchNorm2d<CHANNELS, E, D>;
}

impl<const CHANNELS: usize, E: Dtype, D: Device<E>> TensorCollection<E, D>
    for BatchNorm2d<CHANNELS, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = BatchNorm2d<CHANNELS, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    TensorOptions::reset_to_ones(),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
                // Buffers: saved and moved with the module, never touched by optimizers.
                Self::tensor(
                    "running_mean",
                    |s| &s.running_mean,
                    |s| &mut s.running_mean,
                    TensorOptions::detached(|t| t.try_fill_with_zeros()),
                ),
                Self::tensor(
                    "running_var",
                    |s| &s.running_var,
                    |s| &mut s.running_var,
                    TensorOptions::detached(|t| t.try_fill_with_ones()),
                ),
            ),
            |(weight, bias, running_mean, running_var)| BatchNorm2d {
                weight,
                bias,
                running_mean,
                running_var,
                epsilon: DEFAULT_EPSILON,
                momentum: DEFAULT_MOMENTUM,
            },
        )
    }
}

const DEFAULT_EPSILON: f64 = 1e-5;
const DEFAULT_MOMENTUM: f64 = 0.1;

impl<const CHANNELS: usize, C: StaticDim, H: StaticDim, W: StaticDim> ShapeInfer<(C, H, W)>
    for builder::BatchNorm2d<CHANNELS>
{
    type Output = (C, H, W);
    const CHECK: () = check_batchnorm2d(CHANNELS, [C::SIZE, H::SIZE, W::SIZE]);
    const PARAMS: usize = 2 * CHANNELS;
    fn name() -> String {
        batchnorm2d_name(CHANNELS).as_str().to_string()
    }
}

/// The per-channel axes of `(B, C, H, W)` that statistics reduce over.
type Spatial = Axes3<0, 2, 3>;

/// A batch of images.
type Images<B, C, H, W, E, D, T> = Tensor<(B, C, H, W), E, D, T>;

/// A batch of images, or the device's error.
type Normalised<B, C, H, W, E, D, T> = Result<Images<B, C, H, W, E, D, T>, <D as HasErr>::Err>;

/// The kernel's view of a `(B, C, H, W)` input.
fn dims<B: Dim, C: Dim, H: Dim, W: Dim>(shape: &(B, C, H, W)) -> BatchNormDims {
    BatchNormDims {
        batch: shape.0.size(),
        channels: shape.1.size(),
        plane: shape.2.size() * shape.3.size(),
    }
}

impl<const CHANNELS: usize, E: Dtype, D: Device<E>> BatchNorm2d<CHANNELS, E, D> {
    fn scalar(&self, value: f64) -> E {
        E::from_f64(value).unwrap_or_default()
    }

    /// A per-channel vector as the `(C,)` of the input it is broadcast over; the
    /// sizes agree because the layer's check passed.
    fn as_channels<C: StaticDim, T: Tape<E, D>>(
        t: Tensor<Rank1<CHANNELS>, E, D, T>,
    ) -> Tensor<(C,), E, D, T> {
        match t.try_realize::<(C,)>() {
            Ok(t) => t,
            Err(_) => unreachable!("BatchNorm2d's compile-time check guarantees the channels"),
        }
    }

    fn eval_forward<B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, T: Tape<E, D>>(
        &self,
        x: Images<B, C, H, W, E, D, T>,
    ) -> Normalised<B, C, H, W, E, D, T> {
        const { <builder::BatchNorm2d<CHANNELS> as ShapeInfer<(C, H, W)>>::CHECK };
        let running = Some((&self.running_mean, &self.running_var));
        let d = dims(x.shape());
        let x = match try_batch_norm(x, d, &self.weight, &self.bias, self.epsilon, running) {
            Ok(y) => return y.map(|(y, _)| y),
            Err(x) => x,
        };
        let shape = *x.shape();
        let std = self
            .running_var
            .clone()
            .try_add(self.scalar(self.epsilon))?
            .try_sqrt()?;
        let scale = self.weight.retaped::<T>().try_div(std)?;
        let mean = Self::as_channels::<C, _>(self.running_mean.clone());
        let scale = Self::as_channels::<C, _>(scale);
        let bias = Self::as_channels::<C, _>(self.bias.retaped::<T>());
        x.try_sub(mean.try_broadcast_like::<_, Spatial>(&shape)?)?
            .try_mul(scale.try_broadcast_like::<_, Spatial>(&shape)?)?
            .try_add(bias.try_broadcast_like::<_, Spatial>(&shape)?)
    }

    fn train_forward<B: Dim, C: StaticDim, H: StaticDim, W: StaticDim, T: Tape<E, D>>(
        &mut self,
        x: Images<B, C, H, W, E, D, T>,
    ) -> Normalised<B, C, H, W, E, D, T> {
        const { <builder::BatchNorm2d<CHANNELS> as ShapeInfer<(C, H, W)>>::CHECK };
        let shape = *x.shape();
        let count = shape.0.size() * H::SIZE * W::SIZE;
        // PyTorch raises here too: one value per channel has no variance to normalise by.
        assert!(
            count > 1,
            "Expected more than 1 value per channel when training, got input size [{}, {}, {}, {}]",
            shape.0.size(),
            C::SIZE,
            H::SIZE,
            W::SIZE
        );
        let x = match try_batch_norm(
            x,
            dims(&shape),
            &self.weight,
            &self.bias,
            self.epsilon,
            None,
        ) {
            Ok(y) => {
                let (y, stats) = y?;
                let (mean, var) = stats.expect("training mode returns the batch statistics");
                self.update_running(mean, var, count)?;
                return Ok(y);
            }
            Err(x) => x,
        };
        let mean = x.retaped::<T>().try_mean::<(C,), Spatial>()?;
        let batch_mean = mean.retaped::<NoneTape>();
        let centered = x.try_sub(mean.try_broadcast_like::<_, Spatial>(&shape)?)?;
        let var = centered
            .retaped::<T>()
            .try_square()?
            .try_mean::<(C,), Spatial>()?;
        let batch_var = var.retaped::<NoneTape>();
        let std = var.try_add(self.scalar(self.epsilon))?.try_sqrt()?;
        let scale = Self::as_channels::<C, _>(self.weight.retaped::<T>()).try_div(std)?;
        let bias = Self::as_channels::<C, _>(self.bias.retaped::<T>());
        let y = centered
            .try_mul(scale.try_broadcast_like::<_, Spatial>(&shape)?)?
            .try_add(bias.try_broadcast_like::<_, Spatial>(&shape)?)?;

        // Off the tape: the running statistics are state, not part of the graph.
        let to_channels = |t: Tensor<(C,), E, D>| match t.try_realize::<Rank1<CHANNELS>>() {
            Ok(t) => t,
            Err(_) => unreachable!("BatchNorm2d's compile-time check guarantees the channels"),
        };
        self.update_running(to_channels(batch_mean), to_channels(batch_var), count)?;
        Ok(y)
    }

    /// PyTorch's running update from a batch of `count` values per channel, with the
    /// unbiased variance.
    fn update_running(
        &mut self,
        batch_mean: Tensor<Rank1<CHANNELS>, E, D>,
        batch_var: Tensor<Rank1<CHANNELS>, E, D>,
        count: usize,
    ) -> Result<(), D::Err> {
        let momentum = self.momentum;
        let unbiased = count as f64 / (count - 1) as f64;
        self.running_mean
            .try_axpy(1.0 - momentum, &batch_mean, momentum)?;
        self.running_var
            .try_axpy(1.0 - momentum, &batch_var, momentum * unbiased)
    }
}

impl<
        const CHANNELS: usize,
        B: Dim,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, C, H, W), E, D, T>> for BatchNorm2d<CHANNELS, E, D>
{
    type Output = Tensor<(B, C, H, W), E, D, T>;
    type Error = D::Err;

    /// Inference: normalises with the running statistics, which stay as they are.
    fn try_forward(&self, x: Tensor<(B, C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        self.eval_forward(x)
    }
}

impl<
        const CHANNELS: usize,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(C, H, W), E, D, T>> for BatchNorm2d<CHANNELS, E, D>
{
    type Output = Tensor<(C, H, W), E, D, T>;
    type Error = D::Err;

    /// Inference on one image.
    fn try_forward(&self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let x = x.try_reshape_like(&(Const::<1>, C::default(), H::default(), W::default()))?;
        self.eval_forward(x)?.try_reshape_like(&Default::default())
    }
}

impl<
        const CHANNELS: usize,
        B: Dim,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > ModuleMut<Tensor<(B, C, H, W), E, D, T>> for BatchNorm2d<CHANNELS, E, D>
{
    type Output = Tensor<(B, C, H, W), E, D, T>;
    type Error = D::Err;

    /// Training: normalises with the batch's statistics and updates the running ones.
    ///
    /// # Panics
    /// When `B * H * W` is 1 (one value per channel), as PyTorch raises.
    fn try_forward_mut(
        &mut self,
        x: Tensor<(B, C, H, W), E, D, T>,
    ) -> Result<Self::Output, D::Err> {
        self.train_forward(x)
    }
}

impl<
        const CHANNELS: usize,
        C: StaticDim,
        H: StaticDim,
        W: StaticDim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > ModuleMut<Tensor<(C, H, W), E, D, T>> for BatchNorm2d<CHANNELS, E, D>
{
    type Output = Tensor<(C, H, W), E, D, T>;
    type Error = D::Err;

    /// Training on one image: a batch of one, statistics over `(H, W)`.
    ///
    /// # Panics
    /// When `H * W` is 1, as PyTorch raises.
    fn try_forward_mut(&mut self, x: Tensor<(C, H, W), E, D, T>) -> Result<Self::Output, D::Err> {
        let x = x.try_reshape_like(&(Const::<1>, C::default(), H::default(), W::default()))?;
        self.train_forward(x)?.try_reshape_like(&Default::default())
    }
}
