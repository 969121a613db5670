//! The policy/value network: a small ResNet trunk on the board's two planes, a policy head
//! of nine move logits and a value head in `[-1, 1]`, AlphaZero's shape at tic-tac-toe size.

use crate::game::Board;
use shapesafe::models::resnet::BasicBlock;
use shapesafe::prelude::*;

/// The trunk's width.
pub const WIDTH: usize = 32;

/// A 3x3 convolution to `WIDTH` channels and two residual blocks.
pub type Trunk = (
    (
        Conv2d<2, WIDTH, 3, 1, 1, 1, 1, false>,
        BatchNorm2d<WIDTH>,
        ReLU,
    ),
    BasicBlock<WIDTH>,
    BasicBlock<WIDTH>,
);

/// AlphaZero's policy head: a 1x1 convolution to two planes, then one logit per cell.
pub type PolicyHead = (
    (Conv2d<WIDTH, 2, 1, 1, 0, 1, 1, false>, BatchNorm2d<2>, ReLU),
    Flatten,
    Linear<18, 9>,
);

/// AlphaZero's value head: a 1x1 convolution to one plane, a hidden layer, and tanh.
pub type ValueHead = (
    (Conv2d<WIDTH, 1, 1, 1, 0, 1, 1, false>, BatchNorm2d<1>, ReLU),
    Flatten,
    (Linear<9, 32>, ReLU),
    (Linear<32, 1>, Tanh),
);

/// `(2, 3, 3)` planes to `((9,), (1,))`: move logits and the mover's expected result.
pub type Net = PolicyValue<Trunk, PolicyHead, ValueHead>;

// The contract, checked at `cargo check`: nine logits and one value, 38,386 parameters.
const _: () = <Net as HeadsInfer<Rank3<2, 3, 3>>>::CHECK;
const _: () = assert!(<Net as HeadsInfer<Rank3<2, 3, 3>>>::PARAMS == 38_386);
const _: [(); 9] = [(); <<Net as HeadsInfer<Rank3<2, 3, 3>>>::PolicyOutput as StaticShape>::NUMEL];
const _: [(); 1] = [(); <<Net as HeadsInfer<Rank3<2, 3, 3>>>::ValueOutput as StaticShape>::NUMEL];

/// A batch of boards as the network's input.
pub type Planes<D> = Tensor<(usize, Const<2>, Const<3>, Const<3>), f32, D>;

/// `boards` as one input tensor.
pub fn planes<D: KernelDevice<f32>>(boards: &[Board], dev: &D) -> Planes<D> {
    let data: Vec<f32> = boards.iter().flat_map(|b| b.planes()).collect();
    dev.tensor_from_vec(data, (boards.len(), Const, Const, Const))
}

/// The network's move probabilities (softmax over the legal moves only) and value for one
/// board, in eval mode.
pub fn evaluate<D: KernelDevice<f32>>(
    net: &<Net as BuildOnDevice<D, f32>>::Built,
    board: &Board,
    dev: &D,
) -> ([f32; 9], f32) {
    let (logits, value) = net.forward(planes(std::slice::from_ref(board), dev));
    let logits = logits.as_vec();
    let legal = board.legal();
    let top = legal
        .iter()
        .map(|&m| logits[m])
        .fold(f32::NEG_INFINITY, f32::max);
    let mut priors = [0.0; 9];
    for &m in &legal {
        priors[m] = (logits[m] - top).exp();
    }
    let total: f32 = priors.iter().sum();
    for p in &mut priors {
        *p /= total;
    }
    (priors, value.as_vec()[0])
}
