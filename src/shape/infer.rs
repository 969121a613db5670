//! Shape inference on builder types: output shape, compile-time check and parameter count.

use super::dims::StaticShape;
use std::fmt;

/// What a layer (a builder type) does to an unbatched static input shape,
/// known without a device or any tensor.
///
/// Implemented for every shapesafe layer and for tuples of layers, it powers
/// [`assert_shapes!`](crate::assert_shapes) and [`Summary`].
///
/// # Shapes
/// `Input` is the unbatched shape, e.g. `Rank3<1, 28, 28>`; `Output` likewise.
///
/// ```
/// use shapesafe::prelude::*;
/// type Net = (Conv2d<1, 6, 5, 1, 2>, ReLU, MaxPool2d<2>);
/// type Out = <Net as ShapeInfer<Rank3<1, 28, 28>>>::Output;
/// assert_eq!(<Out as StaticShape>::DIMS, &[6, 14, 14]);
/// assert_eq!(<Net as ShapeInfer<Rank3<1, 28, 28>>>::PARAMS, 156);
/// ```
#[diagnostic::on_unimplemented(
    message = "shapesafe cannot infer the shapes of `{Self}` on input `{Input}`",
    label = "not a layer that takes this input, a tuple of at most six models, or a derived struct",
    note = "tuples of up to six layers are models (as in dfdx): nest a longer one, `((a, b, c), (d, e, f, g))`, or write a struct with #[derive(Sequential)] and named fields"
)]
pub trait ShapeInfer<Input: StaticShape> {
    /// The unbatched output shape.
    type Output: StaticShape;
    /// Evaluating this const runs the layer's shape checks; a mismatch is a build error.
    const CHECK: ();
    /// Number of trainable parameters.
    const PARAMS: usize;

    /// The layer as the user would write its type, e.g. `Conv2d<1, 6, 5, 1, 2>`.
    fn name() -> String;

    /// Appends this layer's summary rows (a tuple appends one row per layer).
    fn summarize(rows: &mut Vec<SummaryRow>) {
        rows.push(SummaryRow {
            layer: Self::name(),
            output: Self::Output::DIMS.to_vec(),
            params: Self::PARAMS,
        });
    }
}

/// One line of a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The layer's type as written, e.g. `Linear<400, 120>`.
    pub layer: String,
    /// Its unbatched output shape.
    pub output: Vec<usize>,
    /// Its trainable parameters.
    pub params: usize,
}

/// A model's layers with their output shapes and parameter counts, computed
/// from types alone (like Keras' `model.summary()`).
///
/// # Shapes
/// Rows list unbatched output shapes.
///
/// ```
/// use shapesafe::prelude::*;
/// let s = Summary::of::<(Flatten, Linear<784, 10>), Rank3<1, 28, 28>>();
/// assert_eq!(s.total_params(), 7850);
/// assert_eq!(s.rows[0].output, vec![784]);
/// println!("{s}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The unbatched input shape.
    pub input: Vec<usize>,
    /// One row per layer, in order.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// The summary of `Model` applied to `Input`.
    pub fn of<Model: ShapeInfer<Input>, Input: StaticShape>() -> Self {
        let mut rows = Vec::new();
        Model::summarize(&mut rows);
        Self {
            input: Input::DIMS.to_vec(),
            rows,
        }
    }

    /// Sum of all rows' parameters.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }
}

/// Labels the summary rows of a model's field with the field's name, as derived models do:
/// `conv1: Conv2d<1, 6, 5>`, and `block1.conv1: ..` when the rows already carry a name
/// (a derived model inside a derived model). Indented rows, the insides of a `Residual` or
/// `Concat`, belong to the row above and keep their text.
///
/// # Shapes
/// Rows as [`ShapeInfer::summarize`] writes them.
///
/// ```
/// use shapesafe::shape::{name_rows, SummaryRow};
/// let row = |layer: &str| SummaryRow { layer: layer.into(), output: vec![4], params: 0 };
/// let mut rows = vec![row("ReLU"), row("conv1: Conv2d<1, 4, 3>"), row("  branch: ReLU")];
/// name_rows(&mut rows, "block");
/// assert_eq!(rows[0].layer, "block: ReLU");
/// assert_eq!(rows[1].layer, "block.conv1: Conv2d<1, 4, 3>");
/// assert_eq!(rows[2].layer, "  branch: ReLU");
/// ```
pub fn name_rows(rows: &mut [SummaryRow], field: &str) {
    for row in rows {
        if row.layer.starts_with(' ') {
            continue;
        }
        let named = row.layer.split_once(": ").is_some_and(|(path, _)| {
            !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
        let sep = if named { "." } else { ": " };
        row.layer = format!("{field}{sep}{}", row.layer);
    }
}

/// `(16, 4, 4)`, or `(10,)` for one dim.
fn shape_text(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    if dims.len() == 1 {
        format!("({},)", inner[0])
    } else {
        format!("({})", inner.join(", "))
    }
}

/// `61706` as `61,706`: how summaries print parameter counts.
///
/// # Shapes
/// Not a layer.
///
/// ```
/// assert_eq!(shapesafe::shape::thousands(61_100_840), "61,100,840");
/// assert_eq!(shapesafe::shape::thousands(999), "999");
/// ```
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.layer.len())
            .chain(["Layer".len(), "Input".len()])
            .max()
            .unwrap_or(0);
        let rule = "-".repeat(width + 34);
        writeln!(
            f,
            "{:<width$}  {:<18} {:>12}",
            "Layer", "Output shape", "Params"
        )?;
        writeln!(f, "{rule}")?;
        writeln!(
            f,
            "{:<width$}  {:<18} {:>12}",
            "Input",
            shape_text(&self.input),
            ""
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<width$}  {:<18} {:>12}",
                r.layer,
                shape_text(&r.output),
                thousands(r.params)
            )?;
        }
        writeln!(f, "{rule}")?;
        write!(f, "Total params: {}", thousands(self.total_params()))
    }
}

impl<Input: StaticShape, A: ShapeInfer<Input>> ShapeInfer<Input> for (A,) {
    type Output = A::Output;
    const CHECK: () = A::CHECK;
    const PARAMS: usize = A::PARAMS;
    fn name() -> String {
        format!("({},)", A::name())
    }
    fn summarize(rows: &mut Vec<SummaryRow>) {
        A::summarize(rows);
    }
}

impl<Input, A, B> ShapeInfer<Input> for (A, B)
where
    Input: StaticShape,
    A: ShapeInfer<Input>,
    B: ShapeInfer<A::Output>,
{
    type Output = B::Output;
    const CHECK: () = {
        let () = A::CHECK;
        let () = B::CHECK;
    };
    const PARAMS: usize = A::PARAMS + B::PARAMS;
    fn name() -> String {
        format!(
            "({}, {})",
            <A as ShapeInfer<Input>>::name(),
            <B as ShapeInfer<A::Output>>::name()
        )
    }
    fn summarize(rows: &mut Vec<SummaryRow>) {
        A::summarize(rows);
        B::summarize(rows);
    }
}

/// Larger tuples are a pair of their first element and the rest, so chaining
/// is written once (above) and reused.
macro_rules! nested_tuple_infer {
    ($first:ident, $($rest:ident),+) => {
        impl<Input, $first, $($rest),+> ShapeInfer<Input> for ($first, $($rest),+)
        where
            Input: StaticShape,
            ($first, ($($rest,)+)): ShapeInfer<Input>,
        {
            type Output = <($first, ($($rest,)+)) as ShapeInfer<Input>>::Output;
            const CHECK: () = <($first, ($($rest,)+)) as ShapeInfer<Input>>::CHECK;
            const PARAMS: usize = <($first, ($($rest,)+)) as ShapeInfer<Input>>::PARAMS;
            fn name() -> String {
                <($first, ($($rest,)+)) as ShapeInfer<Input>>::name()
            }
            fn summarize(rows: &mut Vec<SummaryRow>) {
                <($first, ($($rest,)+)) as ShapeInfer<Input>>::summarize(rows);
            }
        }
    };
}
nested_tuple_infer!(A, B, C);
nested_tuple_infer!(A, B, C, D);
nested_tuple_infer!(A, B, C, D, E);
nested_tuple_infer!(A, B, C, D, E, F);
