"""Setting up and checking a machine: `installer` (`inknhue install`, standard library until
torch is in) and `doctor` (`inknhue doctor`)."""
