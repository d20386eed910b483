//! Writing result files: all of them or none, and never a partial one.
//!
//! A regular file (or a path that does not exist yet) is written to a temporary file beside
//! it, `.NAME.PID.gradfit-partial`, created fresh (it never overwrites a file of that name),
//! and renamed over the target only once everything was written; the target keeps its
//! permissions. A symbolic link is followed: its target is replaced and the link stays. A
//! FIFO, a device such as `/dev/stdout`, or a socket cannot be replaced, so it is written in
//! place, after every temporary was written and before any is renamed; a path that is this
//! process's own standard output or error (`/dev/stdout` while stdout is redirected to a
//! file) is written through that open stream, so the redirection's file is neither replaced
//! nor rewritten from its start. A directory is an error before anything is written.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("gradfit-output-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let (a, b) = (dir.join("a.csv"), dir.join("b.csv"));
//! gradfit::output::write_all_or_none(&[(&a, b"x\n1\n".as_slice()), (&b, b"y\n2\n".as_slice())])?;
//! assert_eq!(std::fs::read(&a).unwrap(), b"x\n1\n");
//! // the second target is a directory: nothing is written, a.csv keeps its contents
//! assert!(gradfit::output::write_all_or_none(&[(&a, b"new\n".as_slice()), (&dir, b"".as_slice())]).is_err());
//! assert_eq!(std::fs::read(&a).unwrap(), b"x\n1\n");
//! std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), gradfit::Error>(())
//! ```

use std::ffi::OsString;
use std::fs::{OpenOptions, Permissions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where one file's bytes go.
enum Dest {
    /// Through `tmp`, renamed over `target` at the end.
    Replace {
        target: PathBuf,
        tmp: PathBuf,
        perms: Option<Permissions>,
    },
    /// Straight into the path (a FIFO, a device, a socket).
    InPlace,
    /// Into this process's standard output (1) or error (2), already open: the path names
    /// the file or pipe it is redirected to (`/dev/stdout` under `> out.txt`), which must be
    /// written through the open stream, not replaced or reopened.
    Stream(u8),
}

fn io_error(path: &Path, error: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// How `path` will be written; fails on a directory or an unreadable path.
fn plan(path: &Path) -> Result<Dest> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(io_error(
            path,
            io::Error::new(ErrorKind::IsADirectory, "is a directory"),
        )),
        Ok(m) => match standard_stream(&m) {
            Some(n) => Ok(Dest::Stream(n)),
            None if m.is_file() => {
                let target = std::fs::canonicalize(path).map_err(|e| io_error(path, e))?;
                Ok(Dest::Replace {
                    tmp: temp_beside(path, &target)?,
                    target,
                    perms: Some(m.permissions()),
                })
            }
            None => Ok(Dest::InPlace),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // a dangling symbolic link (or a chain of them): create what it ends at, keep
            // the links
            let target = link_end(path);
            // a missing directory said as such, not as the bare "No such file or directory"
            // of the temporary file, which reads as if an input were missing
            if let Some(dir) = target
                .parent()
                .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
            {
                let why = format!(
                    "cannot be written: the directory {} does not exist",
                    dir.display()
                );
                return Err(io_error(path, io::Error::new(ErrorKind::NotFound, why)));
            }
            Ok(Dest::Replace {
                tmp: temp_beside(path, &target)?,
                target,
                perms: None,
            })
        }
        Err(e) => Err(io_error(path, e)),
    }
}

/// Where a chain of symbolic links ends (the path itself if it is not a link); relative links
/// are taken from their own directory. Stops after 40 links, as the kernel does.
fn link_end(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&p) {
            Ok(link) => p = p.parent().map_or(link.clone(), |dir| dir.join(&link)),
            Err(_) => break,
        }
    }
    p
}

/// Which of this process's standard output (1) and error (2) is the file `m` describes, if
/// either (same device and inode).
#[cfg(unix)]
fn standard_stream(m: &std::fs::Metadata) -> Option<u8> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fds = [
        (1, std::io::stdout().as_fd().try_clone_to_owned()),
        (2, std::io::stderr().as_fd().try_clone_to_owned()),
    ];
    fds.into_iter().find_map(|(n, fd)| {
        let sm = std::fs::File::from(fd.ok()?).metadata().ok()?;
        (sm.dev() == m.dev() && sm.ino() == m.ino()).then_some(n)
    })
}

#[cfg(not(unix))]
fn standard_stream(_: &std::fs::Metadata) -> Option<u8> {
    None
}

/// Writes into the process's standard output or error.
fn write_stream(n: u8, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    if n == 2 {
        let mut e = io::stderr().lock();
        write(&mut e)?;
        e.flush()
    } else {
        let mut o = io::stdout().lock();
        write(&mut o)?;
        o.flush()
    }
}

/// `.NAME.PID.gradfit-partial` in the target's directory (a rename does not cross file
/// systems; the process id keeps two runs writing the same file apart).
fn temp_beside(path: &Path, target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| io_error(path, io::Error::new(ErrorKind::InvalidInput, "not a file name")))?;
    let mut tmp = OsString::from(".");
    if name.len() <= 200 {
        tmp.push(name);
    } else {
        // a name near the 255-byte limit would not fit with the suffix: a hash of it instead
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut h);
        tmp.push(format!("{:016x}", h.finish()));
    }
    tmp.push(format!(".{}.gradfit-partial", std::process::id()));
    Ok(target.with_file_name(tmp))
}

/// Writes `tmp` afresh through `write`, flushed to disk, with `perms` if given.
fn write_temp(
    tmp: &Path,
    perms: &Option<Permissions>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let file = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    let mut w = BufWriter::new(file);
    write(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    if let Some(p) = perms {
        std::fs::set_permissions(tmp, p.clone())?;
    }
    Ok(())
}

/// Writes into an existing FIFO, device or socket.
fn write_in_place(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let mut w = BufWriter::new(OpenOptions::new().write(true).open(path)?);
    write(&mut w)?;
    w.flush()
}

/// Writes every (path, contents) or, on any failure, none: the targets are left as they were
/// and no temporary stays behind. The same file named twice (also through a link) is an error.
pub fn write_all_or_none(files: &[(&Path, &[u8])]) -> Result<()> {
    let plans = files
        .iter()
        .map(|(path, _)| plan(path))
        .collect::<Result<Vec<_>>>()?;
    for (i, (path, _)) in files.iter().enumerate() {
        for (other, _) in &files[..i] {
            if same_file(path, other) {
                return Err(io_error(
                    path,
                    io::Error::new(
                        ErrorKind::InvalidInput,
                        format!("named twice (also as {})", other.display()),
                    ),
                ));
            }
        }
    }
    let temps: Vec<&Path> = plans
        .iter()
        .filter_map(|d| match d {
            Dest::Replace { tmp, .. } => Some(tmp.as_path()),
            Dest::InPlace | Dest::Stream(_) => None,
        })
        .collect();
    let cleanup = |n: usize| temps.iter().take(n).for_each(|t| drop(std::fs::remove_file(t)));
    let mut written = 0;
    for ((path, contents), dest) in files.iter().zip(&plans) {
        if let Dest::Replace { tmp, perms, .. } = dest {
            written += 1;
            if let Err(e) = write_temp(tmp, perms, |w| w.write_all(contents)) {
                // a temporary that could not be created is not ours to remove
                cleanup(if e.kind() == ErrorKind::AlreadyExists {
                    written - 1
                } else {
                    written
                });
                return Err(io_error(path, e));
            }
        }
    }
    for ((path, contents), dest) in files.iter().zip(&plans) {
        let result = match dest {
            Dest::InPlace => write_in_place(path, |w| w.write_all(contents)),
            Dest::Stream(n) => write_stream(*n, |w| w.write_all(contents)),
            Dest::Replace { .. } => Ok(()),
        };
        if let Err(e) = result {
            cleanup(written);
            return Err(io_error(path, e));
        }
    }
    for ((path, _), dest) in files.iter().zip(&plans) {
        if let Dest::Replace { target, tmp, .. } = dest {
            if let Err(e) = std::fs::rename(tmp, target) {
                cleanup(written);
                return Err(io_error(path, e));
            }
        }
    }
    Ok(())
}

/// Writes one file through `write` (streamed, for large outputs), with the same guarantees as
/// [`write_all_or_none`].
pub fn write_streamed(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
    match plan(path)? {
        Dest::InPlace => write_in_place(path, write).map_err(|e| io_error(path, e)),
        Dest::Stream(n) => write_stream(n, write).map_err(|e| io_error(path, e)),
        Dest::Replace { target, tmp, perms } => {
            if let Err(e) = write_temp(&tmp, &perms, write) {
                if e.kind() != ErrorKind::AlreadyExists {
                    let _ = std::fs::remove_file(&tmp);
                }
                return Err(io_error(path, e));
            }
            std::fs::rename(&tmp, &target).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io_error(path, e)
            })
        }
    }
}

/// Whether two paths name one file, after links; a file that does not exist yet is named by
/// its directory's canonical path and its name.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn resolved(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok().or_else(|| {
        let p = link_end(p);
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(std::fs::canonicalize(dir).ok()?.join(p.file_name()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gradfit-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn two_files_with_one_stem_both_arrive() {
        let dir = scratch("stem");
        let (a, b) = (dir.join("res.csv"), dir.join("res.txt"));
        write_all_or_none(&[(&a, b"trace\n".as_slice()), (&b, b"params\n".as_slice())]).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"trace\n");
        assert_eq!(std::fs::read(&b).unwrap(), b"params\n");
        assert_eq!(listing(&dir), ["res.csv", "res.txt"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_name_near_the_length_limit_is_written() {
        let dir = scratch("long");
        let a = dir.join(format!("{}.csv", "n".repeat(245)));
        write_all_or_none(&[(&a, b"long\n".as_slice())]).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"long\n");
        assert_eq!(listing(&dir).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_same_file_twice_is_an_error_and_writes_nothing() {
        let dir = scratch("twice");
        let a = dir.join("same.csv");
        let e = write_all_or_none(&[(&a, b"1\n".as_slice()), (&a, b"2\n".as_slice())]).unwrap_err();
        assert!(e.to_string().contains("named twice"), "{e}");
        // also when it does not exist yet and is spelled two ways
        let b = dir.join(".").join("same.csv");
        let e = write_all_or_none(&[(&a, b"1\n".as_slice()), (&b, b"2\n".as_slice())]).unwrap_err();
        assert!(e.to_string().contains("named twice"), "{e}");
        assert!(listing(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_target_fails_before_anything_is_written() {
        let dir = scratch("dir");
        let a = dir.join("a.csv");
        std::fs::write(&a, b"old\n").unwrap();
        let sub = dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write_all_or_none(&[(&a, b"new\n".as_slice()), (&sub, b"x".as_slice())]).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"old\n");
        assert_eq!(listing(&dir), ["a.csv", "sub"]);
        let e = write_streamed(&sub, |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert_eq!(listing(&dir), ["a.csv", "sub"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_named_and_nothing_is_written() {
        let dir = scratch("nodir");
        let a = dir.join("a.csv");
        let missing = dir.join("nodir").join("b.csv");
        let e = write_all_or_none(&[(&a, b"a\n".as_slice()), (&missing, b"b\n".as_slice())]).unwrap_err();
        let want = format!("the directory {} does not exist", dir.join("nodir").display());
        assert!(e.to_string().contains(&want), "{e}");
        let e = write_streamed(&missing, |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains(&want), "{e}");
        assert!(listing(&dir).is_empty());
        // a name without a directory is in the current one, which exists
        assert!(plan(Path::new("gradfit-plan-only.csv")).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_stream_leaves_the_old_file_and_no_temporary() {
        let dir = scratch("fail");
        let a = dir.join("a.csv");
        std::fs::write(&a, b"old\n").unwrap();
        let e = write_streamed(&a, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(std::fs::read(&a).unwrap(), b"old\n");
        assert_eq!(listing(&dir), ["a.csv"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_and_permissions_kept() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = scratch("link");
        let (real, link) = (dir.join("real.csv"), dir.join("link.csv"));
        std::fs::write(&real, b"old\n").unwrap();
        std::fs::set_permissions(&real, Permissions::from_mode(0o600)).unwrap();
        symlink(&real, &link).unwrap();
        write_all_or_none(&[(&link, b"new\n".as_slice())]).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new\n");
        assert_eq!(
            std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // a dangling link gets its target created
        let (gone, dangling) = (dir.join("gone.csv"), dir.join("dangling.csv"));
        symlink("gone.csv", &dangling).unwrap();
        write_streamed(&dangling, |w| w.write_all(b"made\n")).unwrap();
        assert_eq!(std::fs::read(&gone).unwrap(), b"made\n");
        assert!(std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
        // a chain of links that ends nowhere: the end is created, every link stays; before
        // that, the first link and the end name one file
        symlink("b.csv", dir.join("a.csv")).unwrap();
        symlink("c.csv", dir.join("b.csv")).unwrap();
        assert!(same_file(&dir.join("a.csv"), &dir.join("c.csv")));
        write_all_or_none(&[(&dir.join("a.csv"), b"chain\n".as_slice())]).unwrap();
        assert_eq!(std::fs::read(dir.join("c.csv")).unwrap(), b"chain\n");
        assert!(std::fs::symlink_metadata(dir.join("b.csv"))
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_device_is_written_in_place_and_its_errors_reported() {
        // /dev/null takes everything; /dev/full refuses with "no space left", and is not
        // replaced by a regular file
        write_all_or_none(&[(Path::new("/dev/null"), b"x\n".as_slice())]).unwrap();
        if Path::new("/dev/full").exists() {
            let e = write_streamed(Path::new("/dev/full"), |w| w.write_all(b"x\n")).unwrap_err();
            assert!(e.to_string().starts_with("/dev/full: "), "{e}");
            assert!(!std::fs::metadata("/dev/full").unwrap().is_file());
        }
    }
}
