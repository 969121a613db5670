//! `Embedding`: a lookup table from token ids to vectors, PyTorch's `nn.Embedding`.

use crate::shape::{ShapeInfer, StaticDim};
use dfdx::nn::{BuildModule, BuildOnDevice, Module, NonMutableModule};
use dfdx::nn::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::StandardNormal;

/// The builder (architecture) type of [`Embedding`].
pub mod builder {
    /// A table of `VOCAB` learned vectors of width `D_MODEL`, indexed by token id.
    ///
    /// PyTorch equivalent: `torch.nn.Embedding(VOCAB, D_MODEL)`: parameter `weight`
    /// `(VOCAB, D_MODEL)`, initialised standard normal. Ids are `usize` tensors; an id of
    /// `VOCAB` or more panics, as PyTorch raises. The ids carry the tape, as dfdx's.
    ///
    /// # Generics
    /// - `VOCAB`: number of token ids; `D_MODEL`: vector width.
    ///
    /// # Shapes
    /// - `(S,)` ids -> `(S, Const<D_MODEL>)`
    /// - `(B, S)` ids -> `(B, S, Const<D_MODEL>)`
    ///
    /// ```
    /// use shapesafe::prelude::*;
    /// let dev = Cpu::default();
    /// let embed = dev.build_module::<Embedding<10, 4>, f32>();
    /// let ids = dev.tensor([[1usize, 2, 3], [4, 5, 9]]);
    /// let y: Tensor<Rank3<2, 3, 4>, f32, _> = embed.forward(ids);
    /// assert_eq!(<Embedding<10, 4> as ShapeInfer<Rank1<3>>>::PARAMS, 40);
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Embedding<const VOCAB: usize, const D_MODEL: usize>;
}

/// A built [`Embedding`](builder::Embedding) on device `D`.
///
/// # Shapes
/// As [`builder::Embedding`].
///
/// ```
/// use shapesafe::prelude::*;
/// let embed = Cpu::default().build_module::<Embedding<10, 4>, f64>();
/// assert_eq!(embed.weight.shape().concrete(), [10, 4]);
/// ```
#[derive(Debug, Clone)]
pub struct Embedding<const VOCAB: usize, const D_MODEL: usize, E: Dtype, D: Storage<E>> {
    /// `(VOCAB, D_MODEL)`: row `i` is token `i`'s vector; initialised standard normal.
    pub weight: Tensor<Rank2<VOCAB, D_MODEL>, E, D>,
}

impl<const VOCAB: usize, const D_MODEL: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E>
    for builder::Embedding<VOCAB, D_MODEL>
where
    Embedding<VOCAB, D_MODEL, E, D>: BuildModule<D, E>,
{
    type Built = Embedding<VOCAB, D_MODEL, E, D>;
}

impl<const VOCAB: usize, const D_MODEL: usize, E: Dtype, D: Storage<E>> NonMutableModule
    for Embedding<VOCAB, D_MODEL, E, D>
{
}

impl<const VOCAB: usize, const D_MODEL: usize, E, D> TensorCollection<E, D>
    for Embedding<VOCAB, D_MODEL, E, D>
where
    E: Dtype,
    D: Device<E>,
    StandardNormal: rand_distr::Distribution<E>,
{
    type To<E2: Dtype, D2: Device<E2>> = Embedding<VOCAB, D_MODEL, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            Self::tensor(
                "weight",
                |s| &s.weight,
                |s| &mut s.weight,
                TensorOptions::reset_with(|t| t.try_fill_with_distr(StandardNormal)),
            ),
            |weight| Embedding { weight },
        )
    }
}

impl<const VOCAB: usize, const D_MODEL: usize, S: StaticDim> ShapeInfer<(S,)>
    for builder::Embedding<VOCAB, D_MODEL>
{
    type Output = (S, Const<D_MODEL>);
    const CHECK: () = ();
    const PARAMS: usize = VOCAB * D_MODEL;
    fn name() -> String {
        format!("Embedding<{VOCAB}, {D_MODEL}>")
    }
}

impl<const VOCAB: usize, const D_MODEL: usize, S: Dim, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(S,), usize, D, T>> for Embedding<VOCAB, D_MODEL, E, D>
{
    type Output = Tensor<(S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, ids: Tensor<(S,), usize, D, T>) -> Result<Self::Output, D::Err> {
        let (ids, tape) = ids.split_tape();
        self.weight.clone().put_tape(tape).try_gather(ids)
    }
}

impl<
        const VOCAB: usize,
        const D_MODEL: usize,
        B: Dim,
        S: Dim,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<(B, S), usize, D, T>> for Embedding<VOCAB, D_MODEL, E, D>
{
    type Output = Tensor<(B, S, Const<D_MODEL>), E, D, T>;
    type Error = D::Err;

    fn try_forward(&self, ids: Tensor<(B, S), usize, D, T>) -> Result<Self::Output, D::Err> {
        let (ids, tape) = ids.split_tape();
        self.weight.clone().put_tape(tape).try_gather(ids)
    }
}
