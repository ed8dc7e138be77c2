//! Checkpoints: bit-exact round trips for every family, and one clear error per kind of
//! broken file (each naming the file and, where there is one, the tensor).

use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;
use urpe::checkpoint::{self, FORMAT};
use urpe::config::{Family, InputKind, ModelSpec, Norm, OutputKind};
use urpe::nn::Model;
use urpe::{Error, ModelConfig};

fn config(family: Family, urpe: bool, share: bool, tokens: bool) -> ModelConfig {
    let input = if tokens { InputKind::Tokens { vocab: 5 } } else { InputKind::Real { d_in: 3 } };
    let output = if tokens { OutputKind::Classes { classes: 4 } } else { OutputKind::Real { d_out: 2 } };
    let mut spec = ModelSpec::new(family, 2, 8, 2, 6, input, output);
    spec.urpe = urpe;
    spec.ffn = Some(12);
    spec.norm = Some(Norm::Pre);
    spec.share_position = Some(share);
    spec.causal = family.causal_only();
    spec.t5_buckets = Some(8);
    spec.t5_max_distance = Some(16);
    spec.resolve().unwrap()
}

/// A model whose every parameter differs (so a swapped or dropped tensor shows).
fn distinct_model(c: ModelConfig) -> Model<f32> {
    let mut m = Model::<f32>::new(c, 7).unwrap();
    for (i, v) in m.params.data.iter_mut().enumerate() {
        *v += (i as f32 * 0.618_034).sin() * 1e-3;
    }
    m
}

fn error_text(r: urpe::Result<Model<f32>>) -> String {
    match r {
        Ok(_) => panic!("a broken checkpoint was accepted"),
        Err(e) => {
            assert!(matches!(e, Error::File { .. }), "expected a file error, got {e:?}");
            assert_eq!(e.exit_code(), 2);
            e.to_string()
        }
    }
}

#[test]
fn save_then_load_is_bit_exact_for_every_family() {
    let dir = tempfile::tempdir().unwrap();
    for family in Family::ALL {
        for (urpe, share, tokens) in [(false, true, false), (true, false, true), (true, true, false)] {
            let m = distinct_model(config(family, urpe, share, tokens));
            let path = dir.path().join(format!("{family}-{urpe}-{share}.safetensors"));
            checkpoint::save(&m, &path).unwrap();
            let back: Model<f32> = checkpoint::load(&path).unwrap();
            assert_eq!(back.config, m.config);
            let bits = |m: &Model<f32>| m.params.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back), bits(&m), "{family} urpe={urpe} share={share}");
            assert_eq!(back.layout.tensors.specs(), m.layout.tensors.specs());
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

/// Every normaliser's model (its own tensors included: the sink's β, differential
/// attention's λ vectors) round trips bit for bit, with its configuration.
#[test]
fn save_then_load_is_bit_exact_for_every_normaliser() {
    let dir = tempfile::tempdir().unwrap();
    for attention in urpe::normaliser::ALL.map(urpe::normaliser::Attention) {
        let mut spec =
            ModelSpec::new(Family::T5, 2, 8, 2, 6, InputKind::Tokens { vocab: 5 }, OutputKind::Classes { classes: 4 });
        spec.attention = Some(attention);
        spec.causal = attention.0.causal_only();
        spec.urpe = true;
        let m = distinct_model(spec.resolve().unwrap());
        let path = dir.path().join(format!("{attention}.safetensors"));
        checkpoint::save(&m, &path).unwrap();
        let back: Model<f32> = checkpoint::load(&path).unwrap();
        assert_eq!(back.config, m.config, "{attention}");
        let bits = |m: &Model<f32>| m.params.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&m), "{attention}");
        assert_eq!(back.layout.tensors.specs(), m.layout.tensors.specs());
    }
}

#[test]
fn names_and_shapes_follow_the_contract() {
    let m = distinct_model(config(Family::T5, true, true, true));
    let shape = |name: &str| {
        m.layout.tensors.spec(m.layout.tensors.find(name).unwrap_or_else(|| panic!("{name}"))).shape.clone()
    };
    assert_eq!(shape("embed.weight"), [5, 8]);
    assert_eq!(shape("pos.t5"), [2, 11]);
    assert_eq!(shape("pos.urpe"), [2, 11]);
    assert_eq!(shape("layers.1.attn.q.weight"), [8, 8]);
    assert_eq!(shape("layers.0.attn.o.bias"), [8]);
    assert_eq!(shape("layers.0.ffn.up.weight"), [8, 12]);
    assert_eq!(shape("layers.0.ffn.down.weight"), [12, 8]);
    assert_eq!(shape("layers.1.norm2.weight"), [8]);
    assert_eq!(shape("final_norm.bias"), [8]);
    assert_eq!(shape("head.weight"), [8, 4]);
    let per_layer = distinct_model(config(Family::T5, true, false, false));
    assert!(per_layer.layout.tensors.find("layers.1.pos.urpe").is_some());
    assert!(per_layer.layout.tensors.find("pos.t5").is_none());
    assert!(per_layer.layout.tensors.find("input.weight").is_some());
}

/// The same model gives the same bytes: before the header was re-encoded, safetensors wrote
/// the two metadata keys in the order of a fresh `HashMap`, which changes from map to map.
#[test]
fn saving_one_model_twice_gives_the_same_bytes() {
    let m = distinct_model(config(Family::T5, true, true, true));
    let first = checkpoint::to_bytes(&m).unwrap();
    for _ in 0..32 {
        assert!(checkpoint::to_bytes(&m).unwrap() == first, "two saves of one model differ");
    }
    let len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + len) % 8, 0, "the tensor data starts on an eight-byte boundary");
    let header = std::str::from_utf8(&first[8..8 + len]).unwrap();
    let config_at = header.find("\"config\"").expect("a config key");
    let format_at = header.find("\"format\"").expect("a format key");
    assert!(config_at < format_at, "metadata keys in order: {header}");
    let back = checkpoint::from_bytes::<f32>(&first, Path::new("twice.safetensors")).unwrap();
    assert_eq!(back.params.data, m.params.data);
}

/// Writes a safetensors file from `model` after `edit` changes its tensor list.
fn write_edited(
    path: &Path,
    model: &Model<f32>,
    metadata: Option<HashMap<String, String>>,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) {
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = model
        .layout
        .tensors
        .specs()
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                Dtype::F32,
                s.shape.clone(),
                model.params.data[s.range()].iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

fn metadata(m: &Model<f32>) -> Option<HashMap<String, String>> {
    Some(HashMap::from([("format".into(), FORMAT.into()), ("config".into(), m.config.to_json())]))
}

#[test]
fn broken_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = distinct_model(config(Family::Xl, true, true, false));
    let p = |name: &str| dir.path().join(name);

    let msg = error_text(checkpoint::load(&p("absent.safetensors")));
    assert!(msg.contains("absent.safetensors") && msg.contains("cannot read"), "{msg}");

    std::fs::write(p("text.safetensors"), "this is not a checkpoint at all").unwrap();
    let msg = error_text(checkpoint::load(&p("text.safetensors")));
    assert!(msg.contains("text.safetensors") && msg.contains("not a safetensors file"), "{msg}");

    let good = checkpoint::to_bytes(&m).unwrap();
    std::fs::write(p("cut.safetensors"), &good[..good.len() - 10]).unwrap();
    let msg = error_text(checkpoint::load(&p("cut.safetensors")));
    assert!(msg.contains("cut.safetensors") && msg.contains("truncated"), "{msg}");

    write_edited(&p("missing.safetensors"), &m, metadata(&m), |t| t.retain(|x| x.0 != "pos.xl_r"));
    let msg = error_text(checkpoint::load(&p("missing.safetensors")));
    assert!(msg.contains("`pos.xl_r` is missing"), "{msg}");

    write_edited(&p("shape.safetensors"), &m, metadata(&m), |t| {
        let q = t.iter_mut().find(|x| x.0 == "layers.1.attn.q.weight").unwrap();
        q.2 = vec![4, 16];
    });
    let msg = error_text(checkpoint::load(&p("shape.safetensors")));
    assert!(msg.contains("`layers.1.attn.q.weight` has shape [4, 16]") && msg.contains("[8, 8]"), "{msg}");

    write_edited(&p("dtype.safetensors"), &m, metadata(&m), |t| {
        let b = t.iter_mut().find(|x| x.0 == "head.bias").unwrap();
        b.1 = Dtype::I32;
    });
    let msg = error_text(checkpoint::load(&p("dtype.safetensors")));
    assert!(msg.contains("`head.bias` is I32"), "{msg}");

    write_edited(&p("extra.safetensors"), &m, metadata(&m), |t| {
        t.push(("pos.ape".into(), Dtype::F32, vec![1], vec![0; 4]))
    });
    let msg = error_text(checkpoint::load(&p("extra.safetensors")));
    assert!(msg.contains("`pos.ape` does not belong"), "{msg}");

    write_edited(&p("nometa.safetensors"), &m, None, |_| {});
    let msg = error_text(checkpoint::load(&p("nometa.safetensors")));
    assert!(msg.contains("no `format` metadata"), "{msg}");

    let mut wrong = metadata(&m).unwrap();
    wrong.insert("format".into(), "urpe-checkpoint-v9".into());
    write_edited(&p("v9.safetensors"), &m, Some(wrong), |_| {});
    let msg = error_text(checkpoint::load(&p("v9.safetensors")));
    assert!(msg.contains("urpe-checkpoint-v9") && msg.contains("not supported"), "{msg}");

    let mut bad_config = metadata(&m).unwrap();
    bad_config.insert("config".into(), m.config.to_json().replace("\"heads\":2", "\"heads\":3"));
    write_edited(&p("config.safetensors"), &m, Some(bad_config), |_| {});
    let msg = error_text(checkpoint::load(&p("config.safetensors")));
    assert!(msg.contains("`heads` = 3"), "{msg}");

    checkpoint::save(&m, &p("ok.safetensors")).unwrap();
    let mut other = m.config.clone();
    other.depth = 3;
    let msg = error_text(checkpoint::load_expecting(&p("ok.safetensors"), &other));
    assert!(msg.contains("does not match") && msg.contains("depth: 3 vs 2"), "{msg}");
    assert!(checkpoint::load_expecting::<f32>(&p("ok.safetensors"), &m.config).is_ok());
}

/// `bos = true` round-trips: the vector `bos` [d] and the position tables sized for n_max + 1
/// rows (the BOS is position 0) are saved and loaded bit for bit, the configuration says
/// `"bos":true`, and a model without it writes no `bos` field at all (so files written before
/// the option read unchanged, and a configuration that leaves it out loads as bos = false).
#[test]
fn a_bos_model_round_trips_and_old_configurations_read_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for (family, urpe, tokens) in
        [(Family::T5, true, true), (Family::ApeLearned, false, false), (Family::Nope, false, true)]
    {
        let mut c = config(family, urpe, true, tokens);
        let without = c.to_json();
        assert!(!without.contains("bos"), "{without}");
        c.bos = true;
        assert!(c.to_json().contains("\"bos\":true"), "{}", c.to_json());
        assert!(!ModelConfig::from_json(&without).unwrap().bos);
        let m = distinct_model(c);
        let shape = |name: &str| m.layout.tensors.find(name).map(|id| m.layout.tensors.spec(id).shape.clone());
        assert_eq!(shape("bos"), Some(vec![8]), "{family}");
        if family == Family::T5 {
            assert_eq!((shape("pos.t5"), shape("pos.urpe")), (Some(vec![2, 13]), Some(vec![2, 13])));
        }
        if family == Family::ApeLearned {
            assert_eq!(shape("pos.ape"), Some(vec![7, 8]));
        }
        let path = dir.path().join(format!("{family}-bos.safetensors"));
        checkpoint::save(&m, &path).unwrap();
        let back: Model<f32> = checkpoint::load(&path).unwrap();
        assert!(back.config.bos);
        assert_eq!(back.config, m.config);
        let bits = |m: &Model<f32>| m.params.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&m), "{family}");
        assert_eq!(back.layout.tensors.specs(), m.layout.tensors.specs());
    }
}
