//! How the optimizers find parameters without a gradient: the silenced panic probe keeps the
//! program's panic hook for every other panic, and the fallback used while a thread unwinds
//! gives the same answer. One test, alone in its binary, because the panic hook is global.

use shapesafe::optim::{self, OptimizerUpdateError};
use shapesafe::prelude::*;
use std::panic::{catch_unwind, set_hook};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

type Net = (Linear<3, 5>, Tanh, Linear<5, 2>);
type Model = <Net as BuildOnDevice<Cpu, f64>>::Built;

static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);

/// One Adam step with gradients for the first layer only, from `start`: the unused ids
/// and the parameters after it.
fn step_with_first_layer_only(start: &Model) -> (Vec<dfdx::prelude::UniqueId>, Vec<f64>) {
    let mut m = start.clone();
    let mut opt = optim::Adam::new(&m, AdamConfig::default());
    let x: Tensor<Rank2<4, 3>, f64, Cpu> = Cpu::seed_from_u64(7).sample_normal();
    let g =
        m.0.forward(x.traced(Gradients::leaky()))
            .square()
            .sum()
            .backward();
    let unused = match opt.update(&mut m, &g) {
        Err(OptimizerUpdateError::UnusedParams(unused)) => unused.ids,
        other => panic!("expected UnusedParams, got {other:?}"),
    };
    let params = [m.0.weight.as_vec(), m.0.bias.as_vec(), m.2.weight.as_vec()].concat();
    (unused, params)
}

/// Runs the step from a destructor while its thread unwinds, where the probe cannot be
/// used, and keeps what it saw.
struct StepWhileUnwinding<'a> {
    start: &'a Model,
    seen: &'a Mutex<Option<(Vec<dfdx::prelude::UniqueId>, Vec<f64>)>>,
}

impl Drop for StepWhileUnwinding<'_> {
    fn drop(&mut self) {
        assert!(std::thread::panicking());
        *self.seen.lock().unwrap() = Some(step_with_first_layer_only(self.start));
    }
}

#[test]
fn the_probe_is_silent_keeps_the_hook_and_agrees_with_the_fallback() {
    // Set before the first probe, so the probe's hook forwards to this one.
    set_hook(Box::new(|_| {
        HOOK_CALLS.fetch_add(1, Ordering::SeqCst);
    }));
    let start = Cpu::seed_from_u64(0).build_module::<Net, f64>();

    let (unused, params) = step_with_first_layer_only(&start);
    let mut expected = dfdx::optim::UnusedTensors::default();
    expected.add(&start.2.weight);
    expected.add(&start.2.bias);
    assert_eq!(unused, expected.ids);
    assert_eq!(
        HOOK_CALLS.load(Ordering::SeqCst),
        0,
        "the probe's panics reached the hook"
    );

    // Any other panic still reaches the program's hook.
    assert!(catch_unwind(|| panic!("a real one")).is_err());
    assert_eq!(HOOK_CALLS.load(Ordering::SeqCst), 1);

    // While unwinding, the same step takes the fallback and must agree.
    let seen = Mutex::new(None);
    let unwound = catch_unwind(|| {
        let _guard = StepWhileUnwinding {
            start: &start,
            seen: &seen,
        };
        panic!("unwind through the guard");
    });
    assert!(unwound.is_err());
    assert_eq!(HOOK_CALLS.load(Ordering::SeqCst), 2);
    let fallback = seen.lock().unwrap().take().expect("the guard ran");
    assert_eq!(fallback, (unused, params));
}
