//! Processes in the lab's namespaces: started there as daemons that outlive `weft lab up`,
//! found again by the namespace they run in, and stopped.

use crate::state::Process;
use crate::LabError;
use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::os::linux::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_kernel::NetNs;

/// Makes `command` run inside `ns`, as a runtime runs a plugin in the node's namespace.
pub fn runs_in(command: &mut Command, ns: &NetNs) {
    let fd = ns.as_raw_fd();
    // SAFETY: between fork and exec the child only calls setns on an inherited fd.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts `command` inside `ns` in a session of its own, its output appended to `log`, so
/// it keeps running after the lab command exits and a terminal's ^C does not reach it.
pub fn spawn_daemon(mut command: Command, ns: &NetNs, log: &Path) -> Result<(Child, Process), LabError> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LabError::io(format!("create {}", dir.display()), e))?;
    }
    let open_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LabError::io(format!("open {}", log.display()), e))
    };
    command.stdin(Stdio::null()).stdout(open_log()?).stderr(open_log()?);
    runs_in(&mut command, ns);
    // SAFETY: setsid only detaches the child from our session.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let program = command.get_program().to_string_lossy().into_owned();
    let child = command.spawn().map_err(|e| LabError::io(format!("start {program}"), e))?;
    let pid = child.id();
    // Without its start time the process could not be told from a later one with its pid.
    let start_time = start_time(pid).ok_or_else(|| {
        LabError::io(format!("read /proc/{pid}/stat of {program}"), std::io::ErrorKind::NotFound.into())
    })?;
    Ok((child, Process { pid, start_time }))
}

/// Whether `program` (a path, or a name on the PATH) is there.
pub fn installed(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow its ')'.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process is still the one we started (not gone, not a zombie, not a reused
/// pid).
pub fn is_running(process: &Process) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", process.pid)).unwrap_or_default();
    let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
    !zombie && start_time(process.pid) == Some(process.start_time)
}

/// Sends `signal` to the process if it is still ours.
pub fn signal(process: &Process, signal: libc::c_int) {
    if is_running(process) {
        // SAFETY: kill has no memory effects; the pid was checked just above.
        unsafe { libc::kill(process.pid as libc::pid_t, signal) };
    }
}

/// Waits until none of `processes` runs, up to `timeout`; true if they all stopped.
pub fn wait_gone(processes: &[Process], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !processes.iter().any(is_running) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every process (other than this one) whose network namespace is one of `namespaces`
/// (paths of named namespaces). This finds a lab's processes even when `up` was killed
/// before it could write their pids down.
pub fn processes_in(namespaces: &[std::path::PathBuf]) -> Vec<Process> {
    let inodes: HashSet<(u64, u64)> = namespaces
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|m| (m.st_dev(), m.st_ino()))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| inodes.contains(&(m.st_dev(), m.st_ino())))
        })
        .filter_map(|pid| Some(Process { pid, start_time: start_time(pid)? }))
        .collect()
}

/// Stops processes: SIGTERM, then SIGKILL for any still there after `grace`.
pub fn stop_all(processes: &[Process], grace: Duration) {
    for process in processes {
        signal(process, libc::SIGTERM);
    }
    if !wait_gone(processes, grace) {
        for process in processes {
            signal(process, libc::SIGKILL);
        }
        wait_gone(processes, Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_start_time_is_read_and_matches() {
        let me = Process { pid: std::process::id(), start_time: start_time(std::process::id()).unwrap() };
        assert!(is_running(&me));
        assert!(!is_running(&Process { start_time: me.start_time + 1, ..me.clone() }));
    }
}
