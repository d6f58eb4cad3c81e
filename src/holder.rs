//! Who holds a file lock: the process id and command line of the holder of an advisory lock on
//! a file, read from Linux's `/proc/locks`. Used to say who keeps the coordination log busy;
//! elsewhere (or when /proc says nothing) the answer is simply unknown.

use std::path::Path;

/// "process 1234 (spanfold agents coordination-cycle)", or None when it cannot be told.
pub fn describe(file: &Path) -> Option<String> {
    let pid = holder_pid(file)?;
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
        })
        .filter(|words| !words.is_empty())
        .map(|mut words| {
            // The program's name rather than the path it was started from.
            if let Some(name) = Path::new(&words[0]).file_name() {
                words[0] = name.to_string_lossy().into_owned();
            }
            words.join(" ")
        });
    Some(match command {
        Some(c) => format!("process {pid} ({c})"),
        None => format!("process {pid}"),
    })
}

#[cfg(unix)]
fn holder_pid(file: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(file).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| parse_line(line, inode))
}

#[cfg(not(unix))]
fn holder_pid(_file: &Path) -> Option<u32> {
    None
}

/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF` → 1234 when the inode is `inode`.
fn parse_line(line: &str, inode: u64) -> Option<u32> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // A blocked waiter's line carries "->" after the number; the holder's does not.
    if fields.get(1) == Some(&"->") {
        return None;
    }
    let pid = fields.get(4)?.parse().ok()?;
    let dev_inode = fields.get(5)?;
    let found: u64 = dev_inode.rsplit(':').next()?.parse().ok()?;
    (found == inode).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proc_locks_line_names_its_holder_for_the_right_inode_only() {
        let line = "1: FLOCK  ADVISORY  WRITE 4242 08:01:5678 0 EOF";
        assert_eq!(parse_line(line, 5678), Some(4242));
        assert_eq!(parse_line(line, 5679), None);
        let waiter = "1: -> FLOCK  ADVISORY  WRITE 4243 08:01:5678 0 EOF";
        assert_eq!(parse_line(waiter, 5678), None);
    }

    #[test]
    fn this_process_is_named_as_the_holder_of_its_own_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("db");
        let handle = std::fs::File::create(&file).expect("create");
        handle.lock().expect("lock");
        let said = describe(&file).expect("the holder is found");
        assert!(
            said.starts_with(&format!("process {} (", std::process::id())),
            "{said}"
        );
    }
}
