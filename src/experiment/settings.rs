//! What makes two runs comparable: every setting that changes a run's result except its
//! seeds. Statistics pool seeds of one setting and never across settings; a sweep refuses
//! to add runs with other settings to a store's grid points unless asked to keep both.

use crate::run::TrainConfig;
use serde_json::Value;

/// A run's configuration as JSON with the seeds removed.
fn without_seeds(config: &TrainConfig) -> Value {
    let mut v = serde_json::to_value(config).expect("a configuration serialises");
    if let Value::Object(map) = &mut v {
        map.remove("init_seed");
        map.remove("data_seed");
    }
    v
}

/// FNV-1a, 64 bits: a stable hash (the same on every machine and version of Rust).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The fingerprint of every setting of a run except its seeds (16 hex digits): runs with
/// the same fingerprint differ only by seed and may be pooled as seeds.
///
/// ```
/// let mut a: urpe::train::TrainConfig = urpe::train::TrainConfig::parse(
///     "target = \"position-shift\"\nn = 8\n[model]\nfamily = \"t5\"\ndepth = 1\nwidth = 8\nheads = 2",
///     false,
/// )
/// .unwrap();
/// let b = urpe::train::TrainConfig { init_seed: 7, data_seed: 9, ..a.clone() };
/// assert_eq!(urpe::experiment::settings::fingerprint(&a), urpe::experiment::settings::fingerprint(&b));
/// a.steps += 1;
/// assert_ne!(urpe::experiment::settings::fingerprint(&a), urpe::experiment::settings::fingerprint(&b));
/// ```
pub fn fingerprint(config: &TrainConfig) -> String {
    format!("{:016x}", fnv1a(without_seeds(config).to_string().as_bytes()))
}

/// Fields of a run's configuration that name its place in a grid (or follow from it):
/// left out of [`protocol`].
const GRID_FIELDS: [&str; 2] = ["target", "n"];
const GRID_MODEL_FIELDS: [&str; 11] =
    ["family", "urpe", "attention", "bos", "depth", "width", "heads", "ffn", "n_max", "input", "output"];

/// The fingerprint of a run's protocol: every setting except its seeds and its place in a
/// grid (target, n, family, gate, normaliser, BOS row — an experiment's label names the last
/// four —,
/// depth, width, heads, and what follows from them; the FFN
/// width enters as its multiple of the width). Two grid points of one protocol can be
/// compared (URPE against its base family, one width against another); together with the
/// grid coordinates the protocol fixes every setting but the seeds.
pub fn protocol(config: &TrainConfig) -> String {
    format!("{:016x}", fnv1a(protocol_value(config).to_string().as_bytes()))
}

/// The settings of [`protocol`] as `(field, value)` pairs with dotted names.
pub fn protocol_fields(config: &TrainConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten("", &protocol_value(config), &mut out);
    out
}

fn protocol_value(config: &TrainConfig) -> Value {
    let mut v = without_seeds(config);
    if let Value::Object(map) = &mut v {
        for f in GRID_FIELDS {
            map.remove(f);
        }
        if let Some(Value::Object(model)) = map.get_mut("model") {
            for f in GRID_MODEL_FIELDS {
                model.remove(f);
            }
            let multiple = config.model.ffn as f64 / config.model.width.max(1) as f64;
            model.insert("ffn_multiple".into(), serde_json::json!(multiple));
        }
    }
    v
}

/// The settings of a run as `(field, value)` pairs with dotted field names as an
/// experiment or run file spells them (`optim.lr`, `model.depth`), seeds left out.
pub fn fields(config: &TrainConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten("", &without_seeds(config), &mut out);
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&name, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The fields in which two runs' settings differ: `(field, value in a, value in b)`; a
/// field missing on one side reads `–`.
pub fn differences(a: &TrainConfig, b: &TrainConfig) -> Vec<(String, String, String)> {
    let (fa, fb) = (fields(a), fields(b));
    let lookup = |list: &[(String, String)], name: &str| {
        list.iter().find(|(n, _)| n == name).map_or_else(|| "–".to_string(), |(_, v)| v.clone())
    };
    let mut names: Vec<&String> = fa.iter().chain(&fb).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let (x, y) = (lookup(&fa, n), lookup(&fb, n));
            (x != y).then(|| (n.clone(), x, y))
        })
        .collect()
}

/// The differences as one phrase: "`steps` = 150 there, 200 here; `optim.lr` = …".
pub fn describe(differences: &[(String, String, String)], there: &str, here: &str) -> String {
    differences.iter().map(|(f, a, b)| format!("`{f}` = {a} {there}, {b} {here}")).collect::<Vec<_>>().join("; ")
}
