//! The data matrix as every pass reads it: Aᵀ (column-major, so A's rows lie one after
//! another, each possibly padded with zeros to a pitch) in a buffer aligned to 64 bytes.
//!
//! A `Vec<f64>` (and so a nalgebra `DMatrix`) is only as aligned as the allocator makes it:
//! glibc hands out large blocks 16 bytes past a page boundary (measured here: 16 mod 64). With
//! rows of a multiple of 8 entries every row then starts 16 bytes into a cache line (with 4 mod
//! 8, at 16 and 48 in turn), and every other 32-byte load of the AVX2 kernels straddles two
//! lines. Measured on this machine (AMD EPYC, one thread, logistic 20000 × 200, A 32 MB), against
//! A in a `DMatrix`: the fused cost-and-gradient 0.90× the time (1500–1575 µs against
//! 1670–1760, `cargo bench --bench floor -- logistic`, old and new binaries one after the
//! other), a whole L-BFGS solve 0.91×. Rows of other lengths start at every offset whatever
//! the base, and aligning the base alone made logistic 20000 × 50 1.05× slower;
//! [`AlignedT::padded`] pads them.

use nalgebra::DMatrixView;

use crate::Matrix;

/// 64 bytes aligned to 64: a cache line, the unit of [`AlignedT`]'s buffer.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([f64; 8]);

/// The short rows [`AlignedT::padded`] pads to a multiple of 4 (or of 8, on large data: see
/// there): those whose pitch stays below the kernels' long rows (`LONG_ROW`, 128), the ones
/// the short-row kernels take.
pub(crate) const PADDED_MAX: usize = crate::kernels::LONG_ROW;

/// The longest rows [`AlignedT::padded`] pads to a multiple of 8 (from `LONG_ROW` entries up):
/// the longest the kernels that want whole 64-byte lines take (`crate::kernels::woven_long`
/// up to 504 entries, `crate::kernels::near_rows` from 512), and the room for a copy of x or g
/// of long rows on the stack (8 KB).
pub(crate) const LONG_PADDED_MAX: usize = 1024;
const _: () = assert!(LONG_PADDED_MAX == crate::kernels::NEAR_MAX);

/// A padded copy of x or g of up to N entries, its lanes as aligned as A's rows.
#[repr(C, align(64))]
struct PaddedCopy<const N: usize>([f64; N]);

/// Aᵀ of an m×n matrix A, as a p×m column-major matrix would hold it, p ≥ n the pitch: row i
/// of A at `as_slice()[i·p..i·p + n]`, followed by p − n zeros, the first row on a cache-line
/// boundary. [`AlignedT::pitch`] is p, [`AlignedT::features`] is n, and `ncols`, `shape` and
/// `len` are those of the stored p×m matrix. The kernels take the pitch for the length of a
/// row, so they see A with p − n columns of zeros and need x and g padded to p entries
/// ([`AlignedT::with_padded`], [`AlignedT::with_padded_mut`]).
#[derive(Clone, Debug)]
pub(crate) struct AlignedT {
    buf: Vec<Line>,
    n: usize,
    pitch: usize,
    m: usize,
}

impl AlignedT {
    /// Aᵀ of `a` (m×n), pitch n.
    pub(crate) fn of(a: &Matrix) -> AlignedT {
        Self::with_pitch(a, a.ncols())
    }

    /// Aᵀ of `a` (m×n), rows padded to a multiple of 4 entries (the pitch) when the pitch is
    /// below [`PADDED_MAX`], and A has at least as many rows as the pitch. Every row then starts
    /// 32 bytes aligned, so no 4-lane load of the kernels straddles two cache lines, and the
    /// kernels take the whole row in vectors (rows of up to 52 entries in registers,
    /// `crate::kernels::register_rows`). Measured on logistic 20000 × 50 (pitch 52), one
    /// thread, against the unpadded `DMatrix`, both through the four-row sweep (before
    /// `register_rows`): the fused cost-and-gradient 0.93× the
    /// time (270–275 µs against 292–295), an L-BFGS solve 0.95×, Newton 0.97–0.98×; A takes 4%
    /// more memory. Long rows (from 125 entries, which a multiple of 4 would take to `LONG_ROW`,
    /// 128, up to [`LONG_PADDED_MAX`]) are padded to a multiple of 8, so that every row starts on
    /// a cache line and the kernels that want whole 64-byte lines take them
    /// (`crate::kernels::woven_long`, `crate::kernels::near_rows`). Measured on AMD EPYC (Zen 4),
    /// floor bench, one thread pinned, four runs each in alternation (medians of the fused pass
    /// against a stream read of A as stored, the padded one 3.5% and 1% larger): logistic
    /// 20000 × 201 1.17–1.33× against 1.33–1.96× unpadded, log-sum-exp 1.21–1.33×
    /// against 1.35–1.89×; 12800 × 317 1.14–1.21× against 1.59–2.00× and 1.17–1.23× against
    /// 1.37–1.56×. Rows of 125 to 127 entries are long rows of 128 (32000 × 125, one run of
    /// the three models, one thread pinned: 1.01–1.27× a stream read against 3.49–3.77×
    /// unpadded), and on a CPU with AVX2 (`crate::kernels::cpu_weaves`), short rows from 53 entries of an A of 12 MB or
    /// more are padded to a multiple of 8 too: 53 to 120 entries for the woven short rows
    /// (`crate::kernels::weaves_short`), 121 to 124 to 128, a long row. Short wide data (m below the pitch)
    /// is left unpadded: it is small, and the m×m Newton system (`crate::problems::woodbury`)
    /// reads A row by row with x and g of n entries.
    pub(crate) fn padded(a: &Matrix) -> AlignedT {
        let (m, n) = a.shape();
        // a short row is one whose multiple of 4 stays short (125 entries would round to 128,
        // a long row's length, and so are long); on large data, on a CPU that weaves them,
        // short rows past the registers' (from 53 entries) to a multiple of 8: 56 to 120 for
        // the woven short rows (`crate::kernels::weaves_short`), 128 (a long row) from 121
        let (pitch4, pitch8) = (n.div_ceil(4) * 4, n.div_ceil(8) * 8);
        let (pitch, fits) = if pitch4 < PADDED_MAX {
            let large = m * pitch8 * std::mem::size_of::<f64>() >= crate::kernels::WOVEN_SHORT_MIN_BYTES;
            let woven = pitch4 >= crate::kernels::WOVEN_SHORT_MIN && large && crate::kernels::cpu_weaves();
            (if woven { pitch8 } else { pitch4 }, true)
        } else {
            (pitch8, pitch8 <= LONG_PADDED_MAX)
        };
        if fits && m >= pitch {
            Self::with_pitch(a, pitch)
        } else {
            Self::of(a)
        }
    }

    fn with_pitch(a: &Matrix, pitch: usize) -> AlignedT {
        let (m, n) = a.shape();
        let mut t = AlignedT {
            buf: vec![Line([0.0; 8]); (m * pitch).div_ceil(8)],
            n,
            pitch,
            m,
        };
        let data = t.as_mut_slice();
        for (j, column) in a.column_iter().enumerate() {
            for (i, v) in column.iter().enumerate() {
                data[i * pitch + j] = *v;
            }
        }
        t
    }

    /// The pitch: entries per stored row, n and the zeros after it (the number of rows of the
    /// stored pitch × m matrix Aᵀ).
    pub(crate) fn pitch(&self) -> usize {
        self.pitch
    }

    /// n, A's number of columns.
    pub(crate) fn features(&self) -> usize {
        self.n
    }

    /// `f` of x's first n entries followed by zeros to the pitch: x itself when there is no
    /// padding (x then has n entries), else a copy on the stack, 64-byte aligned. Rows of
    /// `crate::kernels::NEAR_MIN` to [`LONG_PADDED_MAX`] entries, a multiple of 8, always get
    /// the copy on a CPU with AVX2 (`crate::kernels::cpu_weaves`), padded or not: their pass (`crate::kernels::near_rows`; `near_rows_avx2` in 32-byte halves) stores g in 64-byte
    /// lines and lost with the caller's vectors (aligned to 16 bytes; 5000 × 1000, see there).
    pub(crate) fn with_padded<R>(&self, x: &[f64], f: impl FnOnce(&[f64]) -> R) -> R {
        fn copy<const N: usize, R>(n: usize, pitch: usize, x: &[f64], f: impl FnOnce(&[f64]) -> R) -> R {
            let mut buf = PaddedCopy([0.0; N]);
            buf.0[..n].copy_from_slice(&x[..n]);
            f(&buf.0[..pitch])
        }
        if !self.copies() {
            f(x)
        } else if self.pitch <= PADDED_MAX {
            copy::<PADDED_MAX, R>(self.n, self.pitch, x, f)
        } else {
            copy::<LONG_PADDED_MAX, R>(self.n, self.pitch, x, f)
        }
    }

    /// `f` of g (n entries) followed by zeros to the pitch, then the copy's first n entries
    /// back into g (what `f` left in the padding is dropped): g itself when there is no
    /// padding, else a copy on the stack (always for the rows that [`AlignedT::with_padded`]
    /// always copies).
    pub(crate) fn with_padded_mut<R>(&self, g: &mut [f64], f: impl FnOnce(&mut [f64]) -> R) -> R {
        fn copy<const N: usize, R>(
            n: usize,
            pitch: usize,
            g: &mut [f64],
            f: impl FnOnce(&mut [f64]) -> R,
        ) -> R {
            let mut buf = PaddedCopy([0.0; N]);
            buf.0[..n].copy_from_slice(&g[..n]);
            let r = f(&mut buf.0[..pitch]);
            g[..n].copy_from_slice(&buf.0[..n]);
            r
        }
        if !self.copies() {
            f(g)
        } else if self.pitch <= PADDED_MAX {
            copy::<PADDED_MAX, R>(self.n, self.pitch, g, f)
        } else {
            copy::<LONG_PADDED_MAX, R>(self.n, self.pitch, g, f)
        }
    }

    /// Whether [`AlignedT::with_padded`] and [`AlignedT::with_padded_mut`] copy: for padding,
    /// or for alignment (rows of `crate::kernels::NEAR_MIN` to [`LONG_PADDED_MAX`] entries, a
    /// multiple of 8, the rows `crate::kernels::near_rows` takes, on a CPU that runs it).
    fn copies(&self) -> bool {
        let near = (crate::kernels::NEAR_MIN..=LONG_PADDED_MAX).contains(&self.pitch);
        self.pitch != self.n || (near && self.pitch.is_multiple_of(8) && crate::kernels::cpu_weaves())
    }

    /// m, A's number of rows.
    pub(crate) fn ncols(&self) -> usize {
        self.m
    }

    /// (pitch, m).
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.pitch, self.m)
    }

    /// m·pitch.
    pub(crate) fn len(&self) -> usize {
        self.pitch * self.m
    }

    /// The m·pitch entries, A's rows (each with its padding) one after another.
    pub(crate) fn as_slice(&self) -> &[f64] {
        // SAFETY: `Line` is `repr(C)` around [f64; 8], 64 bytes with no padding, so `buf` is
        // 8·buf.len() initialized f64s in a row (aligned to 64 ≥ 8); m·pitch ≤ 8·buf.len()
        let all = unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<f64>(), self.buf.len() * 8) };
        &all[..self.len()]
    }

    fn as_mut_slice(&mut self) -> &mut [f64] {
        let len = self.len();
        // SAFETY: as in `as_slice`, through the unique borrow of `buf`
        let all = unsafe {
            std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<f64>(), self.buf.len() * 8)
        };
        &mut all[..len]
    }

    /// Aᵀ as a nalgebra matrix view (pitch × m, the padding's rows zero), for the set-up steps
    /// that want its operations.
    pub(crate) fn view(&self) -> DMatrixView<'_, f64> {
        DMatrixView::from_slice(self.as_slice(), self.pitch, self.m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_transposed_on_a_cache_line() {
        for (m, n) in [(1, 1), (3, 5), (7, 50), (2, 200)] {
            let a = Matrix::from_fn(m, n, |i, j| (i * 1000 + j) as f64 + 0.5);
            let t = AlignedT::of(&a);
            assert_eq!(t.as_slice().as_ptr() as usize % 64, 0);
            assert_eq!((t.pitch(), t.ncols(), t.shape(), t.len()), (n, m, (n, m), m * n));
            assert_eq!(t.as_slice(), a.transpose().as_slice());
            assert_eq!(t.view(), a.transpose());
        }
    }

    #[test]
    fn pads_rows_of_tall_data_only() {
        // short rows to a multiple of 4 below 128 (on 12 MB of A or more, from 53 entries, to a
        // multiple of 8 where the CPU weaves them: below), long ones to a multiple of 8 up to
        // 1024; rows of up to 52 entries, which fit the registers, stay so on large data
        for (m, n, pitch) in [
            (200, 50, 52),
            (200, 5, 8),
            (200, 48, 48),
            (200, 123, 124),
            (200, 125, 128),
            (200, 127, 128),
            (4000, 100, 100),
            (16000, 50, 52),
            (32000, 50, 52),
            (51, 50, 50),
            (300, 128, 128),
            (300, 201, 208),
            (300, 204, 208),
            (900, 761, 768),
            (900, 769, 776),
            (1100, 1017, 1024),
            (1100, 1025, 1025),
            (900, 1017, 1017),
            (207, 201, 201),
        ] {
            let a = Matrix::from_fn(m, n, |i, j| (i * n + j) as f64 + 1.0);
            let t = AlignedT::padded(&a);
            assert_eq!((t.pitch(), t.features(), t.ncols()), (pitch, n, m), "{m}×{n}");
            assert_eq!(t.as_slice().as_ptr() as usize % 64, 0);
            for (i, row) in t.as_slice().chunks_exact(pitch).enumerate() {
                assert_eq!(&row[..n], a.row(i).transpose().as_slice(), "{m}×{n} row {i}");
                assert!(row[n..].iter().all(|&v| v == 0.0), "{m}×{n} row {i}: padding");
            }
            let x: Vec<f64> = (0..n).map(|j| j as f64 + 0.5).collect();
            t.with_padded(&x, |xp| {
                assert_eq!((xp.len(), &xp[..n]), (pitch, &x[..]));
                assert!(xp[n..].iter().all(|&v| v == 0.0));
            });
            let mut g = x.clone();
            t.with_padded_mut(&mut g, |gp| gp.iter_mut().for_each(|v| *v *= 2.0));
            assert!(g.iter().zip(&x).all(|(gj, xj)| *gj == 2.0 * xj), "{m}×{n}");
        }
        // on 12 MB of A or more, where the CPU weaves them, short rows from 53 entries to a
        // multiple of 8 (121 to 124 to 128, a long row); elsewhere to a multiple of 4
        let weaves = crate::kernels::cpu_weaves();
        for (m, n, woven, not) in [
            (30000, 53, 56, 56),
            (16000, 100, 104, 100),
            (14000, 122, 128, 124),
            (4000, 100, 100, 100),
        ] {
            let t = AlignedT::padded(&Matrix::zeros(m, n));
            assert_eq!(t.pitch(), if weaves { woven } else { not }, "{m}×{n}");
        }
    }
}
