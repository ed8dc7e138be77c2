//! Configuration: defaults, the `urpe` shorthand, round trips, and one rejection per
//! invalid value or combination, each naming the field and the value.

use urpe::config::{ConfigError, Family, InputKind, ModelConfig, Norm, OutputKind};

const BASE: &str = r#"
family = "t5"
depth = 2
width = 32
heads = 4
n_max = 16
input = { kind = "real", d_in = 8 }
output = { kind = "real", d_out = 8 }
"#;

fn with(extra: &str) -> String {
    // later keys override earlier ones only through replacement, so drop the replaced key
    let keys: Vec<&str> = extra.lines().filter_map(|l| l.split('=').next()).map(str::trim).collect();
    let kept: Vec<&str> =
        BASE.lines().filter(|l| !keys.iter().any(|k| !k.is_empty() && l.starts_with(&format!("{k} ")))).collect();
    format!("{}\n{extra}\n", kept.join("\n"))
}

fn rejected(toml: &str) -> String {
    match ModelConfig::from_toml(toml) {
        Ok(c) => panic!("accepted an invalid configuration: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_fill_the_optional_fields() {
    let c = ModelConfig::from_toml(BASE).unwrap();
    assert_eq!(
        (c.family, c.urpe, c.ffn, c.norm, c.causal, c.share_position),
        (Family::T5, false, 128, Norm::Post, false, true)
    );
    assert_eq!(c.input, InputKind::Real { d_in: 8 });
    assert_eq!(c.output, OutputKind::Real { d_out: 8 });
}

#[test]
fn urpe_family_is_t5_with_the_gate() {
    let c = ModelConfig::from_toml(&with("family = \"urpe\"")).unwrap();
    assert_eq!((c.family, c.urpe), (Family::T5, true));
    assert_eq!(c.label(), "urpe");
    let rope = ModelConfig::from_toml(&with("family = \"rope\"\nurpe = true")).unwrap();
    assert_eq!(rope.label(), "rope+urpe");
}

#[test]
fn json_and_toml_round_trip() {
    for family in Family::ALL {
        let causal = family.causal_only();
        let c =
            ModelConfig::from_toml(&with(&format!("family = \"{family}\"\nurpe = true\ncausal = {causal}"))).unwrap();
        assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(ModelConfig::from_toml(&toml::to_string(&c).unwrap()).unwrap(), c);
    }
}

#[test]
fn each_invalid_value_names_its_field_and_value() {
    let cases = [
        ("heads = 5", "`heads` = 5", "divisible"),
        ("depth = 0", "`depth` = 0", "at least 1"),
        ("width = 0", "`width` = 0", "at least 1"),
        ("n_max = 0", "`n_max` = 0", "at least 1"),
        ("ffn = 0", "`ffn` = 0", "at least 1"),
        ("input = { kind = \"tokens\", vocab = 0 }", "`input.vocab` = 0", "at least 1"),
        ("output = { kind = \"classes\", classes = 0 }", "`output.classes` = 0", "at least 1"),
        ("family = \"rope\"\nwidth = 12\nheads = 4", "`heads` = 4", "even"),
        ("family = \"t5-bucketed\"\nt5_buckets = 2", "`t5_buckets` = 2", "at least 4"),
        ("family = \"t5-bucketed\"\nt5_max_distance = 4", "`t5_max_distance` = 4", "exceed"),
        ("family = \"ape-sin\"\nwidth = 9\nheads = 3", "`width` = 9", "even"),
        ("rope_base = 0.5", "`rope_base` = 0.5", "above 1"),
        ("family = \"cope\"", "`causal` = false", "family `cope` is causal only"),
    ];
    for (extra, names, allowed) in cases {
        let msg = rejected(&with(extra));
        assert!(msg.contains(names) && msg.contains(allowed), "{extra:?} gave {msg:?}");
    }
}

#[test]
fn unknown_names_and_missing_fields_are_rejected_by_name() {
    let msg = rejected(&with("family = \"fourier\""));
    assert!(msg.contains("fourier") && msg.contains("t5-bucketed"), "{msg}");
    let msg = rejected(&with("widht = 3"));
    assert!(msg.contains("widht") && msg.contains("width"), "{msg}");
    let msg = rejected(&BASE.replace("depth = 2\n", ""));
    assert!(msg.contains("depth"), "{msg}");
    let msg = rejected(&with("norm = \"middle\""));
    assert!(msg.contains("middle") && msg.contains("post"), "{msg}");
    let msg = rejected(&with("input = { kind = \"image\", d_in = 3 }"));
    assert!(msg.contains("image") && msg.contains("tokens"), "{msg}");
}

#[test]
fn sequences_longer_than_n_max_are_rejected() {
    let c = ModelConfig::from_toml(BASE).unwrap();
    assert!(c.check_length(16).is_ok());
    let err: ConfigError = c.check_length(17).unwrap_err();
    assert_eq!((err.field.as_str(), err.value.as_str()), ("n", "17"));
    assert!(err.allowed.contains("n_max = 16"));
    assert!(c.check_length(0).is_err());
}

#[test]
fn differences_name_the_fields() {
    let a = ModelConfig::from_toml(BASE).unwrap();
    let b = ModelConfig::from_toml(&with("depth = 3\ncausal = true")).unwrap();
    let diff = a.differences(&b).join("; ");
    assert!(diff.contains("depth: 2 vs 3") && diff.contains("causal: false vs true"), "{diff}");
    assert!(a.differences(&a).is_empty());
}

#[test]
fn the_example_configuration_file_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/model.toml")).unwrap();
    let c = ModelConfig::from_toml(&text).unwrap();
    assert_eq!(c.label(), "urpe");
}

/// Errors speak of what the user writes (tables, fields, flags), never of internal types
/// such as `struct TargetSpec` or `Real { d_in: 8 }`.
#[test]
fn messages_use_the_users_words_not_internal_types() {
    let internal = ["struct", "enum", "TargetSpec", "InputKind", "OptimConfig", "Real {", "Classes {"];
    let plain = |msg: &str| internal.iter().all(|t| !msg.contains(t));

    // an experiment's targets are tables with their length
    let bare = "name = \"x\"\n[[grid]]\ntargets = [\"position-shift\"]\nfamilies = [\"t5\"]\n";
    let msg = urpe::experiment::Experiment::parse(bare).unwrap_err();
    assert!(msg.contains("`targets`") && msg.contains("{ kind = \"position-shift\", n = 16 }"), "{msg}");
    assert!(plain(&msg), "{msg}");

    // tables given as strings or numbers
    let msg = rejected(&with("input = \"real\""));
    assert!(msg.contains("{ kind = \"real\", d_in = 8 }") && plain(&msg), "{msg}");
    let run = "target = \"position-shift\"\nn = 8\noptim = \"adam\"\n[model]\nfamily = \"t5\"\ndepth = 1\nwidth = 8\nheads = 2\n";
    let msg = urpe::train::TrainConfig::parse(run, false).unwrap_err();
    assert!(msg.contains("optim = { lr = 1e-3") && plain(&msg), "{msg}");
    let json = r#"{"target": "position-shift", "n": 8, "eval": 3, "model": {"family": "t5", "depth": 1, "width": 8, "heads": 2}}"#;
    let msg = urpe::train::TrainConfig::parse(json, true).unwrap_err();
    assert!(msg.contains("eval = { sequences") && plain(&msg), "{msg}");

    // a model input or output that does not fit the target names the run's field `d`
    let model = "[model]\nfamily = \"t5\"\ndepth = 1\nwidth = 8\nheads = 2\n";
    let wrong_input = format!("target = \"position-shift\"\nn = 8\n{model}input = {{ kind = \"real\", d_in = 4 }}\n");
    let msg = urpe::train::TrainConfig::parse(&wrong_input, false).unwrap_err();
    assert!(msg.contains("`d` = 8") && msg.contains("`d` (--d)") && msg.contains("d_in = 4") && plain(&msg), "{msg}");
    let wrong_output =
        format!("target = \"position-id\"\nn = 8\n{model}output = {{ kind = \"classes\", classes = 4 }}\n");
    let msg = urpe::train::TrainConfig::parse(&wrong_output, false).unwrap_err();
    assert!(msg.contains("{ kind = \"classes\", classes = 8 }") && plain(&msg), "{msg}");
}

#[test]
fn every_variant_label_parses_back_to_itself_and_sorts_in_one_order() {
    use urpe::config::Variant;
    let mut labels = Vec::new();
    for family in Family::ALL {
        for gate in [false, true] {
            let v = Variant::new(family, gate);
            assert_eq!(Variant::parse(&v.to_string()).unwrap(), v, "{v}");
            labels.push(v.to_string());
        }
    }
    assert_eq!(Variant::parse("t5+urpe").unwrap().to_string(), "urpe");
    for bad in ["urpe+urpe", "rop", "t5+", ""] {
        let e = Variant::parse(bad).unwrap_err();
        assert!(e.allowed.contains("FAMILY+urpe"), "{bad}: {e}");
    }
    labels.reverse();
    Variant::sort_labels(&mut labels);
    let parsed: Vec<Variant> = labels.iter().map(|l| Variant::parse(l).unwrap()).collect();
    // without the gate first, barrier-bound before free; then every gated variant
    let ungated = Family::ALL.len();
    assert!(parsed[..ungated].iter().all(|v| !v.gate) && parsed[ungated..].iter().all(|v| v.gate));
    let bound = parsed[..ungated].iter().take_while(|v| v.barrier_bound()).count();
    assert_eq!(bound, Family::ALL.iter().filter(|f| f.inside_softmax_only()).count());
    assert_eq!(&labels[..3], ["nope", "t5", "t5-bucketed"]);
    assert_eq!(labels[ungated], "nope+urpe");
}
