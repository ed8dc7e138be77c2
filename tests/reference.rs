//! The engine against PyTorch autograd: fixtures written once by
//! `scripts/torch_reference.py` (float64, same weights, same inputs) hold outputs, loss,
//! every parameter gradient and the losses of 5 Adam steps. Tolerance: for every tensor,
//! max |ours − torch| ≤ 1e-9 · max(max |torch|, 1e-6), in f64 (the floor covers the key
//! bias, whose gradient is zero up to rounding, about 1e-17, in both).

use ndarray::{Array2, Array3, ArrayD, IxDyn};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use urpe::ModelConfig;
use urpe::nn::loss::{cross_entropy_loss, mse_loss};
use urpe::nn::{BackwardWorkspace, Model, ModelInput, Params};
use urpe::optim::{Adam, Decay, OptimConfig, grad_norm};

const TOLERANCE: f64 = 1e-9;

struct Fixture {
    name: String,
    model: Model<f64>,
    tensors: std::collections::HashMap<String, ArrayD<f64>>,
    tokens: Option<(Array2<usize>, Array2<usize>)>,
    real: Option<(Array3<f64>, Array3<f64>)>,
}

fn read(name: &str) -> Fixture {
    let path = format!("{}/tests/fixtures/{name}.safetensors", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run scripts/torch_reference.py)"));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let config = ModelConfig::from_json(&meta.metadata().as_ref().unwrap()["config"]).unwrap();
    let mut tensors = std::collections::HashMap::new();
    let mut ints = std::collections::HashMap::new();
    for (key, view) in st.tensors() {
        let shape = IxDyn(view.shape());
        match view.dtype() {
            Dtype::F64 => {
                let v = view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
                tensors.insert(key, ArrayD::from_shape_vec(shape, v).unwrap());
            }
            Dtype::I64 => {
                let v =
                    view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize).collect();
                ints.insert(key, ArrayD::from_shape_vec(shape, v).unwrap());
            }
            other => panic!("{name}: unexpected dtype {other:?} for {key}"),
        }
    }
    let mut model = Model::<f64>::zeros(config).unwrap();
    for spec in model.layout.tensors.clone().specs() {
        let t = &tensors[&format!("param.{}", spec.name)];
        assert_eq!(t.shape(), spec.shape.as_slice(), "{name}: {}", spec.name);
        model.params.data[spec.range()].copy_from_slice(t.as_slice().unwrap());
    }
    let (tokens, real) = if ints.contains_key("inputs") {
        let two = |a: &ArrayD<usize>| a.clone().into_dimensionality().unwrap();
        (Some((two(&ints["inputs"]), two(&ints["targets"]))), None)
    } else {
        let three = |a: &ArrayD<f64>| a.clone().into_dimensionality().unwrap();
        (None, Some((three(&tensors["inputs"]), three(&tensors["targets"]))))
    };
    Fixture { name: name.into(), model, tensors, tokens, real }
}

fn assert_close(fixture: &str, what: &str, ours: &[f64], torch: &[f64]) {
    assert_eq!(ours.len(), torch.len(), "{fixture}: {what} sizes");
    let scale = torch.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-6);
    let diff = ours.iter().zip(torch).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if std::env::var_os("URPE_REPORT").is_some() {
        eprintln!("relative {:.2e} {fixture} {what}", diff / scale);
    }
    assert!(diff <= TOLERANCE * scale, "{fixture}: {what} differs by {diff:e} (scale {scale:e})");
}

impl Fixture {
    fn input(&self) -> ModelInput<'_, f64> {
        match (&self.tokens, &self.real) {
            (Some((t, _)), _) => ModelInput::Tokens(t.view()),
            (_, Some((x, _))) => ModelInput::Real(x.view()),
            _ => unreachable!(),
        }
    }

    /// Forward, loss and gradients of the current parameters.
    fn loss_and_grads(&self, model: &Model<f64>) -> (Vec<f64>, f64, Params<f64>) {
        let input = self.input();
        let (batch, n) = input.batch_and_length();
        let mut cache = model.cache_for(&input);
        model.forward(&input, &mut cache).unwrap();
        let mut d_out = Array2::zeros(cache.output.raw_dim());
        let loss = match (&self.tokens, &self.real) {
            (Some((_, labels)), _) => {
                let labels = labels.view().into_shape_with_order(batch * n).unwrap();
                cross_entropy_loss(d_out.view_mut(), cache.output.view(), labels, batch * n)
            }
            (_, Some((_, y))) => {
                let y = y.view().into_shape_with_order((batch * n, y.dim().2)).unwrap();
                mse_loss(d_out.view_mut(), cache.output.view(), y, y.len())
            }
            _ => unreachable!(),
        };
        let mut grads = Params::zeros(model.layout.tensors.clone());
        let mut ws = BackwardWorkspace::new(model, batch, n);
        model.backward(&input, &cache, d_out.view(), &mut grads, &mut ws);
        (cache.output.iter().copied().collect(), loss, grads)
    }

    fn check(&self) {
        let (output, loss, grads) = self.loss_and_grads(&self.model);
        let name = &self.name;
        assert_close(name, "output", &output, self.tensors["output"].as_slice().unwrap());
        assert_close(name, "loss", &[loss], self.tensors["loss"].as_slice().unwrap());
        for spec in self.model.layout.tensors.specs() {
            let torch = &self.tensors[&format!("grad.{}", spec.name)];
            assert_close(
                name,
                &format!("gradient of {}", spec.name),
                &grads.data[spec.range()],
                torch.as_slice().unwrap(),
            );
        }
        // 5 Adam steps on the same batch, as torch.optim.Adam(lr=1e-2), constant rate
        let config = OptimConfig { lr: 1e-2, decay: Decay::Constant, ..OptimConfig::default() };
        let mut model = self.model.clone();
        let mut adam = Adam::<f64>::new(model.params.data.len());
        let mut losses = Vec::new();
        for step in 0..5 {
            let (_, loss, grads) = self.loss_and_grads(&model);
            losses.push(loss);
            let lr = config.learning_rate(step, 5);
            adam.step(&mut model.params.data, &grads.data, grad_norm(&grads.data), lr, &config);
        }
        assert_close(name, "Adam losses", &losses, self.tensors["adam_losses"].as_slice().unwrap());
    }
}

macro_rules! fixtures {
    ($($name:ident),* $(,)?) => {$(
        /// Output, loss, every gradient and 5 Adam losses against PyTorch.
        #[test]
        fn $name() {
            read(stringify!($name)).check();
        }
    )*};
}

fixtures! {
    nope, ape_learned, ape_sin, t5, t5_urpe, t5_urpe_pre_causal_per_layer, t5_bucketed, alibi,
    rope, rope_urpe_none, shaw_key, shaw_value, xl, xl_urpe_causal, kerple, kerple_urpe_causal,
    t5_sigmoid, rope_relu_causal, nope_stick_breaking, alibi_stick_breaking_urpe, xpos, xpos_urpe_sigmoid,
    t5_sink, rope_sink_urpe_causal, fire, fire_urpe_causal, fire_sigmoid, cope_causal, cope_urpe_causal,
    t5_differential, alibi_differential_urpe_causal, shaw_value_differential_urpe,
    t5_bos, nope_bos_causal,
}
