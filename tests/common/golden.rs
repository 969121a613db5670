//! PyTorch golden files (safetensors of f64 values written by `tests/pytorch/make_*.py`) and
//! the comparisons the Transformer tests make against them.

use super::{assert_close, TestDevice, Tolerance};
use shapesafe::prelude::*;
use shapesafe::pytorch::{load_state_dict, tensor_names, NameMap};
use std::collections::BTreeMap;

/// Every tensor of a golden file by name, as f64 values.
pub fn read(path: &str) -> BTreeMap<String, Vec<f64>> {
    read_with_shapes(path)
        .into_iter()
        .map(|(name, (_, values))| (name, values))
        .collect()
}

/// Every tensor of a golden file by name, with its shape.
pub fn read_with_shapes(path: &str) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// `M` built on the test device with PyTorch's state dict from `path` loaded by name.
pub fn load<M, E>(path: &str) -> M::Built
where
    E: Dtype,
    TestDevice: Device<E>,
    M: BuildOnDevice<TestDevice, E>,
    M::Built: TensorCollection<E, TestDevice> + Clone,
{
    let mut model = TestDevice::default().build_module::<M, E>();
    load_state_dict(&mut model, path, &NameMap::new()).unwrap();
    model
}

/// Compares the model's parameter gradients with PyTorch's `<case>.grad.<name>`.
pub fn check_param_grads<M: TensorCollection<f64, TestDevice>>(
    case: &str,
    model: &M,
    grads: &Gradients<f64, TestDevice>,
    g: &BTreeMap<String, Vec<f64>>,
    tol: Tolerance,
) {
    let mut values = Vec::new();
    collect_grads(model, grads, &mut values);
    let names = tensor_names(model);
    assert_eq!(names.len(), values.len());
    for (name, actual) in names.iter().zip(&values) {
        let key = format!("{case}.grad.{name}");
        let expected = g
            .get(&key)
            .unwrap_or_else(|| panic!("no PyTorch gradient {key}"));
        assert_close(&key, actual, expected, tol);
    }
}

/// Every parameter's gradient, in visiting order.
fn collect_grads<M: TensorCollection<f64, TestDevice>>(
    model: &M,
    grads: &Gradients<f64, TestDevice>,
    out: &mut Vec<Vec<f64>>,
) {
    use dfdx::nn::tensor_collection::{RecursiveWalker, TensorVisitor, ViewTensorRef};
    use dfdx::nn::{ScalarOptions, TensorOptions};
    struct Collect<'a>(&'a Gradients<f64, TestDevice>, &'a mut Vec<Vec<f64>>);
    impl TensorVisitor<f64, TestDevice> for Collect<'_> {
        type Viewer = ViewTensorRef;
        type Err = std::convert::Infallible;
        type E2 = f64;
        type D2 = TestDevice;
        fn visit<Sh: Shape>(
            &mut self,
            _: TensorOptions<Sh, f64, TestDevice>,
            t: &Tensor<Sh, f64, TestDevice>,
        ) -> Result<Option<Tensor<Sh, f64, TestDevice>>, Self::Err> {
            self.1.push(self.0.get(t).as_vec());
            Ok(None)
        }
        fn visit_scalar<N: num_traits::NumCast>(
            &mut self,
            _: ScalarOptions<N>,
            _: &N,
        ) -> Result<Option<N>, Self::Err> {
            Ok(None)
        }
    }
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut Collect(grads, out),
    });
}

/// `sum(y * r)`: the scalar whose gradients the golden files record.
pub fn r_times<Sh: Shape>(
    y: Tensor<Sh, f64, TestDevice, OwnedTape<f64, TestDevice>>,
    r: &[f64],
) -> Tensor<Rank0, f64, TestDevice, OwnedTape<f64, TestDevice>> {
    let shape = *y.shape();
    let r = TestDevice::default().tensor_from_vec(r.to_vec(), shape);
    (y * r).sum()
}
