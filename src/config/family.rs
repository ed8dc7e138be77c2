//! The position-encoding families.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Position-encoding family of the attention layers (docs/theory.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Family {
    /// No position information at all.
    Nope,
    /// Learned absolute positions p_i added to the input rows.
    ApeLearned,
    /// Sinusoidal absolute positions added to the input rows.
    ApeSin,
    /// T5 / RPE bias: scores + b_h[j − i], one learned value per offset and head.
    T5,
    /// T5 bias with T5's logarithmic offset buckets.
    T5Bucketed,
    /// ALiBi: scores − m_h·|j − i| with fixed geometric slopes.
    Alibi,
    /// Rotary embeddings: q_i and k_j rotated by angles ∝ i and j.
    Rope,
    /// Shaw et al., key side: scores + q_i·a^K_{j−i}/√d_h.
    ShawKey,
    /// Shaw et al., value side: out_i = Σ_j A_ij (v_j + a^V_{j−i}).
    ShawValue,
    /// Transformer-XL: content, content-position and the u, v bias terms in the logits.
    Xl,
    /// Shorthand accepted on input: t5 with the URPE gate.
    Urpe,
}

impl Family {
    /// Every concrete family (without the `urpe` shorthand), in catalogue order.
    pub const ALL: [Family; 10] = [
        Family::Nope,
        Family::ApeLearned,
        Family::ApeSin,
        Family::T5,
        Family::T5Bucketed,
        Family::Alibi,
        Family::Rope,
        Family::ShawKey,
        Family::ShawValue,
        Family::Xl,
    ];

    /// The name as the CLI and the configuration files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Family::Nope => "nope",
            Family::ApeLearned => "ape-learned",
            Family::ApeSin => "ape-sin",
            Family::T5 => "t5",
            Family::T5Bucketed => "t5-bucketed",
            Family::Alibi => "alibi",
            Family::Rope => "rope",
            Family::ShawKey => "shaw-key",
            Family::ShawValue => "shaw-value",
            Family::Xl => "xl",
            Family::Urpe => "urpe",
        }
    }

    /// True when all position information enters inside the softmax, so Proposition 1
    /// applies (the bound families of docs/theory.md §2): constant inputs give equal output rows.
    pub fn inside_softmax_only(self) -> bool {
        !matches!(self, Family::ApeLearned | Family::ApeSin | Family::ShawValue | Family::Urpe)
    }

    /// True when the family adds a position vector to the input rows.
    pub fn is_absolute(self) -> bool {
        matches!(self, Family::ApeLearned | Family::ApeSin)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
