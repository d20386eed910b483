//! The memory floor the benches measure fused passes against: a plain read of every entry.

/// One pass over `a` with eight accumulators.
pub fn stream_slice(a: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    let chunks = a.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// The read split in two halves as gradfit's fused passes split their rows: between two threads
/// when rayon has two, on the calling thread otherwise.
pub fn stream_halves(a: &[f64]) -> f64 {
    let (first, second) = a.split_at(a.len() / 2);
    let (x, y) = rayon::join(|| stream_slice(first), || stream_slice(second));
    x + y
}
