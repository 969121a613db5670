//! Shape inference for dfdx's `Repeated`: one block type stacked `N` times (a ResNet stage).

use super::residual::nested_rows;
use crate::shape::{check_repeated, ShapeInfer, StaticShape, SummaryRow};
use dfdx::nn::modules::Repeated;

/// `Repeated<Block, N>` (dfdx's builder) runs `N` blocks of one type in a row, each with its
/// own weights, visited as `0`, `1`, ...: PyTorch's `nn.Sequential(*[Block() for _ in
/// range(N)])`, as ResNet-101's 22 identical bottlenecks of its third stage.
///
/// The block must keep its input's shape; a block that changes it is a compile-time error
/// naming both shapes.
///
/// # Shapes
/// `S -> S`, where `Block: S -> S`. `N * Block::PARAMS` parameters.
///
/// ```
/// use shapesafe::prelude::*;
/// use shapesafe::models::resnet::Bottleneck;
/// type Stage = Repeated<Bottleneck<256, 64>, 3>;
/// assert_eq!(<Stage as ShapeInfer<Rank3<256, 56, 56>>>::PARAMS, 3 * 70_400);
/// let dev = Cpu::default();
/// let blocks = dev.build_module::<Repeated<(Linear<4, 4>, ReLU), 3>, f32>();
/// let y = blocks.forward(dev.ones::<Rank1<4>>());
/// assert_eq!(y.shape().concrete(), [4]);
/// ```
impl<S: StaticShape, Block: ShapeInfer<S>, const N: usize> ShapeInfer<S> for Repeated<Block, N> {
    type Output = S;
    const CHECK: () = {
        let () = Block::CHECK;
        check_repeated(<Block::Output as StaticShape>::DIMS, S::DIMS, N);
    };
    const PARAMS: usize = N * Block::PARAMS;
    fn name() -> String {
        format!("Repeated<{}, {N}>", Block::name())
    }
    /// A `Repeated` row, then each block's rows, indented and labelled with its index.
    fn summarize(rows: &mut Vec<SummaryRow>) {
        rows.push(SummaryRow {
            layer: format!("Repeated x{N}"),
            output: S::DIMS.to_vec(),
            params: 0,
        });
        for i in 0..N {
            nested_rows::<Block, S>(&format!("  {i}: "), rows);
        }
    }
}
