//! Choosing the device a model runs on, as PyTorch's `torch.device("cuda" if available else "cpu")`.
//!
//! dfdx's devices are types (`Cpu`, `Cuda`), so a device picked at run time (a `--device`
//! flag) cannot be a value of one type. [`with_device!`](crate::with_device) turns a
//! [`DeviceKind`] into a block that is compiled once per device type, with the device bound
//! to a name: the compiler checks the model on each device it can run on.

use crate::{Error, Result};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, ScalarOptions, TensorCollection, TensorOptions, TensorVisitor, ViewTensorRef,
};
use dfdx::prelude::{Device, Dtype, HasShape, Shape, Tensor};
use num_traits::NumCast;
use std::fmt;
use std::str::FromStr;

/// A device named at run time: `cpu`, `cuda` or `cuda:N`, PyTorch's spellings.
///
/// Parsing accepts `cuda` in every build; a build without the `cuda` feature reports that
/// it has no CUDA support when [`with_device!`](crate::with_device) is asked for it, so the
/// message says what to do rather than "unknown device".
///
/// # Shapes
///
/// A device holds tensors of any shape; choosing one changes no shape.
///
/// ```
/// use shapesafe::device::DeviceKind;
///
/// assert_eq!("cpu".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
/// assert_eq!("cuda".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(0));
/// assert_eq!("cuda:1".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(1));
/// assert_eq!(DeviceKind::Cuda(1).to_string(), "cuda:1");
/// let err = "gpu".parse::<DeviceKind>().unwrap_err();
/// assert_eq!(err.to_string(), "unknown device \"gpu\": expected cpu, cuda or cuda:N");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// dfdx's `Cpu`.
    Cpu,
    /// dfdx's `Cuda`, on the GPU with this ordinal (0 is the first).
    Cuda(usize),
}

impl DeviceKind {
    /// The first GPU when this build has CUDA and a GPU answers, else the CPU: the
    /// examples' default.
    ///
    /// # Shapes
    ///
    /// Not shape-related.
    ///
    /// ```
    /// use shapesafe::device::{cuda_is_available, DeviceKind};
    ///
    /// let kind = DeviceKind::best_available();
    /// assert_eq!(kind == DeviceKind::Cuda(0), cuda_is_available());
    /// ```
    pub fn best_available() -> Self {
        if cuda_is_available() {
            DeviceKind::Cuda(0)
        } else {
            DeviceKind::Cpu
        }
    }
}

impl FromStr for DeviceKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let unknown = || {
            Error::Usage(format!(
                "unknown device {s:?}: expected cpu, cuda or cuda:N"
            ))
        };
        match s {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map(DeviceKind::Cuda).map_err(|_| unknown()),
                None => Err(unknown()),
            },
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

/// Whether this build has CUDA and the driver reports at least one GPU: PyTorch's
/// `torch.cuda.is_available()`.
///
/// Always `false` without the `cuda` feature. With it, this initialises the driver, which
/// takes a moment the first time, and asks it how many GPUs there are.
///
/// # Shapes
///
/// Not shape-related.
///
/// ```
/// # #[cfg(not(feature = "cuda"))]
/// assert!(!shapesafe::device::cuda_is_available());
/// ```
pub fn cuda_is_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        matches!(gpu_count(), Ok(n) if n > 0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// How many GPUs the driver reports, or why it could not say (the driver's error name).
///
/// dfdx's `Cuda::try_build` unwraps these same calls, so it panics on a machine without a
/// GPU; asking first turns that into an error. The error is the bare `CUresult`: cudarc's
/// own formatting asks the driver for a message, which fails when the driver is what failed.
#[cfg(feature = "cuda")]
fn gpu_count() -> std::result::Result<usize, String> {
    use cudarc::driver::result;
    result::init().map_err(|e| format!("{:?}", e.0))?;
    let count = result::device::get_count().map_err(|e| format!("{:?}", e.0))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// dfdx's `Cpu` with its random numbers seeded by `seed`.
///
/// # Shapes
///
/// Not shape-related.
///
/// ```
/// let dev = shapesafe::device::cpu(7);
/// # let _ = dev;
/// ```
pub fn cpu(seed: u64) -> dfdx::tensor::Cpu {
    dfdx::tensor::Cpu::seed_from_u64(seed)
}

/// dfdx's `Cuda` on GPU `ordinal`, seeded by `seed`, or a clear error when the driver
/// fails, there is no such GPU, or it cannot be opened.
///
/// # Shapes
///
/// Not shape-related.
///
/// ```no_run
/// let dev = shapesafe::device::cuda(0, 7).unwrap();
/// # let _ = dev;
/// ```
#[cfg(feature = "cuda")]
pub fn cuda(ordinal: usize, seed: u64) -> Result<dfdx::tensor::Cuda> {
    let fail = |why: String| {
        Error::Device(format!(
            "could not open CUDA device {ordinal}: {why}; check `nvidia-smi`, or pass --device cpu"
        ))
    };
    match gpu_count() {
        Err(driver) => return Err(fail(format!("the CUDA driver failed with {driver}"))),
        Ok(count) if ordinal >= count => {
            let gpus = if count == 1 { "GPU" } else { "GPUs" };
            return Err(fail(format!("the driver reports {count} {gpus}")));
        }
        Ok(_) => {}
    }
    dfdx::tensor::Cuda::try_build(ordinal, seed).map_err(|e| fail(format!("{e:?}")))
}

/// The error for `cuda` in a build without the `cuda` feature.
#[doc(hidden)]
pub fn no_cuda(kind: DeviceKind) -> Error {
    Error::Usage(format!(
        "device {kind} asked for, but this build has no CUDA support: rebuild with `--features cuda`"
    ))
}

/// Runs a block with a device chosen at run time bound to a name: dfdx's `Cpu` for
/// [`DeviceKind::Cpu`], `Cuda` for [`DeviceKind::Cuda`]. The block is compiled once per
/// device type, so generic code inside it is checked on every device.
///
/// `with_device!(kind, seed, |dev| block)`: `seed` seeds the device's random numbers; the
/// block must evaluate to a `Result<T, E>` with `E: From<shapesafe::Error>`, because
/// opening a GPU can fail and a build without the `cuda` feature answers `cuda` with an
/// error.
///
/// # Shapes
///
/// Not shape-related: the model's shapes are checked inside the block as anywhere else.
///
/// ```
/// use shapesafe::device::DeviceKind;
/// use shapesafe::prelude::*;
///
/// fn norm<D: Device<f32>>(dev: D) -> shapesafe::Result<f32> {
///     let x = dev.tensor([3.0f32, 4.0]);
///     Ok(x.square().sum().sqrt().as_vec()[0])
/// }
///
/// let kind: DeviceKind = "cpu".parse()?;
/// let n = shapesafe::with_device!(kind, 0, |dev| norm(dev))?;
/// assert_eq!(n, 5.0);
/// # #[cfg(not(feature = "cuda"))]
/// assert!(shapesafe::with_device!(DeviceKind::Cuda(0), 0, |dev| norm(dev)).is_err());
/// # Ok::<(), shapesafe::Error>(())
/// ```
#[macro_export]
macro_rules! with_device {
    ($kind:expr, $seed:expr, |$dev:ident| $body:expr) => {{
        let seed: u64 = $seed;
        match $kind {
            $crate::device::DeviceKind::Cpu => {
                let $dev = $crate::device::cpu(seed);
                $body
            }
            kind @ $crate::device::DeviceKind::Cuda(ordinal) => {
                $crate::__with_cuda!(kind, ordinal, seed, |$dev| $body)
            }
        }
    }};
}

/// `with_device!`'s CUDA arm in a build with the `cuda` feature. It is chosen when
/// shapesafe is compiled, so the caller's own features do not matter.
#[cfg(feature = "cuda")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cuda {
    ($kind:ident, $ordinal:ident, $seed:ident, |$dev:ident| $body:expr) => {{
        let _ = $kind;
        match $crate::device::cuda($ordinal, $seed) {
            Ok($dev) => $body,
            Err(e) => Err(e.into()),
        }
    }};
}

/// `with_device!`'s CUDA arm in a build without the `cuda` feature: an error, and the
/// block is not compiled for `Cuda`.
#[cfg(not(feature = "cuda"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cuda {
    ($kind:ident, $ordinal:ident, $seed:ident, |$dev:ident| $body:expr) => {{
        let _ = ($ordinal, $seed);
        Err($crate::device::no_cuda($kind).into())
    }};
}

/// Copies `model` to device `dev`, tensors and settings: PyTorch's `model.to(device)`.
///
/// dfdx's `ToDevice::to_device` copies the tensors but rebuilds the settings a module
/// declares (`TransformerEncoderLayer`'s and dfdx's `Dropout`'s probabilities, `LayerNorm`'s
/// `eps`) at their defaults. This copies them too. Settings a module does not declare,
/// such as `BatchNorm2d`'s `epsilon` and `momentum` (left out as PyTorch's state dict
/// leaves them out), are rebuilt at their defaults by either copy.
///
/// # Shapes
///
/// The copy has the same type on the new device; no shape changes.
///
/// ```
/// use shapesafe::prelude::*;
///
/// let cpu = Cpu::default();
/// let mut model = cpu.build_module::<TransformerEncoderLayer<8, 2, 16>, f32>();
/// model.dropout = 0.3;
/// model.norm1.eps = 1e-6;
/// let other = Cpu::seed_from_u64(1); // a `Cuda` device in a CUDA build
/// let copy = shapesafe::device::to_device(&model, &other)?;
/// assert_eq!((copy.dropout, copy.norm1.eps), (0.3, 1e-6));
/// assert_eq!(copy.linear1.weight.as_vec(), model.linear1.weight.as_vec());
/// let reset = model.to_device(&other); // dfdx's
/// assert_eq!((reset.dropout, reset.norm1.eps), (0.1, 1e-5));
/// # Ok::<(), shapesafe::Error>(())
/// ```
pub fn to_device<E, D1, D2, M>(model: &M, dev: &D2) -> Result<M::To<E, D2>>
where
    E: Dtype,
    D1: Device<E>,
    D2: Device<E>,
    M: TensorCollection<E, D1>,
{
    let copy = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut Copier { dev },
    })
    .map_err(|e| Error::Device(format!("copying a model to another device: {e:?}")))?;
    // The copier returns a value for every tensor and scalar, so the walker always builds one.
    copy.ok_or_else(|| Error::Device("copying a model to another device built nothing".into()))
}

/// Copies each tensor's values to `dev`, and each scalar setting as it is.
struct Copier<'a, D2> {
    dev: &'a D2,
}

impl<E: Dtype, D1: Device<E>, D2: Device<E>> TensorVisitor<E, D1> for Copier<'_, D2> {
    type Viewer = ViewTensorRef;
    type Err = D2::Err;
    type E2 = E;
    type D2 = D2;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, E, D1>,
        t: &Tensor<S, E, D1>,
    ) -> Result<Option<Tensor<S, E, D2>>, D2::Err> {
        Ok(Some(self.dev.try_tensor_from_vec(t.as_vec(), *t.shape())?))
    }

    fn visit_scalar<N: NumCast>(
        &mut self,
        opts: ScalarOptions<N>,
        value: &N,
    ) -> Result<Option<N>, D2::Err> {
        // Scalars are f32/f64/usize settings, all exact through f64.
        Ok(Some(
            value
                .to_f64()
                .and_then(<N as NumCast>::from)
                .unwrap_or(opts.default),
        ))
    }
}
