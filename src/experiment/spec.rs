//! Experiments as files: one TOML per experiment, a list of grids (targets × families ×
//! depths × widths × heads × seeds) with shared defaults. [`Experiment::jobs`] expands
//! them, in a fixed order, into complete training runs.

use super::settings::fnv1a;
use crate::config::ModelLabel;
use crate::config::{Activation, ConfigError, ModelSpec, Norm};
use crate::optim::OptimConfig;
use crate::run::{EvalConfig, TrainConfig};
use crate::theory::{Target, TargetKind};
use serde::{Deserialize, Serialize};

/// A target of a grid with its sizes: a table `{ kind = "position-shift", n = 16 }` in the
/// file (a bare name is rejected with that example).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TargetSpec {
    /// Which function.
    pub kind: TargetKind,
    /// Sequence length.
    pub n: usize,
    /// Features (real targets; default 8).
    pub d: Option<usize>,
    /// Vocabulary (token targets; default 10).
    pub vocab: Option<usize>,
}

/// The table form of [`TargetSpec`], as written in a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetTable {
    kind: TargetKind,
    n: usize,
    #[serde(default)]
    d: Option<usize>,
    #[serde(default)]
    vocab: Option<usize>,
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor, value::MapAccessDeserializer};
        struct Table;
        impl<'de> Visitor<'de> for Table {
            type Value = TargetSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("each entry of `targets` to be a table like { kind = \"position-shift\", n = 16 }")
            }
            fn visit_str<E: Error>(self, name: &str) -> Result<TargetSpec, E> {
                Err(E::custom(format!(
                    "`targets` = [\"{name}\", …]: each target is a table with its length, like \
                     {{ kind = \"{name}\", n = 16 }}"
                )))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TargetSpec, A::Error> {
                let t = TargetTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(TargetSpec { kind: t.kind, n: t.n, d: t.d, vocab: t.vocab })
            }
        }
        d.deserialize_any(Table)
    }
}

/// One grid: the product of its lists and the settings of its runs. Every field is
/// optional: unset fields come from the experiment's `[defaults]` (a grid of the same
/// shape), then from the built-in values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Targets.
    pub targets: Option<Vec<TargetSpec>>,
    /// Model labels ([`ModelLabel`]): a family name, `urpe` (= t5 + gate) or `FAMILY+urpe`, then
    /// the normaliser where it is not softmax, then `bos` (`t5 sigmoid bos`).
    pub families: Option<Vec<String>>,
    /// Depths.
    pub depths: Option<Vec<usize>>,
    /// Widths.
    pub widths: Option<Vec<usize>>,
    /// Head counts (built-in [2]); each must divide every width of the grid (or the sweep
    /// is run with --skip-invalid, which lists the points it skips).
    pub heads: Option<Vec<usize>>,
    /// Seeds: each is both the init and the data seed of a run.
    pub seeds: Option<Vec<u64>>,
    /// Optimiser steps (built-in 600).
    pub steps: Option<usize>,
    /// Sequences per step (built-in 32).
    pub batch: Option<usize>,
    /// Share of constant sequences per batch (built-in 0.5).
    pub constant_fraction: Option<f64>,
    /// LayerNorm placement (built-in post).
    pub norm: Option<Norm>,
    /// FFN activation (built-in gelu).
    pub activation: Option<Activation>,
    /// Causal mask (built-in off).
    pub causal: Option<bool>,
    /// FFN width as a multiple of the model width (built-in 4).
    pub ffn_multiple: Option<usize>,
    /// Optimiser and schedule (built-in: Adam, lr 1e-3, linear decay).
    pub optim: Option<OptimConfig>,
    /// Held-out evaluation (built-in 512 sequences per set).
    pub eval: Option<EvalConfig>,
}

macro_rules! or_fields {
    ($a:expr, $b:expr, $($f:ident),*) => {
        Grid { $($f: $a.$f.clone().or_else(|| $b.$f.clone())),* }
    };
}

impl Grid {
    /// `self` where set, `fallback` elsewhere.
    fn or(&self, fallback: &Grid) -> Grid {
        or_fields!(
            self,
            fallback,
            targets,
            families,
            depths,
            widths,
            heads,
            seeds,
            steps,
            batch,
            constant_fraction,
            norm,
            activation,
            causal,
            ffn_multiple,
            optim,
            eval
        )
    }

    /// The built-in values.
    fn builtin() -> Grid {
        Grid {
            heads: Some(vec![2]),
            steps: Some(600),
            batch: Some(32),
            constant_fraction: Some(0.5),
            norm: Some(Norm::Post),
            activation: Some(Activation::Gelu),
            causal: Some(false),
            ffn_multiple: Some(4),
            optim: Some(OptimConfig::default()),
            eval: Some(EvalConfig::default()),
            ..Grid::default()
        }
    }
}

/// A list a grid must have, after defaults.
fn list<'a, T>(value: &'a Option<Vec<T>>, field: &str) -> Result<&'a [T], ConfigError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ConfigError::new(field, "missing or empty", "at least one value, in the grid or in [defaults]")),
    }
}

/// An experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Name, recorded with every run.
    pub name: String,
    /// What it shows (for reports).
    #[serde(default)]
    pub description: String,
    /// Values every grid starts from.
    #[serde(default)]
    pub defaults: Grid,
    /// The grids.
    #[serde(rename = "grid")]
    pub grids: Vec<Grid>,
}

/// One run of an experiment: where it sits in the grid, and its full configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Stable identity: a hash of the experiment name and the configuration.
    pub id: String,
    /// Family label as written in the experiment (`urpe`, `rope+urpe`, `t5`, …).
    pub family: String,
    /// Seed (init and data).
    pub seed: u64,
    /// The run.
    pub config: TrainConfig,
}

/// Parses an experiment's model label (see [`ModelLabel::parse`]); errors name `families`.
fn parse_label(label: &str) -> Result<ModelLabel, ConfigError> {
    ModelLabel::parse(label).map_err(|e| ConfigError { field: "families".into(), ..e })
}

impl Experiment {
    /// Reads an experiment from TOML; errors are one line with the place.
    pub fn parse(text: &str) -> Result<Self, String> {
        let e: Experiment = crate::config::toml_from_str(text)?;
        if e.grids.is_empty() {
            return Err("an experiment needs at least one [[grid]]".into());
        }
        e.plan().map_err(|err| err.to_string())?;
        Ok(e)
    }

    /// Every run of every grid, in a fixed order (grid, target, family, depth, width,
    /// heads, seed); each configuration validated. A grid point that cannot be built (a
    /// head count that does not divide a width) is an error naming it: see [`Self::plan`]
    /// to skip such points instead.
    pub fn jobs(&self) -> Result<Vec<Job>, ConfigError> {
        let plan = self.plan()?;
        match plan.skipped.first() {
            None => Ok(plan.jobs),
            Some(first) => Err(ConfigError::new(
                "heads",
                first.heads,
                format!(
                    "{} grid point(s) cannot be built, the first: {first}; remove those head counts or widths from the grid, or pass --skip-invalid to run the other points",
                    plan.skipped.len()
                ),
            )),
        }
    }

    /// The runs of every buildable grid point (as [`Self::jobs`]) and the grid points that
    /// cannot be built, listed rather than dropped in silence.
    pub fn plan(&self) -> Result<Plan, ConfigError> {
        let mut plan = Plan::default();
        for (index, grid) in self.grids.iter().enumerate() {
            let g = grid.or(&self.defaults).or(&Grid::builtin());
            let (targets, families) = (list(&g.targets, "targets")?, list(&g.families, "families")?);
            let (depths, widths) = (list(&g.depths, "depths")?, list(&g.widths, "widths")?);
            let (heads, seeds) = (list(&g.heads, "heads")?, list(&g.seeds, "seeds")?);
            for t in targets {
                let target = Target::new(t.kind, t.n, t.d.unwrap_or(8), t.vocab.unwrap_or(10));
                for label in families {
                    let model = parse_label(label)?;
                    for &depth in depths {
                        for &width in widths {
                            for &h in heads {
                                if h == 0 || width % h != 0 {
                                    plan.skipped.push(Skipped {
                                        grid: index + 1,
                                        target: t.kind,
                                        family: label.clone(),
                                        depth,
                                        width,
                                        heads: h,
                                    });
                                    continue;
                                }
                                for &seed in seeds {
                                    let config = g.run(&target, model, depth, width, h, seed)?;
                                    let canonical =
                                        serde_json::to_string(&(&self.name, &config)).expect("serialisable");
                                    let id = format!("{:016x}", fnv1a(canonical.as_bytes()));
                                    plan.jobs.push(Job { id, family: label.clone(), seed, config });
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(plan)
    }
}

/// The expansion of an experiment: runnable jobs and the grid points that cannot be built.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Every run of every buildable grid point, in the order of [`Experiment::jobs`].
    pub jobs: Vec<Job>,
    /// Grid points that cannot be built (heads must divide the width).
    pub skipped: Vec<Skipped>,
}

/// A grid point that cannot be built: its head count does not divide its width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Grid number in the file, from 1.
    pub grid: usize,
    /// Target.
    pub target: TargetKind,
    /// Family label.
    pub family: String,
    /// Depth.
    pub depth: usize,
    /// Width.
    pub width: usize,
    /// Head count.
    pub heads: usize,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[[grid]] {}: {} {} depth {} width {} heads {} (heads must divide the width)",
            self.grid, self.target, self.family, self.depth, self.width, self.heads
        )
    }
}

impl Grid {
    /// The run of one grid point (all settings resolved).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        target: &Target,
        model: ModelLabel,
        depth: usize,
        width: usize,
        heads: usize,
        seed: u64,
    ) -> Result<TrainConfig, ConfigError> {
        let family = model.variant.family;
        let mut spec = ModelSpec::new(family, depth, width, heads, target.n, target.input_kind(), target.output_kind());
        spec.urpe = model.variant.gate;
        spec.attention = Some(model.attention);
        spec.bos = model.bos;
        spec.norm = self.norm;
        spec.activation = self.activation;
        spec.causal = self.causal.unwrap_or(false);
        spec.ffn = Some(width * self.ffn_multiple.unwrap_or(4));
        let config = TrainConfig {
            target: target.kind,
            n: target.n,
            d: target.d,
            vocab: target.vocab,
            model: spec.resolve()?,
            steps: self.steps.unwrap_or(600),
            batch: self.batch.unwrap_or(32),
            constant_fraction: self.constant_fraction.unwrap_or(0.5),
            optim: self.optim.unwrap_or_default(),
            init_seed: seed,
            data_seed: seed,
            eval: self.eval.unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }
}
