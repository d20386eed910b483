//! Which vector code the kernels run: the widest this CPU has, unless the environment variable
//! `GRADFIT_CPU` caps it.
//!
//! The passes over A, the exponentials and the Gram products are compiled three ways and chosen
//! at run time: portable Rust, AVX2 with FMA, and (where the CPU has AVX-512 F and VL) the AVX2
//! arithmetic in AVX-512's 32 registers with some 512-bit kernels. `GRADFIT_CPU=portable` or
//! `GRADFIT_CPU=avx2` makes a CPU with more run the narrower code, to measure it or to test it
//! (`cargo test` runs the library's, the derivative, the solver and the allocation tests again
//! under each cap below the code in use); `avx512` or `native` leaves the choice to the CPU. A cap can only narrow: asking for AVX-512 on a CPU without it
//! runs what the CPU has. The variable is read once, at the first kernel that asks.
//!
//! ```
//! use gradfit::cpu::{self, VectorCode};
//!
//! assert_eq!(VectorCode::parse("avx2"), Some(VectorCode::Avx2));
//! // never wider than the CPU's own
//! assert!(cpu::in_use() <= cpu::detected());
//! ```

use crate::{Error, Result};
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that caps the vector code.
pub const ENV: &str = "GRADFIT_CPU";

/// Set (to anything) in the child processes of the test suites' reruns under each narrower
/// cap, so that they do not rerun again; not read by the library.
#[doc(hidden)]
pub const RERUN: &str = "GRADFIT_CPU_RERUN";

/// The kinds of vector code, narrowest first (so a cap is a minimum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VectorCode {
    /// Portable Rust, whatever the compiler makes of it for the target's baseline.
    Portable,
    /// AVX2 with fused multiply-adds, in sixteen 256-bit registers.
    Avx2,
    /// AVX-512 F and VL: the AVX2 kernels with 32 registers, and 512-bit kernels.
    Avx512,
}

impl VectorCode {
    /// The name `GRADFIT_CPU` takes for it.
    pub fn name(self) -> &'static str {
        match self {
            VectorCode::Portable => "portable",
            VectorCode::Avx2 => "avx2",
            VectorCode::Avx512 => "avx512",
        }
    }

    /// The code a `GRADFIT_CPU` value names, ignoring case and surrounding blanks; `native`
    /// names the widest (then capped by the CPU's own); `None` for anything else.
    pub fn parse(s: &str) -> Option<VectorCode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" => Some(VectorCode::Portable),
            "avx2" => Some(VectorCode::Avx2),
            "avx512" | "native" => Some(VectorCode::Avx512),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> VectorCode {
        match v {
            3 => VectorCode::Avx512,
            2 => VectorCode::Avx2,
            // 1, and (never stored) anything else: the code every CPU runs
            _ => VectorCode::Portable,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            VectorCode::Portable => 1,
            VectorCode::Avx2 => 2,
            VectorCode::Avx512 => 3,
        }
    }
}

impl std::fmt::Display for VectorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The widest code this CPU runs (AVX-512 counts only with AVX2 and FMA beside it).
pub fn detected() -> VectorCode {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return VectorCode::Avx512;
            }
            return VectorCode::Avx2;
        }
    }
    VectorCode::Portable
}

/// The cap `GRADFIT_CPU` sets: `None` when it is unset or empty, an
/// [`Error::InvalidOption`] naming the variable when it names no code (or is not Unicode).
pub fn cap_from_env() -> Result<Option<VectorCode>> {
    let bad = |value: String| Error::InvalidOption {
        name: ENV.into(),
        value,
        reason: "expected portable, avx2, avx512 or native".into(),
    };
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(bad(format!("{:?}", v.to_string_lossy()))),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => VectorCode::parse(&v)
            .map(Some)
            .ok_or_else(|| bad(format!("{v:?}"))),
    }
}

/// The code the kernels run: [`detected`], narrowed by `GRADFIT_CPU` (read at the first call;
/// a value that names no code is ignored here, and the command line refuses it up front).
pub fn in_use() -> VectorCode {
    // 0: not yet read. A relaxed load and a compare on every later call, as cheap as the
    // standard library's own cached feature test.
    static IN_USE: AtomicU8 = AtomicU8::new(0);
    match IN_USE.load(Ordering::Relaxed) {
        0 => {
            let cap = cap_from_env().ok().flatten().unwrap_or(VectorCode::Avx512);
            let code = detected().min(cap);
            IN_USE.store(code.to_u8(), Ordering::Relaxed);
            code
        }
        v => VectorCode::from_u8(v),
    }
}

/// Whether the kernels may run AVX2 with FMA (the CPU has both, and no cap forbids them).
#[inline]
pub(crate) fn avx2() -> bool {
    in_use() >= VectorCode::Avx2
}

/// Whether the kernels may run AVX-512 F and VL (with AVX2 and FMA, which it implies here).
#[inline]
pub(crate) fn avx512() -> bool {
    in_use() >= VectorCode::Avx512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_order_narrowest_first() {
        for code in [VectorCode::Portable, VectorCode::Avx2, VectorCode::Avx512] {
            assert_eq!(VectorCode::parse(code.name()), Some(code));
            assert_eq!(VectorCode::from_u8(code.to_u8()), code);
        }
        assert_eq!(VectorCode::parse(" AVX2\n"), Some(VectorCode::Avx2));
        assert_eq!(VectorCode::parse("native"), Some(VectorCode::Avx512));
        assert_eq!(VectorCode::parse("sse2"), None);
        assert!(VectorCode::Portable < VectorCode::Avx2 && VectorCode::Avx2 < VectorCode::Avx512);
    }

    #[test]
    fn the_code_in_use_is_the_cpus_under_the_cap() {
        let cap = cap_from_env().ok().flatten().unwrap_or(VectorCode::Avx512);
        assert_eq!(in_use(), detected().min(cap));
        assert_eq!(avx2(), in_use() >= VectorCode::Avx2);
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            assert!(
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            );
        }
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            assert!(
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            );
        }
    }

    /// The library's other tests again, in child processes, under each cap narrower than the
    /// code in use (as `tests/common`'s `rerun_under_narrower_caps` does for the integration
    /// tests): the kernel tests that run every variant cover the kernels, these the routes
    /// through them (which kernel a pass picks, the exponentials, the Gram products).
    #[test]
    fn every_test_passes_under_each_narrower_vector_code() {
        const THIS: &str = "cpu::tests::every_test_passes_under_each_narrower_vector_code";
        if std::env::var_os(RERUN).is_some() {
            return; // a child: `the_code_in_use_is_the_cpus_under_the_cap` checks its cap
        }
        let exe = std::env::current_exe().unwrap();
        for cap in [VectorCode::Portable, VectorCode::Avx2]
            .into_iter()
            .filter(|c| *c < in_use())
        {
            let out = std::process::Command::new(&exe)
                .args(["--skip", THIS])
                .env(ENV, cap.name())
                .env(RERUN, "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "under {ENV}={cap}:\n{stdout}\n{stderr}");
            assert!(
                stdout.contains("test result: ok.") && !stdout.contains("ok. 0 passed"),
                "under {ENV}={cap}:\n{stdout}"
            );
        }
    }
}
