"""Where the work runs: devices (`devices`), the C heap under CPU tensors (`host_memory`),
progress within network stages (`progress`) and results kept by their inputs (`cache`)."""
