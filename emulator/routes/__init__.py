"""Route modules of the emulator, one per API area."""
