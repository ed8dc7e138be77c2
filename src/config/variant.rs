//! The attention variant of a model: its position family and whether the URPE gate is on.
//! One parser, one printer and one order for every place that names a variant
//! (configuration, experiments, statistics, figures, reports).
//!
//! Labels: a family name (`t5`, `rope`, …) is the variant without the gate; `FAMILY+urpe`
//! adds the gate; `urpe` alone is the paper's URPE, t5 with the gate, and is how t5 + gate
//! prints. `urpe` is input sugar, never a family.

use crate::error::ConfigError;
use crate::family::Family;
use crate::normaliser::Attention;
use std::fmt;
use std::str::FromStr;

/// The suffix of a gated label (`rope+urpe`).
const GATE_SUFFIX: &str = "+urpe";

/// A position family with or without the URPE gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The position family (never the `urpe` shorthand).
    pub family: Family,
    /// The URPE gate: attention probabilities multiplied by a learned Toeplitz C.
    pub gate: bool,
}

impl Variant {
    /// The paper's URPE: t5 with the gate.
    pub const URPE: Variant = Variant { family: Family::T5, gate: true };

    /// The variant of `family` with or without the gate.
    pub fn new(family: Family, gate: bool) -> Self {
        Variant { family, gate }
    }

    /// Parses a label: `FAMILY`, `FAMILY+urpe` or `urpe`.
    ///
    /// ```
    /// use urpe::config::Variant;
    /// use urpe::config::Family;
    /// assert_eq!(Variant::parse("urpe").unwrap(), Variant::URPE);
    /// assert_eq!(Variant::parse("rope+urpe").unwrap(), Variant { family: Family::Rope, gate: true });
    /// assert_eq!(Variant::parse("t5+urpe").unwrap().to_string(), "urpe");
    /// assert!(Variant::parse("urpe+urpe").is_err());
    /// ```
    pub fn parse(label: &str) -> Result<Self, ConfigError> {
        let (name, gate) = match label.strip_suffix(GATE_SUFFIX) {
            Some(base) => (base, true),
            None => (label, false),
        };
        let unknown = || {
            let names: Vec<&str> = Family::all().iter().map(|f| f.name()).collect();
            ConfigError::new("family", label, format!("a family ({}), urpe, or FAMILY+urpe", names.join(", ")))
        };
        if name == "urpe" {
            return if gate { Err(unknown()) } else { Ok(Variant::URPE) };
        }
        Ok(Variant::new(Family::by_name(name).ok_or_else(unknown)?, gate))
    }

    /// The same family without the gate.
    pub fn base(self) -> Self {
        Variant { gate: false, ..self }
    }

    /// True when the model maps constant inputs to equal output rows (Proposition 1): all
    /// position information inside the softmax and no gate.
    pub fn barrier_bound(self) -> bool {
        self.family.inside_softmax_only() && !self.gate
    }

    /// The one order of variants in figures and reports: without the gate before with it;
    /// within each, barrier-bound families before the others; then catalogue order.
    pub fn order_key(self) -> (bool, bool, usize) {
        (self.gate, !self.family.inside_softmax_only(), self.family.index())
    }

    /// Sorts labels in [`Variant::order_key`] order and drops repeats; labels that do not
    /// parse go last, alphabetically.
    ///
    /// ```
    /// let mut labels: Vec<String> = ["urpe", "ape-learned", "rope", "nope"].map(String::from).to_vec();
    /// urpe::config::Variant::sort_labels(&mut labels);
    /// assert_eq!(labels, ["nope", "rope", "ape-learned", "urpe"]);
    /// ```
    /// A label that names a normaliser after the variant ([`ModelLabel`]) sorts by its variant,
    /// then by the whole label.
    pub fn sort_labels(labels: &mut Vec<String>) {
        labels.sort_by_cached_key(|l| match ModelLabel::parse(l) {
            Ok(m) => (false, m.variant.order_key(), l.clone()),
            Err(_) => (true, (true, true, usize::MAX), l.clone()),
        });
        labels.dedup();
    }
}

/// A model label as experiments write it: a variant label ([`Variant::parse`]), then,
/// after a space, the attention normaliser where it is not softmax (`t5 sigmoid`,
/// `fire+urpe stick-breaking`, `nope sink`), then `bos` for a learned first row before
/// every sequence (`nope bos`, `t5 sigmoid bos`). One label names one setting, so runs of
/// different normalisers, or with and without the BOS row, never share a grid point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelLabel {
    /// The family and the gate.
    pub variant: Variant,
    /// The normaliser (softmax when the label names none).
    pub attention: Attention,
    /// A BOS row before every sequence ([`crate::config::ModelSpec::bos`]).
    pub bos: bool,
}

impl ModelLabel {
    /// Parses `VARIANT [NORMALISER] [bos]`.
    ///
    /// ```
    /// use urpe::config::{ModelLabel, Variant};
    /// let m = ModelLabel::parse("rope+urpe sigmoid").unwrap();
    /// assert_eq!(m.variant.to_string(), "rope+urpe");
    /// assert_eq!(m.attention.to_string(), "sigmoid");
    /// assert_eq!(m.base().unwrap(), "rope sigmoid");
    /// let b = ModelLabel::parse("urpe bos").unwrap();
    /// assert!(b.bos && b.attention.is_softmax());
    /// assert_eq!(b.base().unwrap(), "t5 bos");
    /// assert!(ModelLabel::parse("t5 softmax2").is_err());
    /// assert!(ModelLabel::parse("t5 bos sigmoid").is_err());
    /// ```
    pub fn parse(label: &str) -> Result<Self, ConfigError> {
        const FORM: &str = "VARIANT [NORMALISER] [bos]";
        let mut words: Vec<&str> = label.split(' ').collect();
        let bos = words.len() > 1 && words.last() == Some(&"bos");
        if bos {
            words.pop();
        }
        let variant = Variant::parse(words[0])?;
        let attention = match words.get(1) {
            None => Attention::SOFTMAX,
            Some(name) => Attention::by_name(name).ok_or_else(|| {
                ConfigError::new(
                    "families",
                    label,
                    format!("{FORM}, a normaliser one of {}, `bos` last", Attention::names()),
                )
            })?,
        };
        if words.len() > 2 {
            return Err(ConfigError::new("families", label, format!("{FORM} (three words at most)")));
        }
        Ok(ModelLabel { variant, attention, bos })
    }

    /// The label of the same setting without the gate, for a gated variant.
    pub fn base(&self) -> Option<String> {
        self.variant.gate.then(|| ModelLabel { variant: self.variant.base(), ..*self }.to_string())
    }
}

impl fmt::Display for ModelLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.variant)?;
        if !self.attention.is_softmax() {
            write!(f, " {}", self.attention)?;
        }
        if self.bos {
            f.write_str(" bos")?;
        }
        Ok(())
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.gate {
            true if self.family == Family::T5 => f.write_str("urpe"),
            true => write!(f, "{}{GATE_SUFFIX}", self.family),
            false => f.write_str(self.family.name()),
        }
    }
}

impl FromStr for Variant {
    type Err = ConfigError;

    fn from_str(label: &str) -> Result<Self, ConfigError> {
        Variant::parse(label)
    }
}

impl serde::Serialize for Variant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Variant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let label = String::deserialize(d)?;
        Variant::parse(&label)
            .map_err(|e| serde::de::Error::custom(format!("unknown family `{label}`: expected {}", e.allowed)))
    }
}
