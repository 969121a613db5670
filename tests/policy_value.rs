//! `PolicyValue`: both heads run on the trunk's features, and `(policy_loss + value_loss)`
//! backpropagates into every part, checked against central finite differences in f64.

mod common;

use common::{assert_close, random_vec, rng, TestDevice, FINITE_DIFF};
use shapesafe::prelude::*;

type Net = PolicyValue<(Flatten, Linear<18, 6>, Tanh), Linear<6, 9>, (Linear<6, 1>, Tanh)>;
type Built = <Net as BuildOnDevice<TestDevice, f64>>::Built;
type Board = Tensor<Rank4<3, 2, 3, 3>, f64, TestDevice>;

/// `sum(policy * r_policy) + sum(value * r_value)` without a tape.
fn loss(net: &Built, x: Board, r_policy: &[f64], r_value: &[f64]) -> f64 {
    let (p, v) = net.forward(x);
    let dot = |a: Vec<f64>, b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
    dot(p.as_vec(), r_policy) + dot(v.as_vec(), r_value)
}

/// Central differences of `loss` in every element of the weight `get` selects.
fn numeric<S: Shape>(
    net: &Built,
    x: &Board,
    r: (&[f64], &[f64]),
    get: impl Fn(&mut Built) -> &mut Tensor<S, f64, TestDevice>,
) -> Vec<f64> {
    let h = 1e-6;
    let mut probe = net.clone();
    let base = get(&mut probe).as_vec();
    (0..base.len())
        .map(|i| {
            let mut at = |delta: f64| {
                let mut w = base.clone();
                w[i] += delta;
                get(&mut probe).copy_from(&w);
                loss(&probe, x.clone(), r.0, r.1)
            };
            (at(h) - at(-h)) / (2.0 * h)
        })
        .collect()
}

#[test]
fn both_heads_share_the_trunk_and_its_gradients() {
    let dev = TestDevice::seed_from_u64(3);
    let net = dev.build_module::<Net, f64>();
    let mut g = rng(7);
    let x: Board = dev.tensor_from_vec(random_vec(&mut g, 54), Default::default());
    let (r_policy, r_value) = (random_vec(&mut g, 27), random_vec(&mut g, 3));

    // Each head sees the trunk's features.
    let features = net.trunk.forward(x.clone());
    let (p, v) = net.forward(x.clone());
    assert_eq!(p.as_vec(), net.policy.forward(features.clone()).as_vec());
    assert_eq!(v.as_vec(), net.value.forward(features).as_vec());

    let (p, v) = net.forward(x.trace(net.alloc_grads()));
    let r_p = dev.tensor_from_vec(r_policy.clone(), *p.shape());
    let r_v = dev.tensor_from_vec(r_value.clone(), *v.shape());
    let grads = ((p * r_p).sum() + (v * r_v).sum()).backward();
    let r = (&r_policy[..], &r_value[..]);
    assert_close(
        "trunk weight",
        &grads.get(&net.trunk.1.weight).as_vec(),
        &numeric(&net, &x, r, |n| &mut n.trunk.1.weight),
        FINITE_DIFF,
    );
    assert_close(
        "policy weight",
        &grads.get(&net.policy.weight).as_vec(),
        &numeric(&net, &x, r, |n| &mut n.policy.weight),
        FINITE_DIFF,
    );
    assert_close(
        "value weight",
        &grads.get(&net.value.0.weight).as_vec(),
        &numeric(&net, &x, r, |n| &mut n.value.0.weight),
        FINITE_DIFF,
    );
}

#[test]
fn the_summary_lists_trunk_and_both_heads() {
    let summary = Net::summary::<Rank3<2, 3, 3>>();
    let text = summary.to_string();
    assert!(text.contains("trunk: Linear<18, 6>"), "{text}");
    assert!(text.contains("policy: Linear<6, 9>"), "{text}");
    assert!(text.contains("value: Tanh"), "{text}");
    assert_eq!(
        summary.total_params(),
        <Net as HeadsInfer<Rank3<2, 3, 3>>>::PARAMS
    );
    assert_eq!(summary.total_params(), 114 + 63 + 7);
}
