// Mistake: a custom forward feeds a 256-feature flatten into a `Linear<400, 10>` field; the
// error shows the user's own call.
use shapesafe::prelude::*;

#[derive(CustomModule, Clone, Copy, Default)]
#[built(Head)]
struct HeadConfig {
    flatten: Flatten,
    fc: Linear<400, 10>,
}

impl Module<Tensor<Rank4<8, 16, 4, 4>, f32, Cpu>> for Head<f32, Cpu> {
    type Output = Tensor<Rank2<8, 10>, f32, Cpu>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<Rank4<8, 16, 4, 4>, f32, Cpu>) -> Result<Self::Output, CpuError> {
        let features = self.flatten.try_forward(x)?;
        self.fc.try_forward(features)
    }
}

fn main() {
    let dev = Cpu::default();
    let model = dev.build_module::<HeadConfig, f32>();
    let _ = model.forward(dev.zeros::<Rank4<8, 16, 4, 4>>());
}
