//! The attention variant of a model: its position family and whether the URPE gate is on.
//! One parser, one printer and one order for every place that names a variant
//! (configuration, experiments, statistics, figures, reports).
//!
//! Labels: a family name (`t5`, `rope`, …) is the variant without the gate; `FAMILY+urpe`
//! adds the gate; `urpe` alone is the paper's URPE, t5 with the gate, and is how t5 + gate
//! prints. `urpe` is input sugar, never a family.

use super::Family;
use crate::error::ConfigError;
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

    /// The variant of `family` with or without the gate; the `urpe` shorthand means t5
    /// with the gate whatever `gate` says.
    pub fn new(family: Family, gate: bool) -> Self {
        match family {
            Family::Urpe => Variant::URPE,
            family => Variant { family, gate },
        }
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
            let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
            ConfigError::new("family", label, format!("a family ({}), urpe, or FAMILY+urpe", names.join(", ")))
        };
        let family = Family::ALL.into_iter().chain([Family::Urpe]).find(|f| f.name() == name).ok_or_else(unknown)?;
        if family == Family::Urpe && gate {
            return Err(unknown());
        }
        Ok(Variant::new(family, gate))
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
        let index = Family::ALL.iter().position(|&f| f == self.family).unwrap_or(Family::ALL.len());
        (self.gate, !self.family.inside_softmax_only(), index)
    }

    /// Sorts labels in [`Variant::order_key`] order and drops repeats; labels that do not
    /// parse go last, alphabetically.
    ///
    /// ```
    /// let mut labels: Vec<String> = ["urpe", "ape-learned", "rope", "nope"].map(String::from).to_vec();
    /// urpe::config::Variant::sort_labels(&mut labels);
    /// assert_eq!(labels, ["nope", "rope", "ape-learned", "urpe"]);
    /// ```
    pub fn sort_labels(labels: &mut Vec<String>) {
        labels.sort_by_cached_key(|l| match Variant::parse(l) {
            Ok(v) => (false, v.order_key(), l.clone()),
            Err(_) => (true, (true, true, usize::MAX), l.clone()),
        });
        labels.dedup();
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.family, self.gate) {
            (Family::T5, true) => f.write_str("urpe"),
            (family, true) => write!(f, "{family}{GATE_SUFFIX}"),
            (family, false) => f.write_str(family.name()),
        }
    }
}

impl FromStr for Variant {
    type Err = ConfigError;

    fn from_str(label: &str) -> Result<Self, ConfigError> {
        Variant::parse(label)
    }
}
