//! CSV data: a header row and records, read once, then turned into numbers row by row
//! with errors that name the file, the line and the column.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A CSV file held as text: the header and every record with its line number.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file it came from.
    pub path: PathBuf,
    /// Column names, from the header row.
    pub headers: Vec<String>,
    records: Records,
}

/// The data rows, held compactly: every field's text one after another in one buffer, the
/// end of each field, and each row's line. A `csv::StringRecord` per row cost two allocations
/// and about 240 bytes beside its text: 5 000 000 rows of 3 fields took 1.22 GB to read from
/// a 196 MB file.
#[derive(Debug, Clone, Default)]
struct Records {
    text: String,
    ends: Vec<usize>,
    lines: Vec<u64>,
    /// Fields per row (every row has the header's count).
    width: usize,
}

impl Records {
    fn len(&self) -> usize {
        self.lines.len()
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Field j of row i ("" past the row's end).
    fn field(&self, i: usize, j: usize) -> &str {
        if j >= self.width {
            return "";
        }
        let at = i * self.width + j;
        let start = if at == 0 { 0 } else { self.ends[at - 1] };
        self.text.get(start..self.ends[at]).unwrap_or("")
    }
}

/// Reads a CSV file with a header row. Every record must have as many fields as the header.
///
/// Errors: the file cannot be read; it is empty; it has a header but no rows; a row has too
/// few or too many fields (its line number); a header name is empty or repeated.
pub fn read_csv(path: &Path) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_csv(&bytes, path)
}

/// [`read_csv`] from a reader (standard input, say), read to its end; errors name it `name`.
pub fn read_csv_from(mut reader: impl std::io::Read, name: &Path) -> Result<Table> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|error| Error::Io {
        path: name.to_path_buf(),
        error,
    })?;
    parse_csv(&bytes, name)
}

/// The CSV text `bytes`, read from `path`.
fn parse_csv(bytes: &[u8], path: &Path) -> Result<Table> {
    // line numbers come from byte offsets: after a "\r\n" line end the csv crate's own count
    // is one short, and its offset points at the "\n" (BurntSushi/rust-csv#395)
    let mut lines = Lines {
        bytes,
        at: 0,
        line: 1,
    };
    let csv_error = |line: u64, message: String| Error::Csv {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| describe(path, e, &mut lines))?
        .iter()
        .map(str::to_string)
        .collect();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        // a first line of blanks before the data is not an empty file
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let message = match text.iter().all(u8::is_ascii_whitespace) {
            true => "the file is empty: expected a header row",
            false => "the header row is blank: expected the column names",
        };
        return Err(csv_error(header_line(bytes), message.into()));
    }
    // a set, not a search of the names before each: 60 000 columns took 12 s
    let mut seen = std::collections::HashSet::with_capacity(headers.len());
    for (j, h) in headers.iter().enumerate() {
        if h.is_empty() {
            return Err(csv_error(
                header_line(bytes),
                format!("column {} has an empty name in the header", j + 1),
            ));
        }
        if !seen.insert(h.as_str()) {
            return Err(csv_error(
                header_line(bytes),
                format!("column name {h:?} appears twice in the header"),
            ));
        }
    }
    let mut records = Records {
        width: headers.len(),
        ..Records::default()
    };
    // one record read into again and again, its fields copied to the table's buffer
    let mut rec = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(describe(path, e, &mut lines)),
        }
        let line = rec.position().map_or(0, |p| lines.at(p.byte()));
        if rec.len() == 1 && rec[0].is_empty() {
            continue; // a blank line
        }
        // (the reader refuses a row of another length than the header's)
        for field in rec.iter() {
            records.text.push_str(field);
            records.ends.push(records.text.len());
        }
        records.lines.push(line);
    }
    if records.is_empty() {
        return Err(csv_error(
            header_line(bytes),
            "the file has a header but no data rows".into(),
        ));
    }
    Ok(Table {
        path: path.to_path_buf(),
        headers,
        records,
    })
}

/// The 1-based line of the header: the first line that is not empty (the reader skips empty
/// ones, and a byte-order mark).
fn header_line(bytes: &[u8]) -> u64 {
    let bom = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let start = bom
        + bytes[bom..]
            .iter()
            .position(|b| *b != b'\n' && *b != b'\r')
            .unwrap_or(0);
    1 + line_ends(bytes, 0, start) as u64
}

/// The line ends in bytes[from..to]: each "\n", "\r\n" and lone "\r" (old Mac files; the csv
/// crate ends a record at any of the three).
fn line_ends(bytes: &[u8], from: usize, to: usize) -> usize {
    let text = &bytes[from..to];
    let feeds = text.iter().filter(|&&c| c == b'\n').count();
    let returns = text.iter().filter(|&&c| c == b'\r').count();
    if returns == 0 {
        return feeds;
    }
    // a "\r" ends a line of its own unless a "\n" follows (then that ends it)
    let pairs = text.windows(2).filter(|w| w == b"\r\n").count()
        + usize::from(text.last() == Some(&b'\r') && bytes.get(to) == Some(&b'\n'));
    feeds + returns - pairs
}

/// The 1-based line of the record the csv crate places at a byte offset: line ends at the
/// offset are stepped over (no record starts with one), then the line ends before it
/// counted; offsets asked for in increasing order cost one pass over the text in all.
struct Lines<'a> {
    bytes: &'a [u8],
    at: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, byte: u64) -> u64 {
        let mut b = usize::try_from(byte).unwrap_or(usize::MAX).min(self.bytes.len());
        // the header's offset is 0, before a byte-order mark the reader skipped
        if b == 0 && self.bytes.starts_with(b"\xEF\xBB\xBF") {
            b = 3;
        }
        while matches!(self.bytes.get(b), Some(b'\r' | b'\n')) {
            b += 1;
        }
        if b < self.at {
            (self.at, self.line) = (0, 1);
        }
        self.line += line_ends(self.bytes, self.at, b) as u64;
        self.at = b;
        self.line
    }
}

fn describe(path: &Path, e: csv::Error, lines: &mut Lines) -> Error {
    let line = e.position().map_or(0, |p| lines.at(p.byte()));
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            let which = if len < expected_len { "too few" } else { "too many" };
            // a quote left open swallows the rest of the file into one field
            let start = e.position().map_or(0, |p| p.byte() as usize);
            let hint = match open_quote(lines.bytes.get(start..).unwrap_or_default()) {
                true => " (a quote opened on this line is never closed?)",
                false => "",
            };
            format!("{which} fields: {len}, the header has {expected_len}{hint}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 text".to_string(),
        csv::ErrorKind::Io(err) => err.to_string(),
        _ => e.to_string(),
    };
    Error::Csv {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Whether the record starting at `text` (its first line; after a "\r\n" the csv crate's
/// offset points at the "\n", BurntSushi/rust-csv#395) opens a quote that is never closed: a
/// field that begins with a quote, with no other quote in the rest of the file. A quote inside
/// an unquoted field (5") is read as is, and a quoted field may close on a later line: neither
/// is an open quote. Where later quotes exist the hint is not given, rather than guessed from
/// their count (an inch mark in a later unquoted field made the count odd: a review).
fn open_quote(text: &[u8]) -> bool {
    let text = &text[text.iter().take_while(|b| **b == b'\n' || **b == b'\r').count()..];
    let line = text
        .split(|b| *b == b'\n' || *b == b'\r')
        .next()
        .unwrap_or_default();
    // the first quote that begins a field: at the line's start or after a comma, past spaces
    let mut at_field_start = true;
    let mut first = None;
    for (i, b) in line.iter().enumerate() {
        match b {
            b'"' if at_field_start => {
                first = Some(i);
                break;
            }
            b',' => at_field_start = true,
            b' ' | b'\t' => {}
            _ => at_field_start = false,
        }
    }
    first.is_some_and(|i| !text[i + 1..].contains(&b'"'))
}

impl Table {
    /// The number of data rows.
    pub fn rows(&self) -> usize {
        self.records.len()
    }

    /// The index of a named column, or an error listing the columns that exist.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| self.no_column(name))
    }

    /// The indices of named columns ([`Self::column`] of each, in order), from one pass over
    /// the header: a search of the header per name took 11 s for 60 000 features.
    pub fn columns<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<usize>> {
        let mut index = std::collections::HashMap::with_capacity(self.headers.len());
        // the first of a repeated name, as `column` finds it
        for (j, h) in self.headers.iter().enumerate().rev() {
            index.insert(h.as_str(), j);
        }
        names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                index.get(name).copied().ok_or_else(|| self.no_column(name))
            })
            .collect()
    }

    /// The error for a column `name` not in the header: the columns that are (the first 20 of
    /// more than 30), and why the header may not hold the name.
    fn no_column(&self, name: &str) -> Error {
        let shown = match self.headers.len() {
            0..=30 => self.headers.join(", "),
            count => format!("{}, … ({count} in all)", self.headers[..20].join(", ")),
        };
        Error::Data {
            what: format!(
                "{}: no column named {name:?}; the columns are: {shown}{}",
                self.path.display(),
                self.header_hint()
            ),
        }
    }

    /// Why the header may not hold the names one looks for: another separator than the comma
    /// (one header cell holding `;` or a tab), or no header row at all (every cell a number).
    fn header_hint(&self) -> String {
        let cell = self
            .headers
            .iter()
            .find_map(|h| [';', '\t', '|'].into_iter().find(|c| h.contains(*c)));
        if let Some(c) = cell {
            let shown = if c == '\t' {
                "tabs".to_string()
            } else {
                format!("{c:?}")
            };
            return format!(" (the header seems separated by {shown}: gradfit reads comma-separated files)");
        }
        if self.headers.iter().all(|h| h.parse::<f64>().is_ok()) {
            return " (the first row is all numbers: is the header row missing?)".into();
        }
        String::new()
    }

    /// A column as finite numbers; the error names the line, the column and the text.
    pub fn numbers(&self, j: usize) -> Result<Vec<f64>> {
        (0..self.rows()).map(|i| self.number(i, j)).collect()
    }

    /// Columns `columns` as finite numbers into the first `columns.len()` columns of `out`
    /// (an error unless it has [`Self::rows`] rows and enough columns), in one pass over the
    /// rows: the first bad cell in
    /// the file's order is the error, named as [`Self::numbers`] names it. Reading column by
    /// column instead visits every row once a column, each in its own allocation: at 1 000 000
    /// rows × 21 columns that was 54% of a solve's time.
    pub fn numbers_into(&self, columns: &[usize], out: &mut crate::Matrix) -> Result<()> {
        crate::error::check_len("rows of the matrix filled", self.rows(), out.nrows())?;
        if out.ncols() < columns.len() {
            return Err(Error::Data {
                what: format!(
                    "{} columns cannot be filled into a matrix of {}",
                    columns.len(),
                    out.ncols()
                ),
            });
        }
        for i in 0..self.rows() {
            for (k, &j) in columns.iter().enumerate() {
                out[(i, k)] = self.number(i, j)?;
            }
        }
        Ok(())
    }

    /// Field j of data row i as a finite number.
    fn number(&self, i: usize, j: usize) -> Result<f64> {
        let text = self.records.field(i, j);
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(Error::Parse {
                path: self.path.clone(),
                line: self.line(i),
                column: self.headers.get(j).cloned().unwrap_or_default(),
                text: text.to_string(),
            }),
        }
    }

    /// The 1-based line number of data row `i` (0 if there is no such row).
    pub fn line(&self, i: usize) -> u64 {
        self.records.lines.get(i).copied().unwrap_or(0)
    }

    /// A column as text labels.
    pub fn labels(&self, j: usize) -> Vec<String> {
        (0..self.rows())
            .map(|i| self.records.field(i, j).to_string())
            .collect()
    }
}

/// Reads a starting point: a CSV file with a header and either one column of values, or the
/// `name,value` columns that `gradfit solve --params-out` writes (so a fit can warm-start
/// another).
pub fn read_vector(path: &Path) -> Result<crate::Vector> {
    Ok(read_named_vector(path)?.0)
}

/// A name read from a file, with its 1-based line.
pub type LineName = (u64, String);

/// [`read_vector`], with the `name` column when the file has one: each name with its line, so
/// that a caller can check them against the parameters they are meant for.
pub fn read_named_vector(path: &Path) -> Result<(crate::Vector, Option<Vec<LineName>>)> {
    named_vector(&read_csv(path)?)
}

/// [`read_named_vector`] on a table already read, for a caller that also looks at its
/// headers.
pub fn named_vector(t: &Table) -> Result<(crate::Vector, Option<Vec<LineName>>)> {
    let path = t.path.as_path();
    let names = t
        .headers
        .iter()
        .position(|h| h == "name")
        .filter(|_| t.headers.len() > 1)
        .map(|j| {
            (0..t.rows())
                .map(|i| (t.line(i), t.records.field(i, j).to_string()))
                .collect()
        });
    let column = match t.headers.len() {
        1 => 0,
        _ if t.headers.iter().any(|h| h == "value") => t.column("value")?,
        n => {
            return Err(Error::Csv {
                path: path.to_path_buf(),
                line: 1,
                message: format!("expected one column, or a column named \"value\"; found {n} columns"),
            })
        }
    };
    Ok((crate::Vector::from_vec(t.numbers(column)?), names))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quote that begins a field and is never closed, after LF or CRLF; not a quote inside
    /// an unquoted field, nor one closed on a later line, nor an escaped one.
    #[test]
    fn an_open_quote_is_one_that_begins_a_field_and_never_closes() {
        for (text, open) in [
            (&b"\"2,1\n3,0\n"[..], true),
            (b"\n\"2,1\r\n3,0\r\n", true),
            (b"1, \"x,2\n", true),
            (b"5\",1\n", false),
            (b"5,\"x\ny\"\n", false),
            (b"\"1,2\n3,5\"\n", false),
            (b"5,\"a \"\"b\"\" c\",1\n", false),
            (b"1,2\n", false),
            (b"", false),
        ] {
            assert_eq!(open_quote(text), open, "{:?}", String::from_utf8_lossy(text));
        }
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        write_bytes(text.as_bytes())
    }

    fn write_bytes(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        std::fs::write(&p, bytes).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_numbers_and_names_bad_cells() {
        let (_d, p) = write("a,b\n1,2\n3,x\n");
        let t = read_csv(&p).unwrap();
        assert_eq!(t.numbers(0).unwrap(), vec![1.0, 3.0]);
        let e = t.numbers(1).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("\"b\"") && e.contains("\"x\""),
            "{e}"
        );
    }

    #[test]
    fn columns_are_found_by_name_and_a_missing_one_lists_a_long_header_in_part() {
        let names: Vec<String> = (1..=40).map(|j| format!("c{j}")).collect();
        let text = format!("{}\n{}\n", names.join(","), vec!["1"; 40].join(","));
        let (_d, p) = write(&text);
        let t = read_csv(&p).unwrap();
        assert_eq!(t.columns(&["c40", "c1", "c7"]).unwrap(), vec![39, 0, 6]);
        assert_eq!(t.column("c7").unwrap(), 6);
        for e in [t.columns(&["c1", "d"]).unwrap_err(), t.column("d").unwrap_err()] {
            let e = e.to_string();
            assert!(
                e.contains("no column named \"d\"") && e.contains("c1, c2,"),
                "{e}"
            );
            assert!(e.contains("c20, … (40 in all)") && !e.contains("c21"), "{e}");
        }
        let (_d, p) = write("a,b\n1,2\n");
        let e = read_csv(&p).unwrap().columns(&["z"]).unwrap_err().to_string();
        assert!(e.contains("the columns are: a, b"), "{e}");
    }

    #[test]
    fn numbers_into_fills_columns_in_one_pass_and_names_the_first_bad_cell_in_the_file() {
        let (_d, p) = write("a,b,c\n1,2,3\n4,5,6\n");
        let t = read_csv(&p).unwrap();
        let mut out = crate::Matrix::from_element(2, 3, 9.0);
        t.numbers_into(&[2, 0], &mut out).unwrap();
        assert_eq!(out.as_slice(), &[3.0, 6.0, 1.0, 4.0, 9.0, 9.0]);
        // column c is bad on line 2, column a on line 3: line 2's is the one named (column by
        // column would have named a's, the later line)
        let (_d, p) = write("a,b,c\n1,2,x\ny,5,6\n");
        let t = read_csv(&p).unwrap();
        let e = t
            .numbers_into(&[0, 2], &mut crate::Matrix::zeros(2, 2))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("\"c\"") && e.contains("\"x\""),
            "{e}"
        );
        for mut wrong in [crate::Matrix::zeros(3, 2), crate::Matrix::zeros(2, 1)] {
            assert!(t.numbers_into(&[0, 1], &mut wrong).is_err());
        }
    }

    #[test]
    fn fields_keep_their_text_and_rows_their_lines() {
        // quoted commas and quotes, trimmed spaces, a quoted line break, a blank line and an
        // empty field, read back field by field from the compact buffer
        let (_d, p) = write("a,b,c\n\" x, y \",2,\n\"he said \"\"hi\"\"\",3,z\n\n\"two\nlines\",5,\"\"\n");
        let t = read_csv(&p).unwrap();
        assert_eq!(t.rows(), 3);
        assert_eq!(t.labels(0), vec!["x, y", "he said \"hi\"", "two\nlines"]);
        assert_eq!(t.labels(2), vec!["", "z", ""]);
        assert_eq!(t.numbers(1).unwrap(), vec![2.0, 3.0, 5.0]);
        assert_eq!((t.line(0), t.line(1), t.line(2), t.line(3)), (2, 3, 5, 0));
        let e = t.numbers(2).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("\"c\""), "{e}");
    }

    #[test]
    fn ragged_rows_name_their_line() {
        let (_d, p) = write("a,b\n1,2\n3\n");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("too few"), "{e}");
    }

    #[test]
    fn lines_are_counted_right_after_crlf_blank_lines_and_quoted_newlines() {
        for (text, want) in [
            ("a,b,y\r\n1,2,0\r\n3,4,1\r\n5,zz,1\r\n", "line 4"),
            ("a,b,y\n1,2,0\n\n3,4,1\n5,zz,1\n", "line 5"),
            ("a,b,y\r\n\"1\r\n\",2,0\r\n5,zz,1\r\n", "line 4"),
        ] {
            let (_d, p) = write(text);
            let t = read_csv(&p).unwrap();
            let e = t.numbers(1).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let (_d, p) = write("a,b\r\n1,2\r\n3,4\r\n5\r\n");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("too few"), "{e}");
    }

    #[test]
    fn old_mac_line_ends_and_a_late_header_name_their_lines() {
        // lone "\r" line ends (a blank line among them), and a mix with "\r\n" and "\n"
        for (text, want) in [
            ("a,b,y\r1,2,0\r\r3,4,1\r5,zz,1\r", "line 5"),
            ("a,b,y\r1,2,0\r\n3,4,1\n5,zz,1\r", "line 4"),
        ] {
            let (_d, p) = write(text);
            let e = read_csv(&p).unwrap().numbers(1).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let (_d, p) = write("a,b\r1,2\r3\r");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("too few"), "{e}");
        // the header's own errors at its line, after blank lines and a byte-order mark
        for (text, want) in [
            ("\n\r\na,a\n1,2\n", "line 3"),
            ("\u{feff}\n\na,,b\n1,2,3\n", "line 3"),
            ("\r\ra,b,a\r1,2,3\r", "line 3"),
            ("\n\na,b\n", "line 3"),
        ] {
            let (_d, p) = write(text);
            let e = read_csv(&p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("header"), "{text:?}: {e}");
        }
        // bad UTF-8 in a header after a byte-order mark and blank lines
        let (_d, p) = write_bytes(b"\xef\xbb\xbf\r\n\r\na,\xff\n1,2\n");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("UTF-8"), "{e}");
        // a quote hint reads a line up to a lone "\r" too: line 2 holds only "1"
        let (_d, p) = write("a,b\r1\r3,\"x\r");
        let e = read_csv(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && !e.contains("quote"), "{e}");
    }

    #[test]
    fn empty_and_header_only() {
        // a byte-order mark and blank lines alone are an empty file too
        for text in ["", "\u{feff}", "\u{feff}\r\n\n"] {
            let (_d, p) = write(text);
            let e = read_csv(&p).unwrap_err().to_string();
            assert!(e.contains("the file is empty"), "{text:?}: {e}");
        }
        let (_d, p) = write("a,b\n");
        assert!(read_csv(&p).unwrap_err().to_string().contains("no data rows"));
    }
}
