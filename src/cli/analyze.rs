//! `urpe analyze`: linear-algebra probes of a checkpoint, or of random models of a family.

use super::model_args::{IoArgs, ModelArgs};
use super::outln;
use crate::analysis::random::random_model;
use crate::analysis::rank::RANK_TOLERANCE;
use crate::analysis::{Analysis, Options, analyze};
use crate::config::{InputKind, OutputKind};
use crate::error::{Error, Result};
use serde_json::json;
use std::path::PathBuf;

/// Probe where position information lives: stochasticity of every head, positional rank
/// per layer, spectra of the Toeplitz matrices B and C.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("n_max", |a| a.help("Longest sequence the model accepts [default: 16]")),
    mut_arg("d_in", |a| a.help("Real input with this many features [default: 8 when no --vocab]")),
    mut_arg("d_out", |a| a.help("Real output with this many features [default: 8 when no --classes]")),
    after_help = "\
Examples:
  urpe analyze --checkpoint runs/x/model.safetensors
  urpe analyze --checkpoint runs/x/model.safetensors --json > probes.json
  urpe analyze --checkpoint runs/x/model.safetensors --figures probes/
  urpe analyze --family rope --depth 3 --width 32 --heads 4 --random-init 3
  urpe analyze --family alibi --urpe --depth 2 --width 16 --heads 2 --random-init 5
  urpe analyze --config experiments/model.toml --random-init 3

With --family the model flags describe random models (every parameter random, C too);
n_max defaults to 16, the input to real vectors of 8 features, the output to 8 features.
A family is barrier-bound as measured when its positional rank is 0 (every σ/‖h‖ ≤ 1e-6)
at every stage of every model; the verdict is compared with the classification in
docs/theory.md §2.")]
pub struct Args {
    /// Checkpoint to probe (from `urpe train`, `urpe init`, `urpe witness --save`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["family", "random_init", "config"])]
    checkpoint: Option<PathBuf>,
    /// Model configuration file (TOML, or JSON when the name ends in .json) for
    /// --random-init, instead of the model flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["family", "depth", "width", "heads", "n_max"])]
    config: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    io: IoArgs,
    /// Probe this many random models of the family given by the model flags.
    #[arg(long, value_name = "K")]
    random_init: Option<usize>,
    /// Sequence length of the probe inputs [default: the model's n_max].
    #[arg(long)]
    n: Option<usize>,
    /// Constant inputs stacked for the positional rank.
    #[arg(long, default_value_t = 256)]
    rank_inputs: usize,
    /// Inputs of each kind (constant, general) for the heads' stochasticity.
    #[arg(long, default_value_t = 32)]
    head_inputs: usize,
    /// Seed of the probe inputs (and, with --random-init, of the models: seed, seed + 1, …).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Also draw the probes as figures (PNG and SVG) into this folder.
    #[arg(long, value_name = "DIR")]
    figures: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    if a.rank_inputs == 0 || a.head_inputs == 0 {
        return Err(Error::Input("--rank-inputs and --head-inputs must be at least 1".into()));
    }
    let (models, from) = match (&a.checkpoint, a.random_init) {
        (Some(path), _) => (vec![crate::checkpoint::load::<f32>(path)?.cast::<f64>()], "checkpoint"),
        (None, Some(0)) => return Err(Error::Input("--random-init must be at least 1".into())),
        (None, Some(k)) => {
            let config = match &a.config {
                Some(path) => super::model_args::read_config_file(path)?,
                None => {
                    let spec = a.model.spec(Some(&a.io))?;
                    spec.complete(16, InputKind::Real { d_in: 8 }, OutputKind::Real { d_out: 8 }).resolve()?
                }
            };
            let models = (0..k as u64).map(|i| random_model(config.clone(), a.seed.wrapping_add(i)));
            (models.collect::<Result<Vec<_>>>()?, "random")
        }
        (None, None) => {
            return Err(Error::Input(
                "give --checkpoint FILE, or a family with --random-init K (e.g. --family rope --depth 2 --width 16 --heads 2 --random-init 3)".into(),
            ));
        }
    };
    let n = a.n.unwrap_or(models[0].config.n_max);
    let options = Options { n, rank_inputs: a.rank_inputs, head_inputs: a.head_inputs, seed: a.seed };
    let analyses: Vec<Analysis> = models.iter().map(|m| analyze(m, &options)).collect::<Result<_>>()?;
    let bound = analyses.iter().filter(|x| x.positional_rank() == 0).count();
    let theory = analyses[0].barrier_bound_by_theory;
    let measured = bound == analyses.len();
    let figures = match &a.figures {
        Some(dir) => crate::plot::draw_analysis(&analyses[0], dir)?,
        None => Vec::new(),
    };
    if a.json {
        super::print_json(&json!({
            "source": from,
            "config": models[0].config,
            "models": analyses,
            "barrier_bound_measured": measured,
            "barrier_bound_by_theory": theory,
            "rank_tolerance": RANK_TOLERANCE,
            "figures": figures.iter().map(|f| f.png.display().to_string()).collect::<Vec<_>>(),
        }))?;
    } else {
        let c = &models[0].config;
        outln!(
            "urpe analyze: {} (depth {}, width {}, {} heads, norm {}{}), n = {n}, float64",
            c.label(),
            c.depth,
            c.width,
            c.heads,
            format!("{:?}", c.norm).to_lowercase(),
            if c.causal { ", causal" } else { "" }
        )?;
        if from == "checkpoint" {
            print_analysis(&analyses[0], &options)?;
        } else {
            for (k, x) in analyses.iter().enumerate() {
                outln!("\nrandom model {} of {} (seed {})", k + 1, analyses.len(), a.seed.wrapping_add(k as u64))?;
                print_analysis(x, &options)?;
            }
        }
        outln!("")?;
        let verdict = if measured {
            format!("barrier-bound: positional rank 0 at every stage in {bound} of {} models", analyses.len())
        } else {
            format!(
                "NOT barrier-bound: positive positional rank in {} of {} models",
                analyses.len() - bound,
                analyses.len()
            )
        };
        outln!(
            "{}: {verdict}; docs/theory.md: {}",
            c.label(),
            if theory { "barrier-bound" } else { "not barrier-bound" }
        )?;
        for f in &figures {
            outln!("figure: {}", f.png.display())?;
        }
    }
    // A random model of a free family may happen to have rank 0 somewhere; never the reverse.
    if theory && !measured {
        return Err(Error::Internal(format!(
            "{} is barrier-bound by docs/theory.md §2 but a probed model has positive positional rank: a bug in the engine",
            models[0].config.label()
        )));
    }
    Ok(())
}

/// The text tables of one analysis.
fn print_analysis(x: &Analysis, o: &Options) -> Result<()> {
    outln!(
        "heads: the matrix M that multiplies V (A = the normalised scores, or G = A ⊙ C with the gate), {} inputs of each kind",
        o.head_inputs
    )?;
    outln!(
        "{:>5} {:>4}  {:<8} {:>12} {:>12} {:>22} {:>10} {:>10}",
        "block",
        "head",
        "inputs",
        "row sum min",
        "row sum max",
        "λ nearest 1 (re, im)",
        "|λ − 1|",
        "‖M1 − 1‖∞"
    )?;
    for (kind, heads) in [("constant", &x.heads_constant), ("general", &x.heads_general)] {
        for h in heads {
            outln!(
                "{:>5} {:>4}  {:<8} {:>12.6} {:>12.6} {:>22} {:>10.2e} {:>10.2e}",
                h.block,
                h.head,
                kind,
                h.row_sum_min,
                h.row_sum_max,
                format!("({:.6}, {:.1e})", h.eigenvalue.0, h.eigenvalue.1),
                h.eigen_distance,
                h.residual
            )?;
        }
    }
    for h in x.heads_constant.iter().filter(|h| h.gated_row_sums.is_some()) {
        let sums = h.gated_row_sums.as_ref().expect("filtered");
        let shown: Vec<String> = sums.iter().map(|s| format!("{s:.3}")).collect();
        outln!(
            "row sums of A ⊙ C, block {} head {}, per position (constant inputs): {}",
            h.block,
            h.head,
            shown.join(" ")
        )?;
    }
    outln!(
        "positional rank on {} constant inputs: σ_k of the stacked row-centred states / ‖h‖_F; rank counts σ/‖h‖ > {RANK_TOLERANCE:.0e}",
        o.rank_inputs
    )?;
    outln!("{:<11} {:>4} {:>10} {:>10} {:>10} {:>10}", "stage", "rank", "σ1/‖h‖", "σ2/‖h‖", "σ3/‖h‖", "energy")?;
    for s in &x.rank {
        let sigma = |k: usize| s.singular.get(k).map_or("-".to_string(), |v| format!("{v:.2e}"));
        outln!("{:<11} {:>4} {:>10} {:>10} {:>10} {:>10.2e}", s.stage, s.rank, sigma(0), sigma(1), sigma(2), s.energy)?;
    }
    if !x.spectra.is_empty() {
        outln!("Toeplitz matrices at n = {}: singular values per head", x.n)?;
        if x.spectra.iter().any(|t| t.tensor.starts_with("layers.")) {
            outln!("(tensors as named in the checkpoint, where layers.L is block L + 1)")?;
        }
        outln!(
            "{:<20} {:<4} {:>4} {:>10} {:>10} {:>10} {:>10} {:>12}",
            "tensor",
            "role",
            "head",
            "σ1",
            "σ2",
            "σ3",
            "σ_min",
            "‖C − 11ᵀ‖/n"
        )?;
        for t in &x.spectra {
            let sigma = |k: usize| t.singular.get(k).map_or("-".to_string(), |v| format!("{v:.3e}"));
            let last = t.singular.last().map_or("-".to_string(), |v| format!("{v:.3e}"));
            let dist = t.distance_from_ones.map_or("-".to_string(), |v| format!("{v:.3e}"));
            outln!(
                "{:<20} {:<4} {:>4} {:>10} {:>10} {:>10} {:>10} {:>12}",
                t.tensor,
                t.role,
                t.head,
                sigma(0),
                sigma(1),
                sigma(2),
                last,
                dist
            )?;
        }
    }
    Ok(())
}
