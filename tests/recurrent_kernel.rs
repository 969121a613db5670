//! The recurrent kernel (`RecurrentKernel::try_recurrent`, and the layers that run on it)
//! against a plain-loop f64 reference of PyTorch's equations, its gradients against central
//! finite differences in f64, and the bit-for-bit reproducibility of training on it.

mod common;

use common::TestDevice;

use common::{assert_close, dot, random_vec, rng, Tolerance, F64_TIGHT, FINITE_DIFF};
use shapesafe::kernels::recurrent::composed;
use shapesafe::kernels::{RecurrentKernel, RecurrentMode, RecurrentParams};
use shapesafe::nn::modules::Recurrent;
use shapesafe::nn::recurrent::cell::Cell;
use shapesafe::nn::recurrent::CellMode;
use shapesafe::prelude::*;

const I: usize = 3;
const H: usize = 4;
const MODES: [RecurrentMode; 4] = [
    RecurrentMode::Tanh,
    RecurrentMode::Relu,
    RecurrentMode::Lstm,
    RecurrentMode::Gru,
];

/// One run of the kernel: the mode, the sizes and the options.
#[derive(Clone, Copy, Debug)]
struct Case {
    mode: RecurrentMode,
    batch: usize,
    steps: usize,
    reverse: bool,
    initial: bool,
}

/// The input, the four parameters (PyTorch's layout) and the initial state of a case.
#[derive(Clone, Debug)]
struct Values {
    x: Vec<f64>,
    /// `weight_ih, weight_hh, bias_ih, bias_hh`.
    params: [Vec<f64>; 4],
    h0: Option<Vec<f64>>,
    c0: Option<Vec<f64>>,
}

impl Values {
    fn random(c: &Case, seed: u64) -> Self {
        let mut r = rng(seed);
        let rows = c.mode.gates() * H;
        let x = random_vec(&mut r, c.batch * c.steps * I);
        let params = [rows * I, rows * H, rows, rows].map(|n| random_vec(&mut r, n));
        let h0 = c.initial.then(|| random_vec(&mut r, c.batch * H));
        let lstm = c.mode == RecurrentMode::Lstm;
        let c0 = (c.initial && lstm).then(|| random_vec(&mut r, c.batch * H));
        Values { x, params, h0, c0 }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// What one run produced: the output `(B, T, H)`, the final `h` and `c`.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    out: Vec<f64>,
    h: Vec<f64>,
    c: Option<Vec<f64>>,
}

/// PyTorch's equations, one batch row, step and unit at a time.
fn reference(c: &Case, v: &Values) -> Run {
    let [w_ih, w_hh, b_ih, b_hh] = &v.params;
    let rows = c.mode.gates() * H;
    let mut out = vec![0.0; c.batch * c.steps * H];
    let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
    for b in 0..c.batch {
        let state = |s: &Option<Vec<f64>>| match s {
            Some(s) => s[b * H..(b + 1) * H].to_vec(),
            None => vec![0.0; H],
        };
        let (mut h, mut cell) = (state(&v.h0), state(&v.c0));
        for n in 0..c.steps {
            let t = if c.reverse { c.steps - 1 - n } else { n };
            let x = &v.x[(b * c.steps + t) * I..][..I];
            let px: Vec<f64> = (0..rows)
                .map(|k| b_ih[k] + (0..I).map(|i| w_ih[k * I + i] * x[i]).sum::<f64>())
                .collect();
            let ph: Vec<f64> = (0..rows)
                .map(|k| b_hh[k] + (0..H).map(|j| w_hh[k * H + j] * h[j]).sum::<f64>())
                .collect();
            let pre = |k: usize| px[k] + ph[k];
            h = (0..H)
                .map(|j| match c.mode {
                    RecurrentMode::Tanh => pre(j).tanh(),
                    RecurrentMode::Relu => pre(j).max(0.0),
                    RecurrentMode::Lstm => {
                        let (i, f) = (sigmoid(pre(j)), sigmoid(pre(H + j)));
                        let (g, o) = (pre(2 * H + j).tanh(), sigmoid(pre(3 * H + j)));
                        cell[j] = f * cell[j] + i * g;
                        o * cell[j].tanh()
                    }
                    RecurrentMode::Gru => {
                        let (r, z) = (sigmoid(pre(j)), sigmoid(pre(H + j)));
                        let new = (px[2 * H + j] + r * ph[2 * H + j]).tanh();
                        (1.0 - z) * new + z * h[j]
                    }
                })
                .collect();
            out[(b * c.steps + t) * H..][..H].copy_from_slice(&h);
        }
        h_n.extend_from_slice(&h);
        c_n.extend_from_slice(&cell);
    }
    let c_n = (c.mode == RecurrentMode::Lstm).then_some(c_n);
    Run {
        out,
        h: h_n,
        c: c_n,
    }
}

type Weight<D> = Tensor<(usize, D), f64, TestDevice>;
type Bias = Tensor<(usize,), f64, TestDevice>;

/// The case's parameters as tensors, gate rows as a runtime dim.
fn params(c: &Case, p: &[Vec<f64>; 4]) -> (Weight<Const<I>>, Weight<Const<H>>, [Bias; 2]) {
    let dev = TestDevice::default();
    let rows = c.mode.gates() * H;
    (
        dev.tensor_from_vec(p[0].clone(), (rows, Const)),
        dev.tensor_from_vec(p[1].clone(), (rows, Const)),
        [
            dev.tensor_from_vec(p[2].clone(), (rows,)),
            dev.tensor_from_vec(p[3].clone(), (rows,)),
        ],
    )
}

/// How a run is executed: the device's kernel or the composition of dfdx ops.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    Kernel,
    Composed,
}

/// Runs the case with batch dim `B` and time dim `S`; with `weights`, also the gradients
/// of `sum(out * weights)` with respect to `x` and the four parameters.
fn run<B: Dim, S: Dim>(
    path: Path,
    c: &Case,
    v: &Values,
    (b, s): (B, S),
    weights: Option<&[f64]>,
) -> (Run, Option<[Vec<f64>; 5]>) {
    let dev = TestDevice::default();
    let (w_ih, w_hh, [b_ih, b_hh]) = params(c, &v.params);
    let p = RecurrentParams {
        weight_ih: &w_ih,
        weight_hh: &w_hh,
        bias_ih: &b_ih,
        bias_hh: &b_hh,
    };
    let state = |s: &Option<Vec<f64>>| {
        s.as_ref()
            .map(|s| dev.tensor_from_vec(s.clone(), (b, Const::<H>)))
    };
    let initial = state(&v.h0).map(|h| (h, state(&v.c0)));
    let x = dev.tensor_from_vec(v.x.clone(), (b, s, Const::<I>));
    let x_t = x.trace(Gradients::leaky());
    let (y, (h, cell)) = match path {
        Path::Kernel => TestDevice::try_recurrent(x_t, p, initial, c.mode, c.reverse),
        Path::Composed => composed::recurrent(x_t, p, initial, c.mode, c.reverse),
    }
    .unwrap();
    let result = Run {
        // dfdx's `as_vec` fails on a tensor without elements.
        out: match y.shape().num_elements() {
            0 => Vec::new(),
            _ => y.as_vec(),
        },
        h: h.as_vec(),
        c: cell.map(|c| c.as_vec()),
    };
    let grads = weights.map(|w| {
        let w = dev.tensor_from_vec(w.to_vec(), *y.shape());
        let g = (y * w).sum().backward();
        [
            g.get(&x).as_vec(),
            g.get(&w_ih).as_vec(),
            g.get(&w_hh).as_vec(),
            g.get(&b_ih).as_vec(),
            g.get(&b_hh).as_vec(),
        ]
    });
    (result, grads)
}

/// Every case of the grid: each mode, both directions, with and without an initial state;
/// and for each mode a batch of 20, which the CPU kernel cuts into chunks for its threads.
fn grid() -> Vec<Case> {
    let mut cases = Vec::new();
    for mode in MODES {
        for reverse in [false, true] {
            for initial in [false, true] {
                cases.push(Case {
                    mode,
                    batch: 2,
                    steps: 5,
                    reverse,
                    initial,
                });
            }
        }
        cases.push(Case {
            mode,
            batch: 20,
            steps: 3,
            reverse: true,
            initial: true,
        });
    }
    cases
}

/// Whether the case's sizes are the `Const` ones the tests also run it with.
fn fixed_size(c: &Case) -> bool {
    (c.batch, c.steps) == (2, 5)
}

/// Central differences of `sum(out * weights)` in every element of `x` and of each parameter.
fn numeric_grads(c: &Case, v: &Values, weights: &[f64]) -> [Vec<f64>; 5] {
    let loss = |v: &Values| {
        let (r, _) = run(Path::Kernel, c, v, (c.batch, c.steps), None);
        dot(&r.out, weights)
    };
    let along = |k: usize| {
        let at = if k == 0 { &v.x } else { &v.params[k - 1] };
        common::finite_differences(at, |p| {
            let mut v = v.clone();
            if k == 0 {
                v.x = p.to_vec();
            } else {
                v.params[k - 1] = p.to_vec();
            }
            loss(&v)
        })
    };
    core::array::from_fn(along)
}

const NAMES: [&str; 5] = ["x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"];

#[test]
fn kernel_matches_the_reference_with_const_and_usize_dims() {
    for (i, c) in grid().iter().enumerate() {
        let v = Values::random(c, i as u64);
        let expected = reference(c, &v);
        let (dynamic, _) = run(Path::Kernel, c, &v, (c.batch, c.steps), None);
        let what = format!("{c:?}");
        assert_close(
            &format!("{what} output"),
            &dynamic.out,
            &expected.out,
            F64_TIGHT,
        );
        assert_close(&format!("{what} h_n"), &dynamic.h, &expected.h, F64_TIGHT);
        if let (Some(ours), Some(theirs)) = (&dynamic.c, &expected.c) {
            assert_close(&format!("{what} c_n"), ours, theirs, F64_TIGHT);
        }
        assert_eq!(dynamic.c.is_some(), expected.c.is_some(), "{what}: c_n");
        if fixed_size(c) {
            // The dim types change nothing in the arithmetic.
            let (fixed, _) = run(Path::Kernel, c, &v, (Const::<2>, Const::<5>), None);
            assert_eq!(fixed, dynamic, "{what}: Const dims against usize dims");
        }
    }
}

#[test]
fn kernel_gradients_match_finite_differences() {
    for (i, c) in grid().iter().enumerate() {
        let v = Values::random(c, 100 + i as u64);
        let weights = random_vec(&mut rng(200 + i as u64), c.batch * c.steps * H);
        let (_, analytic) = run(Path::Kernel, c, &v, (c.batch, c.steps), Some(&weights));
        let analytic = analytic.unwrap();
        if fixed_size(c) {
            let dims = (Const::<2>, Const::<5>);
            let (_, fixed) = run(Path::Kernel, c, &v, dims, Some(&weights));
            assert_eq!(
                fixed.unwrap(),
                analytic,
                "{c:?}: Const dims against usize dims"
            );
        }
        let numeric = numeric_grads(c, &v, &weights);
        for ((name, a), n) in NAMES.iter().zip(&analytic).zip(&numeric) {
            assert_close(&format!("{c:?} d/d{name}"), a, n, FINITE_DIFF);
        }
    }
}

#[test]
fn composed_version_matches_the_kernel() {
    // The composition CUDA runs, here on the CPU, against the CPU kernel.
    let close = Tolerance {
        abs: 1e-12,
        rel: 1e-12,
    };
    for (i, c) in grid().iter().enumerate() {
        let v = Values::random(c, 300 + i as u64);
        let weights = random_vec(&mut rng(400 + i as u64), c.batch * c.steps * H);
        let dims = (c.batch, c.steps);
        let (k, kg) = run(Path::Kernel, c, &v, dims, Some(&weights));
        let (m, mg) = run(Path::Composed, c, &v, dims, Some(&weights));
        assert_close(&format!("{c:?} output"), &m.out, &k.out, close);
        assert_close(&format!("{c:?} h_n"), &m.h, &k.h, close);
        for ((name, a), b) in NAMES.iter().zip(&mg.unwrap()).zip(&kg.unwrap()) {
            assert_close(&format!("{c:?} d/d{name}"), a, b, close);
        }
    }
}

#[test]
fn an_empty_sequence_returns_the_initial_state() {
    for (mode, path) in MODES
        .iter()
        .flat_map(|&m| [(m, Path::Kernel), (m, Path::Composed)])
    {
        let c = Case {
            mode,
            batch: 2,
            steps: 0,
            reverse: false,
            initial: true,
        };
        let v = Values::random(&c, 7);
        let (r, _) = run(path, &c, &v, (c.batch, c.steps), None);
        assert!(r.out.is_empty());
        assert_eq!(Some(r.h), v.h0, "{mode:?} {path:?}");
        assert_eq!(r.c, v.c0, "{mode:?} {path:?}");
    }
}

/// Puts the case's parameters into a layer's cell.
fn load<M: CellMode, const G: usize>(
    cell: &mut Cell<M, Const<I>, G, H, f64, TestDevice>,
    p: &[Vec<f64>; 4],
) {
    cell.weight_ih.copy_from(&p[0]);
    cell.weight_hh.copy_from(&p[1]);
    cell.bias_ih.copy_from(&p[2]);
    cell.bias_hh.copy_from(&p[3]);
}

/// The unbatched layer `(T, I) -> (T, H)` of mode `M` against the reference (batch 1, no
/// state), its gradients against finite differences through the layer.
fn check_unbatched<M: CellMode, const G: usize>(mode: RecurrentMode)
where
    Recurrent<M, G, I, H, 1, false, f64, TestDevice>: BuildModule<TestDevice, f64>,
{
    const T: usize = 6;
    let dev = TestDevice::default();
    let c = Case {
        mode,
        batch: 1,
        steps: T,
        reverse: false,
        initial: false,
    };
    let v = Values::random(&c, 11);
    let weights = random_vec(&mut rng(12), T * H);
    let base: Recurrent<M, G, I, H, 1, false, f64, TestDevice> = BuildModule::build(&dev);
    // sum(layer(x) * weights), with the gradients of x and the four parameters.
    let loss = |v: &Values, grads: bool| {
        let mut layer = base.clone();
        load(&mut layer.first[0], &v.params);
        let x: Tensor<Rank2<T, I>, f64, _> = dev.tensor_from_vec(v.x.clone(), Default::default());
        let y = layer.forward(x.trace(Gradients::leaky()));
        let out = y.as_vec();
        let g = grads.then(|| {
            let w = dev.tensor_from_vec(weights.clone(), *y.shape());
            let g = (y * w).sum().backward();
            let cell = &layer.first[0];
            [
                g.get(&x).as_vec(),
                g.get(&cell.weight_ih).as_vec(),
                g.get(&cell.weight_hh).as_vec(),
                g.get(&cell.bias_ih).as_vec(),
                g.get(&cell.bias_hh).as_vec(),
            ]
        });
        (out, g)
    };
    let (out, analytic) = loss(&v, true);
    assert_close(
        &format!("{mode:?} unbatched"),
        &out,
        &reference(&c, &v).out,
        F64_TIGHT,
    );
    for (k, (name, a)) in NAMES.iter().zip(analytic.unwrap()).enumerate() {
        let at = if k == 0 { &v.x } else { &v.params[k - 1] };
        let numeric = common::finite_differences(at, |p| {
            let mut v = v.clone();
            if k == 0 {
                v.x = p.to_vec();
            } else {
                v.params[k - 1] = p.to_vec();
            }
            dot(&loss(&v, false).0, &weights)
        });
        assert_close(
            &format!("{mode:?} unbatched d/d{name}"),
            &a,
            &numeric,
            FINITE_DIFF,
        );
    }
}

#[test]
fn unbatched_layers_match_the_reference_and_finite_differences() {
    use shapesafe::nn::recurrent::{gru::GruMode, lstm::LstmMode, rnn::ReluMode, rnn::TanhMode};
    check_unbatched::<TanhMode, 1>(RecurrentMode::Tanh);
    check_unbatched::<ReluMode, 1>(RecurrentMode::Relu);
    check_unbatched::<LstmMode, 4>(RecurrentMode::Lstm);
    check_unbatched::<GruMode, 3>(RecurrentMode::Gru);
}

/// Three Adam steps of a two-layer bidirectional LSTM and a GRU, large enough that the
/// kernel's GEMMs and gate passes run on several threads; returns every loss and parameter.
fn train() -> Vec<Vec<f32>> {
    type Net = (Lstm<32, 128, 2, true>, Gru<256, 64>);
    let dev = TestDevice::seed_from_u64(3);
    let mut model = dev.build_module::<Net, f32>();
    model.0.dropout = 0.25;
    let mut opt = Adam::new(&model, AdamConfig::default());
    let x: Tensor<Rank3<32, 16, 32>, f32, _> = dev.sample_normal();
    let target: Tensor<(Const<32>, Const<16>, Directions<64, false>), f32, _> = dev.sample_normal();
    let mut grads = model.alloc_grads();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let y = model.forward_mut(x.trace(grads));
        let loss = mse_loss(y, target.clone());
        seen.push(vec![loss.array()]);
        grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    for cell in &model.0.first {
        seen.push(cell.weight_ih.as_vec());
        seen.push(cell.weight_hh.as_vec());
        seen.push(cell.bias_hh.as_vec());
    }
    for cell in &model.0.deeper {
        seen.push(cell.weight_ih.as_vec());
        seen.push(cell.weight_hh.as_vec());
        seen.push(cell.bias_ih.as_vec());
    }
    seen.push(model.1.first[0].weight_hh.as_vec());
    seen
}

#[test]
fn training_is_bit_for_bit_reproducible() {
    let (a, b) = (train(), train());
    assert_eq!(a.len(), b.len());
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        let (a, b): (Vec<u32>, Vec<u32>) = (
            a.iter().map(|v| v.to_bits()).collect(),
            b.iter().map(|v| v.to_bits()).collect(),
        );
        assert!(a == b, "run 2 differs from run 1 in item {i}");
    }
    assert!(a[2][0] < a[0][0], "the loss falls: {:?}", &a[..3]);
}
