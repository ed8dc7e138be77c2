//! Records the git revision of the build (URPE_GIT_REVISION), `unknown` outside a checkout;
//! with the `cuda` feature, compiles the fused kernels (src/candle/fused.cu) to PTX with
//! nvcc (through CUDA_HOME or PATH; CUDA_COMPUTE_CAP picks the target, default 80).
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=URPE_GIT_REVISION={revision}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=src/candle/fused.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        compile_kernels();
    }
}

fn compile_kernels() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("fused.ptx");
    let nvcc = std::env::var("CUDA_HOME").map(|h| format!("{h}/bin/nvcc")).unwrap_or_else(|_| "nvcc".into());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", &format!("--gpu-architecture=compute_{cap}"), "-o"])
        .arg(&out)
        .arg("src/candle/fused.cu")
        .status()
        .unwrap_or_else(|e| panic!("running {nvcc} for the `cuda` feature: {e} (see scripts/cuda_toolchain.sh)"));
    assert!(status.success(), "{nvcc} failed on src/candle/fused.cu");
}
