//! Any arguments through a tool's argument decoder: the first byte picks the tool,
//! the rest is the `arguments` object.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, args)) = data.split_first() else {
        return;
    };
    let names = agent_hub::fuzzing::tool_names();
    let tool = names[usize::from(pick) % names.len()];
    agent_hub::fuzzing::decode_tool_args(tool, args);
});
