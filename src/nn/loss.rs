//! Loss functions with PyTorch's names and its default `mean` reduction, on dfdx tensors.
//!
//! Where dfdx already computes exactly what PyTorch does (`mse_loss`, `huber_loss`,
//! binary cross-entropy with logits, cross-entropy with probability targets) this
//! module re-exports or wraps it; the margin losses and `kl_div` are composed from
//! dfdx ops, so dfdx differentiates them and they run on every device.
//!
//! Every function takes the prediction with its tape and the target without one,
//! and returns a scalar on the prediction's tape, ready for `backward()`.

use dfdx::prelude::*;

/// Mean squared error `mean((pred - target)^2)`, dfdx's own function.
///
/// PyTorch equivalent: `torch.nn.functional.mse_loss(pred, target)`.
///
/// # Shapes
/// `pred` and `target` of any one shape `S`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::loss::mse_loss;
/// let dev = Cpu::default();
/// let loss = mse_loss(dev.tensor([1.0f64, 3.0]), dev.tensor([0.0, 1.0]));
/// assert_eq!(loss.array(), 2.5);
/// ```
pub use dfdx::losses::mse_loss;

/// Huber loss with threshold `delta`, mean over all elements, dfdx's own function:
/// `0.5 * d^2` where `|d| < delta`, else `delta * (|d| - 0.5 * delta)`, with `d = pred - target`.
///
/// PyTorch equivalent: `torch.nn.functional.huber_loss(pred, target, delta=delta)`.
///
/// # Shapes
/// `pred` and `target` of any one shape `S`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::loss::huber_loss;
/// let dev = Cpu::default();
/// let loss = huber_loss(dev.tensor([0.5f64, 3.0]), dev.tensor([0.0, 0.0]), 1.0);
/// assert_eq!(loss.array(), (0.125 + 2.5) / 2.0);
/// ```
pub use dfdx::losses::huber_loss;

/// Binary cross-entropy on raw logits, mean over all elements:
/// `mean(max(x, 0) - x * y + ln(1 + exp(-|x|)))`, which never overflows.
///
/// PyTorch equivalent: `torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)`.
/// Targets are probabilities in `[0, 1]` (usually labels 0 or 1).
///
/// # Shapes
/// `logits` and `targets` of any one shape `S`, e.g. `(B, 1)`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::loss::binary_cross_entropy_with_logits;
/// let dev = Cpu::default();
/// let loss = binary_cross_entropy_with_logits(dev.tensor([[0.0f64]]), dev.tensor([[1.0]]));
/// assert!((loss.array() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn binary_cross_entropy_with_logits<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    logits: Tensor<S, E, D, T>,
    targets: Tensor<S, E, D>,
) -> Tensor<Rank0, E, D, T> {
    dfdx::losses::binary_cross_entropy_with_logits_loss(logits, targets)
}

/// Cross-entropy of logits against target probabilities (one-hot labels or soft
/// labels): `-sum(targets * log_softmax(logits))` over the classes, mean over the rest.
///
/// PyTorch equivalent: `torch.nn.functional.cross_entropy(logits, target_probs)` with
/// probability targets. PyTorch puts the classes on dim 1, here they are the last
/// axis; for `(B, C)` and `(C,)` inputs the two agree.
///
/// # Shapes
/// `logits` and `targets` of one shape, classes last: `(B, C)` or `(C,)`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::loss::cross_entropy;
/// let dev = Cpu::default();
/// let logits = dev.tensor([[0.0f64, 0.0, 0.0, 0.0]]);
/// let one_hot = dev.tensor([[0.0, 0.0, 1.0, 0.0]]);
/// assert!((cross_entropy(logits, one_hot).array() - 4f64.ln()).abs() < 1e-12);
/// ```
pub fn cross_entropy<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    logits: Tensor<S, E, D, T>,
    targets: Tensor<S, E, D>,
) -> Tensor<Rank0, E, D, T> {
    // One fused op on the CPU; dfdx's composition elsewhere.
    match crate::kernels::cross_entropy::try_cross_entropy(logits, targets) {
        Ok(loss) => loss.unwrap_or_else(|e| panic!("cross_entropy: device error: {e:?}")),
        Err((logits, targets)) => dfdx::losses::cross_entropy_with_logits_loss(logits, targets),
    }
}

/// Kullback-Leibler divergence `KL(targets || exp(log_probs))` with PyTorch's
/// `reduction='batchmean'`: `sum(targets * (ln(targets) - log_probs)) / B`, where `B` is
/// the size of the first dim. Zero targets contribute zero (PyTorch's `xlogy`).
///
/// PyTorch equivalent: `torch.nn.functional.kl_div(log_probs, targets, reduction='batchmean')`.
/// The input is log-probabilities (e.g. from `log_softmax`), the targets are
/// probabilities; dfdx's `kl_div_with_logits_loss` instead takes raw logits and
/// averages over classes too.
///
/// # Shapes
/// `log_probs` and `targets` of one shape `(B, ...)`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::loss::kl_div;
/// let dev = Cpu::default();
/// let log_probs = dev.tensor([[0.5f64.ln(), 0.5f64.ln()]]);
/// let same = kl_div(log_probs.clone(), dev.tensor([[0.5, 0.5]]));
/// assert!(same.array().abs() < 1e-12);
/// let onto_one_class = kl_div(log_probs, dev.tensor([[1.0, 0.0]]));
/// assert!((onto_one_class.array() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn kl_div<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    log_probs: Tensor<S, E, D, T>,
    targets: Tensor<S, E, D>,
) -> Tensor<Rank0, E, D, T> {
    let batch = log_probs.shape().concrete().as_ref().first().copied();
    let inv_batch = E::from_f64(1.0 / batch.unwrap_or(1).max(1) as f64).unwrap_or(E::ONE);
    // 0 * ln(0) is NaN in floating point but 0 in the limit, which is what PyTorch
    // uses; the targets carry no tape, so replacing NaNs there costs no gradient.
    let entropy_term = (targets.clone() * targets.clone().ln()).nans_to(0.0);
    let cross_term = log_probs * targets;
    (cross_term.negate() + entropy_term).sum() * inv_batch
}

/// Hinge loss of a linear SVM, `mean(max(0, 1 - y * s))`, for labels `y` in `{-1, +1}`.
///
/// PyTorch has no single function for it; it is
/// `torch.clamp(1 - targets * scores, min=0).mean()`. With an L2 penalty on the
/// weights it is the linear SVM's objective, see
/// [`svm_objective`](crate::models::classic::svm_objective).
///
/// # Shapes
/// `scores` and `targets` of any one shape, e.g. `(B, 1)`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::loss::hinge_loss;
/// let dev = Cpu::default();
/// // Right with margin, right inside the margin, wrong: 0, 0.5 and 3.
/// let loss = hinge_loss(dev.tensor([2.0f64, 0.5, 2.0]), dev.tensor([1.0, 1.0, -1.0]));
/// assert!((loss.array() - 3.5 / 3.0).abs() < 1e-12);
/// ```
pub fn hinge_loss<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    scores: Tensor<S, E, D, T>,
    targets: Tensor<S, E, D>,
) -> Tensor<Rank0, E, D, T> {
    ((scores * targets).negate() + E::ONE).relu().mean()
}

/// The perceptron criterion `mean(max(0, -y * s))` for labels `y` in `{-1, +1}`:
/// zero for every correctly classified point, however small its margin.
///
/// Plain SGD on it with batch size 1 is Rosenblatt's perceptron update
/// `w += lr * y * x` for each misclassified `x`. PyTorch equivalent:
/// `torch.clamp(-targets * scores, min=0).mean()`.
///
/// # Shapes
/// `scores` and `targets` of any one shape, e.g. `(B, 1)`; the loss is a scalar `()`.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::nn::loss::perceptron_loss;
/// let dev = Cpu::default();
/// let loss = perceptron_loss(dev.tensor([0.1f64, -2.0]), dev.tensor([1.0, 1.0]));
/// assert_eq!(loss.array(), 1.0);
/// ```
pub fn perceptron_loss<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    scores: Tensor<S, E, D, T>,
    targets: Tensor<S, E, D>,
) -> Tensor<Rank0, E, D, T> {
    (scores * targets).negate().relu().mean()
}
