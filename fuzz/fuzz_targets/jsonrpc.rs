//! Any POST body through the JSON-RPC message decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    agent_hub::fuzzing::decode_message(data);
});
