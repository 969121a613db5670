//! Unflatten, the VAE's pieces (KL, reparameterisation, losses, forward passes) against
//! plain f64 references and finite differences, and the conv VAE learning on MNIST digits.

mod common;

use common::TestDevice;

use common::{assert_close, check_input_gradient, finite_differences, random_vec, rng, Tolerance};
use shapesafe::models::{
    kl_divergence, reconstruction_loss, reparameterize, vae_loss, Vae, VaeOutput,
};
use shapesafe::prelude::*;

const TIGHT: Tolerance = Tolerance {
    abs: 1e-12,
    rel: 1e-12,
};
/// Central differences in f64 through a few layers: good to well under 1e-6.
const GRADIENT: Tolerance = Tolerance {
    abs: 1e-6,
    rel: 1e-6,
};

/// `torch.nn.Unflatten(1, (c, h, w))` by its definition: output `(b, ci, y, x)` is input
/// feature `ci * h * w + y * w + x` of example `b`.
fn unflatten_reference(x: &[f64], batch: usize, c: usize, h: usize, w: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for b in 0..batch {
        for ci in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out.push(x[b * c * h * w + ci * h * w + y * w + xx]);
                }
            }
        }
    }
    out
}

#[test]
fn unflatten_values_batched_usize_and_unbatched() {
    let dev = TestDevice::default();
    let values = random_vec(&mut rng(1), 2 * 24);
    let expected = unflatten_reference(&values, 2, 2, 3, 4);

    let x: Tensor<Rank2<2, 24>, f64, _> = dev.tensor_from_vec(values.clone(), Default::default());
    let y: Tensor<Rank4<2, 2, 3, 4>, f64, _> = Unflatten::<2, 3, 4>.forward(x);
    assert_close("Const batch", &y.as_vec(), &expected, TIGHT);

    let x: Tensor<(usize, Const<24>), f64, _> = dev.tensor_from_vec(values.clone(), (2, Const));
    let y: Tensor<(usize, Const<2>, Const<3>, Const<4>), f64, _> = Unflatten::<2, 3, 4>.forward(x);
    assert_eq!(y.shape().concrete(), [2, 2, 3, 4]);
    assert_close("usize batch", &y.as_vec(), &expected, TIGHT);

    let x: Tensor<Rank1<24>, f64, _> =
        dev.tensor_from_vec(values[24..].to_vec(), Default::default());
    let y: Tensor<Rank3<2, 3, 4>, f64, _> = Unflatten::<2, 3, 4>.forward(x);
    assert_close("unbatched", &y.as_vec(), &expected[24..], TIGHT);
}

#[test]
fn unflatten_inverts_flatten_and_passes_gradients() {
    let dev = TestDevice::default();
    let x: Tensor<Rank4<3, 2, 3, 4>, f64, _> =
        dev.tensor_from_vec(random_vec(&mut rng(2), 72), Default::default());
    // A Flattened dim is accepted as well as a Const one: its size is what is checked.
    let model = dev.build_module::<(Flatten, Unflatten<2, 3, 4>), f64>();
    let y: Tensor<Rank4<3, 2, 3, 4>, f64, _> = model.forward(x.clone());
    assert_eq!(y.as_vec(), x.as_vec());
    check_input_gradient("Unflatten after Flatten", &x, |t| {
        Unflatten::<2, 3, 4>.forward(Flatten.forward(t))
    });
}

shapesafe::assert_shapes!((Flatten, Unflatten<4, 2, 3>): Rank3<2, 3, 4> => Rank3<4, 2, 3>, params = 0);

#[test]
fn unflatten_summary_names_the_layer() {
    let summary = Summary::of::<(Linear<6, 12>, Unflatten<3, 2, 2>), Rank1<6>>();
    assert_eq!(summary.rows[1].layer, "Unflatten<3, 2, 2>");
    assert_eq!(summary.rows[1].output, vec![3, 2, 2]);
    assert_eq!(summary.total_params(), 6 * 12 + 12);
}

/// `mean_b -0.5 * sum_j (1 + lv - mu^2 - exp(lv))`, term by term.
fn kl_reference(mu: &[f64], log_var: &[f64], batch: usize) -> f64 {
    let total: f64 = mu
        .iter()
        .zip(log_var)
        .map(|(&m, &lv)| -0.5 * (1.0 + lv - m * m - lv.exp()))
        .sum();
    total / batch as f64
}

#[test]
fn kl_divergence_matches_the_formula_const_and_usize_batch() {
    let dev = TestDevice::default();
    let mut r = rng(3);
    let mu = random_vec(&mut r, 4 * 5);
    let log_var: Vec<f64> = random_vec(&mut r, 4 * 5).iter().map(|v| 2.0 * v).collect();
    let expected = kl_reference(&mu, &log_var, 4);

    let m: Tensor<Rank2<4, 5>, f64, _> = dev.tensor_from_vec(mu.clone(), Default::default());
    let lv: Tensor<Rank2<4, 5>, f64, _> = dev.tensor_from_vec(log_var.clone(), Default::default());
    assert_close(
        "Const batch",
        &[kl_divergence(m, lv).array()],
        &[expected],
        TIGHT,
    );

    let m: Tensor<(usize, Const<5>), f64, _> = dev.tensor_from_vec(mu.clone(), (4, Const));
    let lv: Tensor<(usize, Const<5>), f64, _> = dev.tensor_from_vec(log_var.clone(), (4, Const));
    assert_close(
        "usize batch",
        &[kl_divergence(m, lv).array()],
        &[expected],
        TIGHT,
    );

    // The prior itself is at distance 0.
    let zero: Tensor<Rank2<2, 3>, f64, _> = dev.zeros();
    assert_eq!(kl_divergence(zero.clone(), zero).array(), 0.0);
}

#[test]
fn kl_divergence_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let mut r = rng(4);
    let mu = random_vec(&mut r, 3 * 4);
    let log_var = random_vec(&mut r, 3 * 4);
    let m: Tensor<Rank2<3, 4>, f64, _> = dev.tensor_from_vec(mu.clone(), Default::default());
    let lv: Tensor<Rank2<3, 4>, f64, _> = dev.tensor_from_vec(log_var.clone(), Default::default());
    let grads = kl_divergence(m.leaky_trace(), lv.leaky_trace()).backward();

    let d_mu = finite_differences(&mu, |v| kl_reference(v, &log_var, 3));
    let d_log_var = finite_differences(&log_var, |v| kl_reference(&mu, v, 3));
    assert_close("dKL/dmu", &grads.get(&m).as_vec(), &d_mu, GRADIENT);
    assert_close(
        "dKL/dlog_var",
        &grads.get(&lv).as_vec(),
        &d_log_var,
        GRADIENT,
    );
}

#[test]
fn reparameterisation_gradients_match_finite_differences() {
    let dev = TestDevice::default();
    let mut r = rng(5);
    let (mu, log_var, eps) = (
        random_vec(&mut r, 6),
        random_vec(&mut r, 6),
        random_vec(&mut r, 6),
    );
    let weights: Vec<f64> = (1..=6).map(|i| i as f64 / 3.0).collect();
    // sum(w * (mu + exp(0.5 * lv) * eps)), by hand.
    let objective = |mu: &[f64], lv: &[f64]| -> f64 {
        (0..6)
            .map(|i| weights[i] * (mu[i] + (0.5 * lv[i]).exp() * eps[i]))
            .sum()
    };
    let m: Tensor<Rank2<2, 3>, f64, _> = dev.tensor_from_vec(mu.clone(), Default::default());
    let lv: Tensor<Rank2<2, 3>, f64, _> = dev.tensor_from_vec(log_var.clone(), Default::default());
    let e: Tensor<Rank2<2, 3>, f64, _> = dev.tensor_from_vec(eps.clone(), Default::default());
    let w: Tensor<Rank2<2, 3>, f64, _> = dev.tensor_from_vec(weights.clone(), Default::default());
    let z = reparameterize(m.leaky_trace(), lv.leaky_trace(), e);
    assert_close(
        "z",
        &[(z.retaped::<NoneTape>() * w.clone())
            .sum::<Rank0, _>()
            .array()],
        &[objective(&mu, &log_var)],
        TIGHT,
    );
    let grads = (z * w).sum().backward();
    let d_mu = finite_differences(&mu, |v| objective(v, &log_var));
    let d_log_var = finite_differences(&log_var, |v| objective(&mu, v));
    assert_close("dz/dmu", &grads.get(&m).as_vec(), &d_mu, GRADIENT);
    assert_close(
        "dz/dlog_var",
        &grads.get(&lv).as_vec(),
        &d_log_var,
        GRADIENT,
    );
}

/// Binary cross-entropy summed per example, averaged over the batch, by hand.
fn bce_reference(p: &[f64], t: &[f64], batch: usize) -> f64 {
    let total: f64 = p
        .iter()
        .zip(t)
        .map(|(&p, &t)| -(t * p.ln() + (1.0 - t) * (1.0 - p).ln()))
        .sum();
    total / batch as f64
}

#[test]
fn vae_loss_is_bce_plus_beta_kl() {
    let dev = TestDevice::default();
    let mut r = rng(6);
    let p: Vec<f64> = random_vec(&mut r, 2 * 5)
        .iter()
        .map(|v| 0.5 + 0.4 * v)
        .collect();
    let t: Vec<f64> = random_vec(&mut r, 2 * 5)
        .iter()
        .map(|v| 0.5 + 0.5 * v)
        .collect();
    let (mu, log_var) = (random_vec(&mut r, 2 * 3), random_vec(&mut r, 2 * 3));
    let tensor = |v: &Vec<f64>| -> Tensor<(usize, Const<5>), f64, TestDevice> {
        dev.tensor_from_vec(v.clone(), (2, Const))
    };
    let latent = |v: &Vec<f64>| -> Tensor<(usize, Const<3>), f64, TestDevice> {
        dev.tensor_from_vec(v.clone(), (2, Const))
    };

    let bce = reconstruction_loss(tensor(&p), tensor(&t)).array();
    assert_close("BCE", &[bce], &[bce_reference(&p, &t, 2)], TIGHT);
    let output = VaeOutput {
        reconstruction: tensor(&p),
        mu: latent(&mu),
        log_var: latent(&log_var),
    };
    let expected = bce_reference(&p, &t, 2) + 0.25 * kl_reference(&mu, &log_var, 2);
    assert_close(
        "loss",
        &[vae_loss(output, tensor(&t), 0.25).array()],
        &[expected],
        TIGHT,
    );

    // A saturated sigmoid (exactly 0 or 1) gives a large but finite loss.
    let saturated: Tensor<Rank2<1, 2>, f32, _> = dev.tensor([[0.0, 1.0]]);
    let loss = reconstruction_loss(saturated.leaky_trace(), dev.tensor([[1.0, 0.0]]));
    assert!(
        loss.array().is_finite() && loss.array() > 20.0,
        "{}",
        loss.array()
    );
    assert!(loss
        .backward()
        .get(&saturated)
        .as_vec()
        .iter()
        .all(|g| g.is_finite()));
}

/// A small VAE in f64: 6 features in, 4 hidden, a 2-dim latent code, 6 probabilities out.
type SmallVae = Vae<(Linear<6, 4>, Tanh), (Linear<2, 6>, Sigmoid), 4, 2>;
shapesafe::assert_shapes!(SmallVae: Rank1<6> => Rank1<6>, params = 28 + 2 * 10 + 18);

#[test]
fn eval_forward_decodes_the_mean_batched_and_unbatched() {
    let dev = TestDevice::seed_from_u64(8);
    let model = dev.build_module::<SmallVae, f64>();
    let x: Tensor<Rank2<3, 6>, f64, _> = dev.sample_normal();

    let out = model.forward(x.clone());
    // The same composition, by hand from the submodules.
    let h = model.encoder.forward(x.clone());
    let mu = model.mu.forward(h.clone());
    let log_var = model.log_var.forward(h);
    let reconstruction = model.decoder.forward(mu.clone());
    assert_close("mu", &out.mu.as_vec(), &mu.as_vec(), TIGHT);
    assert_close("log_var", &out.log_var.as_vec(), &log_var.as_vec(), TIGHT);
    assert_close(
        "reconstruction",
        &out.reconstruction.as_vec(),
        &reconstruction.as_vec(),
        TIGHT,
    );

    let x_dyn: Tensor<(usize, Const<6>), f64, _> = dev.tensor_from_vec(x.as_vec(), (3, Const));
    let out_dyn = model.forward(x_dyn);
    assert_eq!(out_dyn.mu.shape().concrete(), [3, 2]);
    assert_close(
        "usize batch",
        &out_dyn.reconstruction.as_vec(),
        &reconstruction.as_vec(),
        TIGHT,
    );

    let row: Tensor<Rank1<6>, f64, _> =
        dev.tensor_from_vec(x.as_vec()[6..12].to_vec(), Default::default());
    let single = model.forward(row);
    assert_close(
        "unbatched",
        &single.reconstruction.as_vec(),
        &reconstruction.as_vec()[6..12],
        TIGHT,
    );
    assert_close(
        "unbatched mu",
        &single.mu.as_vec(),
        &mu.as_vec()[2..4],
        TIGHT,
    );
}

#[test]
fn training_forward_samples_around_the_mean() {
    // With the identity as decoder the reconstruction is the sample z itself.
    let dev = TestDevice::seed_from_u64(9);
    let mut model = dev.build_module::<Vae<Linear<3, 2>, Identity, 2, 2>, f64>();
    let n = 20_000;
    let x: Tensor<(usize, Const<3>), f64, _> =
        dev.tensor_from_vec([0.3, -0.7, 1.1].repeat(n), (n, Const));
    let out = model.forward_mut(x.clone());
    let (mu, log_var, z) = (
        out.mu.as_vec(),
        out.log_var.as_vec(),
        out.reconstruction.as_vec(),
    );
    let eval = model.forward(x);
    assert_eq!(mu, eval.mu.as_vec(), "the heads do not depend on the mode");
    for j in 0..2 {
        let samples: Vec<f64> = z.iter().skip(j).step_by(2).copied().collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = log_var[j].exp().sqrt();
        // Standard errors: sd / sqrt(n) for the mean, about sqrt(2 / n) * var for the variance.
        assert!(
            (mean - mu[j]).abs() < 5.0 * sd / (n as f64).sqrt(),
            "mean {mean} vs {}",
            mu[j]
        );
        assert!(
            (var / (sd * sd) - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(),
            "variance {var} vs {}",
            sd * sd
        );
    }
    // Two draws differ: the noise is fresh each call.
    let pair: Tensor<(usize, Const<3>), f64, _> =
        dev.tensor_from_vec([0.3, -0.7, 1.1].repeat(2), (2, Const));
    let again = model.forward_mut(pair);
    assert_ne!(
        again.reconstruction.as_vec()[..2],
        again.reconstruction.as_vec()[2..]
    );
}

/// The VAE loss of `SmallVae` at input `x` with noise `eps`, by hand from the model's
/// parameters (plain loops): the reference its gradients are checked against.
fn small_vae_loss_reference(
    params: &SmallVaeParams,
    x: &[f64],
    eps: &[f64],
    target: &[f64],
    beta: f64,
) -> f64 {
    let batch = x.len() / 6;
    let linear = |w: &[f64], b: &[f64], input: &[f64], n_in: usize| -> Vec<f64> {
        b.iter()
            .enumerate()
            .map(|(o, &bias)| bias + (0..n_in).map(|i| w[o * n_in + i] * input[i]).sum::<f64>())
            .collect()
    };
    let (mut p_all, mut mu_all, mut lv_all) = (Vec::new(), Vec::new(), Vec::new());
    for b in 0..batch {
        let h: Vec<f64> = linear(&params.enc_w, &params.enc_b, &x[b * 6..b * 6 + 6], 6)
            .iter()
            .map(|v| v.tanh())
            .collect();
        let mu = linear(&params.mu_w, &params.mu_b, &h, 4);
        let lv = linear(&params.lv_w, &params.lv_b, &h, 4);
        let z: Vec<f64> = (0..2)
            .map(|j| mu[j] + (0.5 * lv[j]).exp() * eps[b * 2 + j])
            .collect();
        let p: Vec<f64> = linear(&params.dec_w, &params.dec_b, &z, 2)
            .iter()
            .map(|v| 1.0 / (1.0 + (-v).exp()))
            .collect();
        p_all.extend(p);
        mu_all.extend(mu);
        lv_all.extend(lv);
    }
    bce_reference(&p_all, target, batch) + beta * kl_reference(&mu_all, &lv_all, batch)
}

struct SmallVaeParams {
    enc_w: Vec<f64>,
    enc_b: Vec<f64>,
    mu_w: Vec<f64>,
    mu_b: Vec<f64>,
    lv_w: Vec<f64>,
    lv_b: Vec<f64>,
    dec_w: Vec<f64>,
    dec_b: Vec<f64>,
}

#[test]
fn gradients_through_the_sampled_code_match_finite_differences() {
    let dev = TestDevice::seed_from_u64(10);
    let model = dev.build_module::<SmallVae, f64>();
    let mut r = rng(11);
    let x = random_vec(&mut r, 2 * 6);
    let eps = random_vec(&mut r, 2 * 2);
    let target: Vec<f64> = random_vec(&mut r, 2 * 6)
        .iter()
        .map(|v| 0.5 + 0.5 * v)
        .collect();
    let beta = 0.7;
    let params = SmallVaeParams {
        enc_w: model.encoder.0.weight.as_vec(),
        enc_b: model.encoder.0.bias.as_vec(),
        mu_w: model.mu.weight.as_vec(),
        mu_b: model.mu.bias.as_vec(),
        lv_w: model.log_var.weight.as_vec(),
        lv_b: model.log_var.bias.as_vec(),
        dec_w: model.decoder.0.weight.as_vec(),
        dec_b: model.decoder.0.bias.as_vec(),
    };

    let xt: Tensor<Rank2<2, 6>, f64, _> = dev.tensor_from_vec(x.clone(), Default::default());
    let et: Tensor<Rank2<2, 2>, f64, _> = dev.tensor_from_vec(eps.clone(), Default::default());
    let tt: Tensor<Rank2<2, 6>, f64, _> = dev.tensor_from_vec(target.clone(), Default::default());
    let out = model.forward_with_noise(xt.trace(model.alloc_grads()), et.clone());
    let loss = vae_loss(out, tt.clone(), beta);
    assert_close(
        "loss",
        &[loss.array()],
        &[small_vae_loss_reference(&params, &x, &eps, &target, beta)],
        Tolerance {
            abs: 1e-10,
            rel: 1e-10,
        },
    );
    let grads = loss.backward();

    // The heads' biases shift mu and log_var of every example: their gradients are the
    // reparameterised gradients wrt mu and log_var, summed over the batch.
    let numeric = |pick: fn(&mut SmallVaeParams) -> &mut Vec<f64>| {
        let at = pick(&mut clone_params(&params)).clone();
        finite_differences(&at, |v| {
            let mut p = clone_params(&params);
            *pick(&mut p) = v.to_vec();
            small_vae_loss_reference(&p, &x, &eps, &target, beta)
        })
    };
    assert_close(
        "d/d mu bias",
        &grads.get(&model.mu.bias).as_vec(),
        &numeric(|p| &mut p.mu_b),
        GRADIENT,
    );
    assert_close(
        "d/d log_var bias",
        &grads.get(&model.log_var.bias).as_vec(),
        &numeric(|p| &mut p.lv_b),
        GRADIENT,
    );
    assert_close(
        "d/d log_var weight",
        &grads.get(&model.log_var.weight).as_vec(),
        &numeric(|p| &mut p.lv_w),
        GRADIENT,
    );
    assert_close(
        "d/d encoder weight",
        &grads.get(&model.encoder.0.weight).as_vec(),
        &numeric(|p| &mut p.enc_w),
        GRADIENT,
    );
    assert_close(
        "d/d decoder bias",
        &grads.get(&model.decoder.0.bias).as_vec(),
        &numeric(|p| &mut p.dec_b),
        GRADIENT,
    );

    // And wrt the input, through everything.
    check_input_gradient("d loss / d x", &xt, |t| {
        vae_loss(model.forward_with_noise(t, et.clone()), tt.clone(), beta)
    });
}

fn clone_params(p: &SmallVaeParams) -> SmallVaeParams {
    SmallVaeParams {
        enc_w: p.enc_w.clone(),
        enc_b: p.enc_b.clone(),
        mu_w: p.mu_w.clone(),
        mu_b: p.mu_b.clone(),
        lv_w: p.lv_w.clone(),
        lv_b: p.lv_b.clone(),
        dec_w: p.dec_w.clone(),
        dec_b: p.dec_b.clone(),
    }
}

#[test]
fn eval_loss_reaches_the_log_variance_head() {
    // In evaluation the tape rides on the reconstruction, which does not use log_var:
    // the KL term must still send gradients to the log-variance head.
    let dev = TestDevice::seed_from_u64(12);
    let model = dev.build_module::<SmallVae, f64>();
    let x: Tensor<Rank2<2, 6>, f64, _> = dev.sample_normal();
    let target: Tensor<Rank2<2, 6>, f64, _> = dev.sample_uniform();
    let grads = vae_loss(
        model.forward(x.trace(model.alloc_grads())),
        target.clone(),
        1.0,
    )
    .backward();
    assert!(grads
        .get(&model.log_var.weight)
        .as_vec()
        .iter()
        .any(|g| *g != 0.0));
    // Zero noise decodes the mean too, and the noisy path's gradients are checked against
    // finite differences above: the evaluation path must agree with it exactly.
    let noisy = model.forward_with_noise(x.trace(model.alloc_grads()), dev.zeros());
    let reference = vae_loss(noisy, target, 1.0).backward();
    let close = |a: Vec<f64>, b: Vec<f64>, what: &str| assert_close(what, &a, &b, TIGHT);
    close(
        grads.get(&model.log_var.weight).as_vec(),
        reference.get(&model.log_var.weight).as_vec(),
        "log_var weight",
    );
    close(
        grads.get(&model.mu.bias).as_vec(),
        reference.get(&model.mu.bias).as_vec(),
        "mu bias",
    );
    close(
        grads.get(&model.encoder.0.weight).as_vec(),
        reference.get(&model.encoder.0.weight).as_vec(),
        "encoder weight",
    );
    close(
        grads.get(&model.decoder.0.weight).as_vec(),
        reference.get(&model.decoder.0.weight).as_vec(),
        "decoder weight",
    );
}

#[test]
fn parameters_are_named_like_the_fields() {
    let dev = TestDevice::default();
    let model = dev.build_module::<SmallVae, f32>();
    let path =
        std::env::temp_dir().join(format!("shapesafe-vae-{}.safetensors", std::process::id()));
    model.save_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let file = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "decoder.0.bias",
            "decoder.0.weight",
            "encoder.0.bias",
            "encoder.0.weight",
            "log_var.bias",
            "log_var.weight",
            "mu.bias",
            "mu.weight"
        ]
    );
    let mut loaded = dev.build_module::<SmallVae, f32>();
    let path2 =
        std::env::temp_dir().join(format!("shapesafe-vae2-{}.safetensors", std::process::id()));
    model.save_safetensors(&path2).unwrap();
    loaded.load_safetensors(&path2).unwrap();
    std::fs::remove_file(&path2).unwrap();
    assert_eq!(
        loaded.log_var.weight.as_vec(),
        model.log_var.weight.as_vec()
    );
}

#[test]
#[should_panic(expected = "the target's shape [2, 3] differs from the reconstruction's [2, 2]")]
fn a_target_of_another_size_is_refused() {
    let dev = TestDevice::default();
    let p: Tensor<(usize, Const<2>), f32, _> = dev.tensor_from_vec(vec![0.5; 4], (2, Const));
    let t: Tensor<(Const<2>, usize), f32, _> = dev.tensor_from_vec(vec![0.5; 6], (Const, 3));
    reconstruction_loss(p, t);
}

#[test]
fn conv_models_map_digits_to_digits_batched_and_unbatched() {
    use shapesafe::models::{ConvAutoencoder, ConvVae};
    let dev = TestDevice::seed_from_u64(13);
    let autoencoder = dev.build_module::<ConvAutoencoder<8>, f32>();
    let x: Tensor<Rank4<2, 1, 28, 28>, f32, _> = dev.sample_uniform();
    let y = autoencoder.forward(x.clone());
    assert_eq!(y.shape().concrete(), [2, 1, 28, 28]);
    assert!(y.as_vec().iter().all(|p| (0.0..=1.0).contains(p)));
    // The tuple is the encoder then the decoder.
    let by_hand = autoencoder.1.forward(autoencoder.0.forward(x.clone()));
    assert_eq!(y.as_vec(), by_hand.as_vec());
    let single: Tensor<Rank3<1, 28, 28>, f32, _> =
        dev.tensor_from_vec(x.as_vec()[784..].to_vec(), Default::default());
    common::assert_close_f32(
        "unbatched",
        &autoencoder.forward(single).as_vec(),
        &y.as_vec()[784..]
            .iter()
            .map(|&v| v as f64)
            .collect::<Vec<_>>(),
        common::F32,
    );

    let vae = dev.build_module::<ConvVae<4>, f32>();
    let x_dyn: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, _> =
        dev.tensor_from_vec(x.as_vec(), (2, Const, Const, Const));
    let out = vae.forward(x_dyn);
    assert_eq!(out.reconstruction.shape().concrete(), [2, 1, 28, 28]);
    assert_eq!(out.mu.shape().concrete(), [2, 4]);
    let rows = Summary::of::<ConvVae<4>, Rank3<1, 28, 28>>().rows;
    let layers: Vec<&str> = rows.iter().map(|r| r.layer.as_str()).collect();
    assert_eq!(
        layers[5..7],
        ["mu: Linear<1568, 4>", "log_var: Linear<1568, 4>"]
    );
    assert_eq!(
        Summary::of::<ConvVae<4>, Rank3<1, 28, 28>>().total_params(),
        vae.num_trainable_params()
    );
}

#[test]
fn conv_vae_loss_falls_on_mnist_digits() {
    use shapesafe::data::{data_dir, Dataset, Mnist};
    use shapesafe::models::ConvVae;
    let mnist = Mnist::load(data_dir().join("mnist-small")).unwrap();
    let dev = TestDevice::seed_from_u64(14);
    let n = 256;
    let mut pixels = vec![0.0f32; n * 784];
    for (i, out) in pixels.chunks_exact_mut(784).enumerate() {
        mnist.train.get(i, out).unwrap();
    }
    let images: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, _> =
        dev.tensor_from_vec(pixels.clone(), (n, Const, Const, Const));
    let mut model = dev.build_module::<ConvVae<8>, f32>();
    // Evaluation decodes z = mu, so the loss is a deterministic function of the weights.
    let eval_loss = |model: &<ConvVae<8> as BuildOnDevice<TestDevice, f32>>::Built| {
        vae_loss(model.forward(images.clone()), images.clone(), 1.0).array()
    };
    let before = eval_loss(&model);
    // An untrained decoder says about 0.5 everywhere: 784 * ln 2 = 543 nats per image.
    assert!((before - 543.0).abs() < 60.0, "untrained loss {before}");

    let mut opt = Adam::new(
        &model,
        AdamConfig {
            lr: 2e-3,
            ..Default::default()
        },
    );
    let mut grads = model.alloc_grads();
    let mut losses = Vec::new();
    for step in 0..16 {
        let start = (step % 4) * 64;
        let batch: Tensor<(usize, Const<1>, Const<28>, Const<28>), f32, _> = dev.tensor_from_vec(
            pixels[start * 784..(start + 64) * 784].to_vec(),
            (64, Const, Const, Const),
        );
        let out = model.forward_mut(batch.clone().traced(grads));
        let loss = vae_loss(out, batch, 1.0);
        losses.push(loss.array());
        grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
    }
    let after = eval_loss(&model);
    println!("VAE loss on 256 digits: {before:.1} -> {after:.1}; training losses {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        after < 0.75 * before,
        "VAE loss on the 256 digits: {before} -> {after}; steps {losses:?}"
    );
    assert!(losses[15] < 0.8 * losses[0], "training losses {losses:?}");
}
