//! Dropout layers (dfdx's own) with shape inference: identity in inference, random zeros in training.

use crate::shape::{ShapeInfer, StaticShape};

/// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`,
/// dfdx's own layer; `p` is a field (0.5 by default).
///
/// PyTorch equivalent: `torch.nn.Dropout(p)`. [`Module::forward`](dfdx::nn::Module::forward)
/// is inference (`model.eval()`): the input unchanged, and it takes untraced tensors only.
/// [`ModuleMut::forward_mut`](dfdx::nn::ModuleMut::forward_mut) is training
/// (`model.train()`) and takes traced tensors only; dfdx makes the other pairings
/// compile errors so that a training step cannot skip its dropout by mistake.
///
/// # Shapes
/// Any shape, unchanged; no parameters.
///
/// ```
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// type Head = (Flatten, Dropout, Linear<16, 2>);
/// shapesafe::assert_shapes!(Head: Rank3<1, 4, 4> => Rank1<2>, params = 34);
/// let mut dropout = Dropout { p: 0.5 };
/// let x: Tensor<Rank1<1000>, f32, _> = dev.ones();
/// assert_eq!(dropout.forward(x.clone()).array(), [1.0; 1000]);
/// let y = dropout.forward_mut(x.trace(Gradients::leaky()));
/// assert!(y.array().iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
pub use dfdx::nn::modules::Dropout;

/// Dropout with probability `1 / N`, fixed in the type; dfdx's own layer.
///
/// PyTorch equivalent: `torch.nn.Dropout(1 / N)`; the modes are as for [`Dropout`].
///
/// # Shapes
/// Any shape, unchanged; no parameters.
///
/// ```
/// use shapesafe::prelude::*;
/// type Net = (Linear<8, 8>, ReLU, DropoutOneIn<4>, Linear<8, 2>);
/// shapesafe::assert_shapes!(Net: Rank1<8> => Rank1<2>, params = 90);
/// assert_eq!(<DropoutOneIn<4> as ShapeInfer<Rank1<8>>>::name(), "DropoutOneIn<4>");
/// ```
pub use dfdx::nn::modules::DropoutOneIn;

impl<S: StaticShape> ShapeInfer<S> for Dropout {
    type Output = S;
    const CHECK: () = ();
    const PARAMS: usize = 0;
    fn name() -> String {
        "Dropout".to_string()
    }
}

impl<const N: usize, S: StaticShape> ShapeInfer<S> for DropoutOneIn<N> {
    type Output = S;
    const CHECK: () = ();
    const PARAMS: usize = 0;
    fn name() -> String {
        format!("DropoutOneIn<{N}>")
    }
}
