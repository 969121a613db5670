//! `PolicyValue`: one trunk and two heads on it, AlphaZero's network, with both outputs' shapes
//! in the type and in the summary.

use crate::shape::{name_rows, ShapeInfer, StaticShape, Summary};
use dfdx::nn::{BuildOnDevice, Module, ModuleMut, ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

/// A trunk whose features feed two heads, returned as `(policy, value)`: AlphaZero's
/// policy/value network (a ResNet trunk, move logits and a position value), or any model
/// with two outputs.
///
/// PyTorch equivalent: a module whose `forward` is
/// `f = self.trunk(x); return self.policy(f), self.value(f)`, with those three attribute
/// names in its state dict (`trunk.*`, `policy.*`, `value.*`).
///
/// Both heads run in the same mode (`forward` or `forward_mut`). On a tape, the trunk's
/// operations travel with the policy output and the value head's own with the value output,
/// so `(policy_loss + value_loss).backward()` reaches every parameter; a loss on the value
/// alone reaches only the value head.
///
/// # Generics
/// - `Trunk`: the shared layers, `S -> F`.
/// - `PolicyHead`: `F -> P`; `ValueHead`: `F -> V`.
///
/// # Shapes
/// - `S -> (P, V)`; batched `(B, S..) -> ((B, P..), (B, V..))`. [`HeadsInfer`] names `P`
///   and `V` at compile time, and [`PolicyValue::summary`] lists the three parts.
///
/// ```
/// use shapesafe::prelude::*;
/// type Net = PolicyValue<
///     (Flatten, Linear<18, 32>, ReLU),
///     Linear<32, 9>,
///     (Linear<32, 1>, Tanh),
/// >;
/// type Policy = <Net as HeadsInfer<Rank3<2, 3, 3>>>::PolicyOutput;
/// assert_eq!(<Policy as StaticShape>::DIMS, &[9]);
/// assert_eq!(<Net as HeadsInfer<Rank3<2, 3, 3>>>::PARAMS, 608 + 297 + 33);
/// let dev = Cpu::default();
/// let net = dev.build_module::<Net, f32>();
/// let (policy, value) = net.forward(dev.zeros::<Rank4<5, 2, 3, 3>>());
/// assert_eq!((policy.shape().concrete(), value.shape().concrete()), ([5, 9], [5, 1]));
/// println!("{}", Net::summary::<Rank3<2, 3, 3>>());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyValue<Trunk, PolicyHead, ValueHead> {
    /// The shared layers.
    pub trunk: Trunk,
    /// The first head (AlphaZero's move logits).
    pub policy: PolicyHead,
    /// The second head (AlphaZero's position value).
    pub value: ValueHead,
}

/// Shape inference for a model with a policy and a value output: both shapes, the checks
/// of all three parts, and the parameter count.
///
/// # Shapes
/// `Input -> (PolicyOutput, ValueOutput)`.
///
/// ```
/// use shapesafe::prelude::*;
/// type Net = PolicyValue<Linear<4, 8>, Linear<8, 3>, Linear<8, 1>>;
/// type Value = <Net as HeadsInfer<Rank1<4>>>::ValueOutput;
/// assert_eq!(<Value as StaticShape>::DIMS, &[1]);
/// ```
pub trait HeadsInfer<Input: StaticShape> {
    /// The policy head's output shape.
    type PolicyOutput: StaticShape;
    /// The value head's output shape.
    type ValueOutput: StaticShape;
    /// The trunk's and both heads' compile-time checks.
    const CHECK: ();
    /// Trunk and heads together.
    const PARAMS: usize;
}

impl<S, Trunk, PolicyHead, ValueHead> HeadsInfer<S> for PolicyValue<Trunk, PolicyHead, ValueHead>
where
    S: StaticShape,
    Trunk: ShapeInfer<S>,
    PolicyHead: ShapeInfer<Trunk::Output>,
    ValueHead: ShapeInfer<Trunk::Output>,
{
    type PolicyOutput = PolicyHead::Output;
    type ValueOutput = ValueHead::Output;
    const CHECK: () = {
        let () = Trunk::CHECK;
        let () = PolicyHead::CHECK;
        let () = ValueHead::CHECK;
    };
    const PARAMS: usize = Trunk::PARAMS + PolicyHead::PARAMS + ValueHead::PARAMS;
}

impl<Trunk, PolicyHead, ValueHead> PolicyValue<Trunk, PolicyHead, ValueHead> {
    /// The layers of the trunk, then of each head, labelled `trunk`, `policy`, `value`;
    /// the heads' last rows are the two output shapes.
    ///
    /// # Shapes
    /// Not a layer; see the type's example.
    pub fn summary<S: StaticShape>() -> Summary
    where
        Trunk: ShapeInfer<S>,
        PolicyHead: ShapeInfer<Trunk::Output>,
        ValueHead: ShapeInfer<Trunk::Output>,
    {
        let mut rows = Vec::new();
        let mut part = Vec::new();
        for (name, summarize) in [
            ("trunk", Trunk::summarize as fn(&mut Vec<_>)),
            ("policy", PolicyHead::summarize),
            ("value", ValueHead::summarize),
        ] {
            summarize(&mut part);
            name_rows(&mut part, name);
            rows.append(&mut part);
        }
        Summary {
            input: S::DIMS.to_vec(),
            rows,
        }
    }
}

impl<D: Device<E>, E: Dtype, Trunk, PolicyHead, ValueHead> BuildOnDevice<D, E>
    for PolicyValue<Trunk, PolicyHead, ValueHead>
where
    Trunk: BuildOnDevice<D, E>,
    PolicyHead: BuildOnDevice<D, E>,
    ValueHead: BuildOnDevice<D, E>,
{
    type Built = PolicyValue<Trunk::Built, PolicyHead::Built, ValueHead::Built>;
}

impl<E: Dtype, D: Device<E>, Trunk, PolicyHead, ValueHead> TensorCollection<E, D>
    for PolicyValue<Trunk, PolicyHead, ValueHead>
where
    Trunk: TensorCollection<E, D>,
    PolicyHead: TensorCollection<E, D>,
    ValueHead: TensorCollection<E, D>,
{
    type To<E2: Dtype, D2: Device<E2>> =
        PolicyValue<Trunk::To<E2, D2>, PolicyHead::To<E2, D2>, ValueHead::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("trunk", |s| &s.trunk, |s| &mut s.trunk),
                Self::module("policy", |s| &s.policy, |s| &mut s.policy),
                Self::module("value", |s| &s.value, |s| &mut s.value),
            ),
            |(trunk, policy, value)| PolicyValue {
                trunk,
                policy,
                value,
            },
        )
    }
}

/// `Module` and `ModuleMut`: the trunk once, each head on its features.
macro_rules! policy_value_forward {
    ($Trait:ident, $method:ident, $($self_ref:tt)+) => {
        impl<X, F, E, D, T, Trunk, PolicyHead, ValueHead> $Trait<X>
            for PolicyValue<Trunk, PolicyHead, ValueHead>
        where
            F: Shape,
            E: Dtype,
            D: Device<E>,
            T: Tape<E, D>,
            Trunk: $Trait<X, Output = Tensor<F, E, D, T>, Error = D::Err>,
            PolicyHead: $Trait<Tensor<F, E, D, T>, Error = D::Err>,
            ValueHead: $Trait<Tensor<F, E, D, T>, Error = D::Err>,
        {
            type Output = (PolicyHead::Output, ValueHead::Output);
            type Error = D::Err;

            fn $method($($self_ref)+ self, x: X) -> Result<Self::Output, D::Err> {
                let features = self.trunk.$method(x)?;
                // The value head records on a tape of its own; adding the two losses
                // merges it back (dfdx orders merged operations by creation).
                let value = self.value.$method(features.with_empty_tape())?;
                Ok((self.policy.$method(features)?, value))
            }
        }
    };
}

policy_value_forward!(Module, try_forward, &);
policy_value_forward!(ModuleMut, try_forward_mut, &mut);
