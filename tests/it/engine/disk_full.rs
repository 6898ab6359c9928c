//! A journal write that fails for real (a full disk) stops the run with exit 1, naming the run
//! and the command that continues it; once there is room, that command finishes the run.
//!
//! The state dir is a 256 KiB tmpfs mounted in this test's own mount namespace (nextest runs
//! each test in its own process; the mount vanishes with it and nobody else sees it).

use std::ffi::CString;
use std::io::Write;

use super::run_support::*;

fn private_tmpfs(at: &std::path::Path) {
    let c = |s: &str| CString::new(s).unwrap();
    let target = c(at.to_str().unwrap());
    // SAFETY: plain syscalls with valid NUL-terminated strings; they affect this test process.
    unsafe {
        assert_eq!(
            libc::unshare(libc::CLONE_NEWNS),
            0,
            "unshare: {}",
            std::io::Error::last_os_error()
        );
        let none = c("none");
        let root = c("/");
        assert_eq!(
            libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ),
            0
        );
        let tmpfs = c("tmpfs");
        let options = c("size=256k,mode=0700");
        assert_eq!(
            libc::mount(
                tmpfs.as_ptr(),
                target.as_ptr(),
                tmpfs.as_ptr(),
                0,
                options.as_ptr().cast()
            ),
            0,
            "mount tmpfs: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn a_full_disk_stops_the_run_naming_it_and_resume_finishes_it() {
    let s = Scratch::new();
    std::fs::create_dir(s.state()).unwrap();
    private_tmpfs(&s.state());
    let wf = s.workflow("nap.yaml", NAP);
    let child = s.spawn(&["run", wf.to_str().unwrap()]);
    let id = s.wait_for_step("nap", "running");

    // Fill the state dir while the step runs: recording its end cannot be written.
    let filler = s.state().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    drop(file);

    let out = wait_output(child);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(&format!("run {id} stopped")), "{err}");
    assert!(err.contains(&format!("\n  rescue resume {id}\n")), "{err}");
    assert_eq!(lines_of(&s.path("count")), ["before"]);

    std::fs::remove_file(&filler).unwrap();
    assert_exit(&s.run(&["resume", &id]), 0);
    assert_eq!(lines_of(&s.path("count")), ["before", "after"]);
}
