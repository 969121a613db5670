//! Classic models as types: perceptron, linear SVM, logistic and softmax regression, and an MLP.
//!
//! The linear models share one architecture, an affine map; what makes each
//! classic is its loss and decision rule:
//!
//! | model                 | output         | loss                                  | decision             |
//! |-----------------------|----------------|---------------------------------------|----------------------|
//! | [`Perceptron`]        | 1 score        | [`perceptron_loss`]                   | [`predict_sign`]     |
//! | [`LinearSvm`]         | 1 score        | [`hinge_loss`] + L2, [`svm_objective`]| [`predict_sign`]     |
//! | [`LogisticRegression`]| 1 logit        | [`binary_cross_entropy_with_logits`]  | [`predict_binary`]   |
//! | [`SoftmaxRegression`] | `CLASSES` logits | [`cross_entropy`]                   | [`predict_class`]    |
//! | [`Mlp`]               | `OUT` logits   | [`cross_entropy`]                     | [`predict_class`]    |
//!
//! Binary labels are `{-1, +1}` for the margin models and `{0, 1}` for logistic
//! regression. Every model's contract is asserted at compile time below, so
//! `cargo check` verifies them.
//!
//! [`perceptron_loss`]: crate::nn::loss::perceptron_loss
//! [`hinge_loss`]: crate::nn::loss::hinge_loss
//! [`binary_cross_entropy_with_logits`]: crate::nn::loss::binary_cross_entropy_with_logits
//! [`cross_entropy`]: crate::nn::loss::cross_entropy

use crate::nn::builders::{Linear, ReLU};
use crate::nn::linear::Linear as LinearModule;
use dfdx::prelude::*;

/// Rosenblatt's perceptron: one affine score `w . x + b`, label `sign(score)`.
///
/// Train it on [`perceptron_loss`](crate::nn::loss::perceptron_loss) with labels in
/// `{-1, +1}`; plain SGD then makes the classic update on each misclassified point.
/// PyTorch equivalent: `nn.Linear(IN, 1)` with that criterion.
///
/// # Shapes
/// - `(F,) -> (Const<1>,)` where `F::SIZE == IN`
/// - `(B, F) -> (B, Const<1>)`; a leading [`Flatten`](crate::nn::builders::Flatten)
///   takes images.
///
/// `IN + 1` parameters; `Perceptron<784>` has 785, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{predict_sign, Perceptron};
/// let dev = Cpu::default();
/// let model = dev.build_module::<(Flatten, Perceptron<784>), f32>();
/// let images: Tensor<Rank4<5, 1, 28, 28>, f32, _> = dev.zeros();
/// let labels: Vec<i8> = predict_sign(&model, images);
/// assert_eq!(labels.len(), 5);
/// ```
pub type Perceptron<const IN: usize> = Linear<IN, 1>;

/// A linear support vector machine: one affine score `w . x + b`, label `sign(score)`.
///
/// Train it on [`svm_objective`], the hinge loss plus `l2 / 2 * |w|^2`, with labels
/// in `{-1, +1}`. PyTorch equivalent: `nn.Linear(IN, 1)` trained on
/// `clamp(1 - y * s, min=0).mean() + l2 / 2 * w.pow(2).sum()`.
///
/// # Shapes
/// - `(F,) -> (Const<1>,)` where `F::SIZE == IN`
/// - `(B, F) -> (B, Const<1>)`
///
/// `IN + 1` parameters.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{svm_objective, LinearSvm};
/// let dev = Cpu::default();
/// let model = dev.build_module::<LinearSvm<4>, f64>();
/// let x: Tensor<Rank2<3, 4>, f64, _> = dev.sample_normal();
/// let y = dev.tensor([[1.0], [-1.0], [1.0]]);
/// let grads = model.alloc_grads();
/// let loss = svm_objective(&model, model.forward(x.traced(grads)), y, 1e-3);
/// let grads = loss.backward();
/// assert_eq!(grads.get(&model.weight).shape().concrete(), [1, 4]);
/// ```
pub type LinearSvm<const IN: usize> = Linear<IN, 1>;

/// Logistic regression: one logit `w . x + b`, `P(y = 1 | x) = sigmoid(logit)`.
///
/// Train it on [`binary_cross_entropy_with_logits`](crate::nn::loss::binary_cross_entropy_with_logits)
/// with labels in `{0, 1}`; [`predict_binary`] thresholds the logit at 0 (probability 0.5).
/// PyTorch equivalent: `nn.Linear(IN, 1)` with `nn.BCEWithLogitsLoss()`.
///
/// # Shapes
/// - `(F,) -> (Const<1>,)` where `F::SIZE == IN`
/// - `(B, F) -> (B, Const<1>)`
///
/// `IN + 1` parameters.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{predict_binary, LogisticRegression};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<LogisticRegression<2>, f32>();
/// model.weight = dev.tensor([[1.0, -1.0]]);
/// model.bias = dev.tensor([0.0]);
/// let x = dev.tensor([[2.0f32, 1.0], [0.0, 3.0]]);
/// assert_eq!(predict_binary(&model, x), vec![1, 0]);
/// ```
pub type LogisticRegression<const IN: usize> = Linear<IN, 1>;

/// Softmax (multinomial logistic) regression: `CLASSES` logits `W x + b`.
///
/// Train it on [`cross_entropy`](crate::nn::loss::cross_entropy) with one-hot targets;
/// [`predict_class`] takes the arg max. PyTorch equivalent: `nn.Linear(IN, CLASSES)`
/// with `nn.CrossEntropyLoss()`.
///
/// # Shapes
/// - `(F,) -> (Const<CLASSES>,)` where `F::SIZE == IN`
/// - `(B, F) -> (B, Const<CLASSES>)`
///
/// `(IN + 1) * CLASSES` parameters; `SoftmaxRegression<784, 10>` has 7,850.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{predict_class, SoftmaxRegression};
/// let dev = Cpu::default();
/// let model = dev.build_module::<(Flatten, SoftmaxRegression<784, 10>), f32>();
/// let images: Tensor<Rank4<3, 1, 28, 28>, f32, _> = dev.sample_normal();
/// let classes = predict_class(&model, images);
/// assert!(classes.iter().all(|&c| c < 10));
/// ```
pub type SoftmaxRegression<const IN: usize, const CLASSES: usize> = Linear<IN, CLASSES>;

/// A multilayer perceptron with one hidden ReLU layer: `Linear, ReLU, Linear`.
///
/// PyTorch equivalent:
/// `nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))`.
/// `Mlp<784, 256, 10>` is the usual MNIST baseline.
///
/// # Shapes
/// - `(F,) -> (Const<OUT>,)` where `F::SIZE == IN`
/// - `(B, F) -> (B, Const<OUT>)`
///
/// `(IN + 1) * HIDDEN + (HIDDEN + 1) * OUT` parameters; `Mlp<784, 256, 10>` has
/// 203,530, checked at compile time.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::Mlp;
/// type Net = (Flatten, Mlp<784, 256, 10>);
/// shapesafe::assert_shapes!(Net: Rank3<1, 28, 28> => Rank1<10>, params = 203_530);
/// let dev = Cpu::default();
/// let model = dev.build_module::<Net, f32>();
/// let images: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.zeros();
/// let logits: Tensor<Rank2<2, 10>, f32, _> = model.forward(images);
/// ```
pub type Mlp<const IN: usize, const HIDDEN: usize, const OUT: usize> =
    (Linear<IN, HIDDEN>, ReLU, Linear<HIDDEN, OUT>);

crate::assert_shapes!(Perceptron<784>: Rank1<784> => Rank1<1>, params = 785);
crate::assert_shapes!(LinearSvm<784>: Rank1<784> => Rank1<1>, params = 785);
crate::assert_shapes!(LogisticRegression<784>: Rank1<784> => Rank1<1>, params = 785);
crate::assert_shapes!(SoftmaxRegression<784, 10>: Rank1<784> => Rank1<10>, params = 7_850);
crate::assert_shapes!(Mlp<784, 256, 10>: Rank1<784> => Rank1<10>, params = 203_530);

/// The linear SVM's training objective: `mean(max(0, 1 - y * s)) + l2 / 2 * |w|^2`,
/// the hinge loss plus an L2 penalty on the weight (not the bias) of `model`.
///
/// `scores` must come from `model` on the same tape, so the penalty's gradient
/// joins the hinge loss's; `targets` are `{-1, +1}`. Unlike an optimizer's weight
/// decay, the penalty is part of the loss value and leaves the bias alone, as in
/// the textbook SVM.
///
/// # Shapes
/// `scores` and `targets`: `(B, Const<1>)`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{svm_objective, LinearSvm};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<LinearSvm<2>, f64>();
/// model.weight = dev.tensor([[3.0, 4.0]]);
/// model.bias = dev.tensor([0.0]);
/// // Margins 3 and 4 leave no hinge loss; the penalty is 0.1 / 2 * 25.
/// let x = dev.tensor([[1.0, 0.0], [0.0, -1.0]]);
/// let y = dev.tensor([[1.0], [-1.0]]);
/// let loss = svm_objective(&model, model.forward(x), y, 0.1);
/// assert!((loss.array() - 1.25).abs() < 1e-12);
/// ```
pub fn svm_objective<const IN: usize, B, E, D, T>(
    model: &LinearModule<IN, 1, E, D>,
    scores: Tensor<(B, Const<1>), E, D, T>,
    targets: Tensor<(B, Const<1>), E, D>,
    l2: f64,
) -> Tensor<Rank0, E, D, T>
where
    B: Dim,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D> + Merge<T>,
{
    let half_l2 = E::from_f64(l2 / 2.0).unwrap_or_default();
    let penalty = model.weight.retaped::<T>().square().sum() * half_l2;
    crate::nn::loss::hinge_loss(scores, targets) + penalty
}

/// Runs `model` on a batch and returns one label in `{-1, +1}` per row: `+1`
/// where the score is at least 0. The decision rule of [`Perceptron`] and [`LinearSvm`].
///
/// # Shapes
/// `model` maps `x` to scores `(B, Const<1>)`; returns `B` labels.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{predict_sign, Perceptron};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<Perceptron<1>, f32>();
/// model.weight = dev.tensor([[1.0]]);
/// model.bias = dev.tensor([0.0]);
/// assert_eq!(predict_sign(&model, dev.tensor([[-2.0f32], [0.0], [3.0]])), vec![-1, 1, 1]);
/// ```
pub fn predict_sign<M, X, B, E, D>(model: &M, x: X) -> Vec<i8>
where
    M: Module<X, Output = Tensor<(B, Const<1>), E, D>>,
    B: Dim,
    E: Dtype,
    D: Device<E>,
{
    let zero = E::default();
    model
        .forward(x)
        .as_vec()
        .into_iter()
        .map(|s| if s >= zero { 1 } else { -1 })
        .collect()
}

/// Runs `model` on a batch and returns one label in `{0, 1}` per row: `1` where the
/// logit is at least 0, i.e. `sigmoid(logit) >= 0.5`. The decision rule of
/// [`LogisticRegression`].
///
/// # Shapes
/// `model` maps `x` to logits `(B, Const<1>)`; returns `B` labels.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{predict_binary, LogisticRegression};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<LogisticRegression<1>, f32>();
/// model.weight = dev.tensor([[2.0]]);
/// model.bias = dev.tensor([-1.0]);
/// assert_eq!(predict_binary(&model, dev.tensor([[0.0f32], [1.0]])), vec![0, 1]);
/// ```
pub fn predict_binary<M, X, B, E, D>(model: &M, x: X) -> Vec<u8>
where
    M: Module<X, Output = Tensor<(B, Const<1>), E, D>>,
    B: Dim,
    E: Dtype,
    D: Device<E>,
{
    // The same threshold as the perceptron's sign, read as a class.
    predict_sign(model, x)
        .into_iter()
        .map(|s| u8::from(s > 0))
        .collect()
}

/// Runs `model` on a batch and returns the arg max of each row's logits (the first
/// on ties). The decision rule of [`SoftmaxRegression`] and [`Mlp`].
///
/// # Shapes
/// `model` maps `x` to logits `(B, Const<CLASSES>)`; returns `B` class indices.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::classic::{predict_class, SoftmaxRegression};
/// let dev = Cpu::default();
/// let mut model = dev.build_module::<SoftmaxRegression<2, 3>, f32>();
/// model.weight = dev.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]);
/// model.bias = dev.zeros();
/// let x = dev.tensor([[2.0f32, 1.0], [0.0, 3.0], [-1.0, -1.0]]);
/// assert_eq!(predict_class(&model, x), vec![0, 1, 2]);
/// ```
pub fn predict_class<M, X, B, const CLASSES: usize, E, D>(model: &M, x: X) -> Vec<usize>
where
    M: Module<X, Output = Tensor<(B, Const<CLASSES>), E, D>>,
    B: Dim,
    E: Dtype,
    D: Device<E>,
{
    let logits = model.forward(x).as_vec();
    logits
        .chunks(CLASSES.max(1))
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}
