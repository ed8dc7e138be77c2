//! The fused ops check their operands before any kernel runs (issue 13, point 5): a wrong
//! shape, a mixed dtype or a wrong count is an error naming the op and the operand (on the
//! CPU here; the checks sit in the public wrappers, before the CPU/CUDA dispatch), while
//! correct operands, contiguous or not, still give the op's value.
#![cfg(feature = "candle")]

use candle_core::{D, DType, Device, Result, Tensor};
use urpe::candle::fused::*;
use urpe::config::Activation;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0.0f64, 1.0, shape, &Device::Cpu).unwrap()
}

/// `r` failed with a message that names `op` and its operand `operand`.
#[track_caller]
fn assert_names(r: Result<Tensor>, op: &str, operand: &str) {
    let message = match r {
        Ok(t) => panic!("{op}: expected an error about {operand}, got a tensor {:?}", t.dims()),
        Err(e) => e.to_string(),
    };
    let want = format!("{op}: operand {operand} ");
    assert!(message.contains(&want), "{op}: message {message:?} does not name {want:?}");
}

/// `r` failed with a message that starts with `op` and contains `words`.
#[track_caller]
fn assert_error(r: Result<Tensor>, op: &str, words: &str) {
    let message = r.err().unwrap_or_else(|| panic!("{op}: expected an error")).to_string();
    assert!(message.starts_with(&format!("{op}: ")) && message.contains(words), "{op}: {message:?}");
}

#[track_caller]
fn assert_close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.dims(), b.dims());
    let gap = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(gap <= tol, "gap {gap:e}");
}

fn f32(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F32).unwrap()
}

/// [rows, k] as the transpose of a contiguous [k, rows]: the same values, not contiguous.
fn strided(x: &Tensor) -> Tensor {
    let t = x.t().unwrap().contiguous().unwrap().t().unwrap();
    assert!(!t.is_contiguous());
    t
}

/// softmax over the last axis with candle's elementary ops.
fn softmax_ref(z: &Tensor) -> Tensor {
    let e = z.broadcast_sub(&z.max_keepdim(D::Minus1).unwrap()).unwrap().exp().unwrap();
    e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
}

/// x̂ = (x − μ)/√(σ² + 1e-5) per row.
fn xhat_ref(x: &Tensor) -> Tensor {
    let c = x.broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap()).unwrap();
    let var = c.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    c.broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap()).unwrap()
}

#[test]
fn add_rows_and_mul_rows_check_their_operands() {
    let (x, v) = (randn(&[6, 5]), randn(&[5]));
    assert_close(&add_rows(&x, &v).unwrap(), &x.broadcast_add(&v).unwrap(), 0.0);
    assert_close(&mul_rows(&x, &v).unwrap(), &x.broadcast_mul(&v).unwrap(), 0.0);
    assert_close(&add_rows(&strided(&x), &v).unwrap(), &x.broadcast_add(&v).unwrap(), 0.0);
    assert_close(&mul_rows(&strided(&x), &v).unwrap(), &x.broadcast_mul(&v).unwrap(), 0.0);
    for (op, f) in [("add_rows", add_rows as fn(&Tensor, &Tensor) -> Result<Tensor>), ("mul_rows", mul_rows)] {
        assert_names(f(&x, &randn(&[4])), op, "v"); // shorter than a row: read out of bounds before
        assert_names(f(&x, &randn(&[1, 5])), op, "v"); // the right length, not a vector
        assert_names(f(&x, &randn(&[30])), op, "v");
        assert_names(f(&x, &f32(&v)), op, "v");
        assert_names(f(&Tensor::new(1.0f64, &Device::Cpu).unwrap(), &randn(&[1])), op, "x");
        let ints = Tensor::zeros((6, 5), DType::U32, &Device::Cpu).unwrap();
        assert_names(f(&ints, &v), op, "x");
    }
}

#[test]
fn softmax_checks_its_bias() {
    let (x, bias) = (randn(&[2, 3, 4, 4]), randn(&[12, 4]));
    let want = softmax_ref(&(x.reshape((2, 12, 4)).unwrap() * 0.3).unwrap().broadcast_add(&bias).unwrap())
        .reshape((2, 3, 4, 4))
        .unwrap();
    assert_close(&softmax(&x, &bias, 0.3).unwrap(), &want, 1e-15);
    let xt = x.transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
    assert!(!xt.is_contiguous());
    assert_close(&softmax(&xt, &bias, 0.3).unwrap(), &want, 1e-15);
    assert_names(softmax(&x, &randn(&[12, 3]), 0.3), "softmax", "bias"); // rows shorter than x's
    assert_names(softmax(&x, &randn(&[5, 4]), 0.3), "softmax", "bias"); // 5 does not divide 24 rows
    assert_names(softmax(&x, &randn(&[0, 4]), 0.3), "softmax", "bias"); // period 0
    assert_names(softmax(&x, &randn(&[48]), 0.3), "softmax", "bias"); // not [P, n]
    assert_names(softmax(&x, &randn(&[3, 4, 4]), 0.3), "softmax", "bias");
    assert_names(softmax(&x, &f32(&bias), 0.3), "softmax", "bias");
}

#[test]
fn softmax_backward_checks_its_gradient() {
    let y = softmax(&randn(&[6, 7]), &Tensor::zeros((1, 7), DType::F64, &Device::Cpu).unwrap(), 1.0).unwrap();
    let g = randn(&[6, 7]);
    let dot = (&g * &y).unwrap().sum_keepdim(D::Minus1).unwrap();
    let want = ((&y * g.broadcast_sub(&dot).unwrap()).unwrap() * 0.5).unwrap();
    assert_close(&softmax_backward(&y, &g, 0.5).unwrap(), &want, 1e-15);
    assert_close(&softmax_backward(&strided(&y), &strided(&g), 0.5).unwrap(), &want, 1e-15);
    assert_names(softmax_backward(&y, &randn(&[5, 7]), 0.5), "softmax_backward", "g"); // fewer rows
    assert_names(softmax_backward(&y, &randn(&[7, 6]), 0.5), "softmax_backward", "g");
    assert_names(softmax_backward(&y, &randn(&[42]), 0.5), "softmax_backward", "g");
    assert_names(softmax_backward(&y, &f32(&g), 0.5), "softmax_backward", "g");
}

#[test]
fn layer_norm_checks_weight_and_bias() {
    let (x, w, b) = (randn(&[6, 5]), randn(&[5]), randn(&[5]));
    let want = xhat_ref(&x).broadcast_mul(&w).unwrap().broadcast_add(&b).unwrap();
    assert_close(&layer_norm(&x, &w, &b).unwrap(), &want, 1e-14);
    assert_close(&layer_norm(&strided(&x), &w, &b).unwrap(), &want, 1e-14);
    assert_names(layer_norm(&x, &randn(&[4]), &b), "layer_norm", "w");
    assert_names(layer_norm(&x, &w, &randn(&[6])), "layer_norm", "b");
    assert_names(layer_norm(&x, &randn(&[1, 5]), &b), "layer_norm", "w");
    assert_names(layer_norm(&x, &w, &f32(&b)), "layer_norm", "b");
    assert_names(layer_norm(&f32(&x), &f32(&w), &b), "layer_norm", "b");
}

#[test]
fn layer_norm_backward_checks_weight_and_gradient() {
    let (x, w, g) = (randn(&[6, 5]), randn(&[5]), randn(&[6, 5]));
    // ρ·(g⊙w − mean(g⊙w) − x̂·mean(g⊙w⊙x̂)) with candle's elementary ops.
    let xh = xhat_ref(&x);
    let gw = g.broadcast_mul(&w).unwrap();
    let c = x.broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap()).unwrap();
    let rho = (c.sqr().unwrap().mean_keepdim(D::Minus1).unwrap() + 1e-5).unwrap().sqrt().unwrap().recip().unwrap();
    let inner = gw
        .broadcast_sub(&gw.mean_keepdim(D::Minus1).unwrap())
        .unwrap()
        .sub(&xh.broadcast_mul(&(&gw * &xh).unwrap().mean_keepdim(D::Minus1).unwrap()).unwrap())
        .unwrap();
    let want = inner.broadcast_mul(&rho).unwrap();
    assert_close(&layer_norm_backward(&x, &w, &g).unwrap(), &want, 1e-13);
    assert_close(&layer_norm_backward(&strided(&x), &w, &strided(&g)).unwrap(), &want, 1e-13);
    assert_names(layer_norm_backward(&x, &randn(&[3]), &g), "layer_norm_backward", "w");
    assert_names(layer_norm_backward(&x, &w, &randn(&[5, 5])), "layer_norm_backward", "g"); // fewer rows
    assert_names(layer_norm_backward(&x, &w, &randn(&[30])), "layer_norm_backward", "g");
    assert_names(layer_norm_backward(&x, &f32(&w), &g), "layer_norm_backward", "w");
    assert_names(layer_norm_backward(&x, &w, &f32(&g)), "layer_norm_backward", "g");
}

#[test]
fn layer_norm_xhat_product_checks_its_gradient() {
    let (x, g) = (randn(&[6, 5]), randn(&[6, 5]));
    let want = (&g * xhat_ref(&x)).unwrap();
    assert_close(&layer_norm_xhat_product(&x, &g).unwrap(), &want, 1e-14);
    assert_close(&layer_norm_xhat_product(&strided(&x), &strided(&g)).unwrap(), &want, 1e-14);
    assert_names(layer_norm_xhat_product(&x, &randn(&[2, 5])), "layer_norm_xhat_product", "g");
    assert_names(layer_norm_xhat_product(&x, &randn(&[5, 6])), "layer_norm_xhat_product", "g");
    assert_names(layer_norm_xhat_product(&x, &f32(&g)), "layer_norm_xhat_product", "g");
}

#[test]
fn bias_activation_and_its_backward_check_their_operands() {
    let (m, b, g) = (randn(&[6, 5]), randn(&[5]), randn(&[6, 5]));
    let u = m.broadcast_add(&b).unwrap();
    assert_close(&bias_activation(&m, &b, Activation::Relu).unwrap(), &u.relu().unwrap(), 0.0);
    assert_close(&bias_activation(&strided(&m), &b, Activation::Relu).unwrap(), &u.relu().unwrap(), 0.0);
    let gelu = bias_activation(&m, &b, Activation::Gelu).unwrap();
    assert_close(&bias_activation(&strided(&m), &b, Activation::Gelu).unwrap(), &gelu, 0.0);
    let want = (&g * u.gt(0.0).unwrap().to_dtype(DType::F64).unwrap()).unwrap();
    assert_close(&bias_activation_backward(&m, &b, &g, Activation::Relu).unwrap(), &want, 0.0);
    assert_close(&bias_activation_backward(&strided(&m), &b, &strided(&g), Activation::Relu).unwrap(), &want, 0.0);
    for act in [Activation::Gelu, Activation::Relu] {
        assert_names(bias_activation(&m, &randn(&[4]), act), "bias_activation", "b");
        assert_names(bias_activation(&m, &f32(&b), act), "bias_activation", "b");
        let op = "bias_activation_backward";
        assert_names(bias_activation_backward(&m, &randn(&[6]), &g, act), op, "b");
        assert_names(bias_activation_backward(&m, &b, &randn(&[3, 5]), act), op, "g"); // short gradient
        assert_names(bias_activation_backward(&m, &b, &randn(&[6, 5, 1]), act), op, "g");
        assert_names(bias_activation_backward(&m, &b, &f32(&g), act), op, "g");
        assert_names(bias_activation_backward(&m, &f32(&b), &g, act), op, "b");
    }
}

#[test]
fn adam_update_checks_gradient_and_moments() {
    let update = AdamUpdate {
        clip: 0.5,
        wd: 0.0,
        decay: 1.0,
        decoupled: true,
        beta1: 0.9,
        beta2: 0.99,
        step_size: 0.1,
        bias2_sqrt: 1.0,
        eps: 0.0,
    };
    let theta = randn(&[3, 4]);
    let g = randn(&[3, 4]);
    let mv = Tensor::zeros((2, 12), DType::F64, &Device::Cpu).unwrap();
    let out = adam_update(&theta, &g, &mv, update).unwrap();
    // From zero moments: m = 0.1·0.5g, v = 0.01·(0.5g)², θ' = θ − 0.1·m/√v = θ − 0.1·sign(g).
    let want_theta =
        (theta.flatten_all().unwrap() - (g.flatten_all().unwrap().sign().unwrap() * 0.1).unwrap()).unwrap();
    assert_close(&out.get(0).unwrap(), &want_theta, 1e-12);
    assert_close(&out.get(1).unwrap(), &(g.flatten_all().unwrap() * 0.05).unwrap(), 1e-15);
    let strided_out = adam_update(&strided(&theta), &strided(&g), &mv, update).unwrap();
    assert_close(&strided_out, &out, 0.0);
    let op = "adam_update";
    assert_names(adam_update(&theta, &randn(&[3, 3]), &mv, update), op, "g"); // shorter gradient
    assert_names(adam_update(&theta, &randn(&[4, 3]), &mv, update), op, "g"); // same length, other shape
    assert_names(adam_update(&theta, &g, &Tensor::zeros((2, 11), DType::F64, &Device::Cpu).unwrap(), update), op, "mv");
    assert_names(adam_update(&theta, &g, &Tensor::zeros(24, DType::F64, &Device::Cpu).unwrap(), update), op, "mv");
    assert_names(adam_update(&theta, &g, &f32(&mv), update), op, "mv");
    assert_names(adam_update(&theta, &f32(&g), &mv, update), op, "g");
}

#[test]
fn split_and_merge_heads_check_their_geometry() {
    let (b, n, h, dh) = (2, 5, 3, 4);
    let d = h * dh;
    let y = randn(&[b * n, 3 * d]);
    let zero = Tensor::zeros(3 * d, DType::F64, &Device::Cpu).unwrap();
    let split = split_heads(&y, &zero, n, h, 3).unwrap();
    assert_eq!(split.dims(), [3, b, h, n, dh]);
    let parts: Vec<Tensor> = (0..3).map(|s| split.get(s).unwrap()).collect();
    assert_close(&merge_heads(&[&parts[0], &parts[1], &parts[2]]).unwrap(), &y, 0.0);
    assert_close(&split_heads(&strided(&y), &zero, n, h, 3).unwrap(), &split, 0.0);
    // One part, not contiguous (d_h and n swapped twice): the same merge.
    let one = parts[1].transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
    assert!(!one.is_contiguous());
    assert_close(&merge_heads(&[&one]).unwrap(), &y.narrow(1, d, d).unwrap(), 0.0);

    let op = "split_heads";
    assert_names(split_heads(&y, &randn(&[d]), n, h, 3), op, "bias"); // shorter bias
    assert_names(split_heads(&y, &f32(&zero), n, h, 3), op, "bias");
    assert_names(split_heads(&y, &zero, 3, h, 3), op, "y"); // 3 does not divide 10 rows
    assert_names(split_heads(&y, &zero, n, 5, 3), op, "y"); // 15 does not divide 36 columns
    assert_names(split_heads(&y.reshape((b, n, 3 * d)).unwrap(), &zero, n, h, 3), op, "y"); // rank 3
    assert_error(split_heads(&y, &zero, 0, h, 3), op, "must be positive");
    assert_error(split_heads(&y, &zero, n, 0, 3), op, "must be positive");
    assert_error(split_heads(&y, &zero, n, h, 0), op, "must be positive");

    let op = "merge_heads";
    assert_names(merge_heads(&[&parts[0], &randn(&[b, h, n - 1, dh]), &parts[2]]), op, "parts[1]");
    assert_names(merge_heads(&[&parts[0], &parts[1], &randn(&[b, h, n, dh + 1])]), op, "parts[2]");
    assert_names(merge_heads(&[&parts[0], &parts[1], &f32(&parts[2])]), op, "parts[2]");
    assert_names(merge_heads(&[&y]), op, "parts[0]"); // rank 2
    assert_error(merge_heads(&[&parts[0], &parts[1]]), op, "expected one or three");
    assert_error(merge_heads(&[]), op, "expected one or three");
}

#[test]
fn sum_squares_into_checks_its_tensors() {
    let (a, b) = (randn(&[6, 5]), randn(&[7]));
    let want = (a.sqr().unwrap().sum_all().unwrap() + b.sqr().unwrap().sum_all().unwrap()).unwrap();
    let got = sum_squares_into(&[a.clone(), b.clone()]).unwrap().sum_all().unwrap();
    assert_close(&got, &want, 1e-12);
    let got = sum_squares_into(&[strided(&a), b.clone()]).unwrap().sum_all().unwrap();
    assert_close(&got, &want, 1e-12);
    let op = "sum_squares_into";
    assert_names(sum_squares_into(&[a.clone(), f32(&b)]), op, "tensors[1]");
    let ints = Tensor::zeros(3, DType::U32, &Device::Cpu).unwrap();
    assert_names(sum_squares_into(&[ints]), op, "tensors[0]");
    assert_error(sum_squares_into(&[]), op, "no tensors");
}

/// f32 operands work as f64 ones do (every op takes both).
#[test]
fn every_op_takes_f32() {
    let (x, v, g) = (f32(&randn(&[6, 5])), f32(&randn(&[5])), f32(&randn(&[6, 5])));
    add_rows(&x, &v).unwrap();
    mul_rows(&x, &v).unwrap();
    softmax(&x, &f32(&randn(&[3, 5])), 1.0).unwrap();
    softmax_backward(&x, &g, 1.0).unwrap();
    layer_norm(&x, &v, &v).unwrap();
    layer_norm_backward(&x, &v, &g).unwrap();
    layer_norm_xhat_product(&x, &g).unwrap();
    bias_activation(&x, &v, Activation::Gelu).unwrap();
    bias_activation_backward(&x, &v, &g, Activation::Gelu).unwrap();
    sum_squares_into(&[x.clone(), v.clone()]).unwrap();
    let heads = split_heads(&x, &v, 3, 5, 1).unwrap();
    assert_close(
        &merge_heads(&[&heads.get(0).unwrap()]).unwrap().to_dtype(DType::F64).unwrap(),
        &x.broadcast_add(&v).unwrap().to_dtype(DType::F64).unwrap(),
        1e-6,
    );
}

/// The operands `urpe check-device` gives every fused kernel pass the checks (on the CPU
/// the device side is the CPU version itself, so every gap is zero).
#[test]
fn the_device_check_cases_pass_the_checks() {
    // bf16 has every op but Adam and the sum of squares (which only see f32 gradients)
    for (dtype, ops) in [(DType::F32, 20), (DType::F64, 20), (DType::BF16, 17)] {
        let gaps = urpe::candle::check::fused_gaps(&Device::Cpu, dtype).unwrap();
        assert_eq!(gaps.len(), ops);
        for (name, gap) in gaps {
            assert_eq!(gap, 0.0, "{name} in {dtype:?}");
        }
    }
}
