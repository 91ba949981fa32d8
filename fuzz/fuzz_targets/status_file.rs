//! The agent's status file (`status.json` in its state dir), which `weft status`,
//! `weft trace` and the lab read. Accepted files read back the same from what weft writes
//! of them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weft_core::status::StatusFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(status) = StatusFile::parse(text) else { return };
    let again = StatusFile::parse(&status.to_json()).expect("a status file's own JSON reads back");
    assert_eq!(again, status, "the status file changes across a write and a read");
});
