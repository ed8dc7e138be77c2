//! The experiments compiled into the binary: `urpe reproduce` runs one of them.

use super::spec::Experiment;

/// A compiled-in experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// experiments/reproduce.toml: the default, minutes on a 2-core CPU.
    Quick,
    /// experiments/full.toml: the larger grid for a GPU or a cluster.
    Full,
    /// experiments/zoo.toml: every family and normaliser of the zoo, with and without a BOS row, against the floor.
    Zoo,
}

impl Profile {
    /// The experiment file's text.
    pub fn text(self) -> &'static str {
        match self {
            Profile::Quick => include_str!("../../experiments/reproduce.toml"),
            Profile::Full => include_str!("../../experiments/full.toml"),
            Profile::Zoo => include_str!("../../experiments/zoo.toml"),
        }
    }

    /// The name as `--profile` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
            Profile::Zoo => "zoo",
        }
    }

    /// Where its results and its figures go by default.
    pub fn folders(self) -> (&'static str, &'static str) {
        match self {
            Profile::Quick => ("results/reproduce", "figures"),
            Profile::Full => ("results/full", "figures/full"),
            Profile::Zoo => ("results/zoo", "figures/zoo"),
        }
    }

    /// The parsed experiment (the compiled-in files are checked by a test).
    pub fn experiment(self) -> Experiment {
        Experiment::parse(self.text()).expect("a compiled-in experiment is valid")
    }
}

/// The description of a compiled-in experiment of that name, if any.
pub fn description(name: &str) -> Option<String> {
    [Profile::Quick, Profile::Full, Profile::Zoo]
        .into_iter()
        .map(Profile::experiment)
        .find(|e| e.name == name)
        .map(|e| e.description)
}
