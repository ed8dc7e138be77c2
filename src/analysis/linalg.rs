//! Dense linear algebra of the probes, through faer (pure Rust, no LAPACK). The optional
//! feature `lapack` computes the same through ndarray-linalg ([`lapack`]) so that the two
//! can be compared on machines that have a system LAPACK.

use crate::error::{Error, Result};
use faer_ext::IntoFaer;
use ndarray::ArrayView2;

/// Singular values σ₁ ≥ σ₂ ≥ … ≥ 0 of `a` (min(rows, cols) of them), from faer's SVD
/// (no Gram matrix, so values far below √ε·σ₁ are kept).
pub fn singular_values(a: ArrayView2<f64>) -> Result<Vec<f64>> {
    if a.is_empty() {
        return Ok(Vec::new());
    }
    a.into_faer().singular_values().map_err(|e| Error::Internal(format!("SVD did not converge: {e:?}")))
}

/// Eigenvalues λ = re + i·im of the square matrix `a`, from faer's real Schur form, in
/// faer's order.
pub fn eigenvalues(a: ArrayView2<f64>) -> Result<Vec<(f64, f64)>> {
    assert_eq!(a.nrows(), a.ncols(), "eigenvalues of a square matrix");
    if a.is_empty() {
        return Ok(Vec::new());
    }
    let values =
        a.into_faer().eigenvalues().map_err(|e| Error::Internal(format!("eigenvalues did not converge: {e:?}")))?;
    Ok(values.into_iter().map(|z| (z.re, z.im)).collect())
}

/// The same decompositions through ndarray-linalg (LAPACK), for comparison.
#[cfg(feature = "lapack")]
pub mod lapack {
    use crate::error::{Error, Result};
    use ndarray::ArrayView2;
    use ndarray_linalg::{EigVals, SVD};

    /// Singular values of `a`, nonincreasing (LAPACK's gesdd through ndarray-linalg).
    pub fn singular_values(a: ArrayView2<f64>) -> Result<Vec<f64>> {
        let (_, s, _) = a.to_owned().svd(false, false).map_err(|e| Error::Internal(format!("LAPACK SVD: {e}")))?;
        Ok(s.to_vec())
    }

    /// Eigenvalues of the square matrix `a` (LAPACK's geev through ndarray-linalg).
    pub fn eigenvalues(a: ArrayView2<f64>) -> Result<Vec<(f64, f64)>> {
        let values = a.to_owned().eigvals().map_err(|e| Error::Internal(format!("LAPACK eigenvalues: {e}")))?;
        Ok(values.iter().map(|z| (z.re, z.im)).collect())
    }
}
