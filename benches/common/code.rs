//! Which vector code a bench measures: gradfit's kernels pick the CPU's widest unless
//! `GRADFIT_CPU` caps them (`gradfit::cpu`). Called before any timing, it prints the code in
//! use and refuses a cap that names no code (the library alone would ignore it, and the bench
//! would measure the wrong code without a word).

/// The code in use, by name; exits with status 1 on a bad `GRADFIT_CPU`.
pub fn vector_code() -> &'static str {
    if let Err(e) = gradfit::cpu::cap_from_env() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    let code = gradfit::cpu::in_use().name();
    eprintln!("gradfit vector code: {code}");
    code
}
