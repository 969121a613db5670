// A VAE written as a user would: a derived struct of layers and a forward of their own that
// samples with the reparameterisation trick, trained one step with `vae_loss`.
use shapesafe::models::{try_reparameterize, vae_loss, VaeOutput};
use shapesafe::prelude::*;

#[derive(CustomModule, Clone, Copy, Default)]
#[built(Vae)]
#[shapes(input = Rank1<784>, output = Rank1<784>, params = 784 * 64 + 64 + 2 * (64 * 8 + 8) + 8 * 784 + 784)]
struct VaeConfig {
    #[shapes(input = Rank1<784>)]
    encoder: (Linear<784, 64>, ReLU),
    #[shapes(input = Rank1<64>)]
    mu: Linear<64, 8>,
    #[shapes(input = Rank1<64>)]
    log_var: Linear<64, 8>,
    #[shapes(input = Rank1<8>)]
    decoder: (Linear<8, 784>, Sigmoid),
}

type Latent<const B: usize, T> = Tensor<Rank2<B, 8>, f32, Cpu, T>;
type Output<const B: usize, T> = VaeOutput<Tensor<Rank2<B, 784>, f32, Cpu, T>, Latent<B, T>>;

impl<const B: usize> ModuleMut<Tensor<Rank2<B, 784>, f32, Cpu, OwnedTape<f32, Cpu>>> for Vae<f32, Cpu> {
    type Output = Output<B, OwnedTape<f32, Cpu>>;
    type Error = CpuError;

    fn try_forward_mut(
        &mut self,
        x: Tensor<Rank2<B, 784>, f32, Cpu, OwnedTape<f32, Cpu>>,
    ) -> Result<Self::Output, CpuError> {
        let h = self.encoder.try_forward_mut(x)?;
        let log_var = self.log_var.try_forward(h.retaped::<OwnedTape<f32, Cpu>>())?;
        let mu = self.mu.try_forward(h)?;
        let (mu_out, log_var_out) = (mu.retaped(), log_var.retaped());
        let eps = mu.device().sample_normal_like(mu.shape());
        let z = try_reparameterize(mu, log_var, eps)?;
        Ok(VaeOutput {
            reconstruction: self.decoder.try_forward_mut(z)?,
            mu: mu_out,
            log_var: log_var_out,
        })
    }
}

fn main() {
    let dev = Cpu::default();
    let mut model = dev.build_module::<VaeConfig, f32>();
    let mut opt = Adam::new(&model, AdamConfig::default());
    let x: Tensor<Rank2<4, 784>, f32, _> = dev.sample_uniform();
    let out = model.forward_mut(x.trace(model.alloc_grads()));
    let grads = vae_loss(out, x, 1.0).backward();
    opt.update(&mut model, &grads).unwrap();
    println!("{}", Summary::of::<VaeConfig, Rank1<784>>());
}
