//! `assert_shapes!`: a model's shape contract, checked already by `cargo check`.

/// Asserts at compile time that a model (a builder type) maps an unbatched input
/// shape to an output shape, and optionally that it has a given parameter count.
///
/// It expands to an item-level `const`, which the compiler evaluates even under
/// `cargo check`: a broken contract, or any layer inside the model whose shapes do
/// not fit, fails the build with a message naming the layer and the numbers.
///
/// # Shapes
/// `Model: Input => Output`, both unbatched static shapes (`Rank3<1, 28, 28>`).
///
/// ```
/// use shapesafe::prelude::*;
/// type Tiny = (Conv2d<1, 4, 3>, ReLU, MaxPool2d<2>, Flatten, Linear<676, 10>);
/// shapesafe::assert_shapes!(Tiny: Rank3<1, 28, 28> => Rank1<10>, params = 6810);
/// ```
///
/// A mismatch does not compile:
///
/// ```compile_fail
/// use shapesafe::prelude::*;
/// type Tiny = (Conv2d<1, 4, 3>, ReLU, MaxPool2d<2>, Flatten, Linear<400, 10>);
/// shapesafe::assert_shapes!(Tiny: Rank3<1, 28, 28> => Rank1<10>);
/// ```
#[macro_export]
macro_rules! assert_shapes {
    ($model:ty : $input:ty => $output:ty) => {
        const _: () = {
            let () = <$model as $crate::shape::ShapeInfer<$input>>::CHECK;
            $crate::shape::check_contract(
                stringify!($model),
                <$input as $crate::shape::StaticShape>::DIMS,
                <<$model as $crate::shape::ShapeInfer<$input>>::Output as $crate::shape::StaticShape>::DIMS,
                <$output as $crate::shape::StaticShape>::DIMS,
            );
        };
    };
    ($model:ty : $input:ty => $output:ty, params = $params:expr) => {
        $crate::assert_shapes!($model: $input => $output);
        const _: () = $crate::shape::check_params(
            stringify!($model),
            <$model as $crate::shape::ShapeInfer<$input>>::PARAMS,
            $params,
        );
    };
}
