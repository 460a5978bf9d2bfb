//! Scratch directories for the tests that open stores on real files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// A fresh directory `{prefix}-{pid}-{n}` under Cargo's temporary directory. The first call
/// in a process removes the directories that test processes which have ended left behind:
/// every store allocates its segments whole, and the stores of earlier runs had piled up to
/// 45 GB and filled the disk.
pub fn scratch(prefix: &str) -> PathBuf {
    static SWEEP: Once = Once::new();
    static N: AtomicUsize = AtomicUsize::new(0);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    SWEEP.call_once(|| sweep(&root));
    let dir = root.join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Removes `{prefix}-{pid}-{n}` directories whose process is gone (tests run in parallel
/// processes under nextest, so a live one's are kept).
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.rsplitn(3, '-');
        let (Some(n), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(_), Ok(pid)) = (n.parse::<u64>(), pid.parse::<u32>()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
