//! `LearningRate`: read and set an optimizer's learning rate, so schedules can drive it.

/// An optimizer whose learning rate can be read and changed between steps.
///
/// PyTorch equivalent: writing `param_group["lr"]`, which its LR schedulers do.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::train::LearningRate;
/// let model = Cpu::default().build_module::<Linear<2, 1>, f32>();
/// let mut opt = shapesafe::optim::Adam::new(&model, AdamConfig::default());
/// opt.set_learning_rate(0.5);
/// assert_eq!(opt.learning_rate(), 0.5);
/// ```
pub trait LearningRate {
    /// The rate the next step uses.
    fn learning_rate(&self) -> f64;
    /// Sets the rate for the following steps.
    fn set_learning_rate(&mut self, lr: f64);
}

macro_rules! dfdx_learning_rate {
    ($($opt:ident),*) => {$(
        impl<M, E: dfdx::shapes::Dtype, D: dfdx::tensor::Storage<E>> LearningRate
            for dfdx::optim::$opt<M, E, D>
        {
            fn learning_rate(&self) -> f64 {
                self.cfg.lr
            }
            fn set_learning_rate(&mut self, lr: f64) {
                self.cfg.lr = lr;
            }
        }
    )*};
}
dfdx_learning_rate!(Sgd, Adam, RMSprop);

macro_rules! shapesafe_learning_rate {
    ($($opt:ident),*) => {$(
        impl<M, E: dfdx::shapes::Dtype, D: dfdx::prelude::Device<E>> LearningRate
            for crate::optim::$opt<M, E, D>
        {
            fn learning_rate(&self) -> f64 {
                self.cfg.lr
            }
            fn set_learning_rate(&mut self, lr: f64) {
                self.cfg.lr = lr;
            }
        }
    )*};
}
shapesafe_learning_rate!(Sgd, Adam, RMSprop);
