//! The node file (`/run/weft/node.json`), which the agent writes and every CNI ADD reads:
//! whoever can write the state dir writes the plugin's input. Accepted files are valid and
//! read back the same from what weft writes of them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use weft_core::NodeFile;

fuzz_target!(|data: &[u8]| {
    // The plugin reads the file with read_to_string: bytes that are not UTF-8 never reach
    // the parser.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = NodeFile::parse(text) else { return };
    file.validate().expect("an accepted node file is valid");
    let again = NodeFile::parse(&file.to_json()).expect("a node file's own JSON reads back");
    assert_eq!(again, file, "the node file changes across a write and a read");
});
