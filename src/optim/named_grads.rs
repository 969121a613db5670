//! Gradients by parameter name, as PyTorch's `{n: p.grad for n, p in model.named_parameters()}`:
//! for looking at what a step computed.

use crate::optim::params::{walk_grads, GradVisitor};
use crate::{Error, Result};
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::{Device, Dtype, Gradients, HasShape, Shape, Tensor};

/// One trainable parameter's gradient: its name, its shape and its values in row-major
/// order (a copy).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedGrad<E> {
    /// dfdx's dotted name of the parameter, e.g. `0.weight` (the names safetensors files
    /// of the model use).
    pub name: String,
    /// The parameter's dims.
    pub shape: Vec<usize>,
    /// The gradient's values.
    pub values: Vec<E>,
}

/// The gradient of every trainable parameter of `model` that has one in `grads`, by name, in
/// dfdx's walk order. Parameters without a gradient are left out, as PyTorch's `p.grad`
/// is `None` for them.
///
/// # Shapes
/// Each entry's `shape` is its parameter's; `values` holds that many elements.
///
/// ```
/// use shapesafe::optim::named_grads;
/// use shapesafe::prelude::*;
/// let dev = Cpu::default();
/// let model = dev.build_module::<(Linear<3, 2>, ReLU, Linear<2, 1>), f32>();
/// let x: Tensor<Rank1<3>, f32, _> = dev.tensor([1.0, 2.0, 3.0]);
/// let grads = model.forward(x.traced(model.alloc_grads())).sum().backward();
/// let named = named_grads(&model, &grads).unwrap();
/// let names: Vec<&str> = named.iter().map(|g| g.name.as_str()).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// assert_eq!(named[0].shape, [2, 3]);
/// assert_eq!(named[3].values, [1.0]); // d(sum)/d(bias) of the last layer
/// ```
pub fn named_grads<M, E, D>(model: &M, grads: &Gradients<E, D>) -> Result<Vec<NamedGrad<E>>>
where
    M: TensorCollection<E, D> + Clone,
    E: Dtype,
    D: Device<E>,
{
    let mut collect = Collect(Vec::new());
    walk_grads(model, grads, &mut collect).map_err(Error::device)?;
    Ok(collect.0)
}

struct Collect<E>(Vec<NamedGrad<E>>);

impl<'g, E: Dtype, D: Device<E>> GradVisitor<E, D, &'g Gradients<E, D>> for Collect<E> {
    fn visit<S: Shape>(
        &mut self,
        name: &str,
        _param: &Tensor<S, E, D>,
        grad: Tensor<S, E, D>,
        _grads: &mut &'g Gradients<E, D>,
    ) -> std::result::Result<(), D::Err> {
        self.0.push(NamedGrad {
            name: name.to_string(),
            shape: grad.shape().concrete().into(),
            values: grad.as_vec(),
        });
        Ok(())
    }
}
