//! Process-wide settings for a small board, made once at start, and
//! clearing what a killed earlier run left behind.

use std::path::Path;

/// glibc gives threads their own heaps, up to eight per core, and each keeps
/// what it once held. edgecam starts a thread per camera (re)open and
/// GStreamer more per pipeline: on a small board that added a few MB of
/// resident memory over a series of replugs. Two heaps are plenty here.
///
/// Frames (hundreds of KB) are big enough for their own mappings, which go
/// back to the kernel when freed — but glibc raises that threshold to the
/// size of each such block freed, and from then on frames come from the
/// heaps and their holes stay resident: about 250 KB more per replug in the
/// VM test. A fixed threshold keeps them mapped (measured flat over 20).
pub fn limit_heap_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only adjusts allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Where the kernel backs anonymous memory with 2 MB pages whenever it can
/// (Debian's default), a thread stack that happens to lie on a 2 MB
/// boundary takes a whole 2 MB page the moment it is touched, and keeps it
/// when glibc caches the stack for the next thread. edgecam starts threads
/// at every camera reopen, so resident memory stepped up by exactly 2 MB at
/// random replugs (seen in the VM test: an 8 MB stack mapping with 2048 KB
/// resident). A video service gains nothing from huge pages; a small board
/// gains predictable memory. Failure (an old kernel) changes nothing.
pub fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and only
    // sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Removes the temporary files a configuration write killed half-way
/// left beside `config` (`.edgecam-config-*`; see `config::store`). The
/// file itself is whole: a write replaces it only by renaming.
pub fn remove_abandoned_config_files(config: &Path) {
    let dir = match config.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name
            .to_string_lossy()
            .starts_with(crate::config::store::TEMPORARY_PREFIX)
        {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, left by a configuration write that was cut short",
                    entry.path().display()
                ),
                Err(err) => tracing::warn!("cannot remove {}: {err}", entry.path().display()),
            }
        }
    }
}

/// The soft limit on open files, from /proc (the unit's system call
/// filter refuses the rlimit calls).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_temporary_files_go_and_the_config_stays() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "x").unwrap();
        std::fs::write(dir.path().join(".edgecam-config-abc123"), "half").unwrap();
        std::fs::write(dir.path().join("other"), "keep").unwrap();
        remove_abandoned_config_files(&config);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["config.toml", "other"]);
    }

    #[test]
    fn the_open_files_limit_is_read() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
